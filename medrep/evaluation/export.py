"""Export: every split's images (and, for an image-report model, reports and prompts) encoded.

Writes, under an embeddings folder:
  <method>/{train,val,test}.npz   keys, image features (and, for the pretrained model, projected
                                  image and report embeddings)
  <method>/encoder.pt, encoder.json  the image encoder (medrep.models.serialization)
  <method>/queries.npz            category text queries (retrieval), pretrained model only
  <method>/prompts.npz            positive/negative prompts (zero-shot), pretrained model only
  raw_pixels/{train,val,test}.npz the raw-pixel baseline (`raw_pixel_features`)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from medrep.data.cache import ImageCache
from medrep.data.datamodule import paired_rows
from medrep.evaluation.embeddings import ImageFn, encode_images, encode_texts, save_embeddings
from medrep.models.module import ContrastivePretrainer
from medrep.models.serialization import save_encoder

SPLITS = ("train", "val", "test")


def split_keys(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: rows[c].to_numpy(dtype=str) for c in ("image_key", "study_key", "patient_key")}


@dataclass(frozen=True)
class ImageExporter:
    """Encodes an ingestion folder's paired images with a deterministic transform (`prepare`,
    on batches of stored images), per split."""

    manifest: pd.DataFrame
    reports: pd.DataFrame
    cache: ImageCache
    prepare: Callable[[torch.Tensor], torch.Tensor]
    out_root: Path
    batch_size: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    def rows(self, split: str) -> pd.DataFrame:
        return paired_rows(self.manifest, self.reports, split)

    def images(
        self, method: str, fn: ImageFn, extra: Callable[[pd.DataFrame], dict[str, np.ndarray]]
    ) -> dict[str, int]:
        """`<method>/{split}.npz`: keys, the outputs of `fn`, and `extra(rows)`; image counts."""
        counts = {}
        for split in SPLITS:
            rows = self.rows(split)
            arrays = {**split_keys(rows), **extra(rows)}
            arrays.update(
                encode_images(
                    fn, self.cache, rows["cache_index"].tolist(), self.prepare, self.batch_size
                )
            )
            save_embeddings(
                self.out_root / method / f"{split}.npz",
                arrays,
                {**self.meta, "method": method, "split": split},
            )
            counts[split] = len(rows)
        return counts

    def encoder(self, method: str, encoder: nn.Module, arch: Mapping[str, Any]) -> dict[str, int]:
        """An image-only method: its encoder's features per split, and the encoder itself."""
        encoder.eval()

        def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"image_features": encoder(x)}

        counts = self.images(method, features, lambda rows: {})
        save_encoder(encoder, arch, self.out_root / method)
        return counts


def raw_pixel_features(side: int) -> ImageFn:
    """The raw-pixel baseline: the (evaluation-transformed) image average-pooled to side x side,
    flattened to side**2 features. No training; what any learned encoder must beat."""
    if side < 1:
        raise ValueError(f"raw_pixels_side must be >= 1, got {side}")

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_features": F.adaptive_avg_pool2d(x, side).flatten(1)}

    return features


def export_pretrained(
    exporter: ImageExporter,
    method: str,
    module: ContrastivePretrainer,
    arch: Mapping[str, Any],
    tokenizer: Any,
    max_length: int,
) -> dict[str, int]:
    """The image-report model: image features, both projected embeddings, its image encoder.

    Each study's report is encoded once and repeated for every image of the study.
    """

    def texts(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        studies, inverse = np.unique(rows["study_key"].to_numpy(dtype=str), return_inverse=True)
        study_text = rows.groupby("study_key")["text"].first().loc[studies].tolist()
        embedded = encode_texts(
            module.embed_texts, tokenizer, study_text, max_length, exporter.batch_size
        )
        return {"text_embeddings": embedded[inverse]}

    def images(x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = module.image_encoder(x)
        return {"image_features": features, "image_embeddings": module.image_head(features)}

    counts = exporter.images(method, images, texts)
    save_encoder(module.image_encoder, arch, exporter.out_root / method)
    return counts


def export_prompts(
    directory: Path,
    encode: Callable[[list[str]], np.ndarray],
    queries: Mapping[str, Sequence[str]],
    negative_prompts: Mapping[str, Sequence[str]],
    meta: Mapping[str, Any],
) -> None:
    """`queries.npz` (category text queries) and `prompts.npz` (zero-shot prompt pairs).

    A finding's zero-shot prompts are its retrieval queries (positive) against its negative
    prompts; findings without negative prompts get no zero-shot prompts.
    """
    categories, texts = [], []
    for category, prompts in queries.items():
        categories += [str(category)] * len(prompts)
        texts += [str(p) for p in prompts]
    save_embeddings(
        directory / "queries.npz",
        {
            "category": np.array(categories, dtype=str),
            "text": np.array(texts, dtype=str),
            "text_embeddings": encode(texts),
        },
        {**meta, "split": "queries"},
    )
    zs_category, zs_polarity, zs_text = [], [], []
    for category, negative in negative_prompts.items():
        positive = queries.get(category) or []
        for polarity, prompts in (("positive", positive), ("negative", negative)):
            zs_category += [str(category)] * len(prompts)
            zs_polarity += [polarity] * len(prompts)
            zs_text += [str(p) for p in prompts]
    if zs_text:
        save_embeddings(
            directory / "prompts.npz",
            {
                "category": np.array(zs_category, dtype=str),
                "polarity": np.array(zs_polarity, dtype=str),
                "text": np.array(zs_text, dtype=str),
                "text_embeddings": encode(zs_text),
            },
            {**meta, "split": "prompts"},
        )
