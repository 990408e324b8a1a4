"""The LightningModule: wires encoders, heads and a loss; owns no architecture of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn

from medrep.models.encoders import ImageEncoder, TextEncoder
from medrep.models.heads import ProjectionHead
from medrep.models.losses import alignment, uniformity

LossFn = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
MetricsFn = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


@dataclass(frozen=True)
class PairEmbeddings:
    """Projected embeddings of a batch of pairs: image [B, D] and text [B, D]."""

    image: torch.Tensor
    text: torch.Tensor


class ContrastivePretrainer(L.LightningModule):
    """Image-report contrastive pretraining (ConVIRT and its loss family).

    Args:
        image_encoder: pooled image features [B, Fi] with `out_dim`.
        text_encoder: pooled text features [B, Ft] with `out_dim`.
        loss: a loss of the family (`medrep.models.losses`), called on projected embeddings.
        optimizer: a partial optimizer, called with the trainable parameters.
        scheduler: optional partial LR scheduler, called with the optimizer.
        embed_dim / head_hidden_dim: projection heads' output and hidden widths.
        monitor: metric the scheduler watches (ReduceLROnPlateau).
        val_metrics: optional retrieval metrics over the whole validation set's embeddings
            (passed in so that validation uses the evaluation stage's own functions).
        text_lr_scale: learning-rate multiplier of the (pretrained) text encoder's trainable
            layers; the image encoder and both heads use the optimizer's base rate.
    """

    def __init__(
        self,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        loss: nn.Module | LossFn,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        embed_dim: int = 512,
        head_hidden_dim: int | None = None,
        monitor: str = "val/loss",
        val_metrics: MetricsFn | None = None,
        text_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_head = ProjectionHead(image_encoder.out_dim, embed_dim, head_hidden_dim)
        self.text_head = ProjectionHead(text_encoder.out_dim, embed_dim, head_hidden_dim)
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self.val_metrics = val_metrics
        self.text_lr_scale = text_lr_scale
        self._val_outputs: list[PairEmbeddings] = []

    def embed_images(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] -> projected [B, D]."""
        return self.image_head(self.image_encoder(image))

    def embed_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] -> projected [B, D]."""
        return self.text_head(self.text_encoder(input_ids, attention_mask))

    def forward(self, batch: dict[str, torch.Tensor]) -> PairEmbeddings:
        return PairEmbeddings(
            image=self.embed_images(batch["image"]),
            text=self.embed_texts(batch["input_ids"], batch["attention_mask"]),
        )

    def _step(
        self, batch: dict[str, torch.Tensor], stage: str
    ) -> tuple[torch.Tensor, PairEmbeddings]:
        emb = self(batch)
        terms = self.loss(emb.image, emb.text)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {stage} loss ({loss.item()}) at global step {self.global_step}; "
                "lower the learning rate or check the inputs (the last checkpoint is intact)"
            )
        batch_size = emb.image.shape[0]
        on_step = stage == "train"
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
                sync_dist=not on_step,
            )
        with torch.no_grad():
            self.log(
                f"{stage}/alignment",
                alignment(emb.image, emb.text),
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                sync_dist=not on_step,
            )
            self.log(
                f"{stage}/uniformity_image",
                uniformity(emb.image),
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                sync_dist=not on_step,
            )
            self.log(
                f"{stage}/uniformity_text",
                uniformity(emb.text),
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                sync_dist=not on_step,
            )
        return loss, emb

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, emb = self._step(batch, "val")
        if self.val_metrics is not None:
            self._val_outputs.append(
                PairEmbeddings(emb.image.detach().float().cpu(), emb.text.detach().float().cpu())
            )

    def on_validation_epoch_end(self) -> None:
        if self.val_metrics is None or not self._val_outputs:
            return
        image = torch.cat([o.image for o in self._val_outputs])
        text = torch.cat([o.text for o in self._val_outputs])
        self._val_outputs.clear()
        for name, value in self.val_metrics(image, text).items():
            self.log(f"val/{name}", value)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters: the pretrained text encoder's at `text_lr_scale` x the base LR."""
        text = [p for p in self.text_encoder.parameters() if p.requires_grad]
        text_ids = {id(p) for p in text}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in text_ids]
        groups: list[dict[str, Any]] = [{"params": rest, "name": "image_and_heads"}]
        if text:
            groups.append({"params": text, "name": "text_encoder", "lr_scale": self.text_lr_scale})
        return groups

    def configure_optimizers(self) -> Any:
        groups = self.parameter_groups()
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group.pop("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }
