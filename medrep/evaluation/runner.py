"""The evaluation stage as one library call: exported embeddings -> results, claims and plots.

For the pretrained method and every baseline: linear probes at label fractions (and optional
fine-tuning), image->image and text->image category retrieval over the query/candidate lists,
paired image<->report retrieval (also with identical reports counted as one), zero-shot
classification; bootstrap intervals on every test metric; the claims; the label-efficiency plot
and a retrieval gallery. `EvaluationSettings` is what `conf/eval/` builds (`_target_`); the
values live in the config, not here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medrep.data.augment import BatchImages
from medrep.data.cache import ImageCache
from medrep.data.datamodule import load_ingested, paired_rows
from medrep.data.ingest import LABELS_NAME
from medrep.data.transforms import AugmentConfig
from medrep.evaluation.bootstrap import BootstrapSettings, resampling_id
from medrep.evaluation.claims import claim_rows, parse_claims, probe_cells
from medrep.evaluation.embeddings import load_embeddings
from medrep.evaluation.export import SPLITS
from medrep.evaluation.finetune import FinetuneSettings, SplitImages, finetune_rows
from medrep.evaluation.labels import labels_for
from medrep.evaluation.plots import label_efficiency_plot, retrieval_gallery
from medrep.evaluation.probe import ProbeSettings, probe_rows
from medrep.evaluation.results import (
    Evaluation,
    ResultRow,
    claims_markdown,
    draws_markdown,
    markdown_table,
    write_results,
)
from medrep.evaluation.retrieval import topk_cosine
from medrep.evaluation.retrieval_lists import RetrievalLists, read_retrieval_lists
from medrep.evaluation.retrieval_rows import (
    category_text_to_image,
    paired_rows_metrics,
    precision_rows,
)
from medrep.evaluation.seeds import CELLS_FILE, RunCells, write_cells
from medrep.evaluation.zeroshot import prompts_in_texts, zero_shot_rows
from medrep.models.serialization import has_encoder, load_encoder

log = logging.getLogger(__name__)

Splits = Mapping[str, Mapping[str, np.ndarray]]
# what the console shows; results.md holds every metric
HEADLINE_METRICS = (
    "macro_auroc",
    "P@10",
    "P@10_chance",
    "i2t_R@1",
    "t2i_R@1",
    "t2i_R@10",
    "R@1_chance",
)
PLOT_FILE = "label_efficiency.png"
GALLERY_FILE = "retrieval_gallery.png"


@dataclass(frozen=True)
class RetrievalListsSpec:
    """CheXpert 8x200-style query/candidate lists (see `medrep.evaluation.retrieval_lists`).

    Attributes:
        dir: their folder; None (or a folder without the files) evaluates retrieval on the
            test split.
        required: the dataset has lists (the synthetic world): missing files are an error.
        splits: only images of these splits take part.
    """

    dir: str | None
    queries: str
    candidates: str
    category_column: str
    path_column: str
    splits: Sequence[str]
    required: bool = False


@dataclass(frozen=True)
class RetrievalSettings:
    """Retrieval metrics: Recall@`ks` (paired), Precision@`precision_ks` (category).

    Attributes:
        image_feature: the embeddings' array compared in image->image retrieval.
        queries: text->image queries per category (also the zero-shot positive prompts).
    """

    ks: Sequence[int]
    precision_ks: Sequence[int]
    image_feature: str
    lists: RetrievalListsSpec
    queries: Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class PlotSettings:
    gallery_k: int


@dataclass(frozen=True)
class ZeroShotSettings:
    """Per finding, prompts that deny it (its retrieval queries are the positive prompts);
    `require_prompts`: a label without prompts stops the evaluation (else a warning names the
    keys to set, and the label's text->image and zero-shot rows are absent)."""

    negative_prompts: Mapping[str, Sequence[str]]
    require_prompts: bool = False


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything the evaluation stage reads from `conf/eval/` (see its comments)."""

    label_names: Sequence[str]
    baselines: Sequence[str]
    batch_size: int
    blas_threads: int | None
    bootstrap: BootstrapSettings
    probe: ProbeSettings
    finetune: FinetuneSettings
    claims: Sequence[str]
    claim_margin: float
    raw_pixels_side: int
    plots: PlotSettings
    retrieval: RetrievalSettings
    zeroshot: ZeroShotSettings


@dataclass(frozen=True)
class EvaluationRun:
    """What one evaluation reads and writes, beside its settings.

    Attributes:
        methods: the pretrained method first, then the baselines (embeddings/<method>/ folders).
        augment / seed: the pretraining's transforms and seed (fine-tuning trains with them).
        write_source: how ingestion wrote the manifest's `source` from a path under the export
            (`medrep.data.sources`: pseudonymised for a site export), so that retrieval lists
            naming raw paths can be matched; None when sources are the paths themselves.
    """

    name: str
    methods: Sequence[str]
    ingest_dir: Path
    embeddings_dir: Path
    eval_dir: Path
    augment: AugmentConfig
    seed: int
    write_source: Callable[[str], str] | None = None


def _stack(splits: Splits, name: str) -> np.ndarray:
    return np.concatenate([splits[s][name] for s in SPLITS])


class _WrittenSources(Mapping[str, str]):
    """A list's raw path -> image key, through the form ingestion wrote the path in."""

    def __init__(self, written_to_key: dict[str, str], write: Callable[[str], str]) -> None:
        self._keys, self._write = written_to_key, write

    def __getitem__(self, path: str) -> str:
        return self._keys[self._write(path)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def resolve_lists(
    spec: RetrievalListsSpec,
    manifest: pd.DataFrame,
    embedded: set[str],
    write_source: Callable[[str], str] | None = None,
) -> RetrievalLists | None:
    """The query/candidate lists resolved to image keys, or None when absent or unmatched."""
    if not spec.dir:
        return None
    queries, candidates = Path(spec.dir) / spec.queries, Path(spec.dir) / spec.candidates
    if spec.required and not (queries.exists() and candidates.exists()):
        # a dataset that has lists, evaluated without them (its folder absent in another
        # checkout or on another machine): falling back to the test split would change the
        # retrieval protocol, and every P@k with it, behind a warning
        raise FileNotFoundError(
            f"retrieval lists: {queries} and {candidates} are required by this dataset "
            "(data.retrieval_lists) but missing; restore its folder, or evaluate retrieval on "
            "the test split instead with eval.retrieval.lists.dir=null (figures then differ)"
        )
    if not (queries.exists() and candidates.exists()):
        log.warning("no retrieval lists at %s / %s: test split instead", queries, candidates)
        return None
    rows = manifest[manifest["image_key"].isin(embedded)]
    if spec.splits:
        rows = rows[rows["split"].isin(list(spec.splits))]
    written = dict(zip(rows["source"].astype(str), rows["image_key"].astype(str), strict=True))
    lists = read_retrieval_lists(
        queries,
        candidates,
        _WrittenSources(written, write_source) if write_source else written,
        category_column=spec.category_column,
        path_column=spec.path_column,
    )
    if len(lists.query_keys) == 0 or len(lists.candidate_keys) == 0:
        log.warning("retrieval lists at %s match no evaluated image: skipped", spec.dir)
        return None
    return lists


def list_retrieval(
    run: str,
    method: str,
    splits: Splits,
    lists: RetrievalLists,
    queries: Mapping[str, np.ndarray] | None,
    feature: str,
    ks: Sequence[int],
    boot: BootstrapSettings,
) -> list[ResultRow]:
    """Image->image (every method) and text->image (methods with a text tower) over the lists."""
    index = {k: i for i, k in enumerate(_stack(splits, "image_key"))}
    patients = _stack(splits, "patient_key")
    q_rows = np.array([index[k] for k in lists.query_keys])
    c_rows = np.array([index[k] for k in lists.candidate_keys])
    features = _stack(splits, feature)
    rows = precision_rows(
        partial(ResultRow, run, method, "image_to_image"),
        features[q_rows],
        lists.query_categories,
        patients[q_rows],
        features[c_rows],
        lists.candidate_positive,
        lists.categories,
        ks,
        boot,
    )
    if queries is not None and "image_embeddings" in splits["test"]:
        keep = np.isin(queries["category"], lists.categories)
        rows += precision_rows(
            partial(ResultRow, run, method, "text_to_image"),
            queries["text_embeddings"][keep],
            queries["category"][keep],
            [f"query{i}" for i in range(int(keep.sum()))],
            _stack(splits, "image_embeddings")[c_rows],
            lists.candidate_positive,
            lists.categories,
            ks,
            boot,
        )
    return rows


def gallery(
    method: str,
    splits: Splits,
    lists: RetrievalLists,
    manifest: pd.DataFrame,
    cache: ImageCache,
    feature: str,
    k: int,
    path: Path,
) -> Path:
    """Image->image retrieval gallery: the first query of every category and its top k."""
    index = {key: i for i, key in enumerate(_stack(splits, "image_key"))}
    features = _stack(splits, feature)
    slot = dict(zip(manifest["image_key"], manifest["cache_index"], strict=True))
    first = [
        int(np.flatnonzero(lists.query_categories == c)[0])
        for c in lists.categories
        if c in set(lists.query_categories)
    ]
    _, top = topk_cosine(
        features[[index[lists.query_keys[i]] for i in first]],
        features[[index[key] for key in lists.candidate_keys]],
        k,
    )
    cats = list(lists.categories)

    def caption(row: np.ndarray) -> str:
        found = [c for c, yes in zip(cats, row, strict=True) if yes]
        return "\n".join(found) if found else "(none)"

    return retrieval_gallery(
        [cache.image(int(slot[lists.query_keys[i]])) for i in first],
        [str(lists.query_categories[i]) for i in first],
        [[cache.image(int(slot[lists.candidate_keys[j]])) for j in t] for t in top],
        [[caption(lists.candidate_positive[j]) for j in t] for t in top],
        [
            [
                bool(lists.candidate_positive[j, cats.index(str(lists.query_categories[i]))])
                for j in t
            ]
            for i, t in zip(first, top, strict=True)
        ],
        path,
        title=f"{method}: image->image retrieval ({feature}), top {k}",
    )


def finetune_methods(
    settings: EvaluationSettings,
    run: EvaluationRun,
    manifest: pd.DataFrame,
    reports: pd.DataFrame,
    cache: ImageCache,
    labels: pd.DataFrame,
) -> Evaluation:
    """Fine-tuning rows for every method whose image encoder was exported."""
    names = list(settings.label_names)
    uncertain = settings.probe.uncertain
    splits = {}
    for split in SPLITS:
        rows = paired_rows(manifest, reports, split)
        y = labels_for({"study_key": rows["study_key"].to_numpy()}, labels, names, uncertain)
        splits[split] = SplitImages(
            rows["cache_index"].to_numpy(), rows["patient_key"].to_numpy(dtype=str), y
        )
    augment = run.augment
    out = Evaluation()
    for method in settings.finetune.methods or run.methods:
        directory = run.embeddings_dir / str(method)
        if not has_encoder(directory):
            log.warning("fine-tuning skips %s: no image encoder exported in %s", method, directory)
            continue
        out.extend(
            finetune_rows(
                run.name,
                str(method),
                partial(load_encoder, directory),
                cache,
                splits,
                names,
                settings.probe,
                settings.finetune,
                BatchImages(augment),
                settings.bootstrap,
            )
        )
    return out


def evaluate_method(
    settings: EvaluationSettings,
    run: EvaluationRun,
    method: str,
    splits: Splits,
    labels: pd.DataFrame,
    study_texts: Mapping[str, str],
    lists: RetrievalLists | None,
) -> Evaluation:
    """Every task for one method: probe, list retrieval, paired retrieval, zero-shot."""
    boot, retrieval = settings.bootstrap, settings.retrieval
    names = list(settings.label_names)
    result = probe_rows(run.name, method, splits, labels, names, settings.probe, boot)
    directory = run.embeddings_dir / method
    queries_path, prompts_path = directory / "queries.npz", directory / "prompts.npz"
    queries = load_embeddings(queries_path) if queries_path.exists() else None
    if lists is not None:
        result.rows += list_retrieval(
            run.name,
            method,
            splits,
            lists,
            queries,
            retrieval.image_feature,
            retrieval.precision_ks,
            boot,
        )
    test = splits["test"]
    if "image_embeddings" not in test or "text_embeddings" not in test:
        return result
    result.rows += paired_rows_metrics(run.name, method, test, retrieval.ks, study_texts, boot)
    if queries is not None and lists is None:
        keep = np.isin(queries["category"], labels.columns)
        result.rows += category_text_to_image(
            run.name,
            method,
            test,
            {k: v[keep] for k, v in queries.items()},
            labels,
            sorted(set(queries["category"][keep])),
            retrieval.precision_ks,
            boot,
        )
    if prompts_path.exists():
        prompts = load_embeddings(prompts_path)
        zs_names = [c for c in names if c in set(prompts["category"])]
        result.extend(
            zero_shot_rows(
                run.name, method, test, prompts, labels, zs_names, settings.probe.uncertain, boot
            )
        )
    return result


def missing_prompts(settings: EvaluationSettings) -> dict[str, list[str]]:
    """Evaluated labels that text->image retrieval or zero-shot cannot score, each with the
    config keys that would give it prompts."""
    gaps = {}
    for name in settings.label_names:
        keys = []
        if not settings.retrieval.queries.get(name):
            keys.append(f"eval.retrieval.queries.{name}")
        if not settings.zeroshot.negative_prompts.get(name):
            keys.append(f"eval.zeroshot.negative_prompts.{name}")
        if keys:
            gaps[str(name)] = keys
    return gaps


def prompts_in_training(
    settings: EvaluationSettings, manifest: pd.DataFrame, reports: pd.DataFrame
) -> dict[str, int]:
    """The retrieval and zero-shot prompts that training-split reports contain word for word,
    each with the number of reports (`prompts_in_texts`); an empty dict when none is."""
    prompts = [p for ps in settings.retrieval.queries.values() for p in ps]
    prompts += [p for ps in settings.zeroshot.negative_prompts.values() for p in ps]
    train = set(manifest.loc[manifest["split"] == "train", "study_key"])
    texts = reports.loc[reports["study_key"].isin(train), "text"]
    return {p: n for p, n in prompts_in_texts(dict.fromkeys(prompts), texts).items() if n}


def load_splits(directory: Path, method: str) -> dict[str, dict[str, np.ndarray]]:
    if not (directory / "test.npz").exists():
        raise FileNotFoundError(
            f"{directory}: no embeddings for method {method!r}; the export stage writes the "
            "pretrained method and random_init, `python -m pipelines.baselines` the trained "
            "and weights-file baselines (or drop it from eval.baselines)"
        )
    return {s: load_embeddings(directory / f"{s}.npz") for s in SPLITS}


def evaluate(settings: EvaluationSettings, run: EvaluationRun) -> dict[str, Any]:
    """Evaluate every method of `run`; write results.csv/.md, claims and plots to its eval_dir."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
        return _evaluate(settings, run)


def _evaluate(settings: EvaluationSettings, run: EvaluationRun) -> dict[str, Any]:
    labels_path = run.ingest_dir / LABELS_NAME
    if not labels_path.exists():
        raise FileNotFoundError(
            f"{labels_path} not found: evaluation needs labels (the dataset's labels table)"
        )
    labels = pd.read_parquet(labels_path)
    gaps = missing_prompts(settings)
    if gaps and settings.zeroshot.require_prompts:
        raise ValueError(
            "labels without prompts (eval.zeroshot.require_prompts=true): "
            + "; ".join(f"{name!r}: set {' and '.join(keys)}" for name, keys in gaps.items())
        )
    for name, keys in gaps.items():
        log.warning(
            "label %r has no prompts: text->image retrieval and zero-shot skip it; set %s "
            "(docs/evaluation.md, Zero-shot classification)",
            name,
            " and ".join(keys),
        )
    manifest, reports, cache = load_ingested(run.ingest_dir)
    seen = prompts_in_training(settings, manifest, reports)
    if seen:
        log.warning(
            "%d prompt(s) occur word for word in training reports, so text->image retrieval and "
            "zero-shot partly measure recall of the reports' phrasing (prompt: reports): %s; "
            "write paraphrases (docs/evaluation.md, Zero-shot classification)",
            len(seen),
            "; ".join(f"{p!r}: {n}" for p, n in seen.items()),
        )
    study_texts = dict(zip(reports["study_key"], reports["text"], strict=True))
    result = Evaluation()
    lists: RetrievalLists | None = None
    resampling = ""
    for n, method in enumerate(run.methods):
        splits = load_splits(run.embeddings_dir / method, method)
        if n == 0:
            lists = resolve_lists(
                settings.retrieval.lists,
                manifest,
                set(_stack(splits, "image_key")),
                run.write_source,
            )
            resampling = resampling_id(splits["test"]["patient_key"], settings.bootstrap)
        result.extend(evaluate_method(settings, run, method, splits, labels, study_texts, lists))
    if settings.finetune.enabled:
        result.extend(finetune_methods(settings, run, manifest, reports, cache, labels))
    claims = parse_claims(
        list(settings.claims), settings.probe.fractions, aliases={"pretrained": run.methods[0]}
    )
    rows, claims_table = claim_rows(
        run.name, claims, result, settings.bootstrap, settings.claim_margin
    )
    result.rows += rows
    level = settings.bootstrap.level
    point, replicates = probe_cells(result)
    cells = RunCells(
        point,
        replicates,
        [c.text for c in claims],
        level,
        settings.claim_margin,
        resampling,
    )
    write_cells(run.eval_dir / CELLS_FILE, cells)
    csv_path, md_path = write_results(
        result.rows, run.eval_dir, claims_table, level, len(settings.label_names)
    )
    frame = pd.read_csv(csv_path)
    plot = label_efficiency_plot(frame, run.eval_dir / PLOT_FILE, title=run.name)
    outputs: dict[str, Any] = {
        "results_csv": str(csv_path),
        "results_md": str(md_path),
        "rows": len(result.rows),
        "prompts_in_training_reports": len(seen),
    }
    if plot is not None:
        outputs["label_efficiency_plot"] = str(plot)
    if lists is not None:
        primary = run.methods[0]
        outputs["retrieval_gallery"] = str(
            gallery(
                primary,
                load_splits(run.embeddings_dir / primary, primary),
                lists,
                manifest,
                cache,
                settings.retrieval.image_feature,
                settings.plots.gallery_k,
                run.eval_dir / GALLERY_FILE,
            )
        )
        outputs["retrieval_lists"] = {
            "queries": len(lists.query_keys),
            "candidates": len(lists.candidate_keys),
            **lists.dropped,
        }
    return outputs


def console_summary(run: EvaluationRun, level: float, n_labels: int) -> str:
    """The headline metrics and the claims of a finished evaluation, for a terminal."""
    frame = pd.read_csv(run.eval_dir / "results.csv")
    text = f"Results ({run.name}; every metric in {run.eval_dir / 'results.md'}):\n"
    text += markdown_table(frame, HEADLINE_METRICS)
    draws = draws_markdown(frame, n_labels)
    if draws:
        text += f"Label fractions as drawn:\n{draws}"
    claims = run.eval_dir / "claims.csv"
    if claims.exists():
        table = claims_markdown(pd.read_csv(claims), level)
        text += f"Claims (linear probe macro AUROC):\n{table}"
    return text
