"""Tubes, lines and ECG electrodes, drawn as thin strokes on a full-resolution canvas.

Devices follow the study's truth (route, tip position) with a little jitter per image; the
electrodes are nuisance (portable films only).
"""

from __future__ import annotations

import numpy as np

from medrep.data.synthetic.raster import F32, Frame, draw_stroke
from medrep.data.synthetic.spec import MM_PER_UNIT, Anatomy, StudyTruth

# The carina, in v.
_CARINA_V = -0.36


def draw_devices(
    canvas: np.ndarray,
    frame: Frame,
    truth: StudyTruth,
    anatomy: Anatomy,
    rng: np.random.Generator,
) -> None:
    """Add the study's tubes and lines to `canvas` (endotracheal, enteric, central, PICC)."""

    def jitter(scale: float = 0.02) -> float:
        return float(rng.normal(0.0, scale))

    left_dome_v = anatomy.dome + 0.06
    for device in truth.devices:
        if device.kind == "ett":
            tip = _CARINA_V - device.tip_cm * 10 / MM_PER_UNIT
            path = [(0.01 + jitter(), -1.3), (0.02 + jitter(), -0.9), (0.01 + jitter(0.01), tip)]
            wall = 0.012 / frame.px
            draw_stroke(canvas, frame, path, 0.22, offset_px=-wall)
            draw_stroke(canvas, frame, path, 0.22, offset_px=wall)
        elif device.kind == "ngt":
            path = [
                (0.02 + jitter(), -1.3),
                (0.05 + jitter(), -0.3),
                (0.06 + jitter(), left_dome_v - 0.05),
                (0.3 + jitter(0.05), left_dome_v + 0.2),
            ]
            draw_stroke(canvas, frame, path, 0.3)
        elif device.kind == "cvc":
            tip_uv = (-0.07 + jitter(0.01), -0.2 + jitter(0.04))
            starts = {
                "right_ij": [(-0.22 + jitter(), -1.3), (-0.15 + jitter(), -0.75), (-0.1, -0.45)],
                "left_ij": [(0.22 + jitter(), -1.3), (0.16 + jitter(), -0.72), (0.02, -0.5)],
                "right_subclavian": [
                    (-0.75 + jitter(), -0.72),
                    (-0.4 + jitter(), -0.7),
                    (-0.12, -0.55),
                ],
                "left_subclavian": [
                    (0.75 + jitter(), -0.72),
                    (0.35 + jitter(), -0.68),
                    (0.05, -0.55),
                ],
            }
            route = starts.get(device.route, starts["right_ij"])
            draw_stroke(canvas, frame, [*route, tip_uv], 0.28)
        elif device.kind == "picc":
            sign = -1.0 if device.route == "right_arm" else 1.0
            path = [
                (sign * 1.3, -0.55 + jitter()),
                (sign * 0.7, -0.75 + jitter()),
                (sign * 0.2, -0.6 + jitter()),
                (-0.06, -0.22),
            ]
            draw_stroke(canvas, frame, path, 0.25)


def draw_electrodes(canvas: np.ndarray, frame: Frame, count: int, rng: np.random.Generator) -> None:
    """ECG electrodes (rings with a central snap) and their wires, on portable films."""
    height, width = canvas.shape
    for _ in range(count):
        centre_u, centre_v = float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.85, 0.35))
        radius_px = 0.045 / frame.px
        rows, cols = frame.to_pixels(np.array([centre_u]), np.array([centre_v]))
        row, col = rows[0], cols[0]
        r0, c0 = int(row - radius_px - 3), int(col - radius_px - 3)
        r1, c1 = int(row + radius_px + 4), int(col + radius_px + 4)
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
        if r1 > r0 and c1 > c0:
            yy, xx = np.ogrid[r0:r1, c0:c1]
            distance = np.sqrt((yy - row) ** 2 + (xx - col) ** 2).astype(np.float32)
            ring = np.clip(1.2 - np.abs(distance - radius_px), 0, 1) + np.clip(
                0.35 * radius_px - distance, 0, 1
            )
            canvas[r0:r1, c0:c1] += F32(0.2) * ring
        end = (centre_u + float(rng.uniform(-0.6, 0.6)), -1.3 if rng.random() < 0.5 else 1.3)
        mid = ((centre_u + end[0]) / 2 + float(rng.normal(0, 0.3)), (centre_v + end[1]) / 2)
        draw_stroke(canvas, frame, [(centre_u, centre_v), mid, end], 0.12)
