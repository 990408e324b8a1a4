"""The augmentation's settings, and its definition per image in MONAI transforms.

The deterministic part (decode, window, resize) is done once at ingestion and cached. Training
augments batches on the device (`medrep.data.augment`); `reference_transform` here is the same
augmentation written per image with MONAI (what the loader workers ran before), kept as the
reference the batched path is tested against (tests/test_augment.py) and measured against
(benchmarks/input_pipeline.py). It runs on cached [1, H, W] float images in [0, 1].
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from monai.transforms import (
    Compose,
    NormalizeIntensity,
    RandAffine,
    RandFlip,
    RandGaussianSmooth,
    RandScaleCrop,
    RandScaleIntensity,
    RandScaleIntensityFixedMean,
    Resize,
)
from monai.utils import convert_to_tensor

ImageTransform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AugmentConfig:
    """ConVIRT's image augmentation; defaults are the paper's, sizes are in output pixels.

    Attributes:
        size: output side.
        crop_area: range of the crop's share of the image area (random resized crop).
        flip_prob: horizontal flip probability.
        rotate_degrees / translate / scale: affine ranges (translate as a share of the side).
        brightness / contrast: multiplicative jitter ranges (0.6 to 1.4 in the paper).
        blur_sigma / blur_prob: Gaussian blur sigma range (pixels) and its probability.
        mean / std: normalisation applied last.
    """

    # (a record of plain fields: WorldSpec, ImageNuisance, ImageEncoding and AugmentConfig have
    # the same shape of `name: type = value` lines, which `duplicates` pairs; different records)
    size: int = 224
    crop_area: tuple[float, float] = (0.6, 1.0)
    flip_prob: float = 0.5
    affine_prob: float = 1.0
    rotate_degrees: float = 20.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.95, 1.05)
    brightness: tuple[float, float] = (0.6, 1.4)
    contrast: tuple[float, float] = (0.6, 1.4)
    blur_sigma: tuple[float, float] = (0.1, 3.0)
    blur_prob: float = 0.5
    mean: float = 0.5
    std: float = 0.25


def _symmetric(range_: Sequence[float]) -> float:
    # MONAI's intensity factors are symmetric around 1; a (0.6, 1.4) jitter is factor 0.4
    lo, hi = float(range_[0]), float(range_[1])
    if not math.isclose(1.0 - lo, hi - 1.0, abs_tol=1e-6):
        raise ValueError(f"jitter range {range_} must be symmetric around 1")
    return hi - 1.0


def reference_transform(cfg: AugmentConfig, seed: int = 0) -> ImageTransform:
    """The augmentation per image: [1, H, W] -> [1, size, size] normalised tensor (MONAI)."""
    side_lo = math.sqrt(cfg.crop_area[0])
    side_hi = math.sqrt(cfg.crop_area[1])
    compose = Compose(
        [
            RandScaleCrop(
                roi_scale=side_lo, max_roi_scale=side_hi, random_center=True, random_size=True
            ),
            Resize(spatial_size=(cfg.size, cfg.size), mode="bilinear", anti_aliasing=False),
            RandFlip(prob=cfg.flip_prob, spatial_axis=1),
            RandAffine(
                prob=cfg.affine_prob,
                rotate_range=(math.radians(cfg.rotate_degrees),),
                translate_range=(cfg.translate * cfg.size, cfg.translate * cfg.size),
                scale_range=((cfg.scale[0] - 1.0, cfg.scale[1] - 1.0),) * 2,
                padding_mode="zeros",
            ),
            RandScaleIntensity(factors=_symmetric(cfg.brightness), prob=1.0),
            RandScaleIntensityFixedMean(factors=_symmetric(cfg.contrast), prob=1.0),
            RandGaussianSmooth(sigma_x=cfg.blur_sigma, sigma_y=cfg.blur_sigma, prob=cfg.blur_prob),
            NormalizeIntensity(subtrahend=cfg.mean, divisor=cfg.std),  # type: ignore[arg-type]  # MONAI's hint omits the scalar it accepts
        ]
    )
    return _plain(compose, seed)


class _PlainTransform:
    """A MONAI Compose returning plain tensors, reseeded once in every DataLoader worker.

    MONAI's random transforms keep their own RandomState; forked workers would inherit the same
    state and augment identically. Each process therefore reseeds from torch's per-worker seed
    (which Lightning's `seed_everything(workers=True)` makes reproducible).
    """

    def __init__(self, compose: Compose, seed: int = 0) -> None:
        self.compose = compose
        self.compose.set_random_state(seed=seed)
        self._pid = os.getpid()

    def reseed(self, seed: int) -> None:
        """Seed the random transforms for the next image (per-item seeding; see data/sampling.py)."""
        self.compose.set_random_state(seed=seed)
        self._pid = os.getpid()

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self.compose.set_random_state(seed=torch.initial_seed() % 2**32)
        out = convert_to_tensor(self.compose(image), track_meta=False)
        return out.float().contiguous()


def _plain(compose: Compose, seed: int = 0) -> ImageTransform:
    return _PlainTransform(compose, seed)
