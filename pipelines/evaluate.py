"""Evaluate stage: linear probes at label fractions and retrieval -> results.csv / results.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from omegaconf import DictConfig

from medrep.data.ingest import LABELS_NAME
from medrep.evaluation.embeddings import load_embeddings
from medrep.evaluation.harness import (
    ProbeSettings,
    category_text_to_image,
    paired_rows_metrics,
    probe_rows,
)
from medrep.evaluation.results import ResultRow, markdown_table, write_results
from pipelines.common import timed_stage

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


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    emb_root = Path(cfg.paths.embeddings_dir)
    labels_path = Path(cfg.paths.ingest_dir) / LABELS_NAME
    if not labels_path.exists():
        raise FileNotFoundError(
            f"{labels_path} not found: evaluation needs labels (data.labels_csv)"
        )
    labels = pd.read_parquet(labels_path)
    names = [str(n) for n in cfg.eval.label_names]
    p = cfg.eval.probe
    settings = ProbeSettings(
        fractions=tuple(float(f) for f in p.fractions),
        seeds=tuple(int(s) for s in p.seeds),
        c_grid=tuple(float(c) for c in p.c_grid),
        min_patients=int(p.min_patients),
        uncertain=str(p.uncertain),
    )
    run = str(cfg.run_name)
    rows: list[ResultRow] = []
    for method in [str(cfg.method), *[str(b) for b in cfg.eval.baselines]]:
        splits = {s: load_embeddings(emb_root / method / f"{s}.npz") for s in SPLITS}
        rows += probe_rows(run, method, splits, labels, names, settings)
        if "image_embeddings" in splits["test"] and "text_embeddings" in splits["test"]:
            ks = [int(k) for k in cfg.eval.retrieval.ks]
            rows += paired_rows_metrics(run, method, splits["test"], ks)
            queries = load_embeddings(emb_root / method / "queries.npz")
            rows += category_text_to_image(
                run,
                method,
                splits["test"],
                queries,
                labels,
                names,
                [int(k) for k in cfg.eval.retrieval.precision_ks],
            )
    csv_path, md_path = write_results(rows, cfg.paths.eval_dir)
    headline = markdown_table(pd.read_csv(csv_path), HEADLINE_METRICS)
    print(f"\nResults ({run}; every metric in {md_path}):\n{headline}", flush=True)
    return {"results_csv": str(csv_path), "results_md": str(md_path), "rows": len(rows)}


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("evaluate", run_evaluate, cfg)


if __name__ == "__main__":
    main()
