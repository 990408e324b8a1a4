"""Retrieval result rows: category Precision@k and paired Recall@k, with bootstrap intervals.

The metrics themselves are `medrep.evaluation.retrieval`'s; here they become `ResultRow`s, with
intervals that resample the queries by their units (patients, or each text query alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd

from medrep.evaluation.bootstrap import BootstrapSettings, weighted_mean, weighted_median
from medrep.evaluation.labels import labels_for
from medrep.evaluation.metrics import interval, resample_weights
from medrep.evaluation.results import ResultRow, RowFactory
from medrep.evaluation.retrieval import (
    grouped_target_ranks,
    precision_at_k,
    target_ranks,
    text_groups,
    topk_cosine,
)


def precision_rows(
    row: RowFactory,
    query_embeddings: np.ndarray,
    query_categories: Sequence[str] | np.ndarray,
    query_groups: Sequence[str] | np.ndarray,
    candidate_embeddings: np.ndarray,
    candidate_positive: np.ndarray,
    categories: Sequence[str],
    ks: Sequence[int],
    boot: BootstrapSettings,
) -> list[ResultRow]:
    """Category retrieval Precision@k (overall and per category) with chance levels.

    A retrieved candidate is correct when it is positive for the query's category; the chance
    level is the share of positive candidates for the query's category, averaged over queries.
    Intervals resample the queries by `query_groups` (their patients; each text query is its
    own group); the candidates stay fixed.

    Args:
        candidate_positive: [N, C] boolean, columns in the order of `categories`.
    """
    cats = np.asarray(query_categories).astype(str)
    names = list(categories)
    col = np.array([names.index(c) for c in cats], dtype=np.int64)
    relevant = candidate_positive[:, col].T  # [Q, N]
    n_candidates = candidate_embeddings.shape[0]
    usable = [int(k) for k in ks if k <= n_candidates]
    out = [
        row(metric="n_queries", value=float(len(cats))),
        row(metric="n_candidates", value=float(n_candidates)),
    ]
    if not usable or len(cats) == 0:
        return out
    _, top = topk_cosine(query_embeddings, candidate_embeddings, max(usable))
    weights = resample_weights(np.asarray(query_groups).astype(str), boot)
    chance = candidate_positive.mean(0)[col]
    for k in usable:
        precision = precision_at_k(top, relevant, k)
        rep = None if weights is None else weighted_mean(precision, weights)
        out.append(row(metric=f"P@{k}", value=float(precision.mean()), **interval(rep, boot)))
        out.append(row(metric=f"P@{k}_chance", value=float(chance.mean())))
        for c in dict.fromkeys(cats):
            sel = cats == c
            rep = None if weights is None else weighted_mean(precision[sel], weights[:, sel])
            out.append(
                row(metric=f"P@{k}/{c}", value=float(precision[sel].mean()), **interval(rep, boot))
            )
    return out


# (its parameter list has the shape of zero_shot_rows's: both score one method's test split)
def category_text_to_image(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    queries: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    ks: Sequence[int],
    boot: BootstrapSettings,
) -> list[ResultRow]:
    """Text->image Precision@k of category queries over the test split's images.

    The fallback when no candidate list is given: candidates are every test image, positive for
    a category when its study's label is (uncertain counts as negative).
    """
    y = labels_for(test, labels, label_names, uncertain="zero")
    categories = [str(c) for c in queries["category"]]
    return precision_rows(
        partial(ResultRow, run, method, "text_to_image"),
        queries["text_embeddings"],
        categories,
        [f"query{i}" for i in range(len(categories))],
        test["image_embeddings"],
        y == 1.0,
        list(label_names),
        ks,
        boot,
    )


def _first_image_per_study(test: Mapping[str, np.ndarray]) -> np.ndarray:
    _, first = np.unique(test["study_key"], return_index=True)
    return np.sort(first)


def _rank_rows(
    row: RowFactory,
    name: str,
    ranks: np.ndarray,
    ks: Sequence[int],
    weights: np.ndarray | None,
    boot: BootstrapSettings,
) -> list[ResultRow]:
    """Recall@k and the median rank of 1-based target ranks, with intervals."""
    out = []
    for k in ks:
        hits = (ranks <= k).astype(np.float64)
        rep = None if weights is None else weighted_mean(hits, weights)
        out.append(row(metric=f"{name}_R@{k}", value=float(hits.mean()), **interval(rep, boot)))
    rep = None if weights is None else weighted_median(ranks, weights)
    out.append(
        row(metric=f"{name}_median_rank", value=float(np.median(ranks)), **interval(rep, boot))
    )
    return out


def paired_rows_metrics(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    ks: Sequence[int],
    study_texts: Mapping[str, str] | None,
    boot: BootstrapSettings,
) -> list[ResultRow]:
    """Paired image<->report Recall@k and median rank on the test split (one image per study).

    Studies with several images would count each image's report as a separate target; taking
    the first image per study keeps one target per query. With `study_texts` (study key ->
    report text) the `paired_retrieval_dedup` task repeats the measurement with identical texts
    (after `normalise_text`) counted as one: retrieving any copy of the target's text is a hit,
    and copies of another text occupy one rank between them.
    """
    first = _first_image_per_study(test)
    image, text = test["image_embeddings"][first], test["text_embeddings"][first]
    weights = resample_weights(np.asarray(test["patient_key"])[first], boot)
    targets = np.arange(len(first))
    row = partial(ResultRow, run, method, "paired_retrieval")
    rows = _rank_rows(row, "i2t", target_ranks(image, text, targets), ks, weights, boot)
    rows += _rank_rows(row, "t2i", target_ranks(text, image, targets), ks, weights, boot)
    rows.append(row(metric="R@1_chance", value=1.0 / len(first)))
    if study_texts is None:
        return rows
    groups = text_groups([study_texts[str(k)] for k in np.asarray(test["study_key"])[first]])
    row = partial(ResultRow, run, method, "paired_retrieval_dedup")
    i2t = grouped_target_ranks(image, text, groups, groups, collapse_candidates=True)
    t2i = grouped_target_ranks(text, image, groups, groups)
    rows += _rank_rows(row, "i2t", i2t, ks, weights, boot)
    rows += _rank_rows(row, "t2i", t2i, ks, weights, boot)
    rows.append(row(metric="distinct_texts", value=float(len(np.unique(groups)))))
    return rows
