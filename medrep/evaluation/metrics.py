"""Classification metrics and their result rows: per-label AUROC, its macro mean, intervals.

`per_label_auroc` is the one NaN-masked AUROC of the project: the probe, fine-tuning, zero-shot
and the supervised baseline's validation (`macro_auroc_metrics`, passed into the module) all
score through it. The row helpers attach bootstrap intervals (`medrep.evaluation.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from medrep.evaluation.bootstrap import (
    BootstrapSettings,
    cluster_weights,
    macro_auroc_replicates,
    percentile_interval,
)
from medrep.evaluation.results import ResultRow, RowFactory


def per_label_auroc(
    scores: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    """scikit-learn's AUROC of every label column, over the rows whose label and score are known.

    Args:
        scores: [N, L] scores; a column of NaN marks a label without a model.
        labels: [N, L] in {1, 0, NaN}; NaN rows are left out per label.
        names: the L label names, the keys of the result (in their order).

    Returns:
        name -> AUROC; NaN where the kept rows hold one class only (or none).
    """
    auroc = {}
    for j, name in enumerate(names):
        keep = ~np.isnan(labels[:, j]) & ~np.isnan(scores[:, j])
        both = len(np.unique(labels[keep, j])) == 2
        auroc[name] = float(roc_auc_score(labels[keep, j], scores[keep, j])) if both else np.nan
    return auroc


def macro_auroc(auroc: Mapping[str, float]) -> float:
    """The mean over the labels that could be scored (NaN when none could)."""
    values = [v for v in auroc.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def macro_auroc_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"macro_auroc": ...} of [N, L] scores against [N, L] {1, 0, NaN} labels.

    The validation metric of a multi-label classifier (`SupervisedPretrainer(val_metrics=...)`).
    """
    names = [str(j) for j in range(labels.shape[1])]
    return {"macro_auroc": macro_auroc(per_label_auroc(scores, labels, names))}


def resample_weights(groups: np.ndarray, boot: BootstrapSettings) -> np.ndarray | None:
    """[B, N] bootstrap weights over the units `groups`, or None when intervals are off."""
    if boot.n_resamples <= 0 or len(groups) == 0:
        return None
    return cluster_weights(groups, boot.n_resamples, boot.seed)


def interval(replicates: np.ndarray | None, boot: BootstrapSettings) -> dict[str, float]:
    """`ci_low`/`ci_high` keyword arguments of a result row ({} without replicates)."""
    if replicates is None:
        return {}
    low, high = percentile_interval(replicates, boot.level)
    return {"ci_low": low, "ci_high": high}


def auroc_rows(
    row: RowFactory,
    scores: np.ndarray,
    y: np.ndarray,
    label_names: Sequence[str],
    auroc: Mapping[str, float],
    weights: np.ndarray | None,
    boot: BootstrapSettings,
) -> tuple[list[ResultRow], np.ndarray | None]:
    """Per-label and macro AUROC rows with intervals; returns the macro replicates too.

    `auroc` holds the point estimates (NaN where a label could not be scored); the macro value
    is their mean over the labels that could.
    """
    per_label = macro = None
    if weights is not None:
        per_label, macro = macro_auroc_replicates(scores, y, weights)
    out = [row(metric="macro_auroc", value=macro_auroc(auroc), **interval(macro, boot))]
    for j, name in enumerate(label_names):
        out.append(
            row(
                metric=f"auroc/{name}",
                value=float(auroc[name]),
                **interval(None if per_label is None else per_label[j], boot),
            )
        )
    return out, macro
