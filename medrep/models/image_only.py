"""Image-only baselines for the evaluation grid: SimCLR-style contrastive and supervised.

Both reuse the project's `ImageEncoder` and `ProjectionHead` and train on the same image rows as
the image-report pretraining (`paired_rows` of the train split), so that with the same trainer
and batch size they get the same step budget:

- `SimCLRPretrainer`: two augmented views of each image, NT-Xent (Chen et al. 2020) on the
  projected views; no text.
- `SupervisedPretrainer`: the encoder and a linear layer trained from scratch on the study
  labels (masked binary cross-entropy; labels left out by the uncertainty policy are NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medrep.data.cache import ImageCache
from medrep.data.datamodule import load_ingested, paired_rows, single_threaded_worker
from medrep.data.transforms import AugmentConfig, ImageTransform, eval_transform, train_transform
from medrep.models.encoders import ImageEncoder
from medrep.models.heads import ProjectionHead

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def nt_xent_loss(
    view1: torch.Tensor, view2: torch.Tensor, temperature: float = 0.1
) -> dict[str, torch.Tensor]:
    """SimCLR's NT-Xent: each of the 2B views must pick its partner among the other 2B - 1.

    Args:
        view1, view2: [B, D] embeddings; row i of both comes from the same image.
        temperature: tau of the cosine-similarity logits.

    Returns:
        {"loss": the mean over all 2B anchors}.
    """
    if view1.shape != view2.shape or view1.ndim != 2:
        raise ValueError(
            f"expected two [B, D] tensors of one shape, got {tuple(view1.shape)} and "
            f"{tuple(view2.shape)}"
        )
    b = view1.shape[0]
    z = F.normalize(torch.cat([view1, view2]), dim=-1)
    logits = z @ z.T / temperature
    # an anchor is never its own negative
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), -torch.inf)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return {"loss": F.cross_entropy(logits, partner)}


def _optimizers(
    module: L.LightningModule,
    optimizer: OptimizerFactory,
    scheduler: Callable[..., Any] | None,
    monitor: str,
) -> Any:
    opt = optimizer([p for p in module.parameters() if p.requires_grad])
    if scheduler is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler(opt), "monitor": monitor}}


class SimCLRPretrainer(L.LightningModule):
    """Image-only contrastive pretraining: encoder -> projection head -> NT-Xent on two views.

    Args:
        image_encoder: pooled image features [B, F] with `out_dim`.
        optimizer / scheduler: partial optimizer and optional partial scheduler.
        embed_dim / head_hidden_dim: projection head sizes.
        temperature: NT-Xent temperature.
        monitor: what the scheduler watches.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., Any] | None = None,
        embed_dim: int = 128,
        head_hidden_dim: int | None = None,
        temperature: float = 0.1,
        monitor: str = "val/loss",
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.image_encoder = image_encoder
        self.image_head = ProjectionHead(image_encoder.out_dim, embed_dim, head_hidden_dim)
        self.temperature = temperature
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor

    def embed_images(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_head(self.image_encoder(image))

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        z1, z2 = self.embed_images(batch["view1"]), self.embed_images(batch["view2"])
        loss = nt_xent_loss(z1, z2, self.temperature)["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {stage} loss ({loss.item()}) at global step {self.global_step}"
            )
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            batch_size=z1.shape[0],
            prog_bar=True,
        )
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        return _optimizers(self, self.optimizer_factory, self.scheduler_factory, self.monitor)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the entries whose target is not NaN (0 when none is)."""
    known = ~torch.isnan(targets)
    if not known.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], targets[known])


class SupervisedPretrainer(L.LightningModule):
    """The encoder and a linear classifier trained from scratch on multi-label study labels.

    Args:
        image_encoder: pooled image features [B, F] with `out_dim`.
        n_labels: number of label columns.
        optimizer / scheduler / monitor: as for `SimCLRPretrainer`.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        n_labels: int,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., Any] | None = None,
        monitor: str = "val/loss",
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.classifier = nn.Linear(image_encoder.out_dim, n_labels)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.image_encoder(image))

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        loss = masked_bce(logits, batch["labels"])
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            batch_size=logits.shape[0],
            prog_bar=True,
        )
        if stage == "val":
            self._val.append((logits.detach().cpu(), batch["labels"].cpu()))
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        from sklearn.metrics import roc_auc_score

        if not self._val:
            return
        logits = torch.cat([v[0] for v in self._val]).numpy()
        labels = torch.cat([v[1] for v in self._val]).numpy()
        self._val.clear()
        aurocs = []
        for j in range(labels.shape[1]):
            keep = ~np.isnan(labels[:, j])
            if len(np.unique(labels[keep, j])) == 2:
                aurocs.append(roc_auc_score(labels[keep, j], logits[keep, j]))
        if aurocs:
            self.log("val/macro_auroc", float(np.mean(aurocs)))

    def configure_optimizers(self) -> Any:
        return _optimizers(self, self.optimizer_factory, self.scheduler_factory, self.monitor)


# ------------------------------------------------------------------------------ data


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


class ImageOnlyDataModule(L.LightningDataModule):
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
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if kind == "labelled" and labels is None:
            raise ValueError("the labelled data module needs a labels table")
        self.ingest_dir = ingest_dir
        self.kind = kind
        self.augment = augment
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.labels = labels
        self.seed = seed
        self.datasets: dict[str, Dataset] = {}

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
            else eval_transform(self.augment.size, self.augment.mean, self.augment.std)
        )
        return LabelledImageDataset(cache, index, table.to_numpy(dtype=np.float32), transform)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        manifest, reports, cache = load_ingested(self.ingest_dir)
        for split in ("train", "val"):
            rows = paired_rows(manifest, reports, split)
            if len(rows) == 0:
                raise ValueError(f"{self.ingest_dir}: the {split} split is empty")
            self.datasets[split] = self._dataset(cache, rows, split)

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
