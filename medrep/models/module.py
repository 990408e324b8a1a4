"""The LightningModule: wires encoders, heads and a loss; owns no architecture of its own."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau

from medrep.models.distributed import gather_pairs, global_loss
from medrep.models.encoders import ImageEncoder, TextEncoder
from medrep.models.heads import ProjectionHead
from medrep.models.losses import alignment, uniformity

LossFn = Callable[..., dict[str, torch.Tensor]]
MetricsFn = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


@dataclass(frozen=True)
class PairEmbeddings:
    """Projected embeddings of a batch of pairs: image [B, D] and text [B, D]."""

    image: torch.Tensor
    text: torch.Tensor


ACCUMULATION_HINT = (
    "gradient accumulation splits each contrastive batch into micro-batches whose losses only see "
    "their own negatives (docs/losses.md); raise model.batch_size or the number of devices instead, "
    "or set model.module.allow_grad_accumulation=true to accept micro-batch negatives"
)


# a checkpoint's copy of the frozen text tower's feature cache (TextEncoder.cache_state): a
# resumed run continues with the features the unbroken run had
TEXT_CACHE_KEY = "text_feature_cache"
# a checkpoint leaves out the parameters that do not train (the frozen text tower: ~90 MB of
# MiniLM, ~440 MB of BERT, at every validation) and records their digest instead; loading puts
# the module's own copies back after checking the digest
FROZEN_KEY = "frozen_parameters"


def frozen_digest(tensors: list[torch.Tensor]) -> str:
    """SHA-256 over the tensors' bytes, in order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().cpu().reshape(-1).contiguous()
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_scheduler(factory: Callable[..., Any], optimizer: torch.optim.Optimizer) -> Any:
    """The partial LR scheduler called with the optimizer, refusing a cosine of no length.

    The CPU recipe's cosine runs over `T_max: ${trainer.max_epochs}`; a run budgeted by
    `trainer.max_steps` with `max_epochs=-1` would otherwise get a negative period, whose
    learning rate drops to the minimum after one epoch and then cycles, without an error.
    """
    scheduler = factory(optimizer)
    if isinstance(scheduler, CosineAnnealingLR) and (
        scheduler.T_max is None or scheduler.T_max < 1
    ):
        raise ValueError(
            f"CosineAnnealingLR's T_max is {scheduler.T_max}: it counts epochs and must be at "
            "least 1 (model.module.scheduler.T_max follows trainer.max_epochs; with a "
            "trainer.max_steps budget set T_max to the number of epochs it covers)"
        )
    return scheduler


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
        allow_grad_accumulation: accept `trainer.accumulate_grad_batches > 1`, under which each
            micro-batch's loss sees only that micro-batch's negatives; refused by default.

    Under DDP the training loss scores each process's pairs against the whole global batch
    (`medrep.models.distributed.global_loss`). Validation loss is per process batch; validation
    retrieval is computed on the whole validation set, gathered from every process.
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
        allow_grad_accumulation: bool = False,
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
        self.allow_grad_accumulation = allow_grad_accumulation
        self._val_outputs: list[tuple[torch.Tensor, PairEmbeddings]] = []
        self._val_sums: dict[str, torch.Tensor | float] = {}
        # the frozen weights' digest as built (float32, before any precision plugin converts
        # them): a checkpoint saved in bf16 and a resume loaded before the conversion agree
        self._frozen_digest = frozen_digest(list(self.frozen_parameters().values()))

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

    def loss_terms(
        self,
        emb: PairEmbeddings,
        global_batch: bool = False,
        text_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The loss's named terms, computed in float32 (outside any autocast region).

        Under bf16/fp16 autocast the similarity matmul would otherwise run in half precision,
        and with tau = 0.1 the logits' rounding error is large enough to move the loss.

        Args:
            global_batch: score these pairs against every process's (training under DDP).
            text_ids: [B] sentence ids of the pairs (the batch's `text_ids`); passed on, gathered
                under DDP, only to a loss with `uses_text_ids`.
        """
        ids = text_ids if getattr(self.loss, "uses_text_ids", False) else None
        with torch.autocast(device_type=emb.image.device.type, enabled=False):
            image, text = emb.image.float(), emb.text.float()
            if global_batch:
                return global_loss(self.loss, image, text, ids)
            return self.loss(image, text) if ids is None else self.loss(image, text, text_ids=ids)

    def _step(
        self, batch: dict[str, torch.Tensor], stage: str
    ) -> tuple[dict[str, torch.Tensor], PairEmbeddings]:
        emb = self(batch)
        terms = self.loss_terms(emb, global_batch=stage == "train", text_ids=batch.get("text_ids"))
        loss = terms["loss"]
        # every process computes the same global loss, so all of them stop here together
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {stage} loss ({loss.item()}) at global step {self.global_step}: "
                "training stopped before this step's update, so the last checkpoint is intact; "
                "lower the learning rate, enable gradient clipping (trainer.gradient_clip_val) or "
                "check the inputs, then re-run the same command to resume"
            )
        batch_size = emb.image.shape[0]
        on_step = stage == "train"
        with torch.no_grad():
            image, text = emb.image.float(), emb.text.float()
            diagnostics = {
                "alignment": alignment(image, text),
                "uniformity_image": uniformity(image),
                "uniformity_text": uniformity(text),
            }
        # sync_dist: under DDP each process's terms cover its own rows; the logged value is the
        # mean over processes (a no-op with one)
        for name, value in {**terms, **diagnostics}.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=on_step,
                on_epoch=True,
                batch_size=batch_size,
                prog_bar=name == "loss",
                sync_dist=True,
            )
        return terms, emb

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms, _ = self._step(batch, "train")
        return terms["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val_outputs.clear()
        self._val_sums.clear()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        terms, emb = self._step(batch, "val")
        n = emb.image.shape[0]
        for name, value in terms.items():
            self._val_sums[name] = self._val_sums.get(name, 0.0) + value.detach().float() * n
        self._val_sums["_count"] = self._val_sums.get("_count", 0.0) + torch.tensor(
            float(n), device=emb.image.device
        )
        if self.val_metrics is not None:
            index = batch.get("index")
            if index is None:  # batches without item ids: their order is the id
                seen = sum(len(i) for i, _ in self._val_outputs)
                index = torch.arange(seen, seen + n, device=emb.image.device)
            self._val_outputs.append(
                (
                    index.detach(),
                    PairEmbeddings(emb.image.detach().float(), emb.text.detach().float()),
                )
            )

    def on_validation_epoch_end(self) -> None:
        metrics = self._epoch_loss_terms()
        if self.val_metrics is not None and self._val_outputs:
            index = torch.cat([i for i, _ in self._val_outputs])
            image = torch.cat([o.image for _, o in self._val_outputs])
            text = torch.cat([o.text for _, o in self._val_outputs])
            # the whole validation set once, whichever way the processes shared it
            _, image, text = gather_pairs(index, image, text)
            for name, value in self.val_metrics(image.cpu(), text.cpu()).items():
                metrics[f"val/{name}"] = float(value)
                # identical on every process (computed on the gathered set): syncing changes nothing
                self.log(f"val/{name}", float(value), sync_dist=True)
        self._val_outputs.clear()
        if not self.trainer.sanity_checking:
            self._step_plateau_schedulers(metrics)

    def _epoch_loss_terms(self) -> dict[str, float]:
        """This validation's mean loss terms over every process's items (what `self.log` reports)."""
        if not self._val_sums:
            return {}
        names = list(self._val_sums)
        sums = torch.stack([torch.as_tensor(self._val_sums[k]) for k in names])
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        self._val_sums.clear()
        count = sums[names.index("_count")]
        return {
            f"val/{k}": float(v / count) for k, v in zip(names, sums, strict=True) if k != "_count"
        }

    def _step_plateau_schedulers(self, metrics: dict[str, float]) -> None:
        """Step ReduceLROnPlateau schedulers on this validation's value of `monitor`.

        Lightning 2.6 steps them after the epoch, and skips that step in the epoch a run resumes
        in (its fit loop does not update epoch schedulers while restarting), so a resumed run's
        scheduler would fall behind an unbroken run's. Stepping here, before the checkpoint
        callbacks write (they run at `on_validation_end`), keeps the scheduler state in every
        checkpoint consistent with the weights; `lr_scheduler_step` leaves these to us.
        """
        for config in self.trainer.lr_scheduler_configs:
            if not isinstance(config.scheduler, ReduceLROnPlateau):
                continue
            if config.monitor not in metrics:
                raise ValueError(
                    f"ReduceLROnPlateau monitors {config.monitor!r}, which validation does not "
                    f"compute; choose one of {sorted(metrics)} (model.module.monitor)"
                )
            config.scheduler.step(metrics[config.monitor])

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if isinstance(scheduler, ReduceLROnPlateau):
            return  # stepped after every validation by _step_plateau_schedulers
        super().lr_scheduler_step(scheduler, metric)

    def frozen_parameters(self) -> dict[str, torch.Tensor]:
        """The parameters that do not train, by state-dict name (in the state dict's order)."""
        return {name: p for name, p in self.named_parameters() if not p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.text_encoder.cache_size:
            checkpoint[TEXT_CACHE_KEY] = self.text_encoder.cache_state()
        frozen = self.frozen_parameters()
        state = checkpoint.get("state_dict", {})
        if frozen and all(name in state for name in frozen):
            for name in frozen:
                del state[name]
            checkpoint[FROZEN_KEY] = {
                "names": list(frozen),
                "sha256": self._frozen_digest,
                "text_model": str(self.text_encoder.model_path),
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.text_encoder.cache_size and TEXT_CACHE_KEY in checkpoint:
            self.text_encoder.load_cache_state(checkpoint[TEXT_CACHE_KEY])
        record = checkpoint.get(FROZEN_KEY)
        if record is None:
            return
        frozen = self.frozen_parameters()
        names = list(record["names"])
        if names != list(frozen) or self._frozen_digest != record["sha256"]:
            raise ValueError(
                "this checkpoint was trained with other frozen weights than the module has now "
                f"(frozen text model {record.get('text_model')!r}; the module's is "
                f"{str(self.text_encoder.model_path)!r}, or other layers are frozen): resume "
                "with the same model path and the same model.module.text_encoder settings"
            )
        checkpoint["state_dict"].update({n: p.detach().clone() for n, p in frozen.items()})

    def on_fit_start(self) -> None:
        accumulate = int(self.trainer.accumulate_grad_batches)
        if accumulate > 1 and not self.allow_grad_accumulation:
            raise ValueError(f"trainer.accumulate_grad_batches={accumulate}: {ACCUMULATION_HINT}")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads)
        self.log("train/grad_norm", norm, on_step=True, on_epoch=False)
        # a loss scaler (fp16) skips steps with inf gradients itself; otherwise a non-finite
        # gradient would be written into the weights and into the next checkpoint
        if getattr(self.trainer.precision_plugin, "scaler", None) is None and not torch.isfinite(
            norm
        ):
            raise FloatingPointError(
                f"non-finite gradient norm at global step {self.global_step}: training stopped "
                "before this step's update, so the last checkpoint is intact; lower the learning "
                "rate or enable gradient clipping (trainer.gradient_clip_val)"
            )

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters in groups.

        The pretrained text encoder's train at `text_lr_scale` x the base LR; a loss's own
        parameters (a learnable temperature or bias) train without weight decay, as in CLIP,
        since decaying a log-temperature towards 0 would pull tau towards 1.
        """
        text = [p for p in self.text_encoder.parameters() if p.requires_grad]
        loss = (
            [p for p in self.loss.parameters() if p.requires_grad]
            if isinstance(self.loss, nn.Module)
            else []
        )
        taken = {id(p) for p in text + loss}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in taken]
        groups: list[dict[str, Any]] = [{"params": rest, "name": "image_and_heads"}]
        if text:
            groups.append({"params": text, "name": "text_encoder", "lr_scale": self.text_lr_scale})
        if loss:
            groups.append({"params": loss, "name": "loss", "weight_decay": 0.0})
        return groups

    def configure_optimizers(self) -> Any:
        groups = self.parameter_groups()
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group.pop("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = build_scheduler(self.scheduler_factory, optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor},
        }
