"""The evaluation harness: exported embeddings + labels -> tidy result rows with intervals.

Labels join the embeddings by `study_key`; label fractions are drawn by patient; every probe runs
for several seeds so the table shows spread, not a lucky draw; every test metric carries a
bootstrap interval over test patients (`medrep.evaluation.bootstrap`), drawn identically for
every method so that the claims comparing methods are paired.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from medrep.evaluation.bootstrap import (
    DEFAULT_BOOTSTRAP,
    BootstrapSettings,
    cluster_weights,
    macro_auroc_replicates,
    percentile_interval,
    weighted_mean,
    weighted_median,
)
from medrep.evaluation.probe import binarize_labels, linear_probe, sample_patients
from medrep.evaluation.results import ResultRow
from medrep.evaluation.retrieval import (
    grouped_target_ranks,
    precision_at_k,
    target_ranks,
    text_groups,
    topk_cosine,
)
from medrep.evaluation.zeroshot import zero_shot_scores

RowFactory = Callable[..., ResultRow]
# (method, task, label fraction) -> per-seed macro AUROC replicates, each [B]
ReplicateStore = dict[tuple[str, str, float], list[np.ndarray]]


@dataclass(frozen=True)
class ProbeSettings:
    fractions: Sequence[float] = (0.01, 0.1, 1.0)
    seeds: Sequence[int] = (0, 1, 2)
    c_grid: Sequence[float] = (0.001, 0.01, 0.1, 1.0, 10.0)
    min_patients: int = 8
    uncertain: str = "ignore"


@dataclass
class Evaluation:
    """Result rows plus the bootstrap replicates of the macro AUROCs (for paired claims)."""

    rows: list[ResultRow] = field(default_factory=list)
    replicates: ReplicateStore = field(default_factory=dict)

    def extend(self, other: Evaluation) -> None:
        self.rows.extend(other.rows)
        for key, values in other.replicates.items():
            self.replicates.setdefault(key, []).extend(values)


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


def resample_weights(groups: np.ndarray, boot: BootstrapSettings) -> np.ndarray | None:
    if boot.n_resamples <= 0 or len(groups) == 0:
        return None
    return cluster_weights(groups, boot.n_resamples, boot.seed)


def _interval(replicates: np.ndarray | None, boot: BootstrapSettings) -> dict[str, float]:
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
    values = [v for v in auroc.values() if not np.isnan(v)]
    out = [
        row(
            metric="macro_auroc",
            value=float(np.mean(values)) if values else float("nan"),
            **_interval(macro, boot),
        )
    ]
    for j, name in enumerate(label_names):
        out.append(
            row(
                metric=f"auroc/{name}",
                value=float(auroc[name]),
                **_interval(None if per_label is None else per_label[j], boot),
            )
        )
    return out, macro


def probe_rows(
    run: str,
    method: str,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    settings: ProbeSettings,
    boot: BootstrapSettings = DEFAULT_BOOTSTRAP,
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
                ResultRow, run, method, "linear_probe", label_fraction=float(fraction), seed=seed
            )
            rows, macro = auroc_rows(
                row, result.test_scores, y["test"], label_names, result.auroc, weights, boot
            )
            out.rows.extend(rows)
            out.rows.append(row(metric="train_images", value=float(mask.sum())))
            if macro is not None:
                out.replicates.setdefault((method, "linear_probe", float(fraction)), []).append(
                    macro
                )
    return out


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
        out.append(row(metric=f"P@{k}", value=float(precision.mean()), **_interval(rep, boot)))
        out.append(row(metric=f"P@{k}_chance", value=float(chance.mean())))
        for c in dict.fromkeys(cats):
            sel = cats == c
            rep = None if weights is None else weighted_mean(precision[sel], weights[:, sel])
            out.append(
                row(metric=f"P@{k}/{c}", value=float(precision[sel].mean()), **_interval(rep, boot))
            )
    return out


def category_text_to_image(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    queries: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    ks: Sequence[int],
    boot: BootstrapSettings = DEFAULT_BOOTSTRAP,
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
    row: RowFactory, name: str, ranks: np.ndarray, ks: Sequence[int], weights, boot
) -> list[ResultRow]:
    out = []
    for k in ks:
        hits = (ranks <= k).astype(np.float64)
        rep = None if weights is None else weighted_mean(hits, weights)
        out.append(row(metric=f"{name}_R@{k}", value=float(hits.mean()), **_interval(rep, boot)))
    rep = None if weights is None else weighted_median(ranks, weights)
    out.append(
        row(metric=f"{name}_median_rank", value=float(np.median(ranks)), **_interval(rep, boot))
    )
    return out


def paired_rows_metrics(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    ks: Sequence[int],
    study_texts: Mapping[str, str] | None = None,
    boot: BootstrapSettings = DEFAULT_BOOTSTRAP,
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


def zero_shot_rows(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    prompts: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    uncertain: str,
    boot: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> Evaluation:
    """Zero-shot AUROC (per label and macro) of prompt scores on the test split."""
    from sklearn.metrics import roc_auc_score

    y = labels_for(test, labels, label_names, uncertain)
    scores = zero_shot_scores(
        test["image_embeddings"],
        prompts["text_embeddings"],
        prompts["category"],
        prompts["polarity"],
        label_names,
    )
    auroc = {}
    for j, name in enumerate(label_names):
        keep = ~np.isnan(y[:, j])
        both = len(np.unique(y[keep, j])) == 2
        auroc[name] = float(roc_auc_score(y[keep, j], scores[keep, j])) if both else float("nan")
    weights = resample_weights(np.asarray(test["patient_key"]), boot)
    row = partial(ResultRow, run, method, "zero_shot")
    rows, _ = auroc_rows(row, scores, y, label_names, auroc, weights, boot)
    return Evaluation(rows=rows)


# ------------------------------------------------------------------------------ claims

_CLAIM = re.compile(r"^\s*(\S+)@(\*|[0-9.]+)\s*(>=|>)\s*(\S+)@(\*|[0-9.]+)\s*$")


@dataclass(frozen=True)
class Claim:
    """`left` method's probe at `left_fraction` `relation` (>= or >) `right`'s at its fraction."""

    left: str
    left_fraction: float
    relation: str
    right: str
    right_fraction: float

    @property
    def text(self) -> str:
        return (
            f"{self.left}@{self.left_fraction:g} {self.relation} "
            f"{self.right}@{self.right_fraction:g}"
        )


def parse_claims(
    specs: Sequence[str],
    fractions: Sequence[float],
    aliases: Mapping[str, str] | None = None,
) -> list[Claim]:
    """Claims from strings like `convirt@0.1 >= random_init@1.0`.

    `@*` on both sides expands to one claim per label fraction (`convirt@* > simclr@*`: better
    at every fraction); `aliases` renames methods (e.g. `pretrained` -> the evaluated method).
    """
    names = dict(aliases or {})
    claims = []
    for spec in specs:
        match = _CLAIM.match(spec)
        if not match:
            raise ValueError(
                f"claim {spec!r}: expected 'METHOD@FRACTION >= METHOD@FRACTION' (or '>' and "
                "'@*' on both sides for every fraction)"
            )
        left, lf, relation, right, rf = match.groups()
        left, right = names.get(left, left), names.get(right, right)
        if (lf == "*") != (rf == "*"):
            raise ValueError(f"claim {spec!r}: use '@*' on both sides or on neither")
        pairs = [(f, f) for f in fractions] if lf == "*" else [(float(lf), float(rf))]
        claims += [Claim(left, float(a), relation, right, float(b)) for a, b in pairs]
    return claims


def claim_rows(
    run: str,
    claims: Sequence[Claim],
    evaluation: Evaluation,
    boot: BootstrapSettings = DEFAULT_BOOTSTRAP,
    task: str = "linear_probe",
) -> tuple[list[ResultRow], pd.DataFrame]:
    """Judge claims on the macro AUROC averaged over probe seeds.

    The difference left - right is a point estimate with a paired bootstrap interval (the same
    test resamples on both sides, each side averaged over its seeds). A claim holds when the
    point estimate satisfies its relation; the table says separately whether the interval
    excludes zero. Claims naming a method or fraction that was not evaluated are skipped.

    Returns:
        (rows of task `claim`, a table with one line per claim and its verdict).
    """
    macro = pd.DataFrame(
        [
            (r.method, r.label_fraction, r.value)
            for r in evaluation.rows
            if r.task == task and r.metric == "macro_auroc"
        ],
        columns=["method", "fraction", "value"],
    )
    point = macro.groupby(["method", "fraction"])["value"].mean()
    rows, table = [], []
    for claim in claims:
        keys = [(claim.left, claim.left_fraction), (claim.right, claim.right_fraction)]
        if not all(k in point.index for k in keys):
            continue
        left, right = (float(point.loc[k]) for k in keys)
        difference = left - right
        reps = [evaluation.replicates.get((m, task, f)) for m, f in keys]
        interval: dict[str, float] = {}
        if all(reps):
            diff_rep = np.mean(reps[0], axis=0) - np.mean(reps[1], axis=0)  # type: ignore[arg-type]
            interval = _interval(diff_rep, boot)
        holds = difference >= 0 if claim.relation == ">=" else difference > 0
        low, high = interval.get("ci_low", np.nan), interval.get("ci_high", np.nan)
        rows.append(
            ResultRow(
                run,
                claim.left,
                "claim",
                claim.text,
                difference,
                label_fraction=claim.left_fraction,
                ci_low=low,
                ci_high=high,
            )
        )
        table.append(
            {
                "claim": claim.text,
                "left": left,
                "right": right,
                "difference": difference,
                "ci_low": low,
                "ci_high": high,
                "holds": bool(holds),
                "ci_excludes_zero": bool(low > 0 or high < 0),
            }
        )
    return rows, pd.DataFrame(
        table,
        columns=[
            "claim",
            "left",
            "right",
            "difference",
            "ci_low",
            "ci_high",
            "holds",
            "ci_excludes_zero",
        ],
    )
