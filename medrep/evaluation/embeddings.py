"""Embedding export: encoders applied to cached images and report texts, saved as .npz files.

An embeddings file holds row-aligned arrays keyed by `image_key` (pseudonymous), so evaluation
joins labels by key, never by position.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medrep.data.cache import ImageCache

ImageFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]
TextFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def encode_images(
    fn: ImageFn,
    cache: ImageCache,
    cache_indices: Sequence[int],
    prepare: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Apply `fn` (returning named [B, *] outputs) to cached images in batches; concatenates per
    name. `prepare` makes each batch of stored images [B, 1, S, S] the encoder's input
    (`medrep.data.augment.prepare_images`)."""
    outputs: dict[str, list[np.ndarray]] = {}
    indices = list(cache_indices)
    for start in range(0, len(indices), batch_size):
        stored = np.stack([cache.stored(int(i)) for i in indices[start : start + batch_size]])
        batch = prepare(torch.from_numpy(stored)[:, None])
        for name, value in fn(batch).items():
            outputs.setdefault(name, []).append(value.float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


@torch.no_grad()
def encode_texts(
    fn: TextFn, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 64
) -> np.ndarray:
    """Tokenise and encode texts in batches -> [N, D] float32."""
    parts = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        parts.append(fn(tokens["input_ids"], tokens["attention_mask"]).float().cpu().numpy())
    if not parts:
        raise ValueError("no texts to encode")
    return np.concatenate(parts)


def save_embeddings(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write `arrays` to an .npz (atomically) and `meta` beside it as `<name>.meta.json`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub mistypes **kwds
    tmp.replace(path)
    path.with_suffix(".meta.json").write_text(
        json.dumps(meta, indent=2, sort_keys=True, default=str)
    )
    return path


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """Read an embeddings file written by `save_embeddings` (no pickled objects allowed)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
