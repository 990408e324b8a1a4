"""The frontal (PA/AP) projection: the projected density of the chest and of every finding.

`frontal_density` builds the chest's geometry (lungs, heart, mediastinum), lets each finding
change three layers (lung air, vessel visibility, added density), then adds the body, bones,
soft tissue, gas and lung markings in a fixed order. Coordinates are those of the package
docstring: `u`, `v` and the side-relative lateral coordinate `a = |u|`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medrep.data.synthetic import shapes
from medrep.data.synthetic.nuisance import ImageNuisance
from medrep.data.synthetic.raster import F32, Frame, smooth_noise, soft_step, substream
from medrep.data.synthetic.spec import MM_PER_UNIT, Anatomy, Finding, StudyTruth

# Centres of consolidation by lobe: (lateral fraction of lung width, fraction of lung height).
_LOBE_CENTRES = {
    "RUL": (0.5, 0.2),
    "RML": (0.34, 0.66),
    "RLL": (0.62, 0.86),
    "LUL": (0.52, 0.32),
    "LLL": (0.62, 0.88),
}
# The hila sit a little above mid-chest.
_HILUM_V = -0.08
# Half the height of the rounded lung apex.
_APEX_HALF_HEIGHT = 0.5
_SIDES_OF = {"right": ("right",), "left": ("left",), "bilateral": ("right", "left")}


@dataclass(frozen=True)
class _Chest(shapes.ChestGrid):
    """A frontal chest: the lungs' outline, per side and as arrays over the grid.

    Per-side values (`*_of`) are keyed "right"/"left": the patient's sides; the patient's right
    is on the image left (`right` is u < 0).
    """

    a: np.ndarray
    right: np.ndarray
    apex: float
    lung_width_of: dict[str, float]
    dome_of: dict[str, float]
    costophrenic_of: dict[str, float]
    lung_width: np.ndarray
    apex_centre: np.ndarray
    apex_half_width: np.ndarray
    apex_centre_v: float
    lung_half_width: np.ndarray

    def side_mask(self, side: str) -> np.ndarray:
        return self.right if side == "right" else ~self.right

    def lung_point(self, side: str, location: tuple[float, float]) -> tuple[float, float]:
        """(a, v) of a point given as fractions of its lung's width and height."""
        lateral, vertical = location
        return (
            lateral * self.lung_width_of[side],
            self.apex + vertical * (self.dome_of[side] - self.apex),
        )


def _frontal_chest(anatomy: Anatomy, nuisance: ImageNuisance, frame: Frame) -> _Chest:
    """Lungs: a rounded apex over near-vertical lateral walls, cut below by the hemidiaphragm."""
    u, v = frame.grid()
    pixel = frame.px
    edge = 1.3 * pixel
    right = u < 0  # the patient's right is on the image left
    a = np.abs(u)
    lung_width_of = {"right": anatomy.lung_width, "left": anatomy.lung_width * 1.02}
    dome_of = {
        "right": anatomy.dome + nuisance.inspiration,
        "left": anatomy.dome + nuisance.inspiration + 0.06,
    }
    lung_width = np.where(right, F32(lung_width_of["right"]), F32(lung_width_of["left"]))
    dome_top = np.where(right, F32(dome_of["right"]), F32(dome_of["left"]))
    apex_centre = F32(0.45) * lung_width  # the apex sits over the mid-clavicular line
    apex_half_width = lung_width - apex_centre
    apex_centre_v = anatomy.apex + _APEX_HALF_HEIGHT
    rise = np.clip((F32(apex_centre_v) - v) * F32(1 / _APEX_HALF_HEIGHT), 0, 1)
    lung_half_width = (
        apex_half_width
        * np.sqrt(1 - rise * rise)
        * (1 + F32(0.04) * np.clip(v - F32(apex_centre_v), 0, None))
    )
    across = (a - apex_centre) / lung_width
    diaphragm_v = dome_top + np.where(across > 0, F32(0.6), F32(1.2)) * across * across
    lung = (
        soft_step(lung_half_width - np.abs(a - apex_centre), edge)
        * soft_step(diaphragm_v - v, edge)
        * soft_step(v - F32(anatomy.apex), edge)
    )
    return _Chest(
        u=u,
        v=v,
        a=a,
        right=right,
        pixel=pixel,
        edge=edge,
        apex=anatomy.apex,
        lung_width_of=lung_width_of,
        dome_of=dome_of,
        costophrenic_of={s: dome_of[s] + 0.6 * 0.55**2 for s in ("right", "left")},
        lung_width=lung_width,
        apex_centre=apex_centre,
        apex_half_width=apex_half_width,
        apex_centre_v=apex_centre_v,
        lung_half_width=lung_half_width,
        diaphragm_v=diaphragm_v,
        lung=lung,
    )


