"""Category retrieval lists: ConVIRT's CheXpert 8x200 protocol, read from two CSV files.

    queries CSV:     Variable (the category), Path
    candidates CSV:  Path, one column per category with CheXpert-style labels (1 = positive)

A retrieved candidate is correct when its label for the query's category is positive. `Path` is
an image file's location relative to the image folder (the manifest's `source`); lists are
resolved to pseudonymous image keys through a mapping the caller builds from the manifest, and
entries the mapping lacks (another split, a rejected or filtered file) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RetrievalLists:
    """Resolved lists.

    Attributes:
        categories: the query categories, in order of first appearance.
        query_keys: [Q] image keys of the query images.
        query_categories: [Q] category of every query.
        candidate_keys: [N] image keys of the candidates.
        candidate_positive: [N, C] whether a candidate is positive for each of `categories`.
        dropped: entries left out, by reason.
    """

    categories: tuple[str, ...]
    query_keys: np.ndarray
    query_categories: np.ndarray
    candidate_keys: np.ndarray
    candidate_positive: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)


def read_retrieval_lists(
    queries_csv: str | Path,
    candidates_csv: str | Path,
    path_to_key: Mapping[str, str],
    category_column: str = "Variable",
    path_column: str = "Path",
) -> RetrievalLists:
    """Read and resolve a query list and a candidate list.

    Args:
        queries_csv / candidates_csv: the two lists (see the module docstring).
        path_to_key: image path (relative, as in the lists) -> image key, for the images that
            may take part (e.g. those of the held-out splits).
        category_column / path_column: column names (the CheXpert set's by default).

    Raises:
        ValueError: a missing column, naming the file and the column.
    """
    queries = pd.read_csv(queries_csv, dtype={path_column: str, category_column: str})
    candidates = pd.read_csv(candidates_csv, dtype={path_column: str})
    for name, frame, columns in (
        (queries_csv, queries, (category_column, path_column)),
        (candidates_csv, candidates, (path_column,)),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{name}: no column(s) {missing} (has {list(frame.columns)}); "
                "set eval.retrieval.lists.*_column to the list's column names"
            )
    categories = tuple(dict.fromkeys(queries[category_column].astype(str)))
    absent = [c for c in categories if c not in candidates.columns]
    if absent:
        raise ValueError(
            f"{candidates_csv}: no label column for query categories {absent}; every category "
            "of the query list needs a column of labels in the candidate list"
        )
    dropped: dict[str, int] = {}

    def resolve(paths: pd.Series, what: str) -> np.ndarray:
        keys = paths.map(lambda p: path_to_key.get(str(p)))
        dropped[f"{what}_not_evaluated"] = int(keys.isna().sum())
        return keys.to_numpy()

    query_keys = resolve(queries[path_column], "queries")
    candidate_keys = resolve(candidates[path_column], "candidates")
    keep_c = pd.notna(candidate_keys) & ~pd.Series(candidate_keys).duplicated().to_numpy()
    dropped["candidates_duplicate"] = int((pd.notna(candidate_keys) & ~keep_c).sum())
    in_candidates = set(candidate_keys[keep_c])
    # a query among the candidates would retrieve itself
    keep_q = pd.notna(query_keys) & np.array([k not in in_candidates for k in query_keys])
    dropped["queries_also_candidates"] = int((pd.notna(query_keys) & ~keep_q).sum())
    labels = candidates.loc[keep_c, list(categories)].to_numpy(dtype=np.float64)
    return RetrievalLists(
        categories=categories,
        query_keys=query_keys[keep_q].astype(str),
        query_categories=queries.loc[keep_q, category_column].astype(str).to_numpy(),
        candidate_keys=candidate_keys[keep_c].astype(str),
        candidate_positive=labels == 1.0,
        dropped=dropped,
    )
