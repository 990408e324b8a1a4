"""Projection heads into the shared embedding space."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """ConVIRT's non-linear projection: Linear -> ReLU -> Linear, [B, in_dim] -> [B, out_dim]."""

    def __init__(self, in_dim: int, out_dim: int = 512, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
