"""Retrieval metrics against brute force on small inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medrep.evaluation.retrieval import (
    grouped_target_ranks,
    normalise_text,
    paired_retrieval,
    precision_at_k,
    recall_at_k,
    target_ranks,
    text_groups,
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


def brute_grouped_ranks(
    q: np.ndarray, c: np.ndarray, qg: np.ndarray, cg: np.ndarray, collapse: bool
) -> list[int]:
    sim = brute_cosine(q, c)
    out = []
    for i in range(len(q)):
        best = max(sim[i, j] for j in range(len(c)) if cg[j] == qg[i])
        if collapse:
            wrong = {
                int(cg[j]) for j in range(len(c)) if cg[j] != qg[i] and sim[i, j] >= best - 1e-7
            }
            out.append(1 + len(wrong))
        else:
            out.append(
                1 + sum(1 for j in range(len(c)) if cg[j] != qg[i] and sim[i, j] >= best - 1e-7)
            )
    return out


def test_grouped_ranks_match_brute_force_in_both_modes() -> None:
    rng = np.random.default_rng(4)
    groups = rng.integers(0, 6, size=25)  # many duplicates
    base = rng.normal(size=(6, 5))
    c = base[groups] + 0.5 * rng.normal(size=(25, 5))
    q = base[groups] + 0.5 * rng.normal(size=(25, 5))
    for collapse in (False, True):
        got = grouped_target_ranks(q, c, groups, groups, collapse_candidates=collapse, chunk_size=4)
        np.testing.assert_array_equal(got, brute_grouped_ranks(q, c, groups, groups, collapse))


def test_grouped_ranks_without_duplicates_equal_plain_ranks() -> None:
    rng = np.random.default_rng(5)
    q, c = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    distinct = np.arange(12)
    plain = target_ranks(q, c, distinct)
    for collapse in (False, True):
        np.testing.assert_array_equal(
            grouped_target_ranks(q, c, distinct, distinct, collapse_candidates=collapse), plain
        )


def test_identical_reports_count_as_one() -> None:
    texts = ["No acute process.", "no acute  process", "Small left effusion.", "No acute process"]
    groups = text_groups(texts)
    assert groups[0] == groups[1] == groups[3] != groups[2]
    assert normalise_text(" Heart size is NORMAL. ") == "heart size is normal"
    # an image whose report is one of three identical texts: without dedupe the two copies that
    # score higher push the target down; with dedupe any copy is a hit
    image = np.array([[1.0, 0.0]])
    text = np.array([[0.9, 0.1], [1.0, 0.0], [0.0, 1.0], [0.95, 0.05]])
    assert target_ranks(image, text, [0])[0] == 3
    assert grouped_target_ranks(image, text, groups[:1], groups, collapse_candidates=True)[0] == 1
    # copies of another text occupy one rank between them when collapsed
    other = np.array([0, 1, 1, 1])
    t = np.array([[0.5, 0.5], [1.0, 0.0], [0.99, 0.01], [0.98, 0.02]])
    assert grouped_target_ranks(image, t, [0], other, collapse_candidates=False)[0] == 4
    assert grouped_target_ranks(image, t, [0], other, collapse_candidates=True)[0] == 2


def test_grouped_ranks_refuse_a_query_without_a_correct_candidate() -> None:
    import pytest

    with pytest.raises(ValueError, match="no candidate"):
        grouped_target_ranks(np.ones((1, 2)), np.ones((2, 2)), [7], [0, 1])


PEAK_SCRIPT = """
import sys
from pathlib import Path

import numpy as np
import torch

from medrep.evaluation import retrieval


def memory():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


torch.set_num_threads(1)  # one malloc arena: the same heap layout every run
rng = np.random.default_rng(0)
# 256 chunks of an 8 MB similarity block (256 x 8192 float32: under glibc's mmap threshold)
q = rng.normal(size=(65536, 64)).astype(np.float32)
c = rng.normal(size=(8192, 64)).astype(np.float32)
calls = {
    "topk_cosine": lambda: retrieval.topk_cosine(q, c, 5),
    "target_ranks": lambda: retrieval.target_ranks(q, c, np.arange(65536) % 8192),
    "grouped_target_ranks": lambda: retrieval.grouped_target_ranks(
        q, c, np.arange(65536) % 50, np.arange(8192) % 50
    ),
}
retrieval.topk_cosine(q[:8], c[:64], 5)
before = memory()[0]
Path("/proc/self/clear_refs").write_text("5")
calls[sys.argv[1]]()
print((memory()[1] - before) // 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["topk_cosine", "target_ranks", "grouped_target_ranks"])
def test_chunked_similarity_peak_memory_does_not_grow_with_the_queries(
    tmp_path: Path, name: str
) -> None:
    """256 chunks of an 8 MB block: the peak stays a few blocks, not the 2 GB of all of them.

    (Per-chunk results kept in a list pinned the freed blocks on glibc's heap: 2-4 GB here.)
    """
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read and reset the peak resident set")
    script = tmp_path / "peak.py"
    script.write_text(PEAK_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), name], capture_output=True, text=True, check=True, timeout=120
    )
    assert int(out.stdout.strip()) < 256, f"{name}: peak {out.stdout.strip()} MiB above the inputs"