def _frontal_heart(
    truth: StudyTruth, anatomy: Anatomy, nuisance: ImageNuisance, chest: _Chest
) -> tuple[np.ndarray, np.ndarray]:
    """The heart: a tilted ellipse, ctr x thoracic width wide, a third of it right of midline.

    Returns (squared elliptic radius, mask), as `shapes.heart_ellipse`.
    """
    cardiomegaly = truth.get("Cardiomegaly")
    ctr = cardiomegaly.size if cardiomegaly else anatomy.ctr
    if nuisance.view == "AP":
        ctr *= 1.06  # the AP projection magnifies the heart
    thorax = 2.0 * anatomy.lung_width * 1.01
    width = ctr * thorax
    centre_u = -0.34 * width + width / 2
    cos_tilt, sin_tilt = math.cos(anatomy.heart_tilt), math.sin(anatomy.heart_tilt)
    semi_major = (width / 2) / math.sqrt(cos_tilt**2 + (anatomy.heart_aspect * sin_tilt) ** 2)
    semi_minor = semi_major * anatomy.heart_aspect
    half_height = math.sqrt((semi_major * sin_tilt) ** 2 + (semi_minor * cos_tilt) ** 2)
    centre_v = chest.dome_of["right"] + 0.12 - half_height
    return shapes.heart_ellipse(
        chest.u,
        chest.v,
        (centre_u, centre_v),
        (semi_major, semi_minor),
        anatomy.heart_tilt,
        chest.edge,
        chest.diaphragm_v,
    )


def _mediastinum(anatomy: Anatomy, chest: _Chest) -> np.ndarray:
    """SVC on the right, aortic knob on the left, widening into the heart."""
    v = chest.v
    width = F32(anatomy.mediastinum) * (
        1 + F32(0.5) * np.clip((v + F32(0.5)) * F32(1 / 0.55), 0, 1)
    )
    knob = F32(0.055) * np.exp(-(((v + F32(0.37)) * F32(1 / 0.07)) ** 2))
    half_width = np.where(chest.right, width * F32(0.95), width + knob)
    return soft_step(half_width - chest.a, 1.5 * chest.edge)


# ---- findings --------------------------------------------------------------------------------


@dataclass
class _FindingLayers:
    """What findings change, in place: lung air, the visibility of vessels, added density."""

    air_scale: np.ndarray
    vessel_gain: np.ndarray
    extra: np.ndarray

    @classmethod
    def neutral(cls, shape: tuple[int, int]) -> _FindingLayers:
        return cls(
            air_scale=np.ones(shape, dtype=np.float32),
            vessel_gain=np.ones(shape, dtype=np.float32),
            extra=np.zeros(shape, dtype=np.float32),
        )


def _add_effusion(
    layers: _FindingLayers, effusion: Finding, chest: _Chest, nuisance: ImageNuisance
) -> None:
    """Fluid rising laterally from the costophrenic angle (a meniscus), replacing lung air."""
    fill = shapes.effusion_fill(nuisance.finding_scale)
    # supine (AP) effusions layer posteriorly: a veil rather than a meniscus
    softness = 0.12 if nuisance.view == "AP" else 0.022
    for side in _SIDES_OF[effusion.side]:
        costophrenic_v = chest.costophrenic_of[side]
        height = effusion.size * (costophrenic_v - chest.apex)
        top = F32(costophrenic_v) - F32(height) * (
            F32(0.3) + F32(0.7) * (chest.a * F32(1 / chest.lung_width_of[side])) ** 2
        )
        fluid = soft_step(chest.v - top, softness) * chest.side_mask(side)
        layers.air_scale *= 1 - F32(fill) * fluid
        layers.vessel_gain *= 1 - fluid


