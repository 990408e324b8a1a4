"""The chained pipeline: runs `cfg.stages` in order inside one run folder.

python -m pipelines.run                       # ingest -> pretrain -> export -> evaluate
python -m pipelines.run stages=[evaluate] hydra.run.dir=outputs/runs/demo/<stamp>
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from pipelines.common import Terminated, stopped_by_sigterm, timed_stage
from pipelines.evaluate import run_evaluate
from pipelines.export import run_export
from pipelines.ingest import run_ingest
from pipelines.pretrain import run_pretrain
from pipelines.ranks import join_run

Stage = Callable[[DictConfig], dict[str, Any]]
STAGES: dict[str, Stage] = {
    "ingest": run_ingest,
    "pretrain": run_pretrain,
    "export": run_export,
    "evaluate": run_evaluate,
}
# what the chain prints at its end, where it exists: label -> (paths key, path inside it)
ARTIFACTS = {
    "run folder": ("run_dir", ""),
    "manifest": ("ingest_dir", "manifest.parquet"),
    "rejects ledger": ("ingest_dir", "rejects.csv"),
    "image cache": ("ingest_dir", "cache"),
    "model": ("pretrain_dir", "model.pt"),
    "training logs": ("pretrain_dir", "logs"),
    "baselines": ("run_dir", "baselines"),
    "embeddings": ("embeddings_dir", ""),
    "results table": ("eval_dir", "results.md"),
    "results rows": ("eval_dir", "results.csv"),
    "claims": ("eval_dir", "claims.csv"),
    "label plot": ("eval_dir", "label_efficiency.png"),
    "gallery": ("eval_dir", "retrieval_gallery.png"),
    "run record": ("run_dir", "run_record.json"),
}


# Which processes run a stage when several run one chain (trainer=ddp, torchrun, SLURM tasks):
# ingestion in every process (the folder's lock lets one write; the others wait and reuse it),
# pretraining in every process (data-parallel), export and evaluation in rank 0 alone (the
# other ranks stop after pretraining). The run record is rank 0's.
RANK_ZERO_ONLY = frozenset({"export", "evaluate"})


def run_chain(cfg: DictConfig, stages: Mapping[str, Stage] = STAGES) -> dict[str, dict[str, Any]]:
    """Run `cfg.stages` in order (each timed and recorded); unknown names fail before any runs."""
    unknown = [s for s in cfg.stages if s not in stages]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(stages)}")
    # submitit's local tasks become ranks; a rank Lightning's launcher started ends with rank 0;
    # a stage failing in any rank ends the others (pipelines/ranks.py)
    with join_run(cfg.paths.run_dir) as failures:
        rank = failures.rank
        chosen = [str(s) for s in cfg.stages if rank == 0 or str(s) not in RANK_ZERO_ONLY]
        if len(chosen) < len(cfg.stages):
            print(f"[chain] rank {rank}: runs {chosen}; rank 0 runs the rest", flush=True)
        outputs: dict[str, dict[str, Any]] = {}
        try:
            for stage in chosen:
                with failures.during(stage):
                    outputs[stage] = timed_stage(stage, stages[stage], cfg)
        except Terminated:  # between two stages (inside one, timed_stage says which)
            stopped_by_sigterm("chain")
    if rank != 0:
        return outputs
    failures.clear()
    print("\nArtifacts:")
    for label, (key, inside) in ARTIFACTS.items():
        path = Path(cfg.paths[key]) / inside
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
