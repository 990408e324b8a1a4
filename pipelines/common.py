"""What the stage entry points share: config -> library objects, model save/load, run records.

This is the only layer that knows Hydra; `medrep/` receives plain values.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import medrep
from medrep.data.transforms import AugmentConfig
from medrep.models.module import ContrastivePretrainer
from medrep.pretrained import set_offline
from pipelines.stages import mark_finished, reusable_outputs, stage_dir, stage_key

log = logging.getLogger("medrep")

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.yaml"
MODEL_FORMAT = 1


def configure_process(cfg: DictConfig) -> None:
    """Process-wide settings every stage needs: offline hub, thread count, logging."""
    set_offline()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # transformers reports the unused pooler weights of every BERT we load without its pooler
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def plain(node: Any) -> Any:
    """A config node as plain Python containers (resolved)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def augment_config(cfg: DictConfig) -> AugmentConfig:
    values = plain(cfg.model.augment)
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def without_name(node: DictConfig) -> DictConfig:
    """A `_target_` node without its bookkeeping `name` key."""
    out = OmegaConf.masked_copy(node, [k for k in node if k != "name"])
    assert isinstance(out, DictConfig)
    return out


def build_module(cfg: DictConfig) -> ContrastivePretrainer:
    """The LightningModule of a config (encoders, heads, loss, optimizer), freshly initialised."""
    loss = instantiate(without_name(cfg.loss))
    return instantiate(cfg.model.module, loss=loss, _convert_="partial")


def save_model(module: ContrastivePretrainer, cfg: DictConfig, directory: Path) -> Path:
    """Write the trained weights (tensors only) and the run's resolved config."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    tmp = directory / f".{MODEL_FILE}.tmp"
    torch.save({"format": MODEL_FORMAT, "state_dict": module.state_dict()}, tmp)
    os.replace(tmp, path)
    OmegaConf.save(cfg, directory / CONFIG_FILE, resolve=True)
    return path


def load_model(directory: str | Path) -> tuple[ContrastivePretrainer, DictConfig]:
    """Rebuild a trained module from a pretraining folder in one call (weights_only load)."""
    directory = Path(directory)
    if not (directory / MODEL_FILE).exists():
        raise FileNotFoundError(f"{directory / MODEL_FILE} not found: run the pretrain stage first")
    cfg = OmegaConf.load(directory / CONFIG_FILE)
    assert isinstance(cfg, DictConfig)
    module = build_module(cfg)
    state = torch.load(directory / MODEL_FILE, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    return module.eval(), cfg


LOGGERS = ("csv", "tensorboard", "mlflow")


def build_loggers(cfg: DictConfig, out_dir: Path) -> list[Any]:
    """Lightning loggers named by `cfg.loggers`, each writing under `out_dir` (the stage folder).

    `csv` (metrics.csv) and `tensorboard` (event files: `tensorboard --logdir <run folder>`) are
    the defaults; `mlflow` logs to a local file store in the run folder unless `MLFLOW_TRACKING_URI`
    names a server (it needs `pip install mlflow`).
    """
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

    names = [str(n) for n in (cfg.get("loggers") or [])]
    unknown = sorted(set(names) - set(LOGGERS))
    if unknown:
        raise ValueError(f"unknown loggers {unknown}: choose from {list(LOGGERS)}")
    loggers: list[Any] = []
    for name in names:
        if name == "csv":
            loggers.append(CSVLogger(str(out_dir), name="logs"))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(str(out_dir), name="tensorboard"))
        else:
            uri = os.environ.get("MLFLOW_TRACKING_URI") or (out_dir / "mlruns").resolve().as_uri()
            loggers.append(MLFlowLogger(experiment_name=str(cfg.run_name), tracking_uri=uri))
    return loggers


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=CONF_DIR.parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def record_stage(cfg: DictConfig, stage: str, outputs: dict[str, Any], seconds: float) -> None:
    """Append the stage's outputs and timing to the run record; print one line about it."""
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record_path = run_dir / "run_record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    record.setdefault("package_version", medrep.__version__)
    record.setdefault("git_commit", git_commit())
    record.setdefault("stages", {})[stage] = {"seconds": round(seconds, 2), "outputs": outputs}
    summary = Path(cfg.paths.ingest_dir) / "ingest_summary.json"
    if summary.exists():
        record["input_manifest_sha256"] = json.loads(summary.read_text()).get("manifest_sha256")
    record_path.write_text(json.dumps(record, indent=2, default=str))
    OmegaConf.save(cfg, run_dir / "resolved_config.yaml", resolve=True)
    shown = ", ".join(f"{k}={v}" for k, v in outputs.items() if not isinstance(v, dict | list))
    print(f"[{stage}] done in {seconds:.1f}s: {shown}", flush=True)


def timed_stage(
    stage: str, fn: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig
) -> dict[str, Any]:
    """Run a stage (or reuse its outputs when its config and inputs are unchanged); record it."""
    configure_process(cfg)
    start = time.time()
    reused = None if cfg.get("rerun") else reusable_outputs(stage, cfg, stage_key(stage, cfg))
    if reused is not None:
        print(f"[{stage}] unchanged config and inputs: reusing {stage_dir(stage, cfg)}", flush=True)
        record_stage(cfg, stage, {**reused, "reused": True}, time.time() - start)
        return reused
    outputs = fn(cfg)
    mark_finished(stage, cfg, outputs)
    record_stage(cfg, stage, outputs, time.time() - start)
    return outputs
