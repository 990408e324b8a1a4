"""Frozen-feature linear probes (scikit-learn) at label fractions, and their result rows.

Label fractions are drawn by patient (`medrep.evaluation.labels.sample_patients`); every probe
runs for several seeds so the table shows spread, not a lucky draw; every test metric carries a
bootstrap interval over test patients, drawn identically for every method so that the claims
comparing methods are paired.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.labels import labels_for, sample_patients
from medrep.evaluation.metrics import auroc_rows, macro_auroc, per_label_auroc, resample_weights
from medrep.evaluation.results import Evaluation, ResultRow


@dataclass(frozen=True)
class ProbeSettings:
    """The linear probe's protocol (`conf/eval/` holds the values).

    Attributes:
        fractions: label fractions of the training patients.
        seeds: one probe per fraction and seed (a fraction of 1 runs once).
        c_grid: inverse regularisation strengths, chosen per label on validation AUROC.
        min_patients: the floor of a fraction's patient sample.
        uncertain: what -1 labels become: ignore | zero | one.
    """

    fractions: Sequence[float]
    seeds: Sequence[int]
    c_grid: Sequence[float]
    min_patients: int
    uncertain: str


@dataclass(frozen=True)
class ProbeResult:
    """Test AUROC per label (NaN where undefined), the chosen regularisation, and the scores.

    Attributes:
        auroc: test AUROC per label.
        chosen_c: the inverse regularisation strength chosen on validation, per label.
        test_scores: [N_test, L] predicted probabilities (a NaN column where a label had no
            model), kept so that confidence intervals can resample the test set.
    """

    auroc: dict[str, float]
    chosen_c: dict[str, float]
    test_scores: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    @property
    def macro_auroc(self) -> float:
        return macro_auroc(self.auroc)


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):  # type: ignore[no-untyped-def]
    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    label_names: Sequence[str],
    c_grid: Sequence[float],
    seed: int = 0,
) -> ProbeResult:
    """One standardised logistic regression per label; C chosen by validation AUROC.

    Labels are {1, 0, NaN} (see `binarize_labels`); rows with NaN are left out per label. A label
    whose training rows hold one class only scores NaN (reported, not hidden).
    """
    chosen: dict[str, float] = {}
    scores = np.full((len(test_x), len(label_names)), np.nan)
    for j, name in enumerate(label_names):
        tr, va, te = (~np.isnan(train_y[:, j]), ~np.isnan(val_y[:, j]), ~np.isnan(test_y[:, j]))
        ytr, yva, yte = train_y[tr, j], val_y[va, j], test_y[te, j]
        if len(np.unique(ytr)) < 2 or len(np.unique(yte)) < 2:
            chosen[name] = float("nan")
            continue
        best_c, best_score = float(c_grid[0]), -np.inf
        if len(c_grid) > 1 and len(np.unique(yva)) == 2:
            for c in c_grid:
                score = roc_auc_score(
                    yva, _fit(train_x[tr], ytr, c, seed).predict_proba(val_x[va])[:, 1]
                )
                if score > best_score:
                    best_c, best_score = float(c), score
        scores[:, j] = _fit(train_x[tr], ytr, best_c, seed).predict_proba(test_x)[:, 1]
        chosen[name] = best_c
    auroc = per_label_auroc(scores, test_y, label_names)
    return ProbeResult(auroc=auroc, chosen_c=chosen, test_scores=scores)


def fraction_rows(
    run: str,
    method: str,
    task: str,
    fraction: float,
    seed: int,
    result: ProbeResult,
    test_labels: np.ndarray,
    label_names: Sequence[str],
    train_patients: np.ndarray,
    mask: np.ndarray,
    weights: np.ndarray | None,
    boot: BootstrapSettings,
) -> Evaluation:
    """One model's rows at one label fraction and seed: AUROCs with intervals, and the draw.

    The draw's rows: `train_images` and `train_patients` (what the model trained on),
    `patient_fraction` (the share of the training split's patients actually drawn, beside the
    nominal `label_fraction`: the `min_patients` floor raises small fractions) and
    `labels_unscored` (labels without an AUROC, e.g. one class in the sample). The macro AUROC
    replicates go under (method, task, fraction), for the claims.

    Args:
        train_patients: [N] patient key of every training-split row; `mask` [N] the drawn rows.
    """
    row = partial(ResultRow, run, method, task, label_fraction=float(fraction), seed=seed)
    rows, macro = auroc_rows(
        row, result.test_scores, test_labels, label_names, result.auroc, weights, boot
    )
    drawn = len(np.unique(train_patients[mask]))
    rows += [
        row(metric="train_images", value=float(mask.sum())),
        row(metric="train_patients", value=float(drawn)),
        row(metric="patient_fraction", value=drawn / len(np.unique(train_patients))),
        row(metric="labels_unscored", value=float(np.isnan(list(result.auroc.values())).sum())),
    ]
    replicates = {} if macro is None else {(method, task, float(fraction)): [macro]}
    return Evaluation(rows=rows, replicates=replicates)


def probe_rows(
    run: str,
    method: str,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    settings: ProbeSettings,
    boot: BootstrapSettings,
    feature: str = "image_features",
) -> Evaluation:
    """Linear-probe AUROC (per label and macro) at every label fraction and seed.

    At a fraction of 1 every seed trains on the same rows and the probe is deterministic, so it
    runs once (under the first seed).
    """
    y = {
        s: labels_for(splits[s], labels, label_names, settings.uncertain)
        for s in ("train", "val", "test")
    }
    x = {s: splits[s][feature] for s in ("train", "val", "test")}
    weights = resample_weights(np.asarray(splits["test"]["patient_key"]), boot)
    out = Evaluation()
    for fraction in settings.fractions:
        seeds = settings.seeds[:1] if fraction >= 1.0 else settings.seeds
        for seed in seeds:
            patients = np.asarray(splits["train"]["patient_key"])
            mask = sample_patients(patients, fraction, seed, settings.min_patients)
            result = linear_probe(
                x["train"][mask],
                y["train"][mask],
                x["val"],
                y["val"],
                x["test"],
                y["test"],
                label_names,
                settings.c_grid,
                seed,
            )
            out.extend(
                fraction_rows(
                    run,
                    method,
                    "linear_probe",
                    fraction,
                    seed,
                    result,
                    y["test"],
                    label_names,
                    patients,
                    mask,
                    weights,
                    boot,
                )
            )
    return out
