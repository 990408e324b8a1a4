"""The evaluation harness: exported embeddings + labels -> tidy result rows.

Labels join the embeddings by `study_key`; label fractions are drawn by patient; every probe
runs for several seeds so the table shows spread, not a lucky draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from medrep.evaluation.probe import binarize_labels, linear_probe, sample_patients
from medrep.evaluation.results import ResultRow
from medrep.evaluation.retrieval import paired_retrieval, precision_at_k, topk_cosine


@dataclass(frozen=True)
class ProbeSettings:
    fractions: Sequence[float] = (0.01, 0.1, 1.0)
    seeds: Sequence[int] = (0, 1, 2)
    c_grid: Sequence[float] = (0.001, 0.01, 0.1, 1.0, 10.0)
    min_patients: int = 8
    uncertain: str = "ignore"


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


def probe_rows(
    run: str,
    method: str,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    settings: ProbeSettings,
    feature: str = "image_features",
) -> list[ResultRow]:
    """Linear-probe AUROC (per label and macro) at every label fraction and seed."""
    y = {
        s: labels_for(splits[s], labels, label_names, settings.uncertain)
        for s in ("train", "val", "test")
    }
    x = {s: splits[s][feature] for s in ("train", "val", "test")}
    rows: list[ResultRow] = []
    for fraction in settings.fractions:
        for seed in settings.seeds:
            mask = sample_patients(
                splits["train"]["patient_key"], y["train"], fraction, seed, settings.min_patients
            )
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
            row = partial(
                ResultRow,
                run,
                method,
                "linear_probe",
                label_fraction=float(fraction),
                seed=int(seed),
            )
            rows.append(row(metric="macro_auroc", value=result.macro_auroc))
            rows.extend(row(metric=f"auroc/{name}", value=v) for name, v in result.auroc.items())
            rows.append(row(metric="train_images", value=float(mask.sum())))
    return rows


def category_text_to_image(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    queries: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    ks: Sequence[int],
) -> list[ResultRow]:
    """Text->image Precision@k with category queries (the CheXpert 8x200 protocol's shape).

    Each query text belongs to a category; a retrieved image is correct when its label for that
    category is positive. The chance level (the category's prevalence among the candidates) is
    reported beside it.
    """
    y = labels_for(test, labels, label_names, uncertain="zero")
    names = list(label_names)
    categories = [str(c) for c in queries["category"]]
    col = np.array([names.index(c) for c in categories])
    relevant = y[:, col].T == 1.0  # [Q, N]
    _, top = topk_cosine(queries["text_embeddings"], test["image_embeddings"], max(ks))
    rows: list[ResultRow] = []
    row = partial(ResultRow, run, method, "text_to_image")
    for k in ks:
        precision = precision_at_k(top, relevant, k)
        rows.append(row(metric=f"P@{k}", value=float(precision.mean())))
        rows.append(row(metric=f"P@{k}_chance", value=float(relevant.mean())))
        for c in dict.fromkeys(categories):
            sel = np.array(categories) == c
            rows.append(row(metric=f"P@{k}/{c}", value=float(precision[sel].mean())))
    return rows


def paired_rows_metrics(
    run: str, method: str, test: Mapping[str, np.ndarray], ks: Sequence[int]
) -> list[ResultRow]:
    """Paired image<->report Recall@k and median rank on the test split (one image per study).

    Studies with several images would count each image's report as a separate target; taking
    the first image per study keeps one target per query.
    """
    _, first = np.unique(test["study_key"], return_index=True)
    first = np.sort(first)
    metrics = paired_retrieval(test["image_embeddings"][first], test["text_embeddings"][first], ks)
    rows = [
        ResultRow(run=run, method=method, task="paired_retrieval", metric=name, value=v)
        for name, v in metrics.items()
    ]
    rows.append(
        ResultRow(
            run=run,
            method=method,
            task="paired_retrieval",
            metric="R@1_chance",
            value=1.0 / len(first),
        )
    )
    return rows
