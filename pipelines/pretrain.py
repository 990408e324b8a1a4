"""Pretrain stage: image-report contrastive pretraining on an ingestion folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.data.datamodule import PairedDataModule
from pipelines.common import (
    augment_config,
    build_loggers,
    build_module,
    save_model,
    timed_stage,
)

log = logging.getLogger("medrep")


def build_datamodule(cfg: DictConfig) -> PairedDataModule:
    return PairedDataModule(
        ingest_dir=str(cfg.paths.ingest_dir),
        tokenizer_path=str(cfg.model.module.text_encoder.model_path),
        augment=augment_config(cfg),
        batch_size=int(cfg.model.batch_size),
        num_workers=int(cfg.data.num_workers),
        max_length=int(cfg.model.text.max_length),
        train_text_view=str(cfg.model.text.train_view),
        val_text_view=str(cfg.model.text.val_view),
        seed=int(cfg.seed),
    )


def run_pretrain(cfg: DictConfig) -> dict[str, Any]:
    L.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(cfg.paths.pretrain_dir)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(out_dir),
        callbacks=callbacks,
        logger=build_loggers(cfg, out_dir),
    )
    last = out_dir / "checkpoints" / "last.ckpt"
    # a re-run of the same command resumes from the last checkpoint (tensors and plain values
    # only: loaded with weights_only=True)
    if last.exists():
        log.info("resuming from %s", last)
    trainer.fit(
        module,
        datamodule=datamodule,
        ckpt_path=str(last) if last.exists() else None,
        weights_only=True,
    )
    # under DDP every process gets here with the same weights; one writes them
    model_path = (
        save_model(module, cfg, out_dir) if trainer.is_global_zero else out_dir / "model.pt"
    )
    metrics = {
        k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
    }
    return {
        "model": str(model_path),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        **metrics,
    }


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("pretrain", run_pretrain, cfg)


if __name__ == "__main__":
    main()
