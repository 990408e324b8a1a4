"""Input pipeline against the model: can the train loader feed a training step, measured side by side.

    .venv/bin/python -m benchmarks.input_pipeline [--patients 240] [--rounds 3] [--skip-paper]

For each config, in one process, on a synthetic world ingested at the config's image size:
  loader   batches/s that `PairedDataModule.train_dataloader()` delivers as configured (cache read,
           MONAI augmentation, tokenisation, collation, `data.num_workers` worker processes):
           from the first batch to the last of a pass; the worker start-up is shown apart
  model    batches/s a training step consumes: forward of both encoders and heads, the loss,
           backward and the optimizer step of the configured `ContrastivePretrainer`, on one batch
           the loader produced (so token lengths are real)
  fed      (demo config) both together: model steps on batches taken from the loader, each
           beside a step on the fixed batch (their rate ratio is 1 when the loader keeps up)
Loader passes and model steps alternate (round by round) so that the machine's noise hits both;
the figures are medians. Configs: the demo's (`model=convirt_cpu`: narrow ResNet-18 at 96 px,
batch 32, frozen MiniLM) and the paper's (`model=convirt`: ResNet-50 at 224 px, batch 32, the
paper's augmentation, BERT-family text encoder with max_length 128), the latter for a few batches
only: on a CPU one of its steps takes tens of seconds.
Target: loader >= 3x model consumption. Absolute rates are context only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from benchmarks.common import (
    compose_config,
    configure,
    first_optimizer,
    ingest,
    machine_line,
    median,
    model_step,
    verdict,
)
from pipelines.training import build_module

TARGET = 3.0


def loader_pass(datamodule: Any, batches: int) -> tuple[float, float]:
    """(seconds to the first batch, batches/s from the first batch to the last) of one pass."""
    start = time.perf_counter()
    iterator = iter(datamodule.train_dataloader())
    next(iterator)
    first = time.perf_counter()
    for _ in range(batches - 1):
        next(iterator)
    end = time.perf_counter()
    del iterator  # shuts the worker down before the model's turn
    return first - start, (batches - 1) / (end - first)


def model_steps(module: Any, optimizer: torch.optim.Optimizer, batch: Any, n: int) -> list[float]:
    return [model_step(module, optimizer, batch) for _ in range(n)]


def fed_pairs(
    module: Any, optimizer: torch.optim.Optimizer, datamodule: Any, batch: Any, n: int
) -> list[tuple[float, float]]:
    """(fixed-batch step, fed step) seconds, alternately: a fed step waits for the loader's next
    batch, then trains on it; the loader's worker runs beside both, as in training."""
    iterator = iter(datamodule.train_dataloader())
    next(iterator)
    pairs = []
    for _ in range(n):
        fixed = model_steps(module, optimizer, batch, 1)[0]
        start = time.perf_counter()
        next_batch = next(iterator)
        pairs.append(
            (fixed, time.perf_counter() - start + model_step(module, optimizer, next_batch))
        )
    del iterator
    return pairs


def bench_config(
    title: str,
    out_dir: Path,
    overrides: list[str],
    rounds: int,
    batches: int,
    steps_per_round: int,
    fed_steps: int,
) -> float:
    cfg = compose_config(out_dir, overrides)
    configure(cfg)
    seconds, summary, _ = ingest(cfg)
    datamodule = instantiate(cfg.data.datamodule)
    datamodule.setup("fit")
    train_items = len(datamodule.datasets["train"])
    steps_per_epoch = train_items // datamodule.batch_size
    if steps_per_epoch < max(batches, fed_steps + 1):
        raise SystemExit(
            f"{train_items} training items give {steps_per_epoch} batches of "
            f"{datamodule.batch_size}; raise --patients"
        )
    module = build_module(cfg).train()
    optimizer = first_optimizer(module.configure_optimizers())
    batch = next(iter(datamodule.train_dataloader()))
    tokens = tuple(batch["input_ids"].shape)
    print(
        f"\n## {title}: {cfg.model.name}, {cfg.data.image_size} px, batch {cfg.data.batch_size}, "
        f"{cfg.data.num_workers} loader worker(s), text max_length {cfg.data.text.max_length} "
        f"(this batch's tokens {tokens[1]})"
    )
    print(
        f"world: {summary['cached']} images cached in {seconds:.1f} s, {train_items} training "
        f"items ({steps_per_epoch} batches an epoch)"
    )
    model_steps(module, optimizer, batch, 1)  # warm-up: allocator, optimizer state
    startups, loader_rates, step_times = [], [], []
    for _ in range(rounds):
        startup, rate = loader_pass(datamodule, batches)
        startups.append(startup)
        loader_rates.append(rate)
        step_times += model_steps(module, optimizer, batch, steps_per_round)
    loader = median(loader_rates)
    model = 1.0 / median(step_times)
    print(
        f"loader: {loader:.2f} batches/s, {loader * datamodule.batch_size:.0f} images/s "
        f"(median of {rounds} passes of {batches} batches: "
        f"{' '.join(f'{r:.2f}' for r in loader_rates)}); worker start-up "
        f"{median(startups):.2f} s a pass"
    )
    print(
        f"model:  {model:.3f} batches/s ({median(step_times):.2f} s a step; median of "
        f"{len(step_times)} steps: {' '.join(f'{t:.2f}' for t in step_times)})"
    )
    if fed_steps:
        pairs = fed_pairs(module, optimizer, datamodule, batch, fed_steps)
        print(
            f"fed:    {1 / median([b for _, b in pairs]):.3f} batches/s (median of {fed_steps} "
            "steps on loader batches, each beside a fixed-batch step); fed / fixed-batch rate "
            f"{median([a / b for a, b in pairs]):.2f}x (context: 1.00 when the loader keeps up)"
        )
    ratio = loader / model
    print(verdict("loader / model", ratio, ">=", TARGET))
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=240, help="synthetic world size")
    parser.add_argument("--rounds", type=int, default=3, help="loader/model rounds (demo)")
    parser.add_argument("--batches", type=int, default=8, help="batches per loader pass (demo)")
    parser.add_argument("--steps", type=int, default=3, help="model steps per round (demo)")
    parser.add_argument("--fed", type=int, default=4, help="fed model steps (demo; 0: skip)")
    parser.add_argument("--paper-rounds", type=int, default=1, help="one model step each")
    parser.add_argument("--paper-batches", type=int, default=4)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    world = [f"data.synthetic.n_patients={args.patients}"]
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="medrep-bench-") as tmp:
        bench_config(
            "demo config",
            Path(tmp) / "demo",
            world,
            args.rounds,
            args.batches,
            args.steps,
            args.fed,
        )
        print(machine_line())
        if not args.skip_paper:
            bench_config(
                "paper config (ResNet-50, CPU: a few steps only)",
                Path(tmp) / "paper",
                [*world, "model=convirt"],
                args.paper_rounds,
                args.paper_batches,
                1,
                0,
            )
            print(machine_line())
    print(f"took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
