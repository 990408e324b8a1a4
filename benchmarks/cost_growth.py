"""How ingestion and a training epoch grow with the dataset: 1x, 2x, 4x the synthetic world.

    .venv/bin/python -m benchmarks.cost_growth [--patients 100] [--factors 1 2 4]

Per size, in one process, with the demo config (`model=convirt_cpu`, 96 px, batch 32, the
configured ingestion and loader workers):
  ingestion  `run_ingestion` on the synthetic world of --patients x factor patients (the world is
             generated first, untimed, and kept in `paths.data_dir` for the next run); the work
             unit is a file seen
  epoch      one `Trainer.fit` epoch of a fresh `ContrastivePretrainer` on that ingestion: the
             training pass (from `on_train_epoch_start` to the validation's start; the unit is a
             training batch) and, as context, the validation pass and the whole fit (data module
             set-up, tokenizer, validation); no checkpoints or logger
The exponent is the least-squares slope of log(time) against log(units): 1.0 is linear growth; a
fixed cost (pool or worker start-up, the first batch) pulls it below 1 at small sizes. Sizes run
one after another, so a change in the machine's load between them moves the wall-clock exponent;
the CPU-time one (this process's threads and its exited workers: the ingestion pool, the loader
worker) is steadier, though not immune (threads spinning while a core is taken count); both are
printed, with each epoch's median batch time (the same work at every size). --profile adds
cProfile tables per file and per batch at each size: a fixed cost shrinks per unit as the size
grows, a per-unit cost stays level, and the machine's load moves everything together.
Target: exponent within 0.9-1.1 for ingestion and for the training pass (wall and CPU).
Absolute times are context only.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from hydra.utils import instantiate

from benchmarks.common import (
    compose_config,
    configure,
    cpu_seconds,
    ingest,
    machine_line,
)
from pipelines.training import build_module

LOW, HIGH = 0.9, 1.1


class EpochTimer(L.Callback):
    """(wall, CPU) seconds at the training pass's start, the validation's start and end."""

    def __init__(self) -> None:
        self.marks: dict[str, tuple[float, float]] = {}
        self.batch_starts: list[float] = []

    def mark(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), cpu_seconds())

    def on_train_epoch_start(self, *args: Any) -> None:
        self.mark("train")

    def on_train_batch_start(self, *args: Any) -> None:
        self.batch_starts.append(time.perf_counter())

    def on_validation_epoch_start(self, *args: Any) -> None:
        self.mark("val")

    def on_validation_epoch_end(self, *args: Any) -> None:
        self.mark("end")


def epoch(cfg: Any, profile: bool = False) -> dict[str, Any]:
    """Seconds of one epoch's training pass, validation pass and whole fit, and batches.

    With `profile`, the fit runs under cProfile (a few microseconds a Python call: small beside
    a step of seconds) and the own seconds per function come back as `fit_profile`.
    """
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = instantiate(cfg.data.datamodule)
    module = build_module(cfg)
    timer = EpochTimer()
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        logger=False,
        callbacks=[timer],
    )
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    trainer.fit(module, datamodule=datamodule)
    if profiler is not None:
        profiler.disable()
    end = time.perf_counter()
    m = timer.marks
    # the steady cost of a batch: start to start, the first (worker start-up) left out
    gaps = np.diff(timer.batch_starts)
    gaps = gaps[1:] if len(gaps) > 1 else gaps
    return {
        "train": m["val"][0] - m["train"][0],
        "train_cpu": m["val"][1] - m["train"][1],
        "batch_median": float(np.median(gaps)) if len(gaps) else float("nan"),
        "val": m["end"][0] - m["val"][0],
        "fit": end - start,
        "batches": float(trainer.global_step),
        "val_items": float(len(datamodule.datasets["val"])),
        "fit_profile": own_time(profiler) if profiler is not None else {},
    }


def own_time(profiler: cProfile.Profile) -> dict[str, float]:
    """Seconds spent in each function itself (`folder/file:line name`) in a cProfile run."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {
        f"{Path(file).parent.name}/{Path(file).name}:{line} {name}": tt
        for (file, line, name), (_, _, tt, _, _) in stats.items()
    }


