"""Bootstrap confidence intervals over test units (patients by default).

A replicate redraws the test units with replacement, so all of a patient's images stay together
(a cluster bootstrap). Replicates are integer weights [B, N] (how often each row was drawn),
which lets every metric here (AUROC, mean, median) be computed for all replicates at once, and
the weights depend only on the set of unit keys and the seed: every method and probe seed
evaluated on the same test split is resampled identically, so differences between methods are
paired.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are drawn.

    Attributes:
        n_resamples: replicates per interval (0 turns intervals off).
        level: coverage of the percentile interval (0.95).
        seed: seed of the resampling; fixed, so reruns give the same intervals.
    """

    n_resamples: int
    level: float
    seed: int


def cluster_weights(
    groups: Sequence[str] | np.ndarray, n_resamples: int, seed: int = 0
) -> np.ndarray:
    """[B, N] resampling counts: units (the distinct `groups`) drawn with replacement.

    Each of the G units is drawn G times in total per replicate; a row's weight is the number of
    times its unit was drawn. The draw depends on the sorted set of unit keys and the seed only,
    not on the row order.
    """
    keys = np.asarray(groups)
    if keys.ndim != 1 or len(keys) == 0:
        raise ValueError(f"need a non-empty 1-D array of unit keys, got shape {keys.shape}")
    unique, inverse = np.unique(keys, return_inverse=True)
    rng = np.random.default_rng(seed)
    n = len(unique)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)  # [B, G]
    return counts[:, inverse]


def resampling_id(groups: Sequence[str] | np.ndarray, boot: BootstrapSettings) -> str:
    """An id of the resamples `cluster_weights` draws for these units and settings: equal ids,
    identical replicates (what lets runs' replicates pair up)."""
    units = sorted({str(g) for g in np.asarray(groups).tolist()})
    text = json.dumps({"units": units, "n": boot.n_resamples, "seed": boot.seed})
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def weighted_auroc(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, block: int = 256
) -> np.ndarray:
    """AUROC of `scores` against binary `labels` under each row of `weights` -> [B].

    Equal to `sklearn.metrics.roc_auc_score` on the rows repeated by their weights (ties count
    one half). Computed from per-score class totals instead of calling scikit-learn B times,
    which would dominate the evaluation (thousands of calls per table). NaN where a replicate
    lacks one of the classes.

    Args:
        scores: [N] classifier scores.
        labels: [N] in {0, 1}.
        weights: [B, N] non-negative row weights (`cluster_weights`), or [N] for one replicate.
        block: replicates per matrix product (bounds memory at block x distinct scores).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if scores.shape != labels.shape or w.shape[1] != scores.shape[0]:
        raise ValueError(
            f"scores {scores.shape}, labels {labels.shape} and weights {w.shape} do not align"
        )
    distinct, inverse = np.unique(scores, return_inverse=True)
    pos = labels == 1
    # one-hot [N, G] of each row's distinct score, split by class
    onehot_pos = sparse.csr_matrix(
        (pos.astype(np.float64), (np.arange(len(scores)), inverse)),
        shape=(len(scores), len(distinct)),
    )
    onehot_neg = sparse.csr_matrix(
        ((~pos).astype(np.float64), (np.arange(len(scores)), inverse)),
        shape=(len(scores), len(distinct)),
    )
    out = np.empty(w.shape[0])
    for start in range(0, w.shape[0], block):
        wb = w[start : start + block]
        p = np.asarray((onehot_pos.T @ wb.T).T)  # [b, G] weighted positives per distinct score
        q = np.asarray((onehot_neg.T @ wb.T).T)  # [b, G] weighted negatives per distinct score
        below = np.cumsum(q, axis=1) - q
        total_p, total_q = p.sum(1), q.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (p * (below + 0.5 * q)).sum(1) / (total_p * total_q)
        auc[(total_p == 0) | (total_q == 0)] = np.nan
        out[start : start + block] = auc
    return out


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of `values` [N] under each row of `weights` [B, N] -> [B]."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ v) / w.sum(1)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`np.median` of the rows repeated by their weights, for each row of `weights` -> [B].

    With an even total weight the two middle values are averaged, as `np.median` does.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    v = np.asarray(values, dtype=np.float64)[order]
    cum = np.cumsum(w[:, order], axis=1)  # [B, N]
    total = cum[:, -1]
    lo_pos = np.floor((total - 1) / 2)  # 0-based positions of the middle element(s)
    hi_pos = np.floor(total / 2)
    lo = v[np.minimum((cum > lo_pos[:, None]).argmax(1), len(v) - 1)]
    hi = v[np.minimum((cum > hi_pos[:, None]).argmax(1), len(v) - 1)]
    out = (lo + hi) / 2
    out[total == 0] = np.nan
    return out


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates left out)."""
    values = np.asarray(replicates, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def macro_auroc_replicates(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-label and macro AUROC replicates of a multi-label prediction.

    Args:
        scores: [N, L] scores; a column of NaN marks a label without a model (left out).
        labels: [N, L] in {1, 0, NaN}; NaN rows are left out per label.
        weights: [B, N] resampling weights.

    Returns:
        (per_label [L, B], macro [B]); the macro mean skips labels that are NaN in a replicate.
    """
    w = np.atleast_2d(weights)
    per_label = np.full((scores.shape[1], w.shape[0]), np.nan)
    for j in range(scores.shape[1]):
        keep = ~np.isnan(labels[:, j]) & ~np.isnan(scores[:, j])
        if keep.sum() == 0:
            continue
        per_label[j] = weighted_auroc(scores[keep, j], labels[keep, j], w[:, keep])
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(per_label)
        counts = valid.sum(0)
        macro = np.where(counts > 0, np.nansum(per_label, 0) / np.maximum(counts, 1), np.nan)
    return per_label, macro
