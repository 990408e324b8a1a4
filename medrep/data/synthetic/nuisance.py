"""Per-image nuisance: the acquisition and processing variation that is not the ground truth.

`sample_nuisance` draws pose, exposure, processing, noise, collimation, markers, ECG electrodes
and haze for one image, with a strength set by `WorldSpec.difficulty` (`difficulty_scales`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medrep.data.synthetic.spec import StudyTruth, WorldSpec


@dataclass(frozen=True)
class ImageNuisance:
    """Per-image acquisition and processing variation (everything that is not the truth).

    Geometry maps image coordinates to anatomy: `scale` is the size of the chest in the frame,
    `shift` moves it (fractions of half the longer side), `rotation_deg` turns it. Exposure maps
    the density d to display: `offset + gain * film(d) ** gamma` with the film-like curve
    `film(d) = (1 - exp(-contrast * d)) / (1 - exp(-contrast))`. `finding_scale` scales the
    conspicuity of every finding (derived from the spec's difficulty).
    """

    # (a record of plain fields: WorldSpec, ImageNuisance, ImageEncoding and AugmentConfig have
    # the same shape of `name: type = value` lines, which `duplicates` pairs; different records)
    view: str = "PA"
    rows: int = 256
    cols: int = 256
    rotation_deg: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 0.88
    inspiration: float = 0.0
    contrast: float = 3.0
    gain: float = 1.0
    gamma: float = 1.0
    offset: float = 0.0
    noise: float = 0.0
    unsharp: float = 0.0
    heel: tuple[float, float] = (0.0, 0.0)
    collimation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    collimation_value: float = 0.95
    marker: str = ""
    marker_corner: int = 0
    electrodes: int = 0
    markings: float = 1.0
    haze: float = 0.0
    finding_scale: float = 1.0

    @classmethod
    def plain(cls, view: str = "PA", rows: int = 256, cols: int = 256) -> ImageNuisance:
        """No nuisance at all: centred, noiseless, unprocessed (for tests and figures)."""
        return cls(view=view, rows=rows, cols=cols)


def difficulty_scales(difficulty: float) -> tuple[float, float]:
    """(finding conspicuity, nuisance strength) multipliers for a difficulty in [0, 1]."""
    return 1.55 - 1.0 * difficulty, 0.35 + 1.3 * difficulty


def _image_side(size: int, fraction: float) -> int:
    """An even side length within [0.8, 1.0] x size (even: 8-bit pixel data needs no padding)."""
    return max(16, min(2 * math.ceil(size * fraction / 2), 2 * (size // 2)))


def sample_nuisance(
    view: str, truth: StudyTruth, spec: WorldSpec, rng: np.random.Generator
) -> ImageNuisance:
    """Draw the nuisance of one image; strength follows spec.difficulty."""
    conspicuity, strength = difficulty_scales(spec.difficulty)
    size = spec.image_size
    rows = _image_side(size, rng.uniform(0.8, 1.0))
    cols = _image_side(size, rng.uniform(0.8, 1.0))
    collimation = tuple(
        float(rng.uniform(0.01, 0.06)) if rng.random() < min(0.9, 0.45 * strength) else 0.0
        for _ in range(4)
    )
    return ImageNuisance(
        view=view,
        rows=rows,
        cols=cols,
        rotation_deg=float(np.clip(rng.normal(0.0, 2.5 * strength), -9.0, 9.0)),
        shift=(
            float(np.clip(rng.normal(0.0, 0.03 * strength), -0.1, 0.1)),
            float(np.clip(rng.normal(0.0, 0.03 * strength), -0.1, 0.1)),
        ),
        scale=float(np.clip(rng.normal(0.87, 0.06 * strength), 0.72, 1.0)),
        inspiration=float(rng.normal(0.0, 0.05 * strength)) + (0.05 if view == "AP" else 0.0),
        contrast=float(3.0 * np.exp(rng.normal(0.0, 0.1 * strength))),
        gain=float(np.exp(rng.normal(0.0, 0.09 * strength))),
        gamma=float(np.exp(rng.normal(0.0, 0.13 * strength))),
        offset=float(rng.normal(0.0, 0.035 * strength)),
        noise=float(rng.uniform(0.004, 0.02) * strength),
        unsharp=float(rng.uniform(0.0, 0.6) * strength),
        heel=(float(rng.normal(0.0, 0.02 * strength)), float(rng.normal(0.0, 0.02 * strength))),
        collimation=collimation,  # type: ignore[arg-type]
        collimation_value=0.95 if rng.random() < 0.6 else 0.03,
        marker=("L" if rng.random() < 0.7 else "R") if rng.random() < 0.85 else "",
        marker_corner=int(rng.integers(4)),
        electrodes=int(rng.integers(2, 6)) if view == "AP" and rng.random() < 0.6 else 0,
        markings=float(np.exp(rng.normal(0.0, 0.22 * strength))),
        haze=float(rng.uniform(0.0, 0.04) * strength),
        finding_scale=float(conspicuity * np.exp(rng.normal(0.0, 0.1))),
    )
