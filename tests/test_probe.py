"""Linear probe, label binarisation and patient-level label fractions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.labels import binarize_labels, sample_patients
from medrep.evaluation.probe import ProbeSettings, linear_probe, probe_rows
from medrep.evaluation.results import draws_markdown, results_frame

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
BOOT = BootstrapSettings(n_resamples=1000, level=0.95, seed=0)


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
    patients = np.repeat([f"p{i}" for i in range(200)], 3)
    mask = sample_patients(patients, 0.1, seed=4, min_patients=8)
    chosen = set(patients[mask])
    assert len(chosen) == 20
    assert all(mask[patients == p].all() for p in chosen)  # every image of a chosen patient
    np.testing.assert_array_equal(mask, sample_patients(patients, 0.1, seed=4, min_patients=8))
    assert not np.array_equal(mask, sample_patients(patients, 0.1, seed=5, min_patients=8))
    assert sample_patients(patients, 1.0, seed=0, min_patients=8).all()


def test_sample_patients_has_a_floor() -> None:
    patients = np.arange(100).astype(str)
    assert sample_patients(patients, 0.01, seed=0, min_patients=8).sum() == 8


def test_sample_patients_is_not_conditioned_on_labels() -> None:
    # a rare label: most 8-patient draws hold no positive, and the draw must not redraw for one
    patients = np.arange(400).astype(str)
    rare = np.zeros(400)
    rare[:8] = 1.0
    masks = [sample_patients(patients, 0.02, seed=s, min_patients=8) for s in range(50)]
    with_positive = sum(bool(rare[m].any()) for m in masks)
    # P(at least one of 8 positives among 8 of 400) is about 0.15: 50 draws give 2-16
    assert 1 <= with_positive <= 20


def test_probe_rows_report_the_draw_and_unscored_labels() -> None:
    rng = np.random.default_rng(3)
    n = 120
    patients = np.array([f"p{i}" for i in range(n)])
    y = np.zeros((n, 2))
    y[:, 0] = rng.random(n) < 0.5
    y[:3, 1] = 1.0  # three positives: a 10-patient draw usually misses them all
    x = rng.normal(size=(n, 4)) + y[:, :1]
    splits = {
        s: {"image_features": x, "patient_key": patients, "study_key": patients}
        for s in ("train", "val", "test")
    }
    labels = pd.DataFrame({"study_key": patients, "A": y[:, 0], "B": y[:, 1]})
    settings = ProbeSettings(
        fractions=(0.05, 1.0), seeds=(0, 1, 2), c_grid=(1.0,), min_patients=10, uncertain="ignore"
    )
    boot = BootstrapSettings(n_resamples=0, level=0.95, seed=0)
    frame = results_frame(probe_rows("r", "m", splits, labels, ["A", "B"], settings, boot).rows)
    small = frame[frame["label_fraction"] == 0.05].set_index(["seed", "metric"])["value"]
    for seed in (0, 1, 2):
        assert small[(seed, "train_patients")] == 10
        assert small[(seed, "patient_fraction")] == pytest.approx(10 / n)
        drawn = sample_patients(patients, 0.05, seed, 10)
        expected_unscored = 0 if y[drawn, 1].any() else 1
        assert small[(seed, "labels_unscored")] == expected_unscored
        assert np.isnan(small[(seed, "auroc/B")]) == bool(expected_unscored)
    assert small.xs("labels_unscored", level="metric").sum() >= 1  # the case is exercised
    table = draws_markdown(frame, n_labels=2)
    unscored = int(small.xs("labels_unscored", level="metric").sum())
    assert f"| linear_probe | 0.05 | 10 | 0.083 | {unscored} of 6 (label, draw) pairs |" in table
    assert "| linear_probe | 1 | 120 | 1.000 | 0 of 2 (label, draw) pairs |" in table


def test_probe_separates_informative_features_and_not_noise() -> None:
    rng = np.random.default_rng(1)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random((n, 2)) < 0.4).astype(float)
        x = rng.normal(size=(n, 10))
        x[:, 0] += 2.5 * y[:, 0]  # label 0 is visible in feature 0; label 1 is not visible
        return x, y

    (xtr, ytr), (xva, yva), (xte, yte) = make(300), make(100), make(300)
    result = linear_probe(xtr, ytr, xva, yva, xte, yte, ["seen", "unseen"], C_GRID)
    assert result.auroc["seen"] > 0.9
    assert abs(result.auroc["unseen"] - 0.5) < 0.1
    assert result.macro_auroc == pytest.approx((result.auroc["seen"] + result.auroc["unseen"]) / 2)


def test_per_label_auroc_leaves_out_unknown_rows_and_undefined_labels() -> None:
    from sklearn.metrics import roc_auc_score

    from medrep.evaluation.metrics import macro_auroc, per_label_auroc

    rng = np.random.default_rng(5)
    y = (rng.random((50, 4)) < 0.4).astype(float)
    y[rng.random((50, 4)) < 0.2] = np.nan
    y[:, 2] = 1.0  # one class only
    scores = rng.normal(size=(50, 4))
    scores[:, 3] = np.nan  # no model
    auroc = per_label_auroc(scores, y, ["a", "b", "one_class", "no_model"])
    for j, name in enumerate("ab"):
        known = ~np.isnan(y[:, j])
        assert auroc[name] == roc_auc_score(y[known, j], scores[known, j])
    assert np.isnan(auroc["one_class"]) and np.isnan(auroc["no_model"])
    assert macro_auroc(auroc) == np.mean([auroc["a"], auroc["b"]])


def test_probe_reports_nan_for_a_single_class_label() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    y = np.zeros((40, 1))
    result = linear_probe(x, y, x, y, x, y, ["never"], C_GRID)
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


def test_probe_keeps_test_scores_that_reproduce_its_auroc() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4))
    y = (x[:, :2] + 0.5 * rng.normal(size=(120, 2)) > 0).astype(float)
    y[:10, 1] = np.nan
    result = linear_probe(
        x[:60], y[:60], x[60:90], y[60:90], x[60:], y[60:], ["a", "b"], [0.1, 1.0]
    )
    assert result.test_scores.shape == (60, 2)
    keep = ~np.isnan(y[60:, 1])
    assert result.auroc["b"] == pytest.approx(
        roc_auc_score(y[60:][keep, 1], result.test_scores[keep, 1])
    )


def test_probe_rows_carry_intervals_and_run_the_full_fraction_once() -> None:
    import pandas as pd

    from medrep.evaluation.probe import ProbeSettings, probe_rows

    rng = np.random.default_rng(4)

    def split(n: int, tag: str) -> dict[str, np.ndarray]:
        y = (rng.random(n) < 0.5).astype(float)
        return {
            "image_features": rng.normal(size=(n, 3)) + y[:, None],
            "study_key": np.array([f"{tag}{i}" for i in range(n)]),
            "patient_key": np.array([f"{tag}p{i // 2}" for i in range(n)]),
            "y": y,
        }

    splits = {s: split(n, s) for s, n in (("train", 200), ("val", 60), ("test", 80))}
    labels = pd.DataFrame(
        {
            "study_key": np.concatenate([s["study_key"] for s in splits.values()]),
            "Edema": np.concatenate([s["y"] for s in splits.values()]),
        }
    )
    settings = ProbeSettings(
        fractions=(0.1, 1.0), seeds=(0, 1), c_grid=(1.0,), min_patients=4, uncertain="ignore"
    )
    out = probe_rows("r", "m", splits, labels, ["Edema"], settings, BootstrapSettings(200, 0.95, 0))
    macro = [r for r in out.rows if r.metric == "macro_auroc"]
    assert [(r.label_fraction, r.seed) for r in macro] == [(0.1, 0), (0.1, 1), (1.0, 0)]
    for r in macro:
        assert r.ci_low < r.value < r.ci_high and r.value > 0.7
    assert [len(v) for v in out.replicates.values()] == [2, 1]


def test_results_table_shows_intervals_and_claims() -> None:
    import pandas as pd

    from medrep.evaluation.claims import claim_rows, parse_claims
    from medrep.evaluation.results import (
        Evaluation,
        ResultRow,
        claims_markdown,
        markdown_table,
        results_frame,
    )

    rows = [
        ResultRow("r", "convirt", "linear_probe", "macro_auroc", 0.8, 0.1, 0, 0.7, 0.9),
        ResultRow("r", "convirt", "linear_probe", "macro_auroc", 0.9, 0.1, 1, 0.8, 1.0),
    ]
    assert "0.850 ± 0.071 [0.750, 0.950]" in markdown_table(results_frame(rows))
    ev = Evaluation(
        rows=rows + [ResultRow("r", "simclr", "linear_probe", "macro_auroc", 0.9, 1.0, 0)]
    )
    rng = np.random.default_rng(0)
    ev.replicates = {
        ("convirt", "linear_probe", 0.1): [
            0.8 + 0.01 * rng.normal(size=100),
            0.9 + 0.01 * rng.normal(size=100),
        ],
        ("simclr", "linear_probe", 1.0): [0.9 + 0.01 * rng.normal(size=100)],
    }
    claims = parse_claims(
        ["pretrained@0.1 >= simclr@1.0", "pretrained@* > random_init@*"],
        [0.1, 1.0],
        aliases={"pretrained": "convirt"},
    )
    assert [c.text for c in claims] == [
        "convirt@0.1 >= simclr@1",
        "convirt@0.1 > random_init@0.1",
        "convirt@1 > random_init@1",
    ]
    claim_out, table = claim_rows("r", claims, ev, BOOT, margin=0.0)
    assert len(table) == 1  # random_init was not evaluated: skipped
    row = table.iloc[0]
    # 0.05 worse, replicates about 0.01 wide: the claim is refuted, not merely "not shown"
    assert row["difference"] == pytest.approx(-0.05) and row["verdict"] == "refuted"
    assert row["bound"] < -0.05 < row["upper"] < 0 and row["threshold"] == 0.0
    assert claim_out[0].task == "claim" and claim_out[0].value == pytest.approx(-0.05)
    assert claim_out[0].ci_low < -0.05 < claim_out[0].ci_high < 0
    shown = "| convirt@0.1 >= simclr@1 | 0.850 | 0.900 | -0.050 |"
    assert shown in claims_markdown(table, 0.95) and "one-sided 95% bounds" in claims_markdown(
        table, 0.95
    )
    # a non-inferiority margin wider than the loss turns the verdict into `shown`
    assert claim_rows("r", claims, ev, BOOT, margin=0.1)[1].iloc[0]["verdict"] == "shown"
    with pytest.raises(ValueError, match="METHOD@FRACTION"):
        parse_claims(["convirt beats simclr"], [0.1])
    assert isinstance(table, pd.DataFrame)


def test_claim_verdicts_are_one_sided_with_a_margin_for_non_inferiority() -> None:
    from medrep.evaluation.claims import verdict

    rng = np.random.default_rng(4)
    noise = rng.normal(size=4000)
    assert verdict(0.05 + 0.01 * noise, 0.0, 0.95)[0] == "shown"
    assert verdict(-0.05 + 0.01 * noise, 0.0, 0.95)[0] == "refuted"
    # a point estimate on the claimed side is not enough: the bound decides
    assert verdict(0.01 + 0.05 * noise, 0.0, 0.95)[0] == "not shown"
    # slightly worse but within a 0.02 margin: non-inferiority shown
    assert verdict(-0.01 + 0.003 * noise, -0.02, 0.95)[0] == "shown"
    assert verdict(-0.01 + 0.003 * noise, 0.0, 0.95)[0] == "refuted"
    assert verdict(None, 0.0, 0.95)[0] == "no interval"
    # the bounds are the one-sided 5% and 95% quantiles (a 90% two-sided interval)
    _, lower, upper = verdict(np.linspace(-1.0, 1.0, 2001), 0.0, 0.95)
    assert lower == pytest.approx(-0.9) and upper == pytest.approx(0.9)


def test_raw_pixel_baseline_is_the_average_pooled_image() -> None:
    import torch

    from medrep.evaluation.export import raw_pixel_features

    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    features = raw_pixel_features(2)(image)["image_features"]
    assert features.tolist() == [[2.5, 4.5, 10.5, 12.5]]
    with pytest.raises(ValueError, match="raw_pixels_side"):
        raw_pixel_features(0)


def test_labels_without_prompts_are_named_with_the_keys_to_set(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from medrep.evaluation.runner import missing_prompts
    from tests.helpers import compose_config

    cfg = compose_config(tmp_path, ["eval.label_names=[Edema,Atelectasis]"])
    assert missing_prompts(instantiate(cfg.eval)) == {
        "Atelectasis": [
            "eval.retrieval.queries.Atelectasis",
            "eval.zeroshot.negative_prompts.Atelectasis",
        ]
    }
    assert missing_prompts(instantiate(compose_config(tmp_path).eval)) == {}


def test_require_prompts_stops_an_evaluation_with_a_label_without_prompts(tmp_path: Path) -> None:
    from dataclasses import replace

    from hydra.utils import instantiate

    from medrep.data.transforms import AugmentConfig
    from medrep.evaluation.runner import EvaluationRun, evaluate
    from tests.helpers import compose_config

    cfg = compose_config(tmp_path, ["eval.label_names=[Edema,Atelectasis]"])
    settings = instantiate(cfg.eval)
    settings = replace(settings, zeroshot=replace(settings.zeroshot, require_prompts=True))
    pd.DataFrame({"study_key": ["a"], "Edema": [1.0]}).to_parquet(tmp_path / "labels.parquet")
    run = EvaluationRun("t", ["convirt"], tmp_path, tmp_path, tmp_path, AugmentConfig(size=8), 0)
    with pytest.raises(ValueError, match="'Atelectasis': set eval.retrieval.queries.Atelectasis"):
        evaluate(settings, run)
