"""Trainer flags on the tiny pipeline: bf16 mixed precision, gradient clipping, deterministic seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import IngestedWorld, compose_config


def pretrain(root: Path, world: IngestedWorld, *overrides: str) -> dict[str, torch.Tensor]:
    from pipelines.common import configure_process
    from pipelines.pretrain import run_pretrain

    cfg = compose_config(
        root, [*world.overrides(), "threads=1", "trainer.max_epochs=1", *overrides]
    )
    configure_process(cfg)
    out = run_pretrain(cfg)
    assert out["steps"] == 8 and torch.isfinite(torch.tensor(out["val/loss"]))
    return torch.load(out["model"], weights_only=True)["state_dict"]


@pytest.mark.slow
def test_bf16_clipped_deterministic_runs_repeat_exactly(
    tmp_path: Path, tiny_world: IngestedWorld
) -> None:
    flags = [
        "trainer.precision=bf16-mixed",
        "trainer.gradient_clip_val=0.5",
        "trainer.deterministic=true",
        "loss=siglip",
    ]
    first = pretrain(tmp_path / "a", tiny_world, *flags)
    second = pretrain(tmp_path / "b", tiny_world, *flags)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
    # the learnable SigLIP scale and bias trained (and were saved with the model)
    assert first["loss.logit_bias"].item() != -10.0
    other_seed = pretrain(tmp_path / "c", tiny_world, *flags, "seed=1")
    assert not torch.equal(first["image_head.net.0.weight"], other_seed["image_head.net.0.weight"])