def _add_pneumothorax(
    layers: _FindingLayers, pneumothorax: Finding, chest: _Chest, finding_scale: float
) -> None:
    """Air between the collapsed lung and the chest wall, and the visceral pleural line."""
    a, v, pixel = chest.a, chest.v, chest.pixel
    side_mask = chest.side_mask(pneumothorax.side)
    costophrenic_v = chest.costophrenic_of[pneumothorax.side]
    # an even rim along the upper lung, tapering to nothing at the costophrenic angle
    taper = np.clip(
        (F32(costophrenic_v) - v) * F32(1 / (0.45 * (costophrenic_v - chest.apex))), 0, 1
    )
    rim = F32(pneumothorax.size * (costophrenic_v - chest.apex)) * taper
    # the collapsed lung's edge: the lateral wall and the apex pulled in by `rim`
    apex_centre, apex_half_width = chest.apex_centre, chest.apex_half_width
    apex_edge_v = F32(chest.apex_centre_v) - F32(_APEX_HALF_HEIGHT) * np.sqrt(
        np.clip(1 - ((a - apex_centre) / apex_half_width) ** 2, 0, 1)
    )
    # no rim along the mediastinum
    medial_taper = np.clip((a - apex_centre + apex_half_width) / apex_half_width, 0, 1)
    edge_distance = np.minimum(
        apex_centre + chest.lung_half_width - a - rim, v - apex_edge_v - rim * medial_taper
    )
    gap = soft_step(-edge_distance, chest.edge) * chest.lung * side_mask
    pleural_line = np.exp(-((edge_distance * F32(1 / (0.9 * pixel))) ** 2)) * chest.lung * side_mask
    pleural_line *= rim > F32(2 * pixel)
    layers.air_scale += F32(0.18 * finding_scale) * gap
    layers.vessel_gain *= 1 - gap
    layers.extra += F32(0.09 * finding_scale) * pleural_line + F32(0.015 * finding_scale) * (
        chest.lung * side_mask - gap
    )


def _add_edema(
    layers: _FindingLayers,
    edema: Finding,
    chest: _Chest,
    lung_visible: np.ndarray,
    base: int,
    finding_scale: float,
) -> None:
    """Perihilar haze, fine interstitial texture towards the bases, Kerley B lines."""
    a, v = chest.a, chest.v
    level = edema.size
    amplitude = 0.1 * level * finding_scale
    perihilar = np.exp(
        -(((a - F32(0.24)) * F32(1 / 0.32)) ** 2 + ((v - F32(_HILUM_V)) * F32(1 / 0.45)) ** 2)
    )
    fine = np.abs(smooth_noise(substream(base, 2), chest.shape, max(1.0, 0.025 / chest.pixel)))
    basal_weight = np.clip((v - F32(chest.apex)) * F32(1 / 1.2), 0, 1)
    kerley = np.clip((np.cos(v * F32(2 * math.pi / 0.03)) - F32(0.7)) * 3, 0, 1)
    kerley *= soft_step(a - (chest.apex_centre + chest.lung_half_width - F32(0.1)), 0.03) * (
        soft_step(v - (chest.diaphragm_v - F32(0.3)), 0.05)
    )
    layers.extra += lung_visible * (
        F32(amplitude) * perihilar
        + F32(0.2 * amplitude) * np.clip(fine, 0, 2) * basal_weight
        + F32(0.25 * amplitude) * kerley
    )
    layers.vessel_gain *= F32(1 + 0.4 * level)


