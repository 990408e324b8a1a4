"""The chained pipeline: runs `cfg.stages` in order inside one run folder.

python -m pipelines.run                       # ingest -> pretrain -> export -> evaluate
python -m pipelines.run stages=[evaluate] hydra.run.dir=outputs/runs/demo/<stamp>
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from pipelines.common import timed_stage
from pipelines.evaluate import run_evaluate
from pipelines.export import run_export
from pipelines.ingest import run_ingest
from pipelines.pretrain import run_pretrain

STAGES: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    "ingest": run_ingest,
    "pretrain": run_pretrain,
    "export": run_export,
    "evaluate": run_evaluate,
}


def run_stages(
    cfg: DictConfig, stages: dict[str, Callable[[DictConfig], dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Run `cfg.stages` in order (each timed and recorded); unknown names fail before any runs."""
    unknown = [s for s in cfg.stages if s not in stages]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(stages)}")
    return {str(stage): timed_stage(str(stage), stages[str(stage)], cfg) for stage in cfg.stages}


def run_chain(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    outputs = run_stages(cfg, STAGES)
    run_dir = Path(cfg.paths.run_dir)
    print("\nArtifacts:")
    for label, path in (
        ("run folder", run_dir),
        ("manifest", Path(cfg.paths.ingest_dir) / "manifest.parquet"),
        ("rejects ledger", Path(cfg.paths.ingest_dir) / "rejects.csv"),
        ("image cache", Path(cfg.paths.ingest_dir) / "cache"),
        ("model", Path(cfg.paths.pretrain_dir) / "model.pt"),
        ("training logs", Path(cfg.paths.pretrain_dir) / "logs"),
        ("embeddings", Path(cfg.paths.embeddings_dir)),
        ("results table", Path(cfg.paths.eval_dir) / "results.md"),
        ("results rows", Path(cfg.paths.eval_dir) / "results.csv"),
        ("run record", run_dir / "run_record.json"),
    ):
        if path.exists():
            print(f"  {label:15s} {path}")
    return outputs


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    outputs = run_chain(cfg)
    metric = cfg.get("optimize_metric")
    if not metric:
        return None
    # what a sweeper (Optuna) optimises: a validation metric the pretrain stage reports
    if metric not in outputs.get("pretrain", {}):
        raise KeyError(
            f"optimize_metric {metric!r} is not among pretrain's outputs {sorted(outputs.get('pretrain', {}))}"
        )
    return float(outputs["pretrain"][metric])


if __name__ == "__main__":
    main()
