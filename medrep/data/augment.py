"""Batched augmentation on the training device: the loader reads, the device augments.

The training loader yields the cache's integer images as they are stored ([B, 1, S, S], uint8
or uint16) and, per item, a short vector of augmentation parameters drawn from the item's own
seed (`draw_params`, a few microseconds in the loader worker). After the batch reaches the device,
`BatchImages` turns it into the model's input in a handful of batched tensor operations:

1. one `grid_sample` does the random resized crop, the horizontal flip and the affine
   (rotation, translation, per-axis scale) at once: each output pixel is mapped through the
   affine, the flip and the crop into the cached image, with the zero padding the affine gives
   outside the cropped picture;
2. brightness (a factor) and contrast (a factor about the image's mean);
3. Gaussian blur with a per-image sigma per axis (MONAI's "erf" kernel, truncated at 4 sigma,
   zero padding), as two grouped convolutions;
4. normalisation.

The distribution is `medrep.data.transforms.reference_transform`'s (MONAI, per image: crop,
resize, flip, affine, intensities, blur, normalise; what the loader workers ran before), drawn
the same way (the same ranges, the same probabilities, independent crop sides as MONAI's
`RandScaleCrop`) and applied to within interpolation error (tests/test_augment.py states the
tolerances). Composing crop, flip and affine into one resampling interpolates once where the
reference interpolates twice.

Why plain torch rather than kornia.augmentation (measured faster on the CPU too,
docs/benchmarks.md): kornia parameterises the crop by area and aspect ratio, the scale
isotropically and the blur by a fixed kernel size, so the reference's distribution would need
these parts written anyway, and it resamples once per geometric transform.

Why per-item seeds rather than a generator on the device: the parameters are then a function of
(run seed, epoch, position in the epoch) alone (`medrep.data.sampling`), so a resumed run draws
the same augmentations as an unbroken one without any state in the checkpoint, and W processes
augment each item exactly as one process with the global batch would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medrep.data.transforms import AugmentConfig

PARAM_NAMES = (
    "crop_y",  # crop corner and size, in cached-image pixels
    "crop_x",
    "crop_h",
    "crop_w",
    "flip",  # 1: mirrored left-right
    "rotate",  # radians
    "translate_y",  # output pixels
    "translate_x",
    "scale_y",  # the affine's factor per axis (1: none)
    "scale_x",
    "brightness",  # intensity factor
    "contrast",  # factor about the image mean
    "blur_sigma_y",  # pixels; 0: no blur
    "blur_sigma_x",
)
PARAMS = {name: i for i, name in enumerate(PARAM_NAMES)}
AUGMENT_KEY = "augment"
"""The batch entry holding the parameters: [B, P] (one view) or [B, V, P] (V views)."""

BLUR_TRUNCATED = 4.0  # MONAI GaussianFilter's default


def draw_params(
    cfg: AugmentConfig, rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
    """One image's augmentation parameters [P] (float32, `PARAM_NAMES` order).

    The ranges and probabilities are `cfg`'s, drawn as MONAI's transforms draw them: crop sides
    uniform integers between ceil(sqrt(area_lo) * side) and ceil(sqrt(area_hi) * side), each
    axis on its own, the corner uniform; rotation, translation and per-axis scale uniform in
    their ranges when the affine applies (`affine_prob`); blur sigmas uniform per axis when
    the blur applies (`blur_prob`).
    """
    lo, hi = math.sqrt(cfg.crop_area[0]), math.sqrt(cfg.crop_area[1])
    out = np.zeros(len(PARAM_NAMES), dtype=np.float64)
    for axis, side in (("y", height), ("x", width)):
        low = min(math.ceil(lo * side), side)
        size = int(rng.integers(low, min(math.ceil(hi * side), side) + 1))
        out[PARAMS[f"crop_{'h' if axis == 'y' else 'w'}"]] = size
        out[PARAMS[f"crop_{axis}"]] = int(rng.integers(0, side - size + 1))
    out[PARAMS["flip"]] = float(rng.random() < cfg.flip_prob)
    out[PARAMS["scale_y"]] = out[PARAMS["scale_x"]] = 1.0
    if rng.random() < cfg.affine_prob:
        angle = math.radians(cfg.rotate_degrees)
        shift = cfg.translate * cfg.size
        out[PARAMS["rotate"]] = rng.uniform(-angle, angle)
        out[PARAMS["translate_y"]] = rng.uniform(-shift, shift)
        out[PARAMS["translate_x"]] = rng.uniform(-shift, shift)
        out[PARAMS["scale_y"]] = rng.uniform(*cfg.scale)
        out[PARAMS["scale_x"]] = rng.uniform(*cfg.scale)
    out[PARAMS["brightness"]] = rng.uniform(*cfg.brightness)
    out[PARAMS["contrast"]] = rng.uniform(*cfg.contrast)
    if rng.random() < cfg.blur_prob:
        out[PARAMS["blur_sigma_y"]] = rng.uniform(*cfg.blur_sigma)
        out[PARAMS["blur_sigma_x"]] = rng.uniform(*cfg.blur_sigma)
    return out.astype(np.float32)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """The cache's integer images -> float32 in [0, 1] (float input is taken as already so)."""
    if images.is_floating_point():
        return images.float()
    top = float(torch.iinfo(images.dtype).max)
    return images.float() / top


