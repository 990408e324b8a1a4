"""Faults a test plants in a real run through the config (`+callbacks.<name>._target_=...`):
the run's own processes import them, so they live apart from helpers.py (no Lightning import
for every test module)."""

from __future__ import annotations

from typing import Any

import lightning as L


class FailInRank(L.Callback):
    """Raise in one rank of a data-parallel run once it has finished `step` training steps (the
    other ranks carry on into the next collective, where they would wait for it)."""

    def __init__(self, rank: int = 1, step: int = 2) -> None:
        self.rank = rank
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_rank == self.rank and trainer.global_step >= self.step:
            raise RuntimeError(f"planted failure in rank {self.rank} at step {trainer.global_step}")