def _add_consolidation(
    layers: _FindingLayers,
    consolidation: Finding,
    chest: _Chest,
    vessels: np.ndarray,
    base: int,
    finding_scale: float,
) -> None:
    """A confluent centre, ill-defined irregular margins, patchy inside, air bronchograms."""
    a, v = chest.a, chest.v
    side = "right" if consolidation.lobe.startswith("R") else "left"
    centre_a, centre_v = chest.lung_point(side, _LOBE_CENTRES[consolidation.lobe])
    radius = consolidation.size
    texture_rng = substream(base, 1)
    low_freq = smooth_noise(texture_rng, chest.shape, max(1.0, 0.06 / chest.pixel))
    mid_freq = smooth_noise(texture_rng, chest.shape, max(1.0, 0.022 / chest.pixel))
    distance2 = ((a - F32(centre_a)) * F32(1 / (1.15 * radius))) ** 2 + (
        (v - F32(centre_v)) * F32(1 / radius)
    ) ** 2
    blob = np.clip(F32(1.0) - F32(0.8) * distance2 + F32(0.35) * low_freq, 0, 1)
    blob = blob * blob * (3 - 2 * blob)
    texture = F32(0.65) + F32(0.35) * np.clip(mid_freq, -1, 1)
    amplitude = {"mild": 0.12, "moderate": 0.15, "severe": 0.18}[consolidation.severity]
    amplitude *= finding_scale
    opacity = F32(amplitude) * blob * texture * chest.lung * chest.side_mask(side)
    # air bronchograms: the vessel ridges read dark inside the opacity
    layers.extra += opacity * (1 - F32(0.6) * np.clip(vessels * F32(2.5), 0, 1))
    layers.vessel_gain *= 1 - np.clip(opacity * F32(6), 0, 1)


def _add_nodule(
    layers: _FindingLayers, nodule: Finding, chest: _Chest, base: int, finding_scale: float
) -> None:
    """A sharp-edged ball of soft tissue at the nodule's location."""
    centre_a, centre_v = chest.lung_point(nodule.side, nodule.location)
    radius = nodule.size / (2 * MM_PER_UNIT)
    distance2 = ((chest.a - F32(centre_a)) ** 2 + (chest.v - F32(centre_v)) ** 2) * F32(
        1 / radius**2
    )
    amplitude = 0.14 * finding_scale * float(substream(base, 3).uniform(0.9, 1.1))
    ball = np.sqrt(np.clip(1 - distance2, 0, 1)) * soft_step(
        (1 - distance2) * F32(radius / 2), chest.edge
    )
    layers.extra += F32(amplitude) * ball * chest.side_mask(nodule.side)


def _finding_layers(
    truth: StudyTruth,
    nuisance: ImageNuisance,
    chest: _Chest,
    lung_visible: np.ndarray,
    vessels: np.ndarray,
    base: int,
) -> _FindingLayers:
    """Every finding's change to the layers, in a fixed order (the sums are order-sensitive)."""
    layers = _FindingLayers.neutral(chest.shape)
    finding_scale = nuisance.finding_scale
    effusion = truth.get("Pleural Effusion")
    if effusion is not None:
        _add_effusion(layers, effusion, chest, nuisance)
    pneumothorax = truth.get("Pneumothorax")
    if pneumothorax is not None:
        _add_pneumothorax(layers, pneumothorax, chest, finding_scale)
    edema = truth.get("Edema")
    if edema is not None:
        _add_edema(layers, edema, chest, lung_visible, base, finding_scale)
    consolidation = truth.get("Consolidation")
    if consolidation is not None:
        _add_consolidation(layers, consolidation, chest, vessels, base, finding_scale)
    nodule = truth.get("Nodule")
    if nodule is not None:
        _add_nodule(layers, nodule, chest, base, finding_scale)
    return layers


# ---- the rest of the chest -------------------------------------------------------------------


def _body(anatomy: Anatomy, chest: _Chest) -> np.ndarray:
    """The soft-tissue thickness profile of the trunk, cut above by the shoulders."""
    a, u, v = chest.a, chest.u, chest.v
    shoulder = F32(-1.25) + F32(0.5) * np.sqrt(np.clip((a - F32(0.2)) * F32(1 / 0.8), 0, 1))
    body = np.sqrt(np.clip(1 - (u * F32(1 / anatomy.body_width)) ** 2, 0, 1))
    body *= soft_step(v - shoulder, 0.05)
    return body