def _column(params: torch.Tensor, name: str) -> torch.Tensor:
    return params[:, PARAMS[name]]


def crop_flip_affine(params: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Two affine maps per image, [B, 2, 2, 3] (each an `F.affine_grid` theta on normalised
    x-then-y coordinates): from an output pixel to the affine's input, the flipped and resized
    crop (`[:, 0]`), and from an output pixel to the cached image (`[:, 1]`).

    MONAI's affine takes output pixel o (centred pixel units) from its input at
    rotate @ translate @ scale applied to o, i.e. R (diag(scale) o + t); normalised by 2 / size
    on a square image. The flip mirrors x; the crop of h x w at (y0, x0), resized to the output,
    maps normalised c to c * h / H + (2 y0 + h) / H - 1 in the cached image (and so for x).
    """
    p = params.float()
    cos, sin = torch.cos(_column(p, "rotate")), torch.sin(_column(p, "rotate"))
    sy, sx = _column(p, "scale_y"), _column(p, "scale_x")
    ty, tx = 2 * _column(p, "translate_y") / size, 2 * _column(p, "translate_x") / size
    to_affine_input = torch.stack(
        [
            torch.stack([cos * sx, sin * sy, sin * ty + cos * tx], dim=1),
            torch.stack([-sin * sx, cos * sy, cos * ty - sin * tx], dim=1),
        ],
        dim=1,
    )
    mirror = torch.where(_column(p, "flip") > 0.5, -1.0, 1.0)
    crop_h, crop_w = _column(p, "crop_h"), _column(p, "crop_w")
    scale = torch.stack([mirror * crop_w / width, crop_h / height], dim=1).unsqueeze(2)
    shift = torch.stack(
        [
            (2 * _column(p, "crop_x") + crop_w) / width - 1,
            (2 * _column(p, "crop_y") + crop_h) / height - 1,
        ],
        dim=1,
    )
    to_cached = to_affine_input * scale
    to_cached[:, :, 2] += shift
    return torch.stack([to_affine_input, to_cached], dim=1)


def sampling_grid(theta: torch.Tensor, size: int) -> torch.Tensor:
    """`F.affine_grid(theta, [B, 1, size, size], align_corners=False)` by broadcasting: [B, S,
    S, 2]. (The same values; torch's version multiplies a [B, S * S, 3] base grid by theta and
    runs several times slower on the CPU.)"""
    centres = (torch.arange(size, device=theta.device, dtype=theta.dtype) * 2 + 1) / size - 1
    x, y = centres.view(1, 1, size), centres.view(1, size, 1)
    grid = torch.empty(theta.shape[0], size, size, 2, device=theta.device, dtype=theta.dtype)
    for axis in (0, 1):
        row = theta[:, axis]
        along_x = row[:, 0].view(-1, 1, 1) * x
        along_y = torch.addcmul(row[:, 2].view(-1, 1, 1), row[:, 1].view(-1, 1, 1), y)
        torch.add(along_x, along_y, out=grid[..., axis])
    return grid


def resample(images: torch.Tensor, params: torch.Tensor, size: int) -> torch.Tensor:
    """Random resized crop, flip and affine in one resampling: [B, 1, H, W] -> [B, 1, size, size]
    (values in the input's units: resampling is linear, so integer images need no scaling first).

    One bilinear sample of the cached image per output pixel, through `crop_flip_affine`; the
    picture's own edge is replicated (as the reference's resize does), and the affine's zero
    padding outside the cropped picture is what the same bilinear sampling leaves of an image of
    ones there.
    """
    batch, _, height, width = images.shape
    maps = crop_flip_affine(params.to(images.device), size, height, width)
    to_cached = sampling_grid(maps[:, 1], size)
    out = F.grid_sample(
        images.float(), to_cached, mode="bilinear", padding_mode="border", align_corners=False
    )
    to_affine_input = sampling_grid(maps[:, 0], size)
    ones = torch.ones(1, 1, size, size, device=images.device).expand(batch, -1, -1, -1)
    inside = F.grid_sample(
        ones, to_affine_input, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out.mul_(inside)


def blur_tail(max_sigma: float) -> int:
    """The half-width of MONAI's Gaussian kernel for a sigma (truncated at 4 sigma)."""
    return int(max(max_sigma * BLUR_TRUNCATED, 0.5) + 0.5)


def _gaussian_kernels(sigma: torch.Tensor, tail: int) -> torch.Tensor:
    """MONAI's "erf" Gaussian kernels [N, 2 * tail + 1], one per sigma, each cut at its own
    tail; sigma 0 gives the identity (a unit impulse)."""
    x = torch.arange(-tail, tail + 1, device=sigma.device, dtype=torch.float32)
    sigma = sigma.float().clamp(min=1e-3).unsqueeze(1)
    t = 0.70710678 / sigma
    kernel = (0.5 * (torch.erf(t * (x + 0.5)) - torch.erf(t * (x - 0.5)))).clamp(min=0)
    own_tail = (torch.clamp(sigma * BLUR_TRUNCATED, min=0.5) + 0.5).floor()
    return kernel * (x.abs() <= own_tail)


def blur(
    images: torch.Tensor, sigma_y: torch.Tensor, sigma_x: torch.Tensor, tail: int
) -> torch.Tensor:
    """Gaussian blur with per-image sigmas [B] (0: that image is left as it is), zero padding.

    Every image goes through two grouped convolutions with kernels of half-width `tail`
    (`blur_tail` of the largest sigma the configuration allows): no per-batch decision waits for
    the device.
    """
    n, _, height, width = images.shape
    ky = _gaussian_kernels(sigma_y, tail).view(n, 1, -1, 1)
    kx = _gaussian_kernels(sigma_x, tail).view(n, 1, 1, -1)
    flat = images.reshape(1, n, height, width)
    flat = F.conv2d(flat, ky, padding=(tail, 0), groups=n)
    flat = F.conv2d(flat, kx, padding=(0, tail), groups=n)
    return flat.view(n, 1, height, width)


def prepare_images(images: torch.Tensor, size: int, mean: float, std: float) -> torch.Tensor:
    """The deterministic transform of validation, export and evaluation: [B, 1, H, W] cached
    images -> [B, 1, size, size] normalised ("area" resize when the cache's side differs)."""
    out = to_unit(images)
    if tuple(out.shape[-2:]) != (size, size):
        out = F.interpolate(out, size=(size, size), mode="area")
    return (out - mean) / std


class BatchImages:
    """Turns a loader's batch of cached integer images into the model's input, on its device.

    Args:
        augment: the augmentation (its `size`, ranges, `mean` and `std`).

    `draw` runs in the loader (per item); `__call__` on the device (per batch): a batch with
    parameters under `AUGMENT_KEY` is augmented (`[B, P]`: into `image`; `[B, V, P]`: into
    `view1` ... `viewV`), one without is prepared deterministically (resize if the cache's side
    differs, normalise): validation, export and evaluation.
    """

    def __init__(self, augment: AugmentConfig) -> None:
        self.config = augment

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        return draw_params(self.config, rng, height, width)

    def augment(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] integer or [0, 1] float images and [B, P] parameters -> [B, 1, S, S].

        Brightness b and contrast c about the mean m of the brightened image are one affine map
        of the resampled image r (with the integer type's scale u folded in):
        (b u r - m) c + m = (b c u) r + (1 - c) b u mean(r).
        """
        p = params.to(device=images.device, dtype=torch.float32)
        unit = 1.0 if images.is_floating_point() else 1.0 / float(torch.iinfo(images.dtype).max)
        out = resample(images, p, self.config.size)
        brightness = _column(p, "brightness").view(-1, 1, 1, 1) * unit
        contrast = _column(p, "contrast").view(-1, 1, 1, 1)
        offset = (1 - contrast) * brightness * out.mean(dim=(1, 2, 3), keepdim=True)
        out = torch.addcmul(offset, out, brightness * contrast)
        if self.config.blur_prob > 0:
            tail = blur_tail(max(self.config.blur_sigma))
            out = blur(out, _column(p, "blur_sigma_y"), _column(p, "blur_sigma_x"), tail)
        return out.sub_(self.config.mean).div_(self.config.std)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The deterministic transform (`prepare_images`) at this augmentation's size."""
        return prepare_images(images, self.config.size, self.config.mean, self.config.std)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        images = out.pop("image")
        params = out.pop(AUGMENT_KEY, None)
        if params is None:
            out["image"] = self.prepare(images)
        elif params.dim() == 2:
            out["image"] = self.augment(images, params)
        else:
            for view in range(params.shape[1]):
                out[f"view{view + 1}"] = self.augment(images, params[:, view])
        return out


def item_rng(seed: int | None, augment: BatchImages | None) -> np.random.Generator | None:
    """The generator a loader item draws from: its own seed's; without a seed, one from the
    process's RNG, and only when there is something to draw (a validation item must not advance
    the RNG that the model's dropout also draws from)."""
    if seed is not None:
        return np.random.default_rng(seed)
    return process_rng() if augment is not None else None


def item_params(
    augment: BatchImages | None,
    rng: np.random.Generator | None,
    image: torch.Tensor,
    views: int = 1,
) -> dict[str, torch.Tensor]:
    """The `AUGMENT_KEY` entry of one loader item ({} without augmentation): [P], or [V, P].

    One integer is taken from `rng` whether or not the item is augmented, so that what the
    caller draws next (a sentence) does not depend on the augmentation settings.
    """
    if rng is None:
        return {}
    sub = np.random.default_rng(int(rng.integers(2**31 - 1)))
    if augment is None:
        return {}
    height, width = image.shape[-2:]
    params = np.stack([augment.draw(sub, height, width) for _ in range(views)])
    return {AUGMENT_KEY: torch.from_numpy(params[0] if views == 1 else params)}


def process_rng() -> np.random.Generator:
    """A generator seeded from torch's RNG (reproducible per DataLoader worker): for items that
    come without a seed of their own."""
    return np.random.default_rng(int(torch.randint(2**31 - 1, (1,)).item()))
