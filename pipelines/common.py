"""What every stage entry point shares: process set-up, reuse of unchanged stages, run records.

`pipelines/` is the only layer that knows Hydra; `medrep/` receives plain values.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import torch
import yaml
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

import medrep
from medrep.data.privacy import REDACTED
from medrep.evaluation.explore import path_record
from medrep.pretrained import set_offline
from pipelines.ranks import TERMINATED_STATUS, process_rank
from pipelines.stages import mark_finished, reusable_outputs, stage_dir, stage_key

log = logging.getLogger("medrep")

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# run folders are named by time and process (conf/hydra/default.yaml); registered at import,
# before Hydra composes the config
# (cached: a sweep's jobs copy the launcher's resolver cache, so they agree on its folders)
OmegaConf.register_new_resolver("pid", os.getpid, replace=True, use_cache=True)
SECRET_KEY = "data.ingest.secret.secret"


class Terminated(BaseException):
    """SIGTERM arrived (a scheduler's cancel, a pre-emption, `kill`): unwind and exit non-zero."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def configure_process(cfg: DictConfig) -> None:
    """Process-wide settings every stage needs: offline hub, thread count, logging."""
    set_offline()
    # unwind on SIGTERM (locks released, temporary files removed) and exit 143, never 0;
    # Lightning's own handler (during fit) calls this one after its own
    signal.signal(signal.SIGTERM, _on_sigterm)
    redact_written_configs(cfg)
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
    """Append the stage's outputs and timing to the run record (rank 0 only: one record per
    run); print one line about it."""
    rank = process_rank()
    if rank != 0:
        print(f"[{stage}] rank {rank} done in {seconds:.1f}s", flush=True)
        return
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
    # where everything is, absolute and relative to the run folder (medrep.evaluation.explore
    # finds a moved run's ingestion folder from them)
    record["paths"] = {k: path_record(v, run_dir) for k, v in plain(cfg.paths).items()}
    record_path.write_text(json.dumps(record, indent=2, default=str))
    OmegaConf.save(saved_config(cfg), run_dir / "resolved_config.yaml")
    shown = ", ".join(f"{k}={v}" for k, v in outputs.items() if not isinstance(v, dict | list))
    print(f"[{stage}] done in {seconds:.1f}s: {shown}", flush=True)


def stopped_by_sigterm(stage: str) -> NoReturn:
    """Say where SIGTERM stopped the chain and exit 143."""
    print(
        f"[{stage}] stopped by SIGTERM before it finished; the later stages do not run. The same "
        "command resumes (pretraining from its last checkpoint, ingestion from its last part).",
        flush=True,
    )
    raise SystemExit(TERMINATED_STATUS)


def literal_secret(cfg: DictConfig) -> str | None:
    """The pseudonymisation secret when the config holds it as a value (not an env variable)."""
    node = OmegaConf.select(cfg, SECRET_KEY, default=None)
    return str(node) if node else None


def saved_config(cfg: DictConfig) -> DictConfig:
    """`cfg` as a run writes it: resolved, every `paths` entry absolute (a moved run, or a
    notebook started in another folder, must not resolve them against its own working
    directory), and a literal pseudonymisation secret replaced by `<redacted>`."""
    if "paths" not in cfg:  # a part of the config (a baseline's spec): its values as they are
        part = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        assert isinstance(part, DictConfig)
        return part
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    assert isinstance(copy, DictConfig)
    # the paths absolute before resolving: every path built from them (data.adapter.image_dir,
    # data.ingest.out_dir...) follows
    for key, value in plain(cfg.paths).items():
        if isinstance(value, str):
            copy.paths[key] = os.path.abspath(value)
    if literal_secret(cfg) is not None:
        OmegaConf.update(copy, SECRET_KEY, REDACTED, force_add=True)
    resolved = OmegaConf.create(OmegaConf.to_container(copy, resolve=True))
    assert isinstance(resolved, DictConfig)
    return resolved


def _without_secret(node: Any, secret: str) -> Any:
    """A YAML tree with the secret replaced: a value equal to it, and the value of a
    `...secret.secret=<it>` override inside a string (Hydra's override lists and
    `override_dirname`)."""
    if isinstance(node, dict):
        return {k: _without_secret(v, secret) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_secret(v, secret) for v in node]
    if node == secret:
        return REDACTED
    if isinstance(node, str):
        return re.sub(rf"(secret\.secret=){re.escape(secret)}(?=,|$)", rf"\g<1>{REDACTED}", node)
    return node


def redact_file(path: Path, secret: str, attempts: int = 50, wait_s: float = 0.1) -> bool:
    """Replace the secret in one saved YAML config (atomically); whether it held it.

    Several processes of one run (torchrun, SLURM tasks) share the run folder and Hydra writes
    `.hydra/*.yaml` in each of them: a file another process is writing half-parses, so it is
    read again until it parses (a few seconds at most)."""
    for attempt in range(attempts):
        text = path.read_text()
        if secret not in text:
            return False
        try:
            data = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
        except yaml.YAMLError:
            if attempt == attempts - 1:
                raise
            time.sleep(wait_s)
            continue
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        OmegaConf.save(OmegaConf.create(_without_secret(data, secret)), tmp)
        tmp.replace(path)
        return True
    return False


def redact_written_configs(cfg: DictConfig) -> None:
    """Remove a literal secret from the configs Hydra wrote for this run (`.hydra/*.yaml`, and
    a sweep's `multirun.yaml`): a secret given as `data.ingest.secret.secret=...` would stay
    in every run folder. The variable `data.ingest.secret.secret_env` names is the way to pass
    it; a warning says so."""
    secret = literal_secret(cfg)
    if secret is None or secret == REDACTED:
        return
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    written = [Path(hydra_cfg.runtime.output_dir) / (hydra_cfg.output_subdir or ".hydra")]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        written.append(Path(hydra_cfg.sweep.dir))
    found = False
    for folder in written:
        for path in folder.glob("*.yaml") if folder.is_dir() else ():
            found = redact_file(path, secret) or found
    if found and "synthetic" not in str(OmegaConf.select(cfg, "data.name", default="")):
        log.warning(
            "the pseudonymisation secret was given in the config; it is redacted from the run's "
            "saved configs, but a command line is kept in shell histories and process lists: "
            "export %s instead",
            OmegaConf.select(
                cfg, "data.ingest.secret.secret_env", default="MEDREP_PSEUDONYM_SECRET"
            ),
        )


def timed_stage(
    stage: str, fn: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig
) -> dict[str, Any]:
    """Run a stage (or reuse its outputs when its config and inputs are unchanged); record it.

    SIGTERM at any point of it (Lightning's own `SIGTERMException` during fit, a `SystemExit`
    without a code that would exit 0) ends the process with status 143 and a message."""
    configure_process(cfg)
    try:
        return _timed_stage(stage, fn, cfg)
    except (Terminated, SIGTERMException):
        stopped_by_sigterm(stage)


def _timed_stage(
    stage: str, fn: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig
) -> dict[str, Any]:
    start = time.time()
    reused = None if cfg.get("rerun") else reusable_outputs(stage, cfg, stage_key(stage, cfg))
    if reused is not None:
        print(f"[{stage}] unchanged config and inputs: reusing {stage_dir(stage, cfg)}", flush=True)
        record_stage(cfg, stage, {**reused, "reused": True}, time.time() - start)
        return reused
    outputs = fn(cfg)
    if process_rank() == 0:
        mark_finished(stage, cfg, outputs)
    record_stage(cfg, stage, outputs, time.time() - start)
    return outputs
