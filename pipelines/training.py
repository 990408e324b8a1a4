"""Training in the stages: the module a config builds, `fit` with the config's trainer,
callbacks and loggers, and the trained model's folder (weights + the config that builds it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medrep.models.checkpointing import check_resumed_schedule, restore_best
from medrep.models.module import ContrastivePretrainer
from medrep.models.progress import LogProgress
from medrep.models.serialization import load_weights, save_weights
from pipelines.common import saved_config

log = logging.getLogger("medrep")

CONFIG_FILE = "config.yaml"


def without_name(node: DictConfig) -> DictConfig:
    """A `_target_` node without its bookkeeping `name` key."""
    out = OmegaConf.masked_copy(node, [k for k in node if k != "name"])
    assert isinstance(out, DictConfig)
    return out


def build_module(cfg: DictConfig) -> ContrastivePretrainer:
    """The LightningModule of a config (encoders, heads, loss, optimizer), freshly initialised."""
    loss = instantiate(without_name(cfg.loss))
    return instantiate(cfg.model.module, loss=loss, _convert_="partial")


def save_model(module: L.LightningModule, cfg: Any, directory: Path, **extra: Any) -> Path:
    """The trained weights (medrep.models.serialization) and the config that builds the module."""
    path = save_weights(module, directory, **extra)
    OmegaConf.save(saved_config(cfg), directory / CONFIG_FILE)
    return path


def load_model(directory: str | Path) -> tuple[ContrastivePretrainer, DictConfig]:
    """Rebuild a trained module from a pretraining folder in one call (weights_only load)."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists():
        raise FileNotFoundError(
            f"{directory / CONFIG_FILE} not found: run the pretrain stage first"
        )
    cfg = OmegaConf.load(directory / CONFIG_FILE)
    assert isinstance(cfg, DictConfig)
    module = build_module(cfg)
    load_weights(module, directory)
    return module.eval(), cfg


def _in_folder(node: DictConfig, key: str, folder: Path) -> Any:
    """Instantiate a callback or logger node, moving its `key` folder (if it has one) to `folder`."""
    return instantiate(node, **({key: str(folder)} if key in node else {}))


def fit(cfg: DictConfig, module: L.LightningModule, datamodule: Any, out_dir: Path) -> L.Trainer:
    """Train with the config's trainer, callbacks and loggers, all writing under `out_dir`.

    A re-run of the same command resumes from `out_dir/checkpoints/last.ckpt` (tensors and plain
    values only: loaded with weights_only=True).
    """
    if cfg.export_checkpoint not in ("best", "last"):  # checked before training, used after it
        raise ValueError(f"export_checkpoint must be best or last, got {cfg.export_checkpoint!r}")
    callbacks = [_in_folder(c, "dirpath", out_dir / "checkpoints") for c in cfg.callbacks.values()]
    loggers = [_in_folder(n, "save_dir", out_dir) for n in (cfg.get("logger") or {}).values()]
    # a log that is a file gets progress lines instead of the bar (which shows only at the end)
    lines = any(isinstance(c, LogProgress) and c.active for c in callbacks)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(out_dir),
        callbacks=callbacks,
        logger=loggers,
        **({"enable_progress_bar": False} if lines else {}),
    )
    last = out_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        log.info("resuming from %s", last)
        check_resumed_schedule(last, getattr(module, "scheduler_factory", None))
    trainer.fit(
        module,
        datamodule=datamodule,
        ckpt_path=str(last) if last.exists() else None,
        weights_only=True,
    )
    return trainer


def select_export(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule) -> str:
    """Load the weights to export (`export_checkpoint`: best by the monitored metric, or the
    last epoch) into `module`; says which, for the run record. Pretraining and the baselines
    use it alike, so a grid compares like with like."""
    best_epoch = restore_best(trainer, module) if cfg.export_checkpoint == "best" else None
    return "last" if best_epoch is None else f"best (epoch {best_epoch})"
