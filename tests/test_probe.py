"""Linear probe, label binarisation and patient-level label fractions."""

from __future__ import annotations

import numpy as np
import pytest

from medrep.evaluation.probe import binarize_labels, linear_probe, sample_patients


def test_binarize_policies() -> None:
    raw = np.array([[1.0, 0.0, -1.0, np.nan]])
    np.testing.assert_array_equal(binarize_labels(raw, "zero"), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(binarize_labels(raw, "one"), [[1, 0, 1, 0]])
    ignored = binarize_labels(raw, "ignore")
    assert (
        ignored[0, 0] == 1 and ignored[0, 1] == 0 and np.isnan(ignored[0, 2]) and ignored[0, 3] == 0
    )
    with pytest.raises(ValueError, match="policy"):
        binarize_labels(raw, "maybe")


def test_sample_patients_keeps_patients_whole_and_repeats_by_seed() -> None:
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(200)], 3)
    labels = (rng.random((600, 2)) < 0.2).astype(float)
    mask = sample_patients(patients, labels, 0.1, seed=4)
    chosen = set(patients[mask])
    assert len(chosen) == 20
    assert all(mask[patients == p].all() for p in chosen)  # every image of a chosen patient
    np.testing.assert_array_equal(mask, sample_patients(patients, labels, 0.1, seed=4))
    assert not np.array_equal(mask, sample_patients(patients, labels, 0.1, seed=5))
    for j in range(2):
        assert {0.0, 1.0} <= set(labels[mask, j])
    assert sample_patients(patients, labels, 1.0, seed=0).all()


def test_sample_patients_has_a_floor() -> None:
    patients = np.arange(100).astype(str)
    labels = np.tile([[0.0], [1.0]], (50, 1))
    assert sample_patients(patients, labels, 0.01, seed=0, min_patients=8).sum() == 8


def test_probe_separates_informative_features_and_not_noise() -> None:
    rng = np.random.default_rng(1)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random((n, 2)) < 0.4).astype(float)
        x = rng.normal(size=(n, 10))
        x[:, 0] += 2.5 * y[:, 0]  # label 0 is visible in feature 0; label 1 is not visible
        return x, y

    (xtr, ytr), (xva, yva), (xte, yte) = make(300), make(100), make(300)
    result = linear_probe(xtr, ytr, xva, yva, xte, yte, ["seen", "unseen"])
    assert result.auroc["seen"] > 0.9
    assert abs(result.auroc["unseen"] - 0.5) < 0.1
    assert result.macro_auroc == pytest.approx((result.auroc["seen"] + result.auroc["unseen"]) / 2)


def test_probe_reports_nan_for_a_single_class_label() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    y = np.zeros((40, 1))
    result = linear_probe(x, y, x, y, x, y, ["never"])
    assert np.isnan(result.auroc["never"]) and np.isnan(result.macro_auroc)


def test_results_table_summarises_seeds_per_method() -> None:
    from medrep.evaluation.results import ResultRow, markdown_table, results_frame

    rows = [
        ResultRow("r", m, "linear_probe", "macro_auroc", v, label_fraction=0.1, seed=s)
        for m, vals in (("convirt", (0.8, 0.9)), ("random_init", (0.5, 0.6)))
        for s, v in enumerate(vals)
    ]
    rows.append(ResultRow("r", "convirt", "text_to_image", "P@10", 0.4))
    table = markdown_table(results_frame(rows))
    lines = table.strip().splitlines()
    assert lines[0] == "| task | metric | fraction | convirt | random_init |"
    assert "| linear_probe | macro_auroc | 0.1 | 0.850 ± 0.071 | 0.550 ± 0.071 |" in lines
    assert "| text_to_image | P@10 |  | 0.400 |  |" in lines
    only = markdown_table(results_frame(rows), ["P@10"])
    assert "macro_auroc" not in only and "P@10" in only
