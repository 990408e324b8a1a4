"""Evaluate stage: exported embeddings -> results.csv / results.md / claims / plots
(medrep.evaluation.runner does the work; `conf/eval/` builds its settings)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.data.ingest import SUMMARY_NAME
from medrep.data.sources import pseudonymise_source
from medrep.evaluation.runner import (
    EvaluationRun,
    EvaluationSettings,
    console_summary,
    evaluate,
)
from pipelines.common import timed_stage

log = logging.getLogger(__name__)


def evaluated_methods(cfg: DictConfig) -> list[str]:
    """The pretrained method, the configured baselines, then the grid's local weights files."""
    weights = (cfg.get("grid") or {}).get("weights") or {}
    names = [str(cfg.method), *[str(b) for b in cfg.eval.baselines], *[str(w) for w in weights]]
    return list(dict.fromkeys(names))


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    settings: EvaluationSettings = instantiate(cfg.eval)
    run = EvaluationRun(
        write_source=source_writer_of(cfg),
        name=str(cfg.run_name),
        methods=evaluated_methods(cfg),
        ingest_dir=Path(cfg.paths.ingest_dir),
        embeddings_dir=Path(cfg.paths.embeddings_dir),
        eval_dir=Path(cfg.paths.eval_dir),
        augment=instantiate(cfg.data.augment),
        seed=int(cfg.seed),
    )
    outputs = evaluate(settings, run)
    print(
        f"\n{console_summary(run, settings.bootstrap.level, len(settings.label_names))}", flush=True
    )
    return outputs


def source_writer_of(cfg: DictConfig) -> Callable[[str], str] | None:
    """How the run's ingestion wrote `source` (its summary says), to match retrieval lists that
    name raw paths; None when the sources are the paths, or the secret is not at hand."""
    summary_path = Path(cfg.paths.ingest_dir) / SUMMARY_NAME
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if summary.get("source_paths") != "pseudonymise":
        return None
    try:
        secret = str(instantiate(cfg.data.ingest.secret))
    except Exception as exc:  # the secret's variable is not exported in this shell
        log.warning("retrieval lists cannot be matched to pseudonymised sources: %s", exc)
        return None
    return partial(pseudonymise_source, secret=secret)


# the entry point every stage file ends with (lightning-hydra-template's src/train.py)
@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("evaluate", run_evaluate, cfg)


if __name__ == "__main__":
    main()
