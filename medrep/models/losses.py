"""Contrastive losses over paired embeddings: pure functions of [B, D] tensors.

Every loss takes the image and text embeddings of a batch whose i-th image and i-th text are a
pair, and returns named terms: {"loss", plus direction-specific terms}. Embeddings need not be
normalised; cosine similarity is computed inside.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cosine_logits(
    image: torch.Tensor, text: torch.Tensor, temperature: float | torch.Tensor
) -> torch.Tensor:
    """[B, B] cosine similarities divided by the temperature; row i is image i against all texts."""
    return F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / temperature


def convirt_loss(
    image: torch.Tensor, text: torch.Tensor, temperature: float = 0.1, lam: float = 0.75
) -> dict[str, torch.Tensor]:
    """ConVIRT's bidirectional InfoNCE: lam * l(image->text) + (1 - lam) * l(text->image).

    Args:
        image: [B, D] image embeddings.
        text: [B, D] text embeddings, text[i] paired with image[i].
        temperature: tau (0.1 in the paper).
        lam: weight of the image-to-text direction (0.75 in the paper).
    """
    if image.shape != text.shape or image.ndim != 2:
        raise ValueError(
            f"expected two [B, D] tensors of one shape, got {tuple(image.shape)} and {tuple(text.shape)}"
        )
    logits = cosine_logits(image, text, temperature)
    targets = torch.arange(logits.shape[0], device=logits.device)
    loss_i2t = F.cross_entropy(logits, targets)
    loss_t2i = F.cross_entropy(logits.T, targets)
    return {
        "loss": lam * loss_i2t + (1.0 - lam) * loss_t2i,
        "loss_i2t": loss_i2t,
        "loss_t2i": loss_t2i,
    }


class ConVIRTLoss(nn.Module):
    """`convirt_loss` as a module with its hyperparameters (the loss family's interface)."""

    def __init__(self, temperature: float = 0.1, lam: float = 0.75) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1], got {lam}")
        self.temperature = temperature
        self.lam = lam

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        return convirt_loss(image, text, self.temperature, self.lam)


def alignment(image: torch.Tensor, text: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Wang & Isola's alignment: mean ||x - y||^alpha over positive pairs (normalised); lower is better."""
    x, y = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return (x - y).norm(dim=-1).pow(alpha).mean()


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola's uniformity: log mean exp(-t ||xi - xj||^2) over distinct pairs; lower is better.

    A collapse towards one point drives it to 0 (its maximum).
    """
    x = F.normalize(x, dim=-1)
    if x.shape[0] < 2:
        return x.new_zeros(())
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()
