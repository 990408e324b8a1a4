"""Image and text encoders as plain `nn.Module`s.

The image encoder is a MONAI 2-D ResNet returning pooled features; the text encoder is any
BERT-family model loaded from a local folder through transformers, with its lower layers frozen
and a configurable pooling.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
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


WEIGHT_FORMATS = ("monai", "torchvision")


def torchvision_resnet_to_monai(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map a torchvision ResNet state dict onto a MONAI 2-D ResNet's state dict.

    MONAI's ResNet uses torchvision's parameter names (conv1, bn1, layerN.i.convK/bnK,
    layerN.0.downsample.{0,1}); what differs is handled here:
      - the classifier (`fc.*`) is dropped: the encoder returns pooled features;
      - an RGB `conv1` [C, 3, k, k] becomes a grey one [C, 1, k, k] by summing over the colour
        channels, which gives exactly the RGB network's response to a grey image copied into all
        three channels;
      - downsample convolutions that have a bias in MONAI (its `bias_downsample=True`) get a zero
        bias, and BatchNorm `num_batches_tracked` counters missing from old checkpoints start at 0.

    Args:
        source: torchvision's `resnet*().state_dict()` (e.g. ImageNet weights saved to a file).
        target: the MONAI network's own `state_dict()` (names and shapes to produce).

    Raises:
        ValueError: naming missing, unexpected or mis-shaped parameters.
    """
    mapped: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for name, want in target.items():
        have = source.get(name)
        if have is None:
            if name.endswith("downsample.0.bias") or name.endswith("num_batches_tracked"):
                mapped[name] = torch.zeros_like(want)
            else:
                problems.append(f"missing {name} {tuple(want.shape)}")
            continue
        if name == "conv1.weight" and have.ndim == 4 and have.shape[1] == 3 and want.shape[1] == 1:
            have = have.sum(dim=1, keepdim=True)
        if have.shape != want.shape:
            problems.append(
                f"{name}: file has {tuple(have.shape)}, encoder needs {tuple(want.shape)}"
            )
            continue
        mapped[name] = have.to(want.dtype)
    unexpected = sorted(k for k in source if k not in target and not k.startswith("fc."))
    problems += [f"unexpected {k}" for k in unexpected]
    if problems:
        shown = "; ".join(problems[:6]) + (
            f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        )
        raise ValueError(
            f"not a torchvision ResNet of this encoder's depth and width: {shown}; check "
            "image_encoder.depth (and base_width=64 for torchvision weights)"
        )
    return mapped


