"""The files a trained model leaves behind, written and read in one place.

- `model.pt`: a whole module's weights (the pretrained image-report model, or a baseline), as
  `{"format": 1, "state_dict": ..., **extra}`: tensors and plain values only, so that
  `torch.load(..., weights_only=True)` reads it. The run's resolved config beside it says how to
  build the module (the caller writes it).
- `encoder.pt` + `encoder.json`: an image encoder's network weights in `ImageEncoder`'s own
  `weights_path` format, and its constructor arguments (with `_target_`), so that fine-tuning and
  the local-weights baseline rebuild the encoder without the run's config.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODEL_FILE = "model.pt"
MODEL_FORMAT = 1
ENCODER_FILE = "encoder.pt"
ENCODER_ARCH_FILE = "encoder.json"


def save_weights(module: nn.Module, directory: str | Path, **extra: Any) -> Path:
    """Write `directory/model.pt` atomically; `extra` holds plain values (e.g. `steps`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    tmp = directory / f".{MODEL_FILE}.tmp"
    torch.save({"format": MODEL_FORMAT, **extra, "state_dict": module.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def load_weights(module: nn.Module, directory: str | Path) -> dict[str, Any]:
    """Load `directory/model.pt` into `module` (strict); returns the file's plain values.

    Raises:
        FileNotFoundError: no model file (the stage that writes it has not run).
        ValueError: a file of another format.
    """
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the stage that trains this model first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: model file format {state.get('format')!r}, expected 1")
    module.load_state_dict(state["state_dict"])
    return {k: v for k, v in state.items() if k != "state_dict"}


def encoder_arch(image_encoder: Mapping[str, Any]) -> dict[str, Any]:
    """Image-encoder constructor arguments (with `_target_`) without a weights file.

    `weights_format` goes too: `save_encoder` always writes the encoder's own format.
    """
    values = dict(image_encoder)
    values.pop("weights_path", None)
    values.pop("weights_format", None)
    return values


def save_encoder(encoder: nn.Module, arch: Mapping[str, Any], directory: str | Path) -> Path:
    """`encoder.net`'s weights (ImageEncoder's `weights_path` format) and its architecture."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    net = encoder.net
    assert isinstance(net, nn.Module)
    torch.save(net.state_dict(), directory / ENCODER_FILE)
    (directory / ENCODER_ARCH_FILE).write_text(json.dumps(dict(arch), indent=2, sort_keys=True))
    return directory / ENCODER_FILE


def has_encoder(directory: str | Path) -> bool:
    return (Path(directory) / ENCODER_ARCH_FILE).exists()


def load_encoder(directory: str | Path) -> nn.Module:
    """Rebuild an encoder written by `save_encoder` (its class from the `_target_` it recorded)."""
    directory = Path(directory)
    arch = json.loads((directory / ENCODER_ARCH_FILE).read_text())
    module_name, _, class_name = str(arch.pop("_target_")).rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**arch, weights_path=str(directory / ENCODER_FILE))