def _air_depth(
    anatomy: Anatomy, nuisance: ImageNuisance, chest: _Chest, body: np.ndarray
) -> np.ndarray:
    """Less air where the lung is thin: laterally, at the apex and over the bases."""
    v = chest.v
    return (
        (F32(0.55) + F32(0.45) * body)
        * (
            1
            - F32(0.2) * np.clip((v - F32(chest.apex_centre_v)) * F32(1 / 0.6), 0, 1)
            - F32(0.25) * np.exp(-(((v - F32(anatomy.apex)) * F32(1 / 0.15)) ** 2))
        )
        * F32(1 - 1.5 * nuisance.inspiration)
    )  # shallow inspiration: less air, denser lungs


def _trachea(chest: _Chest) -> np.ndarray:
    edge = chest.edge
    return soft_step(F32(0.028) - np.abs(chest.u - F32(0.01)), 1.5 * edge) * soft_step(
        F32(-0.36) - chest.v, 2 * edge
    )


def _spine(chest: _Chest) -> np.ndarray:
    spine = soft_step(F32(0.07) - chest.a, 1.5 * chest.edge)
    return F32(0.035) * spine * (F32(0.7) + F32(0.3) * np.cos(chest.v * F32(2 * math.pi / 0.1)))


def _ribs(anatomy: Anatomy, chest: _Chest) -> np.ndarray:
    """Posterior ribs arch laterally downwards; anterior ribs run down towards the midline."""
    a, v, edge = chest.a, chest.v, chest.edge
    spacing = anatomy.rib_spacing
    cage = (
        soft_step(chest.apex_centre + chest.lung_half_width + F32(0.07) - a, 3 * edge)
        * soft_step(v - F32(anatomy.apex - 0.08), 2 * edge)
        * soft_step(chest.diaphragm_v + F32(0.12) - v, 0.05)
        * soft_step(a - F32(0.08), 2 * edge)
    )
    posterior_phase = v + F32(0.12) * a - F32(0.62) * a * a
    posterior_wave = np.cos(
        (posterior_phase * F32(1 / spacing) - F32(anatomy.rib_phase)) * F32(2 * math.pi)
    )
    posterior = np.clip((posterior_wave - F32(0.4)) * 5, 0, 1) - F32(0.4) * np.clip(
        (posterior_wave - F32(0.8)) * 5, 0, 1
    )
    anterior_phase = v - F32(0.5) * (chest.lung_width - a)
    anterior_wave = np.cos(
        (anterior_phase * F32(1 / (1.2 * spacing)) + F32(anatomy.rib_phase * 0.7))
        * F32(2 * math.pi)
    )
    anterior = (
        np.clip((anterior_wave - F32(0.6)) * 4, 0, 1)
        * soft_step(F32(0.15) - v, 0.1)
        * soft_step(a - F32(0.3), 0.05)
    )
    return cage * (F32(0.03) * posterior + F32(0.01) * anterior)


def _clavicles(chest: _Chest) -> np.ndarray:
    a, v, edge = chest.a, chest.v, chest.edge
    along = np.clip((a - F32(0.05)) * F32(1 / 0.65), 0, 1)
    clavicle_v = F32(-0.66) - F32(0.2) * along + F32(0.06) * np.sin(along * F32(math.pi))
    return (
        soft_step(F32(0.026) - np.abs(v - clavicle_v), 1.5 * edge)
        * soft_step(a - F32(0.06), edge)
        * soft_step(F32(0.72) - a, 3 * edge)
    )


def _humeral_heads(anatomy: Anatomy, chest: _Chest, body: np.ndarray) -> np.ndarray:
    radius2 = ((chest.a - F32(anatomy.body_width - 0.05)) ** 2 + (chest.v + F32(0.8)) ** 2) * F32(
        1 / 0.17**2
    )
    return F32(0.08) * np.sqrt(np.clip(1 - radius2, 0, 1)) * body


def _breasts(anatomy: Anatomy, chest: _Chest) -> np.ndarray:
    centre_v = chest.dome_of["right"] + 0.02
    radius2 = ((chest.a - F32(0.6) * chest.lung_width) * F32(1 / 0.42)) ** 2 + (
        (chest.v - F32(centre_v)) * F32(1 / 0.24)
    ) ** 2
    return F32(0.06 * anatomy.breast) * np.sqrt(np.clip(1 - radius2, 0, 1))


