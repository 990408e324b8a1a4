"""Bootstrap weights and weighted metrics against brute force (rows repeated by their weights)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medrep.evaluation.bootstrap import (
    cluster_weights,
    macro_auroc_replicates,
    percentile_interval,
    weighted_auroc,
    weighted_mean,
    weighted_median,
)


def test_cluster_weights_draw_whole_patients_and_ignore_row_order() -> None:
    patients = np.array(["a", "a", "b", "c", "c", "c", "d"])
    w = cluster_weights(patients, 200, seed=3)
    assert w.shape == (200, 7)
    for p in np.unique(patients):
        rows = w[:, patients == p]
        assert (rows == rows[:, :1]).all()  # a patient's images are drawn together
    # every replicate draws as many patients as there are
    per_patient = np.stack([w[:, np.flatnonzero(patients == p)[0]] for p in "abcd"], 1)
    assert (per_patient.sum(1) == 4).all()
    order = np.array([6, 3, 0, 5, 1, 4, 2])
    np.testing.assert_array_equal(cluster_weights(patients[order], 200, seed=3), w[:, order])
    assert not np.array_equal(cluster_weights(patients, 200, seed=4), w)


def test_weighted_auroc_equals_sklearn_on_repeated_rows() -> None:
    rng = np.random.default_rng(0)
    n = 40
    labels = (rng.random(n) < 0.4).astype(int)
    scores = np.round(rng.normal(size=n) + labels, 1)  # rounded: plenty of ties
    weights = rng.integers(0, 4, size=(25, n))
    got = weighted_auroc(scores, labels, weights, block=7)
    for b in range(25):
        rep = np.repeat(np.arange(n), weights[b])
        if len(np.unique(labels[rep])) < 2:
            assert np.isnan(got[b])
        else:
            assert got[b] == pytest.approx(roc_auc_score(labels[rep], scores[rep]), abs=1e-12)
    ones = weighted_auroc(scores, labels, np.ones(n))
    assert ones[0] == pytest.approx(roc_auc_score(labels, scores))


def test_weighted_auroc_is_nan_without_both_classes() -> None:
    assert np.isnan(weighted_auroc(np.array([0.1, 0.2]), np.array([1, 1]), np.ones(2))[0])


def test_weighted_mean_and_median_equal_numpy_on_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(1, 30, size=15).astype(float)
    weights = rng.integers(0, 3, size=(50, 15))
    weights[0] = 0
    weights[0, 4] = 2  # an even total: the two middle values are averaged
    means, medians = weighted_mean(values, weights), weighted_median(values, weights)
    for b in range(50):
        rep = np.repeat(values, weights[b])
        if rep.size == 0:
            assert np.isnan(medians[b])
            continue
        assert means[b] == pytest.approx(rep.mean())
        assert medians[b] == pytest.approx(np.median(rep))


def test_macro_replicates_skip_missing_labels_and_unscored_columns() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((30, 3)) < 0.5).astype(float)
    y[:5, 0] = np.nan
    scores = rng.normal(size=(30, 3)) + y
    scores[:, 2] = np.nan  # a label without a model
    w = cluster_weights(np.arange(30).astype(str), 20, seed=0)
    per_label, macro = macro_auroc_replicates(scores, y, w)
    assert np.isnan(per_label[2]).all()
    keep = ~np.isnan(y[:, 0])
    np.testing.assert_allclose(
        per_label[0], weighted_auroc(scores[keep, 0], y[keep, 0], w[:, keep])
    )
    np.testing.assert_allclose(macro, per_label[:2].mean(0))


def test_percentile_interval_covers_a_known_mean() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=400)
    w = cluster_weights(np.arange(400).astype(str), 2000, seed=0)
    low, high = percentile_interval(weighted_mean(values, w), 0.95)
    # the interval is about the mean +- 1.96 standard errors
    se = values.std() / np.sqrt(400)
    assert low == pytest.approx(values.mean() - 1.96 * se, abs=0.25 * se)
    assert high == pytest.approx(values.mean() + 1.96 * se, abs=0.25 * se)
    assert np.isnan(percentile_interval(np.array([np.nan]))[0])
