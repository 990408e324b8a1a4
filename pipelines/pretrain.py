"""Pretrain stage: image-report contrastive pretraining on an ingestion folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.models.serialization import MODEL_FILE
from pipelines.common import timed_stage
from pipelines.ranks import join_run
from pipelines.training import build_module, fit, save_model, select_export


def run_pretrain(cfg: DictConfig) -> dict[str, Any]:
    L.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(cfg.paths.pretrain_dir)
    datamodule = instantiate(cfg.data.datamodule)
    module = build_module(cfg)
    trainer = fit(cfg, module, datamodule, out_dir)
    metrics = {
        k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
    }
    exported = select_export(cfg, trainer, module)
    # under DDP every process gets here with the same weights; one writes them
    model_path = (
        save_model(module, cfg, out_dir) if trainer.is_global_zero else out_dir / MODEL_FILE
    )
    return {
        "model": str(model_path),
        "exported": exported,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        **metrics,
    }


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # ranks, and a failure in one ends the others (pipelines/ranks.py)
    with join_run(cfg.paths.run_dir) as failures, failures.during("pretrain"):
        timed_stage("pretrain", run_pretrain, cfg)


if __name__ == "__main__":
    main()
