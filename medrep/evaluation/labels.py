"""Evaluation labels: CheXpert values binarised, joined by `study_key`, sampled by patient.

Every task (probe, fine-tuning, zero-shot, text->image retrieval without lists, the supervised
baseline's targets) reads its labels through here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medrep.data.ingest import LABELS_NAME

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


def labels_for(
    embeddings: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    uncertain: str,
) -> np.ndarray:
    """[N, L] binarised labels aligned to an embeddings file's rows by `study_key`."""
    missing = [n for n in label_names if n not in labels.columns]
    if missing:
        raise KeyError(
            f"label column(s) {missing} not in the labels table (has {list(labels.columns)})"
        )
    table = labels.set_index("study_key")[list(label_names)]
    keys = pd.Index(embeddings["study_key"])
    absent = keys.difference(table.index)
    if len(absent):
        raise KeyError(f"{len(absent)} embedded studies have no labels (first: {absent[0]})")
    return binarize_labels(table.loc[keys].to_numpy(dtype=np.float64), uncertain)


def study_targets(
    ingest_dir: str | Path, label_names: Sequence[str], uncertain: str
) -> pd.DataFrame:
    """Training targets of an ingestion folder: study_key-indexed {1, 0, NaN} label columns."""
    labels = pd.read_parquet(Path(ingest_dir) / LABELS_NAME)
    names = [str(n) for n in label_names]
    values = binarize_labels(labels[names].to_numpy(dtype=float), uncertain)
    return pd.DataFrame(values, index=labels["study_key"].to_numpy(), columns=names)


def sample_patients(
    patient_keys: Sequence[str] | np.ndarray,
    fraction: float,
    seed: int,
    min_patients: int,
) -> np.ndarray:
    """Row mask of a random `fraction` of the patients (at least `min_patients`), one draw.

    Sampling is by patient, so all of a patient's images come together, and it does not look at
    the labels: a label whose sample holds one class is not scored for that draw (the probe
    reports it, `labels_unscored`), rather than redrawing until every label has both classes,
    which would condition the sample on the labels. The seed makes the draw repeatable.
    """
    keys = np.asarray(patient_keys)
    unique = np.unique(keys)
    if fraction >= 1.0:
        return np.ones(len(keys), dtype=bool)
    n = min(len(unique), max(min_patients, int(round(fraction * len(unique)))))
    chosen = np.random.default_rng(seed).choice(unique, size=n, replace=False)
    return np.isin(keys, chosen)
