"""What the benchmark scripts share: the project's config, an ingested synthetic world, the
machine line and the verdict line. Run the scripts from the repository root as modules
(`.venv/bin/python -m benchmarks.<name>`) so that `pipelines` imports.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
import resource
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]


def compose_config(out_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The project's config with every output under `out_dir`.

    Synthetic worlds stay where the config puts them (`paths.data_dir`, the demo's `data/`
    unless MEDREP_DATA_DIR says otherwise): generating one is deterministic and idempotent, so a
    second benchmark run reuses it; ingestion and training outputs are always fresh.
    """
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                f"paths.root_dir={REPO}",
                f"paths.output_dir={out_dir / 'outputs'}",
                f"paths.run_dir={out_dir / 'run'}",
                *overrides,
            ],
        )


def configure(cfg: DictConfig) -> None:
    """The stages' process settings (offline, `threads`), with Lightning's chatter turned down."""
    from pipelines.common import configure_process

    configure_process(cfg)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its children that have exited."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ingest(cfg: DictConfig) -> tuple[float, dict[str, Any], float]:
    """Generate the config's synthetic world (untimed), then `run_ingestion` on it, timed.

    The same calls as `pipelines.ingest.run_ingest`, without its progress bar and summary table.

    Returns:
        (wall seconds, the ingestion summary, CPU seconds: this process and its workers).
    """
    from medrep.data.ingest import run_ingestion
    from pipelines.ingest import generate_synthetic

    with contextlib.redirect_stdout(io.StringIO()):
        generate_synthetic(cfg)
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = run_ingestion(
        instantiate(cfg.data.ingest, progress=False),
        instantiate(cfg.data.adapter),
        instantiate(cfg.reports.parser),
        scrubber=instantiate(cfg.reports.scrubber),
    )
    return time.perf_counter() - start, summary, cpu_seconds() - cpu


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_line() -> str:
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_average()}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def verdict(name: str, value: float, op: str, target: float, unit: str = "x") -> str:
    """`name = 3.21x (target >= 3.00): MET` (or MISSED)."""
    met = value >= target if op == ">=" else value <= target
    return (
        f"{name} = {value:.2f}{unit} (target {op} {target:.2f}{unit}): {'MET' if met else 'MISSED'}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def first_optimizer(configured: Any) -> torch.optim.Optimizer:
    """The optimizer of `configure_optimizers()` (which may also return a scheduler)."""
    return configured["optimizer"] if isinstance(configured, dict) else configured


def model_step(module: Any, optimizer: torch.optim.Optimizer, batch: dict[str, Any]) -> float:
    """Seconds of what a training step costs the model: forward, loss, backward, optimizer."""
    start = time.perf_counter()
    loss = module.loss_terms(module(batch), text_ids=batch.get("text_ids"))["loss"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start
