"""Image-only data for the baselines and fine-tuning: cached images as views or with labels.

- `TwoViewDataset`: two independently augmented views of every image (SimCLR).
- `LabelledImageDataset`: every image with its study's {1, 0, NaN} labels (supervised training,
  fine-tuning).
- `ImageOnlyDataModule`: train/val loaders of either kind over an ingestion folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from medrep.data.augment import BatchImages, item_params, item_rng
from medrep.data.cache import ImageCache
from medrep.data.datamodule import CachedImagesDataModule, split_key, stored_image
from medrep.data.sampling import ItemKey
from medrep.data.transforms import AugmentConfig


class TwoViewDataset(Dataset):
    """Every cached image, as stored, with the parameters of two independent augmentations:
    {"image" [1, S, S], "augment" [2, P]} (the device makes the views `view1` and `view2`).

    Items keyed by `(index, seed)` (`ResumableSampler`) draw from their seed; items keyed by a
    plain index draw from `(view_seed, index)`, the same views at every validation.
    """

    def __init__(
        self, cache: ImageCache, cache_index: np.ndarray, augment: BatchImages, view_seed: int
    ):
        self.cache = cache
        self.cache_index = np.asarray(cache_index)
        self.augment = augment
        self.view_seed = view_seed

    def __len__(self) -> int:
        return len(self.cache_index)

    def __getitem__(self, key: int | ItemKey) -> dict[str, torch.Tensor]:
        index, seed = split_key(key)
        image = stored_image(self.cache, int(self.cache_index[index]))
        rng = np.random.default_rng([self.view_seed, index] if seed is None else seed)
        return {"image": image, **item_params(self.augment, rng, image, views=2)}


class LabelledImageDataset(Dataset):
    """Cached images, as stored, with their study's labels: {"image", "labels" [L] in {1, 0,
    NaN}}, plus augmentation parameters when `augment` is given (drawn from the item's seed, or
    from the process RNG for a plain index)."""

    def __init__(
        self,
        cache: ImageCache,
        cache_index: np.ndarray,
        labels: np.ndarray,
        augment: BatchImages | None = None,
    ):
        if len(cache_index) != len(labels):
            raise ValueError(f"{len(cache_index)} images but {len(labels)} label rows")
        self.cache = cache
        self.cache_index = np.asarray(cache_index)
        self.labels = torch.tensor(np.asarray(labels, dtype=np.float32))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.cache_index)

    def __getitem__(self, key: int | ItemKey) -> dict[str, torch.Tensor]:
        index, seed = split_key(key)
        image = stored_image(self.cache, int(self.cache_index[index]))
        params = item_params(self.augment, item_rng(seed, self.augment), image)
        return {"image": image, "labels": self.labels[index], **params}


class PreparedBatches:
    """A collate function that also makes the batch's images model inputs, where they are (for
    loaders used without a data module's device hook: the evaluation's CPU fine-tuning)."""

    def __init__(self, images: BatchImages) -> None:
        self.images = images

    def __call__(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        return self.images(default_collate(list(items)))


class ImageOnlyDataModule(CachedImagesDataModule):
    """Train/val loaders over an ingestion folder for the image-only baselines.

    The rows are the images that have a report (`paired_rows`), as in the image-report
    pretraining, so that an epoch has the same number of steps.

    Args:
        ingest_dir: folder written by ingestion.
        kind: `two_view` (SimCLR) or `labelled` (supervised; needs `labels`).
        augment: training augmentation (the labelled validation set uses none).
        labels: study_key-indexed table of {1, 0, NaN} label columns (`labelled` only).
    """

    KINDS = ("two_view", "labelled")

    # Hydra builds each data module by keyword, so each states the base's arguments again

    def __init__(
        self,
        ingest_dir: str,
        kind: str,
        augment: AugmentConfig,
        batch_size: int = 32,
        num_workers: int = 0,
        labels: pd.DataFrame | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(ingest_dir, augment, batch_size, num_workers, seed)
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if kind == "labelled" and labels is None:
            raise ValueError("the labelled data module needs a labels table")
        self.kind = kind
        self.labels = labels

    def _dataset(self, cache: ImageCache, rows: pd.DataFrame, split: str) -> Dataset:
        index = rows["cache_index"].to_numpy()
        if self.kind == "two_view":
            # validation views are augmented too (else the two views are identical), the same
            # at every validation, from another seed than training's
            return TwoViewDataset(cache, index, self.images, view_seed=self.seed + 1)
        assert self.labels is not None
        table = self.labels.reindex(rows["study_key"].to_numpy())
        augment = self.images if split == "train" else None
        return LabelledImageDataset(cache, index, table.to_numpy(dtype=np.float32), augment)
