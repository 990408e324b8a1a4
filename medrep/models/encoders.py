"""Image and text encoders as plain `nn.Module`s.

The image encoder is a MONAI 2-D ResNet returning pooled features; the text encoder is any
BERT-family model loaded from a local folder through transformers, with its lower layers frozen
and a configurable pooling.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import ResNet
from torch import nn

from medrep.pretrained import resolve_model_path, set_offline

# depth -> (block, blocks per stage); widths are per-stage channels before expansion
RESNET_LAYOUTS: dict[int, tuple[str, list[int]]] = {
    10: ("basic", [1, 1, 1, 1]),
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
}


class ImageEncoder(nn.Module):
    """MONAI ResNet (2-D) without its classifier: [B, C, H, W] -> pooled features [B, out_dim].

    Args:
        depth: 10, 18, 34, 50 or 101.
        base_width: channels of the first stage (64 is the standard ResNet; smaller for CPU).
        in_channels: 1 for radiographs.
        weights_path: optional local state dict to load (strict), e.g. a previous run's encoder.
    """

    def __init__(
        self,
        depth: int = 50,
        base_width: int = 64,
        in_channels: int = 1,
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        block, layers = RESNET_LAYOUTS[depth]
        widths = [base_width, base_width * 2, base_width * 4, base_width * 8]
        self.net = ResNet(
            block=block,
            layers=layers,
            block_inplanes=widths,
            spatial_dims=2,
            n_input_channels=in_channels,
            feed_forward=False,
        )
        self.out_dim = widths[-1] * (4 if block == "bottleneck" else 1)
        if weights_path:
            state = torch.load(
                resolve_model_path(weights_path), map_location="cpu", weights_only=True
            )
            self.net.load_state_dict(state)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


POOLINGS = ("max", "mean", "cls")


class TextEncoder(nn.Module):
    """A transformers encoder from a local folder: tokens -> pooled features [B, hidden].

    Args:
        model_path: local model location (folder, or `package:<module>`; see medrep.pretrained).
        pooling: `max` over tokens (ConVIRT), `mean`, or `cls`.
        freeze_embeddings: freeze the token/position embeddings.
        n_frozen_layers: freeze this many of the lowest transformer layers.
        random_init: build the architecture from the folder's config with fresh weights (tests).
        config_overrides: architecture fields to override with `random_init` (e.g. a tiny BERT).
    """

    def __init__(
        self,
        model_path: str,
        pooling: str = "max",
        freeze_embeddings: bool = True,
        n_frozen_layers: int = 6,
        random_init: bool = False,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        set_offline()
        path = str(resolve_model_path(model_path))
        if random_init:
            config = AutoConfig.from_pretrained(
                path, local_files_only=True, **dict(config_overrides or {})
            )
            self.model = AutoModel.from_config(config, add_pooling_layer=False)
        else:
            if config_overrides:
                raise ValueError("config_overrides only apply with random_init=True")
            self.model = AutoModel.from_pretrained(
                path, local_files_only=True, add_pooling_layer=False
            )
        # from_pretrained leaves the model in eval mode; the module's train()/eval() govern it
        self.model.train()
        self.pooling = pooling
        self.out_dim = int(self.model.config.hidden_size)
        self._freeze(freeze_embeddings, n_frozen_layers)

    def _freeze(self, embeddings: bool, n_layers: int) -> None:
        if embeddings:
            self.model.embeddings.requires_grad_(False)
        layers = self.model.encoder.layer
        if n_layers > len(layers):
            raise ValueError(f"cannot freeze {n_layers} layers of a {len(layers)}-layer encoder")
        for layer in layers[:n_layers]:
            layer.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
