"""What the frontal and the lateral projection share: the chest's pixel grid, the heart's tilted
ellipse, the lung markings, the haze veil and the share of lung air that an effusion replaces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medrep.data.synthetic.raster import F32, smooth_noise, soft_step, substream


@dataclass(frozen=True)
class ChestGrid:
    """The anatomical coordinates of an image's pixels and the lungs drawn on them.

    Arrays are [rows, cols]; `pixel` is one pixel in anatomical units and `edge` the width of
    a sharp edge (a little more than a pixel).
    """

    u: np.ndarray
    v: np.ndarray
    pixel: float
    edge: float
    diaphragm_v: np.ndarray
    lung: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.u.shape
        return rows, cols


def heart_ellipse(
    u: np.ndarray,
    v: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    tilt: float,
    edge: float,
    diaphragm_v: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(squared elliptic radius, soft mask) of the heart: an ellipse turned by `tilt` radians.

    Below the diaphragm the heart merges into the abdomen, so the mask fades out there.
    """
    cos_tilt, sin_tilt = math.cos(tilt), math.sin(tilt)
    semi_major, semi_minor = semi_axes
    du, dv = u - F32(centre[0]), v - F32(centre[1])
    along = (du * F32(cos_tilt) + dv * F32(sin_tilt)) * F32(1 / semi_major)
    across = (dv * F32(cos_tilt) - du * F32(sin_tilt)) * F32(1 / semi_minor)
    radius2 = along * along + across * across
    mask = soft_step((1 - radius2) * F32(0.5 * semi_minor), 1.5 * edge)
    mask *= soft_step(diaphragm_v + F32(0.02) - v, 0.04)
    return radius2, mask


def vessel_ridges(
    dx: np.ndarray,
    dy: np.ndarray,
    phase: np.ndarray | np.floating,
    base: int,
    clutter: np.ndarray,
) -> np.ndarray:
    """Lung markings: ridges of a noise texture sampled in polar coordinates around a hilum at
    (dx, dy) = 0, so that they run radially, thin out and fade towards the periphery."""
    shape = dx.shape
    texture = substream(base, 0).standard_normal((64, 96), dtype=np.float32)
    texture = ndimage.gaussian_filter(texture, (1.0, 2.0), mode="wrap")
    texture /= texture.std() + 1e-6
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    coords = np.stack([(theta * F32(64 / math.pi * 1.5) + phase).ravel(), (rho * F32(36)).ravel()])
    ridge = ndimage.map_coordinates(texture, coords, order=1, mode="grid-wrap").reshape(shape)
    sharp = F32(1.6) + F32(5.0) * rho
    segments = np.clip(F32(0.55) + F32(0.6) * clutter, 0, 1)  # break ridges into branches
    return np.exp(-((ridge * sharp) ** 2)) * np.exp(-rho * F32(1.7)) * segments


def clutter_field(base: int, shape: tuple[int, int], pixel: float) -> np.ndarray:
    """One smooth noise field, read at different places, that serves several textures (it is
    the most expensive part of rendering)."""
    return smooth_noise(substream(base, 8), shape, max(1.0, 0.035 / pixel))


def haze_veil(
    haze: float, base: int, shape: tuple[int, int], pixel: float, body: np.ndarray
) -> np.ndarray:
    """Scatter and overlying soft tissue: a broad uneven veil over the body that is not disease."""
    veil = smooth_noise(substream(base, 10), shape, max(1.0, 0.25 / pixel))
    return F32(haze) * veil * body


def effusion_fill(finding_scale: float) -> float:
    """The share of the lung's air that pleural fluid replaces where it lies."""
    return float(np.clip(0.5 + 0.4 * finding_scale, 0.4, 1.0))
