"""What every stage entry point shares: process set-up, reuse of unchanged stages, run records.

`pipelines/` is the only layer that knows Hydra; `medrep/` receives plain values.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import medrep
from medrep.pretrained import set_offline
from pipelines.stages import mark_finished, reusable_outputs, stage_dir, stage_key

log = logging.getLogger("medrep")

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


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