class ImageEncoder(nn.Module):
    """MONAI ResNet (2-D) without its classifier: [B, C, H, W] -> pooled features [B, out_dim].

    Args:
        depth: 10, 18, 34, 50 or 101.
        base_width: channels of the first stage (64 is the standard ResNet; smaller for CPU).
        in_channels: 1 for radiographs.
        weights_path: optional local state dict to load (strict), e.g. a previous run's encoder
            or torchvision's ImageNet ResNet-50 saved with `torch.save(model.state_dict(), path)`.
        weights_format: `monai` (this encoder's own `net` state dict) or `torchvision` (mapped
            by `torchvision_resnet_to_monai`).
        conv1_stride: stride of the 7x7 stem convolution. torchvision's ResNets (and ConVIRT's
            ResNet-50) use 2; MONAI's default, 1, keeps 4x more activations (the CPU demo's
            small images use it).
        bias_downsample: a bias in the shortcut convolutions (MONAI's default; torchvision's
            ResNets have none).
        pool_grid: the last feature map average-pooled to a pool_grid x pool_grid grid and
            flattened (1: global average pooling, the standard ResNet). A grid keeps where in
            the image a feature fired (out_dim grows by pool_grid**2); it changes no weight.
    """

    def __init__(
        self,
        depth: int = 50,
        base_width: int = 64,
        in_channels: int = 1,
        weights_path: str | None = None,
        weights_format: str = "monai",
        conv1_stride: int = 1,
        bias_downsample: bool = True,
        pool_grid: int = 1,
    ) -> None:
        super().__init__()
        if pool_grid < 1:
            raise ValueError(f"pool_grid must be >= 1, got {pool_grid}")
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        if weights_format not in WEIGHT_FORMATS:
            raise ValueError(
                f"weights_format must be one of {WEIGHT_FORMATS}, got {weights_format!r}"
            )
        block, layers = RESNET_LAYOUTS[depth]
        widths = [base_width, base_width * 2, base_width * 4, base_width * 8]
        self.net = ResNet(
            block=block,
            layers=layers,
            block_inplanes=widths,
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_stride=conv1_stride,
            feed_forward=False,
            bias_downsample=bias_downsample,
        )
        self.out_dim = widths[-1] * (4 if block == "bottleneck" else 1) * pool_grid**2
        if pool_grid > 1:
            self.net.avgpool = nn.AdaptiveAvgPool2d(pool_grid)
        if weights_path:
            self.load_weights(resolve_model_path(weights_path), weights_format)

    def load_weights(self, path: Path, weights_format: str = "monai") -> None:
        """Load a local state dict (tensors only) in MONAI's or torchvision's layout."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors)")
        try:
            if weights_format == "torchvision":
                state = torchvision_resnet_to_monai(state, self.net.state_dict())
            self.net.load_state_dict(state)
        except (RuntimeError, ValueError) as exc:
            hint = (
                "; it looks like a torchvision ResNet: set image_encoder.weights_format=torchvision"
                if weights_format == "monai" and "fc.weight" in state
                else ""
            )
            raise ValueError(f"{path}: cannot load into the image encoder: {exc}{hint}") from exc

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
        cache_size: for a wholly frozen encoder (embeddings and every layer), remember the pooled
            features of up to this many distinct texts, keyed by their tokens (least recently
            used dropped first); 0 keeps no cache. With a cache the frozen encoder always runs
            in inference mode (no dropout): its features are then a function of the tokens, so
            a text seen again costs a dictionary lookup instead of a transformer pass. Without
            one a frozen encoder in training mode still applies its dropout.
    """

    def __init__(
        self,
        model_path: str,
        pooling: str = "max",
        freeze_embeddings: bool = True,
        n_frozen_layers: int = 6,
        random_init: bool = False,
        config_overrides: dict[str, Any] | None = None,
        cache_size: int = 0,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        set_offline()
        self.model_path = model_path
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
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if cache_size and any(p.requires_grad for p in self.model.parameters()):
            raise ValueError(
                f"text_encoder.cache_size={cache_size} needs a wholly frozen encoder "
                "(freeze_embeddings=true and n_frozen_layers equal to its layer count): the "
                "features of a trained layer change at every step; set "
                "model.module.text_encoder.cache_size=0 to train text layers"
            )
        self.cache_size = int(cache_size)
        # int64 token bytes -> pooled float32 features on `_cache_device`; not in the state
        # dict (model.pt never holds it), but training checkpoints do (`cache_state`)
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._cache_device: torch.device | None = None
        self.cache_hits = 0
        self.cache_misses = 0

    def _freeze(self, embeddings: bool, n_layers: int) -> None:
        embedding_module = getattr(self.model, "embeddings", None)
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if embedding_module is None or layers is None:
            raise ValueError(
                f"{self.model_path}: {type(self.model).__name__} is not a BERT-family encoder "
                "(no `embeddings` and `encoder.layer`); use a BERT, RoBERTa or ELECTRA-style folder"
            )
        if not 0 <= n_layers <= len(layers):
            raise ValueError(
                f"{self.model_path}: cannot freeze {n_layers} layers of a {len(layers)}-layer "
                f"encoder; set text_encoder.n_frozen_layers between 0 and {len(layers)}"
            )
        if embeddings:
            embedding_module.requires_grad_(False)
        for layer in layers[:n_layers]:
            layer.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.cache_size:
            return self._cached(input_ids, attention_mask)
        return self._encode(input_ids, attention_mask)

    def _cached(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled features with each distinct text's computed once (`cache_size`)."""
        if self._cache_device != input_ids.device:
            for key, feature in self._cache.items():
                self._cache[key] = feature.to(input_ids.device)
            self._cache_device = input_ids.device
        # the attended tokens alone (right padding does not change the features), as int64
        rows = input_ids.cpu().long().numpy()
        masks = attention_mask.cpu().numpy().astype(bool)
        keys = [row[mask].tobytes() for row, mask in zip(rows, masks, strict=True)]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            first = [keys.index(k) for k in missing]
            index = torch.tensor(first, device=input_ids.device)
            # inference mode whatever the module's: cached features must not hold one dropout
            # draw (Lightning sets submodules' `training` flags directly, not through train())
            training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    features = self._encode(input_ids[index], attention_mask[index]).float()
            finally:
                self.model.train(training)
            for key, feature in zip(missing, features, strict=True):
                self._cache[key] = feature
        self.cache_misses += len(missing)
        self.cache_hits += len(keys) - len(missing)
        out = torch.stack([self._cache[k] for k in keys])
        for key in keys:
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def cache_state(self) -> dict[str, Any]:
        """The feature cache as tensors: the texts' token ids and lengths, their features (in use
        order), and what made them.

        A checkpoint carries it (`ContrastivePretrainer.on_save_checkpoint`): a text's features
        depend, in the last bits, on the batch that first computed them (its padding and
        size), so a resumed run continues with the same cache rather than rebuilding it.
        """
        ids = [torch.from_numpy(np.frombuffer(k, dtype=np.int64).copy()) for k in self._cache]
        values = list(self._cache.values())
        return {
            "tokens": torch.cat(ids) if ids else torch.empty(0, dtype=torch.int64),
            "lengths": torch.tensor([len(i) for i in ids], dtype=torch.int64),
            "features": torch.stack(values).cpu() if values else torch.empty(0, self.out_dim),
            "source": self._cache_source(),
        }

    def load_cache_state(self, state: Mapping[str, Any]) -> None:
        """Restore `cache_state()`'s output (the features move to the device at the next call).

        Raises:
            ValueError: the cache was made by another encoder or pooling (a resumed run whose
                text settings changed): its features would be silently wrong.
        """
        if dict(state["source"]) != self._cache_source():
            raise ValueError(
                f"the checkpoint's text feature cache was made with {dict(state['source'])}, "
                f"this run's text encoder is {self._cache_source()}; resume with the same "
                "text_encoder settings, or start a new run folder"
            )
        tokens = torch.split(state["tokens"], state["lengths"].tolist())
        self._cache = OrderedDict(
            (t.numpy().tobytes(), f.clone()) for t, f in zip(tokens, state["features"], strict=True)
        )
        self._cache_device = state["features"].device

    def _cache_source(self) -> dict[str, Any]:
        """What a cached feature depends on besides the (checkpointed) weights."""
        return {"model_path": str(self.model_path), "pooling": self.pooling, "dim": self.out_dim}

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "mean":
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
