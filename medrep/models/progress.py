"""Training progress as plain lines, for logs that are files (batch jobs) rather than terminals.

Lightning's progress bar redraws one line with carriage returns: in a file it appears only
when a line ends, so a batch job's log shows nothing until pretraining is over. `LogProgress`
prints a line every N optimizer steps or every M seconds, whichever comes first: step, epoch,
loss, throughput and the time left.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
import torch


def output_is_terminal() -> bool:
    """Whether stdout and stderr are both terminals (else progress goes to the log as lines)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class LogProgress(L.Callback):
    """A progress line every `every_n_steps` optimizer steps or `every_s` seconds.

    Args:
        every_n_steps: steps between two lines (0: by time only).
        every_s: seconds between two lines (0: by steps only).
        when: `auto` prints only when the output is not a terminal (where the progress bar
            works), `always` or `never`.
    """

    def __init__(self, every_n_steps: int = 50, every_s: float = 60.0, when: str = "auto") -> None:
        if when not in ("auto", "always", "never"):
            raise ValueError(f"LogProgress.when must be auto, always or never, got {when!r}")
        if every_n_steps < 0 or every_s < 0 or (every_n_steps == 0 and every_s == 0):
            raise ValueError("LogProgress needs every_n_steps > 0 or every_s > 0")
        self.every_n_steps = every_n_steps
        self.every_s = every_s
        self.when = when
        self._start = 0.0
        self._start_step = 0
        self._last_time = 0.0
        self._last_step = -1
        self._samples = 0

    @property
    def active(self) -> bool:
        return self.when == "always" or (self.when == "auto" and not output_is_terminal())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last_time = time.monotonic()
        self._start_step = self._last_step = trainer.global_step
        self._samples = 0

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._samples += _batch_size(batch)
        if not self.active or not trainer.is_global_zero:
            return
        step, now = trainer.global_step, time.monotonic()
        due_steps = self.every_n_steps and step - self._last_step >= self.every_n_steps
        due_time = self.every_s and now - self._last_time >= self.every_s
        if step == self._last_step or not (due_steps or due_time):
            return
        self._last_step, self._last_time = step, now
        print(self.line(trainer, outputs, now), flush=True)

    def line(self, trainer: L.Trainer, outputs: Any, now: float) -> str:
        """The progress line at `now` (monotonic seconds)."""
        elapsed = max(now - self._start, 1e-9)
        done = trainer.global_step - self._start_step
        total = trainer.estimated_stepping_batches
        parts = [f"[train] step {trainer.global_step}"]
        if total and total != float("inf"):
            parts[0] += f"/{int(total)}"
        parts.append(f"epoch {trainer.current_epoch}")
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            parts.append(f"loss {float(loss.detach()):.4f}")
        parts.append(f"{self._samples / elapsed:.1f} samples/s")
        if done > 0 and total and total != float("inf"):
            left = (int(total) - trainer.global_step) * elapsed / done
            parts.append(f"ETA {_duration(left)}")
        return ", ".join(parts)


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (0 when it has none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        values: Any = batch.values()
    elif isinstance(batch, list | tuple):
        values = batch
    else:
        return 0
    for value in values:
        size = _batch_size(value)
        if size:
            return size
    return 0
