"""Frozen-feature linear probes (scikit-learn) at a fraction of the training labels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

UNCERTAIN_POLICIES = ("ignore", "zero", "one")


def binarize_labels(values: np.ndarray, uncertain: str = "ignore") -> np.ndarray:
    """CheXpert-style labels (1, 0, -1, NaN) -> float {1, 0, NaN}; NaN means "leave this out".

    Unmentioned (NaN) counts as negative, as CheXpert's labeller intends; uncertain (-1) follows
    the stated policy: ignore (left out), zero or one.
    """
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(
            f"uncertain label policy must be one of {UNCERTAIN_POLICIES}, got {uncertain!r}"
        )
    out = np.where(np.isnan(values), 0.0, values).astype(np.float64)
    fill = {"ignore": np.nan, "zero": 0.0, "one": 1.0}[uncertain]
    out[out == -1] = fill
    return out


def sample_patients(
    patient_keys: Sequence[str] | np.ndarray,
    labels: np.ndarray,
    fraction: float,
    seed: int,
    min_patients: int = 8,
    max_tries: int = 100,
) -> np.ndarray:
    """Row mask of a random `fraction` of the patients (at least `min_patients`).

    Sampling is by patient, so all of a patient's images come together. Draws are repeated (up to
    `max_tries`) until every label column has both classes among the sampled rows, when the full
    set has both, so that every label's probe can be trained; the seed makes the draw repeatable.
    """
    keys = np.asarray(patient_keys)
    unique = np.unique(keys)
    if fraction >= 1.0:
        return np.ones(len(keys), dtype=bool)
    n = min(len(unique), max(min_patients, int(round(fraction * len(unique)))))
    rng = np.random.default_rng(seed)
    full_ok = [_both_classes(labels[:, j]) for j in range(labels.shape[1])]
    mask = np.zeros(len(keys), dtype=bool)
    for _ in range(max_tries):
        mask = np.isin(keys, rng.choice(unique, size=n, replace=False))
        if all(_both_classes(labels[mask, j]) or not full_ok[j] for j in range(labels.shape[1])):
            return mask
    return mask


def _both_classes(column: np.ndarray) -> bool:
    present = column[~np.isnan(column)]
    return bool(present.size) and 0.0 in present and 1.0 in present


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
        values = [v for v in self.auroc.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")


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
    c_grid: Sequence[float] = (0.001, 0.01, 0.1, 1.0, 10.0),
    seed: int = 0,
) -> ProbeResult:
    """One standardised logistic regression per label; C chosen by validation AUROC.

    Labels are {1, 0, NaN} (see `binarize_labels`); rows with NaN are left out per label. A label
    whose training rows hold one class only scores NaN (reported, not hidden).
    """
    auroc: dict[str, float] = {}
    chosen: dict[str, float] = {}
    scores = np.full((len(test_x), len(label_names)), np.nan)
    for j, name in enumerate(label_names):
        tr, va, te = (~np.isnan(train_y[:, j]), ~np.isnan(val_y[:, j]), ~np.isnan(test_y[:, j]))
        ytr, yva, yte = train_y[tr, j], val_y[va, j], test_y[te, j]
        if len(np.unique(ytr)) < 2 or len(np.unique(yte)) < 2:
            auroc[name], chosen[name] = float("nan"), float("nan")
            continue
        best_c, best_score = float(c_grid[0]), -np.inf
        if len(c_grid) > 1 and len(np.unique(yva)) == 2:
            for c in c_grid:
                score = roc_auc_score(
                    yva, _fit(train_x[tr], ytr, c, seed).predict_proba(val_x[va])[:, 1]
                )
                if score > best_score:
                    best_c, best_score = float(c), score
        model = _fit(train_x[tr], ytr, best_c, seed)
        scores[:, j] = model.predict_proba(test_x)[:, 1]
        auroc[name] = float(roc_auc_score(yte, scores[te, j]))
        chosen[name] = best_c
    return ProbeResult(auroc=auroc, chosen_c=chosen, test_scores=scores)
