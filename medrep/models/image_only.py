"""Image-only LightningModules: the SimCLR-style and supervised baselines, also fine-tuning.

Both reuse the project's `ImageEncoder` and `ProjectionHead`; as baselines they train on the
same image rows as the image-report pretraining (`medrep.data.image_only.ImageOnlyDataModule`),
so that with the same trainer and batch size they get the same step budget:

- `SimCLRPretrainer`: two augmented views of each image, NT-Xent (Chen et al. 2020,
  `medrep.models.losses.nt_xent_loss`) on the projected views; no text.
- `SupervisedPretrainer`: the encoder and a linear layer trained on the study labels (masked
  binary cross-entropy; labels left out by the uncertainty policy are NaN): from scratch as a
  baseline, from an exported encoder when the evaluation fine-tunes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medrep.models.encoders import ImageEncoder
from medrep.models.heads import ProjectionHead
from medrep.models.losses import nt_xent_loss
from medrep.models.module import build_scheduler

OptimizerFactory = Callable[..., torch.optim.Optimizer]
# the whole validation set's logits [N, L] and {1, 0, NaN} labels [N, L] -> named values
LabelMetricsFn = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the entries whose target is not NaN (0 when none is)."""
    known = ~torch.isnan(targets)
    if not known.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], targets[known])


class _ImageOnlyPretrainer(L.LightningModule):
    """What both baselines share: the image encoder, the logged loss, the optimizer set-up."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., Any] | None,
        monitor: str,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor

    def _loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, int]:
        """The batch's loss and its number of images."""
        raise NotImplementedError

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        loss, n_images = self._loss(batch, stage)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {stage} loss ({loss.item()}) at global step {self.global_step}"
            )
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            batch_size=n_images,
            prog_bar=True,
        )
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return opt
        scheduler = {
            "scheduler": build_scheduler(self.scheduler_factory, opt),
            "monitor": self.monitor,
        }
        return {"optimizer": opt, "lr_scheduler": scheduler}


class SimCLRPretrainer(_ImageOnlyPretrainer):
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
        super().__init__(image_encoder, optimizer, scheduler, monitor)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.image_head = ProjectionHead(image_encoder.out_dim, embed_dim, head_hidden_dim)
        self.temperature = temperature

    def embed_images(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_head(self.image_encoder(image))

    def _loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, int]:
        z1, z2 = self.embed_images(batch["view1"]), self.embed_images(batch["view2"])
        return nt_xent_loss(z1, z2, self.temperature)["loss"], z1.shape[0]


class SupervisedPretrainer(_ImageOnlyPretrainer):
    """The encoder and a linear classifier trained on multi-label study labels.

    Args:
        image_encoder: pooled image features [B, F] with `out_dim`.
        n_labels: number of label columns.
        optimizer / scheduler / monitor: as for `SimCLRPretrainer`.
        val_metrics: optional metrics of the whole validation set, each logged as `val/<name>`
            (NaN included); passed in so that validation uses the evaluation stage's own
            functions (`medrep.evaluation.metrics.macro_auroc_metrics`).
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        n_labels: int,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., Any] | None = None,
        monitor: str = "val/loss",
        val_metrics: LabelMetricsFn | None = None,
    ) -> None:
        super().__init__(image_encoder, optimizer, scheduler, monitor)
        self.classifier = nn.Linear(image_encoder.out_dim, n_labels)
        self.val_metrics = val_metrics
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.image_encoder(image))

    def _loss(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, int]:
        logits = self(batch["image"])
        if stage == "val":
            self._val.append((logits.detach().cpu(), batch["labels"].cpu()))
        return masked_bce(logits, batch["labels"]), logits.shape[0]

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        logits = torch.cat([v[0] for v in self._val]).numpy()
        labels = torch.cat([v[1] for v in self._val]).numpy()
        self._val.clear()
        if self.val_metrics is not None:
            for name, value in self.val_metrics(logits, labels).items():
                self.log(f"val/{name}", float(value))

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Per-label probabilities [B, L]."""
        return torch.sigmoid(self(batch["image"]))
