"""Retrieval metrics against brute force on small inputs."""

from __future__ import annotations

import numpy as np

from medrep.evaluation.retrieval import (
    paired_retrieval,
    precision_at_k,
    recall_at_k,
    target_ranks,
    topk_cosine,
)


def brute_cosine(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    cn = c / np.linalg.norm(c, axis=1, keepdims=True)
    return qn @ cn.T


def test_topk_matches_brute_force_for_any_chunk_size() -> None:
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(23, 6)), rng.normal(size=(41, 6))
    sim = brute_cosine(q, c)
    expected = np.argsort(-sim, axis=1, kind="stable")[:, :5]
    for chunk in (1, 4, 100):
        scores, idx = topk_cosine(q, c, 5, chunk_size=chunk)
        np.testing.assert_array_equal(idx, expected)
        np.testing.assert_allclose(scores, np.take_along_axis(sim, expected, 1), atol=1e-5)


def test_target_ranks_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    q, c = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    targets = rng.integers(0, 30, size=30)
    sim = brute_cosine(q, c)
    expected = [1 + int((sim[i] > sim[i, targets[i]]).sum()) for i in range(30)]
    np.testing.assert_array_equal(target_ranks(q, c, targets, chunk_size=7), expected)


def test_ties_count_against_the_target() -> None:
    q = np.array([[1.0, 0.0]])
    c = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert target_ranks(q, c, [0])[0] == 2


def test_recall_and_paired_retrieval() -> None:
    ranks = np.array([1, 2, 5, 11])
    assert recall_at_k(ranks, [1, 5, 10]) == {1: 0.25, 5: 0.75, 10: 0.75}
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 8))
    perfect = paired_retrieval(x, x + 1e-4 * rng.normal(size=x.shape), ks=[1])
    assert perfect["i2t_R@1"] == 1.0 and perfect["t2i_median_rank"] == 1.0
    shuffled = paired_retrieval(x, x[::-1].copy(), ks=[1])
    assert shuffled["i2t_R@1"] < 0.2


def test_precision_at_k_matches_a_loop() -> None:
    rng = np.random.default_rng(3)
    top = np.argsort(rng.random((4, 12)), axis=1)
    relevant = rng.random((4, 12)) < 0.3
    got = precision_at_k(top, relevant, 5)
    expected = [np.mean([relevant[i, j] for j in top[i, :5]]) for i in range(4)]
    np.testing.assert_allclose(got, expected)
