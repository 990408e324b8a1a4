"""Image-only data for the baselines and fine-tuning: cached images as views or with labels.

- `TwoViewDataset`: two independently augmented views of every image (SimCLR).
- `LabelledImageDataset`: every image with its study's {1, 0, NaN} labels (supervised training,
  fine-tuning).
- `ImageOnlyDataModule`: train/val loaders of either kind over an ingestion folder.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from medrep.data.cache import ImageCache
from medrep.data.datamodule import CachedImagesDataModule, single_threaded_worker
from medrep.data.transforms import AugmentConfig, ImageTransform, train_transform


class TwoViewDataset(Dataset):
    """Two independently augmented views of every cached image: {"view1", "view2"}."""

    def __init__(self, cache: ImageCache, cache_index: np.ndarray, transform: ImageTransform):
        self.cache = cache
        self.cache_index = np.asarray(cache_index)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.cache_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(self.cache.image(int(self.cache_index[index])))[None]
        return {"view1": self.transform(image), "view2": self.transform(image)}


class LabelledImageDataset(Dataset):
    """Cached images with their study's labels: {"image", "labels" [L] in {1, 0, NaN}}."""

    def __init__(
        self,
        cache: ImageCache,
        cache_index: np.ndarray,
        labels: np.ndarray,
        transform: ImageTransform,
    ):
        if len(cache_index) != len(labels):
            raise ValueError(f"{len(cache_index)} images but {len(labels)} label rows")
        self.cache = cache
        self.cache_index = np.asarray(cache_index)
        self.labels = torch.tensor(np.asarray(labels, dtype=np.float32))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.cache_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(self.cache.image(int(self.cache_index[index])))[None]
        return {"image": self.transform(image), "labels": self.labels[index]}


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
            # validation views are augmented too (else the two views are identical), with
            # another seed than training's
            seed = self.seed if split == "train" else self.seed + 1
            return TwoViewDataset(cache, index, train_transform(self.augment, seed))
        assert self.labels is not None
        table = self.labels.reindex(rows["study_key"].to_numpy())
        transform = (
            train_transform(self.augment, self.seed)
            if split == "train"
            else self.evaluation_transform()
        )
        return LabelledImageDataset(cache, index, table.to_numpy(dtype=np.float32), transform)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            # NT-Xent needs negatives: drop a ragged last training batch, as the pretraining does
            drop_last=shuffle and len(dataset) > self.batch_size,  # type: ignore[arg-type]
            num_workers=self.num_workers,
            worker_init_fn=single_threaded_worker,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
