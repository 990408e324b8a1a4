"""Pixel-grid tools of the renderer: the pixel <-> anatomy frame, soft steps, resampling, smooth
noise and anti-aliased strokes.

Everything is float32 (`F32` wraps every constant that meets an array, so that no expression is
promoted to float64); the exact operations and their order are part of the world's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medrep.data.synthetic.nuisance import ImageNuisance

F32 = np.float32


def soft_step(x: np.ndarray, width: float) -> np.ndarray:
    """A soft step from 0 (x << 0) to 1 (x >> 0) over `width` (cheaper than a sigmoid)."""
    return np.clip(x * F32(1.0 / width) + F32(0.5), F32(0.0), F32(1.0))


def resize_bilinear(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear resize of a float32 image (Pillow's C resampler: several times faster than scipy)."""
    from PIL import Image

    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize(
        (cols, rows), Image.Resampling.BILINEAR
    )
    return np.array(out, dtype=np.float32)


def substream(base: int, key: int) -> np.random.Generator:
    """The sub-stream `key` of an image's render stream (one per texture or overlay)."""
    return np.random.default_rng([base, key])


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed at `sigma_px`, made at low resolution and upsampled."""
    rows, cols = shape
    factor = max(1.0, sigma_px / 1.5)
    small_rows, small_cols = int(rows / factor) + 3, int(cols / factor) + 3
    small = rng.standard_normal((small_rows, small_cols), dtype=np.float32)
    small = ndimage.gaussian_filter(small, sigma_px / factor, mode="wrap")
    small /= small.std() + 1e-6
    if factor > 1:
        small = resize_bilinear(small, round(small_rows * factor), round(small_cols * factor))
    return small[:rows, :cols]


@dataclass(frozen=True)
class Frame:
    """Pixel <-> anatomy mapping of one image."""

    rows: int
    cols: int
    radius: float
    scale: float
    cos: float
    sin: float
    tx: float
    ty: float

    @classmethod
    def of(cls, nuisance: ImageNuisance) -> Frame:
        """The frame of an image: its size, and the chest's rotation, shift and scale in it."""
        theta = math.radians(nuisance.rotation_deg)
        return cls(
            rows=nuisance.rows,
            cols=nuisance.cols,
            radius=0.5 * max(nuisance.rows, nuisance.cols),
            scale=nuisance.scale,
            cos=math.cos(theta),
            sin=math.sin(theta),
            tx=nuisance.shift[0],
            ty=nuisance.shift[1],
        )

    @property
    def px(self) -> float:
        """One pixel in anatomical units."""
        return 1.0 / (self.radius * self.scale)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The anatomical coordinates (u, v) of every pixel, each [rows, cols]."""
        x = (np.arange(self.cols, dtype=np.float32) - F32((self.cols - 1) / 2)) / F32(self.radius)
        y = (np.arange(self.rows, dtype=np.float32) - F32((self.rows - 1) / 2)) / F32(self.radius)
        xs = (x - F32(self.tx))[None, :]
        ys = (y - F32(self.ty))[:, None]
        k = F32(1.0 / self.scale)
        u = (F32(self.cos) * xs + F32(self.sin) * ys) * k
        v = (F32(-self.sin) * xs + F32(self.cos) * ys) * k
        return u.astype(np.float32), v.astype(np.float32)

    def to_pixels(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anatomical (u, v) -> (row, col) pixel coordinates."""
        x = self.scale * (self.cos * u - self.sin * v) + self.tx
        y = self.scale * (self.sin * u + self.cos * v) + self.ty
        return y * self.radius + (self.rows - 1) / 2, x * self.radius + (self.cols - 1) / 2


def _bezier(points: Sequence[tuple[float, float]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` points along a quadratic (3 control points) or cubic (4) Bezier curve."""
    p = np.asarray(points, dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None]
    if len(p) == 3:
        curve = (1 - t) ** 2 * p[0] + 2 * (1 - t) * t * p[1] + t**2 * p[2]
    else:
        curve = (
            (1 - t) ** 3 * p[0]
            + 3 * (1 - t) ** 2 * t * p[1]
            + 3 * (1 - t) * t**2 * p[2]
            + t**3 * p[3]
        )
    return curve[:, 0], curve[:, 1]


def _splat(canvas: np.ndarray, rows: np.ndarray, cols: np.ndarray, weight: float) -> None:
    """Add points to `canvas` with bilinear weights (a thin anti-aliased stroke)."""
    height, width = canvas.shape
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    fr, fc = rows - r0, cols - c0
    for dr, dc, share in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        rr, cc = r0 + dr, c0 + dc
        inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        np.add.at(canvas, (rr[inside], cc[inside]), (weight * share[inside]).astype(canvas.dtype))


def draw_stroke(
    canvas: np.ndarray,
    frame: Frame,
    control: Sequence[tuple[float, float]],
    amplitude: float,
    offset_px: float = 0.0,
) -> None:
    """Add a Bezier curve through anatomical `control` points to `canvas`, ~`amplitude` a pixel."""
    u, v = _bezier(control, 64)
    rows, cols = frame.to_pixels(u, v)
    length = float(np.hypot(np.diff(rows), np.diff(cols)).sum())
    u, v = _bezier(control, max(8, int(length * 2.5)))
    rows, cols = frame.to_pixels(u, v)
    if offset_px:
        # a parallel wall of a tube: shift along the local normal
        dr, dc = np.gradient(rows), np.gradient(cols)
        norm = np.hypot(dr, dc) + 1e-9
        rows, cols = rows + offset_px * dc / norm, cols - offset_px * dr / norm
    # 2.5 samples per pixel along the curve; normalise to ~amplitude per crossed pixel
    _splat(canvas, rows, cols, amplitude / 2.5)
