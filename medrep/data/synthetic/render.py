"""Rendering: from ground truth, anatomy and nuisance to a display-space image.

Display space is float32 in [0, 1], bright = attenuating. `render_image` draws the projected
density (frontal or lateral) on a coarse grid, upsamples it, adds devices and electrodes at full
resolution, then runs the detector: exposure, processing, noise, collimation and the laterality
marker.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from medrep.data.synthetic.devices import draw_devices, draw_electrodes
from medrep.data.synthetic.frontal import frontal_density
from medrep.data.synthetic.lateral import lateral_density
from medrep.data.synthetic.nuisance import ImageNuisance, sample_nuisance
from medrep.data.synthetic.raster import F32, Frame, resize_bilinear, soft_step, substream
from medrep.data.synthetic.spec import (
    TAG_NUISANCE,
    TAG_RENDER,
    VIEWS_FRONTAL,
    Anatomy,
    StudyPlan,
    StudyTruth,
    WorldSpec,
    stream_rng,
)

# The anatomy is rendered on a grid this fraction of the image size, then upsampled.
_RENDER_SCALE = 0.6

_GLYPHS = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
}


def _exposure(density: np.ndarray, nuisance: ImageNuisance) -> np.ndarray:
    """Density -> display through the film-like curve, gamma, gain and offset."""
    mu = F32(nuisance.contrast)
    film = (1 - np.exp(-mu * np.clip(density, 0, None))) * F32(
        1 / (1 - math.exp(-nuisance.contrast))
    )
    return np.power(film, F32(nuisance.gamma)) * F32(nuisance.gain) + F32(nuisance.offset)


def _unsharp_mask(x: np.ndarray, amount: float) -> None:
    """Modality processing boosts local contrast (an unsharp mask with a wide kernel), in place.

    The blur is wide, so it is computed at a quarter of the resolution.
    """
    height, width = x.shape
    small_rows, small_cols = max(8, height // 4), max(8, width // 4)
    size = max(3, int(0.08 * max(small_rows, small_cols)))
    small = resize_bilinear(x, small_rows, small_cols)
    small = ndimage.uniform_filter(
        ndimage.uniform_filter(small, size, mode="nearest"), size, mode="nearest"
    )
    x += F32(amount) * (x - resize_bilinear(small, height, width))


def _collimate(x: np.ndarray, margins: tuple[int, int, int, int], value: float) -> np.ndarray:
    """Replace the image outside the collimator's (top, bottom, left, right) margins."""
    height, width = x.shape
    top, bottom, left, right = margins
    rows = np.arange(height, dtype=np.float32)
    cols = np.arange(width, dtype=np.float32)
    inside_rows = soft_step(rows - F32(top), 1.0) * soft_step(F32(height - 1 - bottom) - rows, 1.0)
    inside_cols = soft_step(cols - F32(left), 1.0) * soft_step(F32(width - 1 - right) - cols, 1.0)
    inside = inside_rows[:, None] * inside_cols[None, :]
    return x * inside + F32(value) * (1 - inside)


def _burn_marker(
    x: np.ndarray, marker: str, corner: int, margins: tuple[int, int, int, int]
) -> None:
    """Burn the laterality marker's glyph into a corner inside the collimation, in place."""
    height, width = x.shape
    top, bottom, left, right = margins
    glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[marker]], dtype=bool)
    k = max(1, round(0.045 * height / 7))
    glyph = np.kron(glyph, np.ones((k, k), dtype=bool))
    glyph_rows, glyph_cols = glyph.shape
    margin_r, margin_c = top + int(0.03 * height), left + int(0.03 * width)
    r0 = margin_r if corner < 2 else height - bottom - int(0.03 * height) - glyph_rows
    c0 = margin_c if corner % 2 == 0 else width - right - int(0.03 * width) - glyph_cols
    r0, c0 = int(np.clip(r0, 0, height - glyph_rows)), int(np.clip(c0, 0, width - glyph_cols))
    patch = x[r0 : r0 + glyph_rows, c0 : c0 + glyph_cols]
    patch[glyph] = F32(0.97)


