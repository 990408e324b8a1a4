"""What a checkpoint needs beyond Lightning's own state for a resumed run to match an unbroken one.

Lightning checkpoints the weights, optimizer, LR schedulers, loop progress and callback states;
the DataModule adds the sampler position (`CachedImagesDataModule.state_dict`). Left out are the random
number generators: the model's dropout draws from torch's global RNG, so a run restarted from a
checkpoint would draw different dropout masks from then on. `RNGStateCheckpoint` saves the
process RNG states with every checkpoint and restores them on resume, as plain tensors and
numbers (the checkpoint still loads with `torch.load(..., weights_only=True)`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """The process RNG states (torch CPU and CUDA, numpy, Python) as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned (CUDA states only where the same devices exist)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class RNGStateCheckpoint(L.Callback):
    """Keeps the process RNG states in every checkpoint and restores them when a run resumes.

    Lightning asks callbacks for their state while it writes a checkpoint, so the states saved are
    those at the moment of saving (after the step's update), and the resumed run continues the
    same random streams. Under DDP, rank 0 writes the checkpoint; every rank restores rank 0's
    states (Lightning's `seed_everything` gives all ranks the same seed, so they match anyway).
    """

    def state_dict(self) -> dict[str, Any]:
        return rng_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            set_rng_state(state_dict)


def restore_best(trainer: L.Trainer, module: torch.nn.Module) -> int | None:
    """Load the best checkpoint's weights into `module`; returns its epoch (None: no best).

    The best checkpoint is the one kept by the first `ModelCheckpoint` that monitors a metric
    (the pretraining's `val/loss`); Lightning records its path, also across a resumed run.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            state = torch.load(callback.best_model_path, map_location="cpu", weights_only=True)
            hook = getattr(module, "on_load_checkpoint", None)
            if hook is not None:  # puts back what the checkpoint leaves out (frozen weights)
                hook(state)
            module.load_state_dict(state["state_dict"])
            return int(state["epoch"])
    return None


def check_resumed_schedule(checkpoint: str | Path, scheduler: Callable[..., Any] | None) -> None:
    """Refuse to resume a cosine schedule whose period differs from the configured one.

    Lightning loads the saved scheduler state over the new one, `T_max` included: a run resumed
    with a larger `trainer.max_epochs` would keep the old period and, past it, climb back up the
    cosine towards the base learning rate, without an error. `scheduler` is the module's partial
    scheduler (its `T_max` keyword, when it has one, is the configured period).
    """
    planned = getattr(scheduler, "keywords", {}).get("T_max")
    if planned is None:
        return
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for saved in state.get("lr_schedulers", []):
        if "T_max" in saved and saved["T_max"] != planned:
            raise ValueError(
                f"{checkpoint} holds a cosine schedule over {saved['T_max']} epochs and this run "
                f"configures {planned} (model.module.scheduler.T_max, which follows "
                "trainer.max_epochs): resuming would keep the old period and raise the learning "
                f"rate again after epoch {saved['T_max']}; resume with "
                f"trainer.max_epochs={saved['T_max']}, or train the longer run in a new run folder"
            )
