"""The lateral (LL) projection: a left lateral view, anterior on the image left, spine on the right.

Simpler than the frontal view: two superimposed lungs, the heart, spine, sternum, trachea and
ribs, with the findings that show on a lateral film (effusion, consolidation, nodule, edema).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medrep.data.synthetic import shapes
from medrep.data.synthetic.nuisance import ImageNuisance
from medrep.data.synthetic.raster import F32, Frame, smooth_noise, soft_step, substream
from medrep.data.synthetic.spec import MM_PER_UNIT, Anatomy, Finding, StudyTruth

# The hila, in (u, v).
_HILUM = (0.02, -0.12)


@dataclass(frozen=True)
class _Chest(shapes.ChestGrid):
    """A lateral chest: two superimposed lungs between the sternum and the spine."""

    dome: float
    apex: float
    depth: float
    anterior_u: np.ndarray
    slope: np.ndarray


def _lateral_chest(anatomy: Anatomy, nuisance: ImageNuisance, frame: Frame) -> _Chest:
    u, v = frame.grid()
    pixel = frame.px
    edge = 1.3 * pixel
    dome = anatomy.dome + nuisance.inspiration + 0.02
    apex = anatomy.apex + 0.03
    depth = anatomy.lung_width / 0.78  # a wide chest is also a deep one
    anterior_u = F32(-0.58 * depth) - F32(0.08) * np.clip(v + F32(0.3), 0, None)
    posterior_u = F32(0.5 * depth) + F32(0.06) * v
    top_v = F32(apex) + F32(0.55) * ((u - F32(0.05)) * F32(1 / 0.6)) ** 2
    slope = np.clip((u - anterior_u) * F32(1 / (1.1 * depth)), 0, 1)
    # the posterior sulcus is deep
    diaphragm_v = F32(dome - 0.08) + F32(0.3) * slope * np.sqrt(slope)
    lung = (
        soft_step(u - anterior_u, edge)
        * soft_step(posterior_u - u, edge)
        * soft_step(v - top_v, edge)
        * soft_step(diaphragm_v - v, edge)
    )
    return _Chest(
        u=u,
        v=v,
        pixel=pixel,
        edge=edge,
        dome=dome,
        apex=apex,
        depth=depth,
        anterior_u=anterior_u,
        slope=slope,
        diaphragm_v=diaphragm_v,
        lung=lung,
    )


def _lateral_heart(
    truth: StudyTruth, anatomy: Anatomy, chest: _Chest
) -> tuple[np.ndarray, np.ndarray]:
    """The heart, anterior and low; an enlarged heart grows backwards and up."""
    cardiomegaly = truth.get("Cardiomegaly")
    grow = (cardiomegaly.size if cardiomegaly else anatomy.ctr) / 0.44
    centre = (-0.27 * chest.depth + 0.06 * (grow - 1), chest.dome - 0.1)
    semi_axes = (0.3 * grow * chest.depth, 0.26 * (0.85 + 0.15 * grow))
    return shapes.heart_ellipse(
        chest.u, chest.v, centre, semi_axes, -0.5, chest.edge, chest.diaphragm_v
    )


def _effusion_fluid(effusion: Finding, chest: _Chest, finding_scale: float) -> np.ndarray:
    """The share of lung air the fluid replaces: it gathers in the posterior costophrenic
    sulcus, rising posteriorly (a meniscus); one side of two superimposed lungs shows less than
    both."""
    fill = shapes.effusion_fill(finding_scale) * (1.0 if effusion.side == "bilateral" else 0.6)
    costophrenic_v = chest.dome + 0.22
    height = effusion.size * (costophrenic_v - chest.apex)
    top = F32(costophrenic_v) - F32(height) * (F32(0.25) + F32(0.75) * chest.slope * chest.slope)
    fluid = soft_step(chest.v - top, 0.025)
    return F32(fill) * fluid


def _consolidation_opacity(
    consolidation: Finding, chest: _Chest, base: int, finding_scale: float
) -> np.ndarray:
    # (u, v) of the opacity's centre; the lower lobes lie posteriorly, above the dome
    centre_u, centre_v = {
        "RUL": (-0.1, chest.apex + 0.3),
        "LUL": (-0.2, chest.apex + 0.4),
        "RML": (-0.35, chest.dome - 0.22),
    }.get(consolidation.lobe, (0.3, chest.dome - 0.05))
    radius = consolidation.size
    low_freq = smooth_noise(substream(base, 1), chest.shape, max(1.0, 0.05 / chest.pixel))
    distance2 = ((chest.u - F32(centre_u)) * F32(1 / (1.2 * radius))) ** 2 + (
        (chest.v - F32(centre_v)) * F32(1 / radius)
    ) ** 2
    blob = np.clip(F32(1.0) - F32(0.8) * distance2 + F32(0.35) * low_freq, 0, 1)
    amplitude = {"mild": 0.08, "moderate": 0.1, "severe": 0.12}[consolidation.severity]
    amplitude *= finding_scale
    return F32(amplitude) * blob * blob * (3 - 2 * blob) * chest.lung


def _nodule_opacity(nodule: Finding, chest: _Chest, finding_scale: float) -> np.ndarray:
    lateral, vertical = nodule.location
    centre_u = -0.45 * chest.depth + lateral * 0.9 * chest.depth
    centre_v = chest.apex + vertical * (chest.dome - chest.apex)
    radius = nodule.size / (2 * MM_PER_UNIT)
    distance2 = ((chest.u - F32(centre_u)) ** 2 + (chest.v - F32(centre_v)) ** 2) * F32(
        1 / radius**2
    )
    return F32(0.1 * finding_scale) * np.sqrt(np.clip(1 - distance2, 0, 1))


def _spine(chest: _Chest) -> np.ndarray:
    """Vertebral bodies along a column behind the lungs."""
    u, v = chest.u, chest.v
    spine_u = F32(0.66 * chest.depth) + F32(0.05) * v
    column = soft_step(F32(0.075) - np.abs(u - spine_u), 1.5 * chest.edge)
    blocks = np.clip((np.cos(v * F32(2 * math.pi / 0.12)) + F32(0.7)) * 3, 0, 1)
    return column * (F32(0.03) + F32(0.06) * blocks)


def _sternum(chest: _Chest) -> np.ndarray:
    u, v = chest.u, chest.v
    sternum = soft_step(F32(0.022) - np.abs(u - (chest.anterior_u - F32(0.07))), 1.5 * chest.edge)
    return F32(0.05) * sternum * soft_step(F32(0.3) - v, 0.05) * soft_step(v + F32(0.75), 0.05)


def _trachea(chest: _Chest) -> np.ndarray:
    u, v = chest.u, chest.v
    trachea_u = F32(-0.1) + F32(0.12 / 0.8) * (v + F32(1.1))
    return soft_step(F32(0.028) - np.abs(u - trachea_u), 1.5 * chest.edge) * soft_step(
        F32(-0.3) - v, chest.edge
    )


def _ribs(chest: _Chest) -> np.ndarray:
    u, v = chest.u, chest.v
    ribs = np.clip((np.cos((v - F32(0.3) * u) * F32(2 * math.pi / 0.13)) - F32(0.7)) * 3, 0, 1)
    ribs *= soft_step(u + F32(0.1), 0.1)  # posterior ribs overlap the back of the lungs
    return ribs


def lateral_density(
    truth: StudyTruth, anatomy: Anatomy, nuisance: ImageNuisance, frame: Frame, base: int
) -> np.ndarray:
    """Projected density of a left lateral chest (0 = air, ~0.5 = soft tissue)."""
    chest = _lateral_chest(anatomy, nuisance, frame)
    u, v, shape = chest.u, chest.v, chest.shape
    finding_scale = nuisance.finding_scale
    heart_radius2, heart = _lateral_heart(truth, anatomy, chest)
    lung_visible = chest.lung * (1 - F32(0.8) * heart)

    air_scale = np.ones(shape, dtype=np.float32)
    extra = np.zeros(shape, dtype=np.float32)
    clutter = shapes.clutter_field(base, shape, chest.pixel)
    vessels = shapes.vessel_ridges(u - F32(_HILUM[0]), v - F32(_HILUM[1]), F32(0), base, clutter)
    vessel_gain = F32(nuisance.markings)
    effusion = truth.get("Pleural Effusion")
    if effusion is not None:
        air_scale *= 1 - _effusion_fluid(effusion, chest, finding_scale)
    consolidation = truth.get("Consolidation")
    if consolidation is not None:
        extra += _consolidation_opacity(consolidation, chest, base, finding_scale)
    nodule = truth.get("Nodule")
    if nodule is not None:
        extra += _nodule_opacity(nodule, chest, finding_scale)
    edema = truth.get("Edema")
    hilum_r2 = (u - F32(_HILUM[0])) ** 2 + (v - F32(_HILUM[1])) ** 2
    if edema is not None:
        extra += (
            F32(0.08 * edema.size * finding_scale)
            * np.exp(-hilum_r2 * F32(1 / 0.12))
            * lung_visible
        )
        vessel_gain *= F32(1 + 0.4 * edema.size)

    body = np.sqrt(np.clip(1 - ((u - F32(0.05)) * F32(1 / (0.92 * chest.depth))) ** 2, 0, 1))
    density = F32(0.56 * anatomy.soft_tissue) * body
    density -= F32(0.36) * lung_visible * air_scale * (F32(0.7) + F32(0.3) * body)
    density += heart * (F32(0.02) + F32(0.03) * np.sqrt(np.clip(1 - heart_radius2, 0, 1)))
    density += _spine(chest)
    density += _sternum(chest)
    density -= F32(0.06) * _trachea(chest)
    hilum = np.exp(-hilum_r2 * F32(1 / 0.008))
    density += chest.lung * (
        F32(0.015) * _ribs(chest) + F32(0.06) * vessels * vessel_gain + F32(0.05) * hilum
    )
    density += extra
    if nuisance.haze > 0:
        density += shapes.haze_veil(nuisance.haze, base, shape, chest.pixel, body)
    return density
