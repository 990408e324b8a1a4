"""What a synthetic world is made of: the spec, the ground truth and plan types, the random streams.

Every other module of the package reads these types; this one imports none of them. The label
vocabulary (FINDINGS, LABEL_COLUMNS) and GENERATOR_VERSION live here because every written file
depends on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Bump whenever any written byte can change for the same spec (world.json records it, and an
# existing world with another version is regenerated).
GENERATOR_VERSION: str = "1.1.0"

VIEWS_FRONTAL: tuple[str, ...] = ("PA", "AP")
LOBES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "LLL")
LOBE_NAMES: dict[str, str] = {
    "RUL": "right upper lobe",
    "RML": "right middle lobe",
    "RLL": "right lower lobe",
    "LUL": "left upper lobe",
    "LLL": "left lower lobe",
}

# Stream tags: every random draw belongs to exactly one (seed, tag, index...) stream.
TAG_WORLD, TAG_PATIENT, TAG_REPORT, TAG_NUISANCE, TAG_RENDER, TAG_ENCODE = range(6)
TAG_RETRIEVAL = 6
TAG_PLANT = 7

# Chest width between the lateral lung walls is about 1.6 anatomical units ~ 29 cm.
MM_PER_UNIT = 180.0


def stream_rng(seed: int, *keys: int) -> np.random.Generator:
    """The random stream (seed, tag, index...): independent of every other stream."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def choose(
    rng: np.random.Generator, options: Sequence[Any], p: Sequence[float] | None = None
) -> Any:
    """One of `options`, drawn with probabilities `p` (uniform when None)."""
    return options[int(rng.choice(len(options), p=p))]