def profiled_ingest(cfg: Any) -> dict[str, float]:
    """Own seconds per function of one more ingestion (fresh folder) under cProfile.

    Only this process is profiled: the decoding pool's work shows as the wait for its results.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    ingest(cfg)
    profiler.disable()
    return own_time(profiler)


def print_profile(
    title: str, rows: list[dict[str, Any]], key: str, count: str, unit: str, top: int
) -> None:
    """The functions with the most own time at the smallest size, per `unit` at every size.

    Per file (or batch), a fixed cost shrinks as the size grows, a per-unit cost stays level.
    """
    first = rows[0]
    names = sorted(first[key], key=first[key].get, reverse=True)[:top]
    sizes = " | ".join(f"{r['factor']}x" for r in rows)
    print(f"\n{title}: top {top} by own time at {first['factor']}x; ms a {unit}")
    print(f"| function | {sizes} |")
    print("|---|" + "---:|" * len(rows))
    for name in names:
        cells = " | ".join(f"{1e3 * r[key].get(name, 0.0) / r[count]:.1f}" for r in rows)
        print(f"| {name} | {cells} |")


def exponent(units: list[float], seconds: list[float]) -> float:
    return float(np.polyfit(np.log(units), np.log(seconds), 1)[0])


def within(name: str, value: float) -> str:
    met = LOW <= value <= HIGH
    return f"{name} = {value:.2f} (target {LOW:.1f}-{HIGH:.1f}): {'MET' if met else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=100, help="patients at 1x")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one more ingestion per size"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="medrep-bench-") as tmp:
        for factor in args.factors:
            cfg = compose_config(
                Path(tmp) / f"x{factor}", [f"data.synthetic.n_patients={args.patients * factor}"]
            )
            configure(cfg)
            if not rows:
                print(machine_line())
            seconds, summary, cpu = ingest(cfg)
            profile = {}
            if args.profile:
                profile = profiled_ingest(
                    compose_config(
                        Path(tmp) / f"x{factor}-profile",
                        [f"data.synthetic.n_patients={args.patients * factor}"],
                    )
                )
            row = epoch(cfg, args.profile)
            rows.append(
                {
                    "factor": factor,
                    "files": float(summary["files_seen"]),
                    "cached": summary["cached"],
                    "ingest": seconds,
                    "ingest_cpu": cpu,
                    "profile": profile,
                    **row,
                }
            )
        workers = cfg.data.ingest_workers or "all cores"
        print(
            f"\n## cost growth: demo config ({cfg.model.name}, {cfg.data.image_size} px, batch "
            f"{cfg.data.batch_size}); ingestion workers {workers}, loader workers "
            f"{cfg.data.num_workers}; {args.patients} patients at 1x"
        )
    print(
        "| size | files seen | cached | ingestion s (CPU s) | ms a file | train batches | "
        "train pass s (CPU s) | s a batch (median) | val items | val pass s | whole fit s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['factor']}x | {r['files']:.0f} | {r['cached']} | {r['ingest']:.2f} "
            f"({r['ingest_cpu']:.2f}) | {1e3 * r['ingest'] / r['files']:.1f} | "
            f"{r['batches']:.0f} | {r['train']:.2f} ({r['train_cpu']:.2f}) | "
            f"{r['train'] / r['batches']:.2f} ({r['batch_median']:.2f}) | "
            f"{r['val_items']:.0f} | {r['val']:.2f} | {r['fit']:.2f} |"
        )
    fit_exp = exponent([r["batches"] for r in rows], [r["fit"] for r in rows])
    print(f"whole fit (set-up and validation included) exponent = {fit_exp:.2f} (context)")
    print(machine_line())
    for name, unit, key in (
        ("ingestion exponent (time vs files)", "files", "ingest"),
        ("training pass exponent (time vs batches)", "batches", "train"),
    ):
        units = [r[unit] for r in rows]
        print(within(f"{name}, wall", exponent(units, [r[key] for r in rows])))
        print(within(f"{name}, CPU", exponent(units, [r[f"{key}_cpu"] for r in rows])))
    if args.profile:
        print_profile(
            "cProfile of one more ingestion per size", rows, "profile", "files", "file", 12
        )
        print_profile("cProfile of the timed epochs", rows, "fit_profile", "batches", "batch", 15)
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