def _abdominal_gas(chest: _Chest, clutter: np.ndarray) -> np.ndarray:
    """Stomach bubble and bowel gas under the left hemidiaphragm."""
    a, u, v = chest.a, chest.u, chest.v
    gas = np.clip(clutter[::-1, ::-1] - F32(1.2), 0, 1)
    gas *= (
        ~chest.right
        * soft_step(v - (chest.diaphragm_v + F32(0.06)), 0.04)
        * soft_step(F32(0.75) - a, 0.1)
    )
    stomach_r2 = ((u - F32(0.33)) * F32(1 / 0.08)) ** 2 + (
        (v - F32(chest.dome_of["left"] + 0.12)) * F32(1 / 0.045)
    ) ** 2
    return F32(0.08) * (soft_step(1 - stomach_r2, 0.3) + gas)


def _lung_markings(
    nuisance: ImageNuisance,
    chest: _Chest,
    lung_visible: np.ndarray,
    vessels: np.ndarray,
    vessel_gain: np.ndarray,
    clutter: np.ndarray,
) -> np.ndarray:
    """Hilar vessels, the radiating markings and a fine mottle, where the lung shows."""
    hilum = np.exp(
        -((chest.a - F32(0.19)) ** 2 + ((chest.v - F32(_HILUM_V)) * F32(0.7)) ** 2) * F32(1 / 0.01)
    )
    rows, cols = chest.shape
    mottle = np.roll(clutter, (rows // 2, cols // 3), axis=(0, 1))
    return lung_visible * (
        F32(0.05) * hilum * (F32(0.6) + F32(2.0) * vessels)
        + F32(0.065 * nuisance.markings) * vessels * vessel_gain
        + F32(0.012 * nuisance.markings) * mottle
    )


def frontal_density(
    truth: StudyTruth, anatomy: Anatomy, nuisance: ImageNuisance, frame: Frame, base: int
) -> np.ndarray:
    """Projected density of a frontal chest (0 = air, ~0.5 = soft tissue, bone adds ~0.1)."""
    chest = _frontal_chest(anatomy, nuisance, frame)
    heart_radius2, heart = _frontal_heart(truth, anatomy, nuisance, chest)
    mediastinum = _mediastinum(anatomy, chest)
    occupied = np.maximum(mediastinum * F32(0.9), heart * F32(0.75))
    lung_visible = chest.lung * (1 - occupied)
    clutter = shapes.clutter_field(base, chest.shape, chest.pixel)
    vessels = shapes.vessel_ridges(
        chest.a - F32(0.14),
        chest.v - F32(_HILUM_V),
        np.where(chest.right, F32(0), F32(31)),
        base,
        clutter,
    )
    layers = _finding_layers(truth, nuisance, chest, lung_visible, vessels, base)

    # compose: soft tissue minus lung air, plus mediastinum, heart, bones, markings
    body = _body(anatomy, chest)
    density = F32(0.5 * anatomy.soft_tissue) * body
    density -= (
        F32(0.36) * lung_visible * _air_depth(anatomy, nuisance, chest, body) * layers.air_scale
    )
    heart_profile = np.sqrt(np.clip(1 - heart_radius2, 0, 1))
    density += heart * (F32(0.02) + F32(0.03) * heart_profile) + F32(0.04) * mediastinum
    density -= F32(0.06) * _trachea(chest)
    density += _spine(chest)
    density += _ribs(anatomy, chest)
    density += F32(0.06) * _clavicles(chest)
    density += _humeral_heads(anatomy, chest, body)
    if anatomy.breast > 0.05:
        density += _breasts(anatomy, chest)
    density -= _abdominal_gas(chest, clutter)
    density += _lung_markings(nuisance, chest, lung_visible, vessels, layers.vessel_gain, clutter)
    density += layers.extra
    if nuisance.haze > 0:
        density += shapes.haze_veil(nuisance.haze, base, chest.shape, chest.pixel, body)
    return density