def _detector(density: np.ndarray, nuisance: ImageNuisance, rng: np.random.Generator) -> np.ndarray:
    """Exposure, processing, noise, collimation and the laterality marker -> display [0, 1]."""
    height, width = density.shape
    x = _exposure(density, nuisance)
    if nuisance.unsharp > 0:
        _unsharp_mask(x, nuisance.unsharp)
    if nuisance.heel != (0.0, 0.0):
        gx = np.linspace(-1, 1, width, dtype=np.float32)[None, :] * F32(nuisance.heel[0])
        gy = np.linspace(-1, 1, height, dtype=np.float32)[:, None] * F32(nuisance.heel[1])
        x += gx + gy
    if nuisance.noise > 0:
        x += F32(nuisance.noise) * rng.standard_normal((height, width), dtype=np.float32)
    top, bottom, left, right = (
        int(round(f * n))
        for f, n in zip(nuisance.collimation, (height, height, width, width), strict=True)
    )
    margins = (top, bottom, left, right)
    if top or bottom or left or right:
        x = _collimate(x, margins, nuisance.collimation_value)
    if nuisance.marker:
        _burn_marker(x, nuisance.marker, nuisance.marker_corner, margins)
    return np.clip(x, 0, 1).astype(np.float32, copy=False)


def render_image(
    truth: StudyTruth, anatomy: Anatomy, nuisance: ImageNuisance, rng: np.random.Generator
) -> np.ndarray:
    """One image in display space: float32 [rows, cols] in [0, 1], bright = attenuating.

    A pure function of its arguments. Each component draws from its own sub-stream of `rng`, so
    that rendering the same (anatomy, nuisance, rng) with and without a finding differs only
    where the finding is.
    """
    frame = Frame.of(nuisance)
    base = int(rng.integers(0, 2**62))
    # The anatomy is smooth: render it on a coarser grid and upsample; devices, noise and
    # processing are added at full resolution.
    rows, cols = nuisance.rows, nuisance.cols
    coarse_rows = max(round(rows * _RENDER_SCALE), min(rows, 48))
    coarse_cols = max(round(cols * _RENDER_SCALE), min(cols, 48))
    coarse = dataclasses.replace(
        frame,
        rows=coarse_rows,
        cols=coarse_cols,
        radius=frame.radius * (coarse_rows / rows + coarse_cols / cols) / 2,
    )
    if nuisance.view == "LL":
        density = lateral_density(truth, anatomy, nuisance, coarse, base)
    elif nuisance.view in VIEWS_FRONTAL:
        density = frontal_density(truth, anatomy, nuisance, coarse, base)
    else:
        raise ValueError(f"view {nuisance.view!r} is not one of PA, AP, LL")
    density = resize_bilinear(density, rows, cols)
    if nuisance.view != "LL" and (truth.devices or nuisance.electrodes):
        canvas = np.zeros_like(density)
        draw_devices(canvas, frame, truth, anatomy, substream(base, 4))
        draw_electrodes(canvas, frame, nuisance.electrodes, substream(base, 5))
        density += canvas
    return _detector(density, nuisance, substream(base, 6))


def render_study_images(
    study: StudyPlan, spec: WorldSpec
) -> list[tuple[ImageNuisance, np.ndarray]]:
    """Every image of a study, each seeded from (seed, study index, image index)."""
    out = []
    for image_idx, view in enumerate(study.views):
        nuisance = sample_nuisance(
            view, study.truth, spec, stream_rng(spec.seed, TAG_NUISANCE, study.study_idx, image_idx)
        )
        image = render_image(
            study.truth,
            study.patient.anatomy,
            nuisance,
            stream_rng(spec.seed, TAG_RENDER, study.study_idx, image_idx),
        )
        out.append((nuisance, image))
    return out
