"""Evaluate stage: exported embeddings -> results.csv / results.md / claims / plots.

For the pretrained method and every baseline: linear probes at label fractions (and optional
fine-tuning), image->image and text->image category retrieval over the query/candidate lists,
paired image<->report retrieval (also with identical reports counted as one), zero-shot
classification; bootstrap intervals on every test metric; the paper's claims; the
label-efficiency plot and a retrieval gallery.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from medrep.data.cache import ImageCache
from medrep.data.datamodule import load_ingested, paired_rows
from medrep.data.ingest import LABELS_NAME
from medrep.data.transforms import eval_transform, train_transform
from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.embeddings import load_embeddings
from medrep.evaluation.harness import (
    Evaluation,
    ProbeSettings,
    category_text_to_image,
    claim_rows,
    labels_for,
    paired_rows_metrics,
    parse_claims,
    precision_rows,
    probe_rows,
    zero_shot_rows,
)
from medrep.evaluation.plots import label_efficiency_plot, retrieval_gallery
from medrep.evaluation.results import ResultRow, claims_markdown, markdown_table, write_results
from medrep.evaluation.retrieval import topk_cosine
from medrep.evaluation.retrieval_lists import RetrievalLists, read_retrieval_lists
from pipelines.common import augment_config, timed_stage

log = logging.getLogger("medrep")

SPLITS = ("train", "val", "test")
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


def probe_settings(cfg: DictConfig) -> ProbeSettings:
    p = cfg.eval.probe
    return ProbeSettings(
        fractions=tuple(float(f) for f in p.fractions),
        seeds=tuple(int(s) for s in p.seeds),
        c_grid=tuple(float(c) for c in p.c_grid),
        min_patients=int(p.min_patients),
        uncertain=str(p.uncertain),
    )


def bootstrap_settings(cfg: DictConfig) -> BootstrapSettings:
    b = cfg.eval.get("bootstrap") or {}
    return BootstrapSettings(
        n_resamples=int(b.get("n_resamples", 1000)),
        level=float(b.get("level", 0.95)),
        seed=int(b.get("seed", 0)),
    )


def evaluated_methods(cfg: DictConfig) -> list[str]:
    """The pretrained method, the configured baselines, then the grid's local weights files."""
    weights = (cfg.get("grid") or {}).get("weights") or {}
    names = [str(cfg.method), *[str(b) for b in cfg.eval.baselines], *[str(w) for w in weights]]
    return list(dict.fromkeys(names))


def retrieval_lists(
    cfg: DictConfig, manifest: pd.DataFrame, embedded: set[str]
) -> RetrievalLists | None:
    """The configured query/candidate lists resolved to image keys, or None when absent."""
    spec = cfg.eval.retrieval.get("lists")
    if not spec or not spec.get("dir"):
        return None
    queries, candidates = Path(spec.dir) / spec.queries, Path(spec.dir) / spec.candidates
    if not (queries.exists() and candidates.exists()):
        print(f"[evaluate] no retrieval lists at {queries} / {candidates}: test split instead")
        return None
    rows = manifest[manifest["image_key"].isin(embedded)]
    if spec.get("splits"):
        rows = rows[rows["split"].isin(list(spec.splits))]
    lists = read_retrieval_lists(
        queries,
        candidates,
        dict(zip(rows["source"].astype(str), rows["image_key"].astype(str), strict=True)),
        category_column=str(spec.category_column),
        path_column=str(spec.path_column),
    )
    if len(lists.query_keys) == 0 or len(lists.candidate_keys) == 0:
        print(f"[evaluate] retrieval lists at {spec.dir} match no evaluated image: skipped")
        return None
    return lists


def _stack(splits: Mapping[str, Mapping[str, np.ndarray]], name: str) -> np.ndarray:
    return np.concatenate([splits[s][name] for s in SPLITS])


def list_retrieval(
    run: str,
    method: str,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    lists: RetrievalLists,
    queries: Mapping[str, np.ndarray] | None,
    feature: str,
    ks: list[int],
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
    cfg: DictConfig,
    method: str,
    splits: Mapping[str, Mapping[str, np.ndarray]],
    lists: RetrievalLists,
    manifest: pd.DataFrame,
    cache: ImageCache,
    path: Path,
) -> Path:
    """Image->image retrieval gallery: the first query of every category and its top k."""
    k = int(cfg.eval.plots.gallery_k)
    feature = str(cfg.eval.retrieval.image_feature)
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