@dataclass(frozen=True)
class WorldSpec:
    """What to generate. Equal specs (and GENERATOR_VERSION) give byte-identical worlds.

    Attributes:
        n_patients: number of patients; each has `studies_per_patient` studies.
        studies_per_patient: inclusive (low, high) range of studies per patient.
        image_size: nominal image side in pixels; each side of an image is 0.8-1.0 of it.
        difficulty: 0 = obvious findings and weak nuisance, 1 = subtle findings, strong nuisance.
        lateral_fraction: share of studies that also get a lateral (LL) image.
        seed: the root of every random stream.
        text_identifier_rate: share of reports whose findings and impression carry planted
            identifiers, as un-de-identified hospital reports do (the patient's surname and MRN,
            the accession number, date of birth, the referring physician, a time and a callback
            phone number); written to `planted_identifiers.csv` for the privacy audit. 0 (the
            default) leaves the world exactly as before the option existed.
    """

    # (a record of plain fields: WorldSpec, ImageNuisance, ImageEncoding and AugmentConfig have
    # the same shape of `name: type = value` lines, which `duplicates` pairs; different records)
    n_patients: int = 200
    studies_per_patient: tuple[int, int] = (1, 3)
    image_size: int = 256
    difficulty: float = 0.5
    lateral_fraction: float = 0.3
    seed: int = 0
    text_identifier_rate: float = 0.0

    def __post_init__(self) -> None:
        # normalise types (a list from a config, an int difficulty) so that equal specs compare,
        # hash and serialise equally
        lo, hi = (int(n) for n in self.studies_per_patient)
        object.__setattr__(self, "studies_per_patient", (lo, hi))
        for name, kind in (("n_patients", int), ("image_size", int), ("seed", int)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        for name in ("difficulty", "lateral_fraction", "text_identifier_rate"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.n_patients < 1:
            raise ValueError(f"WorldSpec.n_patients={self.n_patients}: must be at least 1")
        if not 1 <= lo <= hi:
            raise ValueError(
                f"WorldSpec.studies_per_patient={self.studies_per_patient}: need 1 <= low <= high"
            )
        if self.image_size < 32:
            raise ValueError(f"WorldSpec.image_size={self.image_size}: use at least 32 pixels")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"WorldSpec.difficulty={self.difficulty}: must be within [0, 1]")
        if not 0.0 <= self.lateral_fraction <= 1.0:
            raise ValueError(
                f"WorldSpec.lateral_fraction={self.lateral_fraction}: must be within [0, 1]"
            )
        if self.seed < 0:
            raise ValueError(f"WorldSpec.seed={self.seed}: must be non-negative")
        if not 0.0 <= self.text_identifier_rate <= 1.0:
            raise ValueError(
                f"WorldSpec.text_identifier_rate={self.text_identifier_rate}: must be within [0, 1]"
            )

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["studies_per_patient"] = list(self.studies_per_patient)
        if not self.text_identifier_rate:
            # worlds made before the option have the same spec, digest and bytes
            del out["text_identifier_rate"]
        return out

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> WorldSpec:
        values = dict(values)
        values["studies_per_patient"] = tuple(values["studies_per_patient"])
        return cls(**values)

    def digest(self) -> str:
        """A short hash of the spec and generator version: the entropy behind every UID."""
        text = json.dumps({"spec": self.to_json(), "version": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Finding:
    """One finding of a study.

    Attributes:
        name: one of FINDINGS.
        severity: "mild"/"moderate"/"severe" (cardiomegaly, consolidation, edema) or
            "small"/"moderate"/"large" (effusion, pneumothorax, nodule).
        side: "right", "left" or "bilateral" (the patient's side); "" when not applicable.
        lobe: consolidation lobe (one of LOBES); for a nodule the lobe it projects over.
        size: finding-specific magnitude: cardiothoracic ratio (cardiomegaly), fluid height and
            pneumothorax rim as a fraction of lung height, consolidation radius in anatomical
            units, nodule diameter in mm, edema intensity in [0, 1].
        location: nodule centre as (lateral, vertical) fractions of its lung's width and height.
    """

    name: str
    severity: str
    side: str = ""
    lobe: str = ""
    size: float = 0.0
    location: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Device:
    """A tube or line: kind in {"ett", "ngt", "cvc", "picc"}; route is e.g. "right_ij"."""

    kind: str
    route: str = ""
    tip_cm: float = 0.0


@dataclass(frozen=True)
class Anatomy:
    """A patient's persistent habitus, in anatomical units (see the package docstring)."""

    body_width: float = 1.05
    soft_tissue: float = 1.0
    lung_width: float = 0.78
    apex: float = -0.78
    dome: float = 0.42
    mediastinum: float = 0.135
    heart_tilt: float = 0.45
    heart_aspect: float = 0.68
    ctr: float = 0.44
    breast: float = 0.0
    rib_spacing: float = 0.115
    rib_phase: float = 0.0


@dataclass(frozen=True)
class StudyTruth:
    """Study-level ground truth, rendered identically on every frontal image of the study."""

    findings: tuple[Finding, ...] = ()
    portable: bool = False
    devices: tuple[Device, ...] = ()

    def get(self, name: str) -> Finding | None:
        for finding in self.findings:
            if finding.name == name:
                return finding
        return None

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def with_findings(self, *findings: Finding) -> StudyTruth:
        """A copy with these findings added (replacing ones of the same name)."""
        names = {f.name for f in findings}
        kept = tuple(f for f in self.findings if f.name not in names)
        return dataclasses.replace(self, findings=kept + tuple(findings))


@dataclass(frozen=True)
class Patient:
    index: int
    patient_id: str
    name: str
    sex: str
    birth_date: str
    institution: str
    anatomy: Anatomy


@dataclass(frozen=True)
class StudyPlan:
    """Everything about one study except pixels and report wording."""

    study_idx: int
    patient: Patient
    order: int
    accession: str
    study_uid: str
    study_date: str
    study_time: str
    age: int
    views: tuple[str, ...]
    truth: StudyTruth
    prior: StudyTruth | None
    referring: str

    @property
    def folder(self) -> str:
        return f"dicom/s{self.study_idx:06d}"


@dataclass(frozen=True)
class WorldPlan:
    spec: WorldSpec
    patients: tuple[Patient, ...]
    studies: tuple[StudyPlan, ...]
