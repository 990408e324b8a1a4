"""Lightning's cost per training step: a full `Trainer.fit` step against the bare torch step.

    .venv/bin/python -m benchmarks.train_step [--rounds 2] [--steps 11] [--profile]

On one fixed in-memory batch of the demo config (`model=convirt_cpu`: 96 px images, batch 32,
tokenised report sentences), in one process, step by step alternately:
  lightning  `Trainer.fit` of the `ContrastivePretrainer` over --steps copies of the batch, with
             the configured trainer (32-true, a CSVLogger written every `log_every_n_steps`): its
             loss, the logged terms, alignment/uniformity, the gradient-norm check, the optimizer;
             a step is the time from one `on_train_batch_start` to the next, less the torch step
             run there (below); the first step of each fit is left out
  torch      the same two encoders + heads + loss and the same optimizer (`configure_optimizers`
             of a copy of the same initial weights): forward, loss, backward, `optimizer.step`,
             `zero_grad`, in a plain function, run by a callback at each `on_train_batch_start`,
             so that every Lightning step has a torch step beside it under the same machine load
The figure is the median of the per-pair ratios, on wall-clock time and on CPU time (the
process's, all threads: waiting for a core does not count, so it is steadier when other jobs take
the cores; spin-waiting threads still count). The configured LR scheduler is left out of both (it steps per epoch or after validation, which these
steps do not reach); validation and checkpointing are off: they are per epoch, not per step.
Target: overhead = lightning / torch - 1 <= 10%. Absolute times are context only.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from benchmarks.common import compose_config, configure, machine_line, median, verdict
from medrep.data.datamodule import TextCollator
from medrep.pretrained import load_tokenizer
from pipelines.training import build_module

TARGET = 0.10
SENTENCES = (
    "No acute cardiopulmonary process.",
    "Heart size is mildly enlarged.",
    "Small left pleural effusion with adjacent atelectasis.",
    "There is no pneumothorax.",
    "Right lower lobe opacity concerning for pneumonia in the appropriate clinical setting.",
    "The lungs are clear without focal consolidation.",
    "Stable 8 mm nodule in the right upper lobe.",
    "Mild pulmonary vascular congestion, no frank edema.",
)


def fixed_batch(cfg: Any) -> dict[str, torch.Tensor]:
    """A batch as the model receives it: normalised float images (what the data module's device
    hook makes of the loader's uint8 images) and tokenised sentences."""
    generator = torch.Generator().manual_seed(0)
    size, n = int(cfg.data.image_size), int(cfg.data.batch_size)
    collate = TextCollator(
        load_tokenizer(cfg.model.module.text_encoder.model_path), int(cfg.data.text.max_length)
    )
    items = [
        {
            "image": torch.randn(1, size, size, generator=generator),
            "text": SENTENCES[i % len(SENTENCES)],
            "index": i,
        }
        for i in range(n)
    ]
    return collate(items)


def torch_step(parts: Any, optimizer: Any, batch: dict[str, torch.Tensor]) -> None:
    """The bare step: the encoders, heads and loss of `parts` in plain torch."""
    with torch.enable_grad():
        image = parts.image_head(parts.image_encoder(batch["image"]))
        text = parts.text_head(parts.text_encoder(batch["input_ids"], batch["attention_mask"]))
        loss = parts.loss(image, text)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


class Interleaved(L.Callback):
    """At every `on_train_batch_start` after the first: one bare torch step, timed apart.

    `lightning[i]` is the (wall, CPU) time from the end of the previous hook to this one (one
    whole Lightning step with its loop), `plain[i]` that of the torch step run right after it.
    CPU time is this process's (all its threads): steadier than wall time when other jobs take
    the cores, since waiting for a core does not count.
    """

    def __init__(self, bare_step: Callable[[], None]) -> None:
        self.bare_step = bare_step
        self.lightning: list[tuple[float, float]] = []
        self.plain: list[tuple[float, float]] = []
        self.last: tuple[float, float] | None = None
        self.first = 0.0

    def on_train_batch_start(self, *args: Any) -> None:
        now = (time.perf_counter(), time.process_time())
        if self.last is None:
            self.first = now[0]
        else:
            self.lightning.append((now[0] - self.last[0], now[1] - self.last[1]))
            self.bare_step()
            done = (time.perf_counter(), time.process_time())
            self.plain.append((done[0] - now[0], done[1] - now[1]))
            now = done
        self.last = now


def fit(
    cfg: Any,
    module: Any,
    batch: dict[str, torch.Tensor],
    steps: int,
    log_dir: Path,
    callbacks: list[L.Callback],
) -> float:
    """`Trainer.fit` over `steps` copies of the batch; returns when it started (perf_counter)."""
    start = time.perf_counter()
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=1,
        max_steps=steps,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=callbacks,
        logger=CSVLogger(str(log_dir), name="logs"),
        default_root_dir=str(log_dir),
    )
    trainer.fit(module, train_dataloaders=DataLoader([batch] * steps, batch_size=None))
    assert trainer.global_step == steps, trainer.global_step
    return start