def run_finetune(
    cfg: DictConfig,
    run: str,
    methods: list[str],
    manifest: pd.DataFrame,
    reports: pd.DataFrame,
    cache: ImageCache,
    labels: pd.DataFrame,
    names: list[str],
    settings: ProbeSettings,
    boot: BootstrapSettings,
) -> Evaluation:
    from medrep.evaluation.finetune import FinetuneSettings, SplitImages, finetune_rows
    from pipelines.export import ENCODER_ARCH_FILE, load_encoder

    f = cfg.eval.finetune
    tune = FinetuneSettings(
        steps=int(f.steps),
        batch_size=int(f.batch_size),
        lr=float(f.lr),
        weight_decay=float(f.weight_decay),
        eval_every=int(f.eval_every),
    )
    splits = {}
    for split in SPLITS:
        rows = paired_rows(manifest, reports, split)
        y = labels_for(
            {"study_key": rows["study_key"].to_numpy()}, labels, names, settings.uncertain
        )
        splits[split] = SplitImages(
            rows["cache_index"].to_numpy(), rows["patient_key"].to_numpy(dtype=str), y
        )
    augment = augment_config(cfg)
    out = Evaluation()
    emb_root = Path(cfg.paths.embeddings_dir)
    for method in [str(m) for m in (f.methods or methods)]:
        directory = emb_root / method
        if not (directory / ENCODER_ARCH_FILE).exists():
            print(f"[evaluate] fine-tuning skips {method}: no {directory / ENCODER_ARCH_FILE}")
            continue
        out.extend(
            finetune_rows(
                run,
                method,
                partial(load_encoder, directory),
                cache,
                splits,
                names,
                settings,
                tune,
                train_transform(augment, int(cfg.seed)),
                eval_transform(augment.size, augment.mean, augment.std),
                seeds=tuple(int(s) for s in f.seeds),
                boot=boot,
            )
        )
    return out


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    threads = cfg.eval.get("blas_threads")
    with threadpool_limits(limits=None if threads is None else int(threads), user_api="blas"):
        return evaluate(cfg)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    emb_root = Path(cfg.paths.embeddings_dir)
    eval_dir = Path(cfg.paths.eval_dir)
    labels_path = Path(cfg.paths.ingest_dir) / LABELS_NAME
    if not labels_path.exists():
        raise FileNotFoundError(
            f"{labels_path} not found: evaluation needs labels (data.labels_csv)"
        )
    labels = pd.read_parquet(labels_path)
    manifest, reports, cache = load_ingested(cfg.paths.ingest_dir)
    study_texts = dict(zip(reports["study_key"], reports["text"], strict=True))
    names = [str(n) for n in cfg.eval.label_names]
    settings = probe_settings(cfg)
    boot = bootstrap_settings(cfg)
    run = str(cfg.run_name)
    methods = evaluated_methods(cfg)
    ks = [int(k) for k in cfg.eval.retrieval.ks]
    precision_ks = [int(k) for k in cfg.eval.retrieval.precision_ks]
    feature = str(cfg.eval.retrieval.image_feature)
    result = Evaluation()
    lists: RetrievalLists | None = None
    for n, method in enumerate(methods):
        if not (emb_root / method / "test.npz").exists():
            raise FileNotFoundError(
                f"{emb_root / method}: no embeddings for method {method!r}; the export stage "
                "writes the pretrained method and random_init, `python -m pipelines.baselines` "
                "the trained and weights-file baselines (or drop it from eval.baselines)"
            )
        splits = {s: load_embeddings(emb_root / method / f"{s}.npz") for s in SPLITS}
        if n == 0:
            lists = retrieval_lists(cfg, manifest, set(_stack(splits, "image_key")))
        result.extend(probe_rows(run, method, splits, labels, names, settings, boot))
        queries_path, prompts_path = (
            emb_root / method / "queries.npz",
            emb_root / method / "prompts.npz",
        )
        queries = load_embeddings(queries_path) if queries_path.exists() else None
        if lists is not None:
            result.rows += list_retrieval(
                run, method, splits, lists, queries, feature, precision_ks, boot
            )
        test = splits["test"]
        if "image_embeddings" in test and "text_embeddings" in test:
            result.rows += paired_rows_metrics(run, method, test, ks, study_texts, boot)
            if queries is not None and lists is None:
                keep = np.isin(queries["category"], labels.columns)
                result.rows += category_text_to_image(
                    run,
                    method,
                    test,
                    {k: v[keep] for k, v in queries.items()},
                    labels,
                    sorted(set(queries["category"][keep])),
                    precision_ks,
                    boot,
                )
            if prompts_path.exists():
                prompts = load_embeddings(prompts_path)
                zs_names = [c for c in names if c in set(prompts["category"])]
                result.extend(
                    zero_shot_rows(
                        run, method, test, prompts, labels, zs_names, settings.uncertain, boot
                    )
                )
    if cfg.eval.get("finetune") and cfg.eval.finetune.enabled:
        result.extend(
            run_finetune(cfg, run, methods, manifest, reports, cache, labels, names, settings, boot)
        )
    claims = parse_claims(
        [str(c) for c in cfg.eval.get("claims") or []],
        settings.fractions,
        aliases={"pretrained": str(cfg.method)},
    )
    rows, claims_table = claim_rows(run, claims, result, boot)
    result.rows += rows
    csv_path, md_path = write_results(result.rows, eval_dir, claims_table)
    frame = pd.read_csv(csv_path)
    plot = label_efficiency_plot(frame, eval_dir / PLOT_FILE, title=run)
    outputs: dict[str, Any] = {
        "results_csv": str(csv_path),
        "results_md": str(md_path),
        "rows": len(result.rows),
    }
    if plot is not None:
        outputs["label_efficiency_plot"] = str(plot)
    if lists is not None:
        primary = {s: load_embeddings(emb_root / methods[0] / f"{s}.npz") for s in SPLITS}
        outputs["retrieval_gallery"] = str(
            gallery(cfg, methods[0], primary, lists, manifest, cache, eval_dir / GALLERY_FILE)
        )
        outputs["retrieval_lists"] = {
            "queries": len(lists.query_keys),
            "candidates": len(lists.candidate_keys),
            **lists.dropped,
        }
    headline = markdown_table(frame, HEADLINE_METRICS)
    print(f"\nResults ({run}; every metric in {md_path}):\n{headline}", flush=True)
    if len(claims_table):
        print(f"Claims (linear probe macro AUROC):\n{claims_markdown(claims_table)}", flush=True)
    return outputs


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("evaluate", run_evaluate, cfg)


if __name__ == "__main__":
    main()