def profile_fit(cfg: Any, module: Any, batch: dict[str, torch.Tensor], log_dir: Path) -> None:
    """cProfile's top entries of a short fit (where a missed target's time goes)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fit(cfg, module, batch, 6, log_dir, [])
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(
        "\ncProfile of a 6-step fit (no torch steps beside it): medrep's functions and "
        "Lightning's logging, top 25 by cumulative time"
    )
    stats.sort_stats("cumulative").print_stats(
        r"medrep/|lightning.*(\(log\)|logger_connector|result\.py)", 25
    )
    print("the same fit, top 15 by own time")
    stats.sort_stats("tottime").print_stats(15)


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="fits")
    parser.add_argument("--steps", type=int, default=11, help="steps per fit")
    parser.add_argument("--profile", action="store_true", help="cProfile a short fit after")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medrep-bench-") as tmp:
        cfg = compose_config(Path(tmp), ["model.module.scheduler=null"])
        configure(cfg)
        # no validation here, and fits shorter than the logging interval: both on purpose
        warnings.filterwarnings("ignore", message=r".*no `val_dataloader`.*")
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        print(machine_line())
        batch = fixed_batch(cfg)
        module = build_module(cfg)
        bare = copy.deepcopy(module).train()
        optimizer = bare.configure_optimizers()
        for _ in range(2):  # warm-up: allocator, optimizer state
            torch_step(bare, optimizer, batch)
        lightning_times: list[tuple[float, float]] = []
        plain_times: list[tuple[float, float]] = []
        setups = []
        for r in range(args.rounds):
            timer = Interleaved(lambda: torch_step(bare, optimizer, batch))
            start = fit(cfg, module, batch, args.steps, Path(tmp) / f"fit{r}", [timer])
            setups.append(timer.first - start)
            # the first Lightning step of a fit builds the optimizer's state: left out
            lightning_times += timer.lightning[1:]
            plain_times += timer.plain[1:]
        print(
            f"\n## training step, demo config: {cfg.model.name}, {cfg.data.image_size} px, batch "
            f"{cfg.data.batch_size}, tokens {batch['input_ids'].shape[1]}, "
            f"{cfg.trainer.precision}, log_every_n_steps {cfg.trainer.log_every_n_steps}; "
            f"{len(lightning_times)} pairs in {args.rounds} fits of {args.steps} steps"
        )
        print("| clock | lightning ms a step | torch ms a step | per-pair lightning / torch |")
        print("|---|---:|---:|---|")
        overheads = {}
        for which, clock in ((0, "wall"), (1, "CPU")):
            light = [t[which] for t in lightning_times]
            plain = [t[which] for t in plain_times]
            ratios = [a / b for a, b in zip(light, plain, strict=True)]
            overheads[clock] = 100 * (median(ratios) - 1)
            print(
                f"| {clock} | {1e3 * median(light):.0f} ({1e3 * min(light):.0f}-"
                f"{1e3 * max(light):.0f}) | {1e3 * median(plain):.0f} ({1e3 * min(plain):.0f}-"
                f"{1e3 * max(plain):.0f}) | median {median(ratios):.3f} "
                f"(quartiles {quantile(ratios, 0.25):.2f}-{quantile(ratios, 0.75):.2f}) |"
            )
        print(
            f"from building the Trainer to its first step (strategy, loops, logger, "
            f"configure_optimizers): {median(setups):.2f} s, once per run (context)"
        )
        print(machine_line())
        for clock, overhead in overheads.items():
            print(verdict(f"lightning / torch - 1 ({clock})", overhead, "<=", 100 * TARGET, "%"))
        if args.profile:
            profile_fit(cfg, module, batch, Path(tmp) / "profile")
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
