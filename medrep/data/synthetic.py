"""The embedded synthetic chest X-ray world: DICOM files, reports and labels from one ground truth.

`generate_world` writes a small hospital-like export, deterministically from a `WorldSpec`:

    out_dir/
      dicom/s{study:06d}/i{image:02d}.dcm   real DICOM (CR or DX), names are generator counters
      reports.csv   AccessionNumber, StudyInstanceUID, report        (MIMIC-CXR style free text)
      labels.csv    AccessionNumber, StudyInstanceUID, *LABEL_COLUMNS (CheXpert style, eval only)
      truth.csv     per-study ground truth (sides, lobes, sizes, devices) for debugging
      retrieval_queries.csv, retrieval_candidates.csv
                    category retrieval lists in the CheXpert 8x200 shape (see retrieval_lists)
      world.json    spec, GENERATOR_VERSION, counts, prevalence

The same truth drives the pixels, the report text and the labels. The layers, each seeded on its
own so that changing one does not shift the random streams of the others:

    plan_world(spec)             patients, studies, findings, views        (cheap, no pixels)
    write_report(study)          report text + labels                      (cheap, no pixels)
    sample_nuisance / render_image   display-space float32 image in [0, 1] (pure given its rng)
    encode_image / build_dataset     stored values + DICOM header

Conventions: images are in display space (bright = attenuating: bone, heart, fluid); a frontal
image shows the patient's right on the image left. Anatomical coordinates are `u` (image left ->
right) and `v` (top -> bottom), both about [-1, 1] over the chest; the side-relative lateral
coordinate of a lung is `a = |u|`.

The files honour the project's display contract: modality LUT (rescale) -> VOI window -> [0, 1]
-> invert MONOCHROME1 gives the rendered display image back (about 10% of files carry no window
and need a percentile window instead). `difficulty` trades finding conspicuity against nuisance
(pose, habitus, exposure, processing, noise, collimation, markers, tubes, ECG leads, haze) so
that no finding is given away by global brightness and random-init CNN features separate the
findings only weakly, while a trained CNN learns all but the nodules easily.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import textwrap
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, generate_uid
from scipy import ndimage

FINDINGS: tuple[str, ...] = (
    "Cardiomegaly",
    "Pleural Effusion",
    "Pneumothorax",
    "Consolidation",
    "Nodule",
    "Edema",
)
LABEL_COLUMNS: tuple[str, ...] = FINDINGS + ("No Finding",)
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
_TAG_WORLD, _TAG_PATIENT, _TAG_REPORT, _TAG_NUISANCE, _TAG_RENDER, _TAG_ENCODE = range(6)
_TAG_RETRIEVAL = 6
_TAG_PLANT = 7
# the identifiers planted in report text (WorldSpec.text_identifier_rate), for audits
PLANTED_NAME = "planted_identifiers.csv"

_CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
_DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
# A fixed implementation identity, so that the bytes do not depend on the installed pydicom.
_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1.77"
_IMPLEMENTATION_NAME = "MEDREP_SYNTH"
# Chest width between the lateral lung walls is about 1.6 anatomical units ~ 29 cm.
_MM_PER_UNIT = 180.0


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


# --------------------------------------------------------------------------------------------
# Spec, truth and plan
# --------------------------------------------------------------------------------------------


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
    """A patient's persistent habitus, in anatomical units (see the module docstring)."""

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


@dataclass(frozen=True)
class WorldSummary:
    """What `generate_world` produced (also readable from world.json)."""

    root: Path
    n_patients: int
    n_studies: int
    n_images: int
    prevalence: dict[str, float]
    n_frontal: int = 0
    n_lateral: int = 0
    uncertain: dict[str, int] = field(default_factory=dict)
    spec: WorldSpec = field(default_factory=WorldSpec)
    generator_version: str = GENERATOR_VERSION


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Fictional names, institutions and vendors: nothing here may resemble a real person's record.
_LAST_NAMES = _words(
    "Abbott Alvarez Bennett Brooks Castillo Chen Dawson Ellis Fischer Foster Garcia Gupta Hansen "
    "Hughes Ibrahim Jensen Kowalski Larsen Lopez Morgan Nakamura Novak Okafor Olsen Patel Quinn "
    "Reyes Rossi Schmidt Silva Sullivan Tanaka Turner Varga Walsh Weber Yilmaz Zhang"
)
_FIRST_NAMES = {
    "F": _words(
        "Alice Amara Beatriz Chloe Dana Elena Fatima Grace Hana Ingrid Julia Keiko Laura Maria "
        "Nadia Olivia Priya Rosa Sofia Teresa"
    ),
    "M": _words(
        "Aaron Ahmed Bruno Carlos Daniel Erik Felix George Hiro Ivan James Kofi Liam Marco Noah "
        "Omar Pavel Rafael Samuel Tomas"
    ),
}
_INSTITUTIONS = (
    "RIVERSIDE GENERAL HOSPITAL",
    "ST ALDRIC MEDICAL CENTER",
    "NORTHGATE UNIVERSITY HOSPITAL",
)
_MANUFACTURERS = ("ACME IMAGING", "LUMEN RADIOGRAPHY", "NORTHWIND MEDICAL")


def _choice(
    rng: np.random.Generator, options: Sequence[Any], p: Sequence[float] | None = None
) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def _sample_anatomy(rng: np.random.Generator, sex: str, age: int) -> Anatomy:
    habitus = float(rng.normal(0.0, 1.0))
    return Anatomy(
        body_width=float(np.clip(1.05 + 0.12 * habitus, 0.88, 1.35)),
        soft_tissue=float(np.clip(1.0 + 0.1 * habitus + rng.normal(0, 0.04), 0.8, 1.25)),
        lung_width=float(rng.uniform(0.7, 0.84)),
        apex=float(rng.uniform(-0.83, -0.73)),
        dome=float(rng.uniform(0.32, 0.5)),
        mediastinum=float(rng.uniform(0.12, 0.155) + 0.0004 * max(age - 50, 0)),
        heart_tilt=float(rng.uniform(0.35, 0.6)),
        heart_aspect=float(rng.uniform(0.62, 0.74)),
        ctr=float(rng.uniform(0.37, 0.5)),
        breast=float(rng.uniform(0.5, 1.0)) if sex == "F" else float(rng.uniform(0.0, 0.15)),
        rib_spacing=float(rng.uniform(0.105, 0.125)),
        rib_phase=float(rng.uniform(0.0, 1.0)),
    )


_CTR_RANGE = {"mild": (0.5, 0.55), "moderate": (0.55, 0.6), "severe": (0.6, 0.67)}
_EFFUSION_HEIGHT = {"small": (0.09, 0.15), "moderate": (0.17, 0.28), "large": (0.32, 0.48)}
_PTX_RIM = {"small": (0.06, 0.09), "moderate": (0.1, 0.15), "large": (0.17, 0.26)}
_CONSOLIDATION_RADIUS = {"mild": (0.13, 0.17), "moderate": (0.17, 0.22), "severe": (0.22, 0.28)}
_EDEMA_LEVEL = {"mild": (0.35, 0.55), "moderate": (0.55, 0.8), "severe": (0.8, 1.0)}


def _severity(
    rng: np.random.Generator,
    words: tuple[str, str, str],
    p: tuple[float, float, float] = (0.5, 0.35, 0.15),
) -> str:
    return str(_choice(rng, words, p))


def _nodule_location(rng: np.random.Generator) -> tuple[str, tuple[float, float]]:
    side = "right" if rng.random() < 0.5 else "left"
    while True:
        af, vf = float(rng.uniform(0.3, 0.85)), float(rng.uniform(0.12, 0.85))
        # keep the nodule off the rounded apex and out of the heart shadow on the left
        if vf < 0.3 and af > 0.4 + vf * 1.2:
            continue
        if side == "left" and vf > 0.55 and af < 0.55:
            continue
        return side, (af, vf)


def _lobe_of(side: str, location: tuple[float, float]) -> str:
    af, vf = location
    if side == "right":
        if vf < 0.4:
            return "RUL"
        return "RML" if (vf < 0.7 and af < 0.55) else "RLL"
    return "LUL" if vf < 0.55 else "LLL"


def _sample_study_truth(
    rng: np.random.Generator,
    chronic_cardio: str | None,
    chronic_nodule: Finding | None,
) -> StudyTruth:
    findings: list[Finding] = []
    cardio = chronic_cardio if chronic_cardio and rng.random() < 0.93 else None
    if cardio is None and rng.random() < 0.03:
        cardio = _severity(rng, ("mild", "moderate", "severe"), (0.7, 0.25, 0.05))
    if cardio:
        lo, hi = _CTR_RANGE[cardio]
        findings.append(Finding("Cardiomegaly", cardio, size=float(rng.uniform(lo, hi))))
    edema = rng.random() < (0.4 if cardio else 0.07)
    if edema:
        sev = _severity(rng, ("mild", "moderate", "severe"))
        lo, hi = _EDEMA_LEVEL[sev]
        findings.append(Finding("Edema", sev, side="bilateral", size=float(rng.uniform(lo, hi))))
    if rng.random() < (0.6 if edema else 0.3 if cardio else 0.17):
        if edema:
            side = _choice(rng, ("bilateral", "right", "left"), (0.55, 0.3, 0.15))
        else:
            side = _choice(rng, ("right", "left", "bilateral"), (0.4, 0.4, 0.2))
        size = _severity(rng, ("small", "moderate", "large"), (0.55, 0.35, 0.1))
        lo, hi = _EFFUSION_HEIGHT[size]
        findings.append(
            Finding("Pleural Effusion", size, side=side, size=float(rng.uniform(lo, hi)))
        )
    if rng.random() < 0.2:
        lobe = _choice(rng, LOBES, (0.15, 0.18, 0.3, 0.12, 0.25))
        sev = _severity(rng, ("mild", "moderate", "severe"), (0.4, 0.4, 0.2))
        lo, hi = _CONSOLIDATION_RADIUS[sev]
        side = "right" if lobe.startswith("R") else "left"
        findings.append(
            Finding("Consolidation", sev, side=side, lobe=lobe, size=float(rng.uniform(lo, hi)))
        )
    if rng.random() < 0.12:
        size = _severity(rng, ("small", "moderate", "large"), (0.55, 0.3, 0.15))
        lo, hi = _PTX_RIM[size]
        side = "right" if rng.random() < 0.5 else "left"
        findings.append(Finding("Pneumothorax", size, side=side, size=float(rng.uniform(lo, hi))))
    if chronic_nodule is not None and rng.random() < 0.92:
        grown = chronic_nodule.size * float(rng.uniform(0.97, 1.06))
        findings.append(dataclasses.replace(chronic_nodule, size=round(grown, 1)))
    sick = edema or any(f.name == "Pleural Effusion" and f.severity == "large" for f in findings)
    portable = bool(rng.random() < (0.38 if sick else 0.16))
    devices: list[Device] = []
    if portable:
        if rng.random() < 0.35:
            devices.append(Device("ett", "oral", round(float(rng.uniform(2.5, 6.5)), 1)))
            if rng.random() < 0.8:
                devices.append(Device("ngt", "nasal"))
        elif rng.random() < 0.1:
            devices.append(Device("ngt", "nasal"))
        if rng.random() < 0.45:
            route = _choice(rng, ("right_ij", "left_ij", "left_subclavian", "right_subclavian"))
            devices.append(Device("cvc", route))
    elif rng.random() < 0.05:
        devices.append(Device("picc", _choice(rng, ("right_arm", "left_arm"))))
    order = {name: i for i, name in enumerate(FINDINGS)}
    findings.sort(key=lambda f: order[f.name])
    return StudyTruth(findings=tuple(findings), portable=portable, devices=tuple(devices))


# Share of studies that are not portable; laterals are taken on those, at a rate that gives
# spec.lateral_fraction overall.
_EXPECTED_NON_PORTABLE = 0.81


def _sample_views(rng: np.random.Generator, truth: StudyTruth, spec: WorldSpec) -> tuple[str, ...]:
    frontal = "AP" if truth.portable else "PA"
    views = [frontal]
    if rng.random() < 0.12:
        views.append(frontal)
    p_lateral = min(1.0, spec.lateral_fraction / _EXPECTED_NON_PORTABLE)
    if not truth.portable and rng.random() < p_lateral:
        views.append("LL")
    return tuple(views)


def plan_world(spec: WorldSpec) -> WorldPlan:
    """Patients, studies and their ground truth; no pixels, no report text (cheap)."""
    digest = spec.digest()
    world_rng = _rng(spec.seed, _TAG_WORLD)
    lo, hi = spec.studies_per_patient
    patient_draws: list[tuple[Patient, list[dict[str, Any]]]] = []
    for p in range(spec.n_patients):
        rng = _rng(spec.seed, _TAG_PATIENT, p)
        sex = "F" if rng.random() < 0.5 else "M"
        age0 = int(18 + rng.beta(2.2, 1.5) * 76)
        name = f"{_choice(rng, _LAST_NAMES)}^{_choice(rng, _FIRST_NAMES[sex])}"
        anatomy = _sample_anatomy(rng, sex, age0)
        p_cardio = 0.21 + 0.0025 * (age0 - 50)
        chronic_cardio = (
            _severity(rng, ("mild", "moderate", "severe"), (0.5, 0.35, 0.15))
            if rng.random() < p_cardio
            else None
        )
        chronic_nodule = None
        if rng.random() < 0.163:
            side, loc = _nodule_location(rng)
            mm = float(rng.uniform(13.0, 24.0))
            sev = "small" if mm < 16 else "moderate" if mm < 20 else "large"
            chronic_nodule = Finding(
                "Nodule", sev, side=side, lobe=_lobe_of(side, loc), size=round(mm, 1), location=loc
            )
        institution = _choice(rng, _INSTITUTIONS)
        first_day = dt.date(2150, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 30)))
        birth = first_day - dt.timedelta(days=int(age0 * 365.25 + rng.integers(0, 365)))
        n_studies = int(rng.integers(lo, hi + 1))
        studies: list[dict[str, Any]] = []
        day = first_day
        prior: StudyTruth | None = None
        for k in range(n_studies):
            if k:
                day = day + dt.timedelta(days=int(rng.integers(1, 500)))
            truth = _sample_study_truth(rng, chronic_cardio, chronic_nodule)
            views = _sample_views(rng, truth, spec)
            hour = int(rng.integers(0, 24)) if truth.portable else int(rng.integers(7, 19))
            studies.append(
                {
                    "order": k,
                    "date": day,
                    "time": f"{hour:02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
                    "truth": truth,
                    "prior": prior,
                    "views": views,
                    "referring": (
                        f"{_choice(rng, _LAST_NAMES)}^{_choice(rng, _FIRST_NAMES['F'] + _FIRST_NAMES['M'])}"
                    ),
                    "institution": institution
                    if rng.random() < 0.9
                    else _choice(rng, _INSTITUTIONS),
                }
            )
            prior = truth
        patient = Patient(
            index=p,
            patient_id="",
            name=name,
            sex=sex,
            birth_date=birth.strftime("%Y%m%d"),
            institution=institution,
            anatomy=anatomy,
        )
        patient_draws.append((patient, studies))

    # Identifiers are drawn world-wide so that they are unique; study order is shuffled so that
    # folder order says nothing about which studies share a patient.
    n_studies_total = sum(len(s) for _, s in patient_draws)
    mrns = world_rng.choice(90_000_000, size=spec.n_patients, replace=False) + 10_000_000
    accessions = world_rng.choice(90_000_000, size=n_studies_total, replace=False) + 10_000_000
    order = world_rng.permutation(n_studies_total)
    patients: list[Patient] = []
    studies_out: list[StudyPlan] = []
    flat = 0
    for (patient, studies), mrn in zip(patient_draws, mrns, strict=True):
        patient = dataclasses.replace(patient, patient_id=f"MRN{int(mrn):08d}")
        patients.append(patient)
        for s in studies:
            study_idx = int(order[flat])
            age = int(
                (s["date"] - dt.datetime.strptime(patient.birth_date, "%Y%m%d").date()).days
                // 365.25
            )
            studies_out.append(
                StudyPlan(
                    study_idx=study_idx,
                    patient=dataclasses.replace(patient, institution=s["institution"]),
                    order=s["order"],
                    accession=f"{int(accessions[study_idx]):08d}",
                    study_uid=str(generate_uid(entropy_srcs=[digest, "study", str(study_idx)])),
                    study_date=s["date"].strftime("%Y%m%d"),
                    study_time=s["time"],
                    age=age,
                    views=s["views"],
                    truth=s["truth"],
                    prior=s["prior"],
                    referring=s["referring"],
                )
            )
            flat += 1
    studies_out.sort(key=lambda s: s.study_idx)
    return WorldPlan(spec=spec, patients=tuple(patients), studies=tuple(studies_out))


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

# Share of present findings the radiologist hedges on (-> label -1.0).
HEDGE_RATE = 0.1
# Share of reports with an impression only (no FINDINGS section).
IMPRESSION_ONLY_RATE = 0.1


@dataclass(frozen=True)
class Report:
    """A report and the labels it supports.

    Attributes:
        text: the raw multi-line report.
        labels: LABEL_COLUMNS -> 1.0 / 0.0 / -1.0 (uncertain: the report hedges a present finding).
        hedged: the findings whose every mention is hedged.
        has_findings_section: False for impression-only reports.
    """

    text: str
    labels: dict[str, float]
    hedged: tuple[str, ...]
    has_findings_section: bool


def exam_description(study: StudyPlan) -> str:
    """The EXAMINATION line, also written as the DICOM StudyDescription."""
    if "LL" in study.views:
        return "CHEST (PA AND LAT)"
    if study.truth.portable:
        return "CHEST PORT. LINE PLACEMENT" if study.truth.devices else "CHEST (PORTABLE AP)"
    return "CHEST (SINGLE VIEW)"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "markedly"}


def _effusion_words(f: Finding) -> tuple[str, str, str]:
    """(size, side, noun) e.g. ("small", "left", "pleural effusion")."""
    noun = "pleural effusions" if f.side == "bilateral" else "pleural effusion"
    return f.severity, f.side, noun


def _nodule_place(rng: np.random.Generator, f: Finding) -> str:
    zone = "upper" if f.location[1] < 0.35 else "mid" if f.location[1] < 0.65 else "lower"
    return _pick(rng, (LOBE_NAMES[f.lobe], f"{f.side} {zone} lung", f"{f.side} {zone} lung zone"))


def _nodule_size(rng: np.random.Generator, mm: float) -> str:
    if rng.random() < 0.5:
        return f"{mm:.0f} mm"
    return f"{mm / 10:.1f} cm"


def _sentence_positive(
    f: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    """One affirmative FINDINGS sentence for a present finding."""
    if f.name == "Cardiomegaly":
        adv, adj = _ADVERB[f.severity], f.severity if f.severity != "severe" else "marked"
        options = [
            f"The cardiac silhouette is {adv} enlarged.",
            f"Heart size is {adv} enlarged.",
            f"There is {adj} cardiomegaly.",
            f"{_cap(adj)} enlargement of the cardiac silhouette.",
            f"The heart is {adv} enlarged, with a cardiothoracic ratio of approx. {f.size:.2f}.",
            f"{_cap(adj)} cardiomegaly is noted.",
        ]
        if prior is not None:
            options += [
                f"Stable {adj} cardiomegaly.",
                f"The cardiac silhouette remains {adv} enlarged.",
            ]
        return _pick(rng, options)
    if f.name == "Pleural Effusion":
        size, side, noun = _effusion_words(f)
        verb = "are" if f.side == "bilateral" else "is"
        options = [
            f"There {verb} {'' if f.side == 'bilateral' else 'a '}{size} {side} {noun}.",
            f"{_cap(size)} {side} {noun}.",
            f"{_cap(size)} {side} {noun} {verb} present.",
        ]
        if f.severity == "small" and f.side != "bilateral":
            options.append(
                f"Blunting of the {side} costophrenic angle is consistent with a small pleural "
                "effusion."
            )
        if f.severity != "small":
            options.append(f"{_cap(size)} {side} {noun} with adjacent compressive atelectasis.")
        if study.truth.portable:
            options.append(f"{_cap(size)} layering {side} {noun}.")
        if prior is not None and prior.side == f.side:
            options += [
                f"Unchanged {size} {side} {noun}.",
                f"The {size} {side} {noun} {verb} stable.",
            ]
        elif study.prior is not None:
            options.append(f"New {size} {side} {noun}.")
        return _pick(rng, options)
    if f.name == "Pneumothorax":
        size = "tiny" if f.size < 0.07 and rng.random() < 0.5 else f.severity
        cm = f.size * 1.25 * _MM_PER_UNIT / 10
        options = [
            f"There is a {size} {f.side} apical pneumothorax.",
            f"{_cap(size)} {f.side} pneumothorax.",
            f"A {size} {f.side} pneumothorax is present, measuring approx. {cm:.1f} cm at the apex.",
            f"A visceral pleural line is seen at the {f.side} apex, consistent with a {size} "
            "pneumothorax.",
            f"{_cap(size)} {f.side} pneumothorax without mediastinal shift.",
        ]
        if prior is not None and prior.side == f.side:
            options.append(f"The {size} {f.side} pneumothorax is unchanged in size.")
        elif study.prior is not None:
            options.append(f"New {size} {f.side} pneumothorax.")
        return _pick(rng, options)
    if f.name == "Consolidation":
        lobe = LOBE_NAMES[f.lobe]
        adj = {"mild": "patchy", "moderate": "focal", "severe": "dense"}[f.severity]
        options = [
            f"Focal consolidation in the {lobe}.",
            f"There is {adj} consolidation in the {lobe}.",
            f"Patchy opacity in the {lobe} consistent with pneumonia.",
            f"{_cap(lobe)} airspace opacity, compatible with pneumonia.",
            f"Airspace consolidation is seen in the {lobe}.",
            f"{_cap(adj)} consolidation in the {lobe}, consistent with pneumonia in the "
            "appropriate clinical setting.",
        ]
        if f.lobe == "RML":
            options.append(
                "Opacity obscuring the right heart border, consistent with right middle lobe "
                "consolidation."
            )
        if f.lobe == "LLL":
            options.append("Retrocardiac opacity, consistent with left lower lobe consolidation.")
        if f.lobe in ("RLL", "LLL"):
            options.append(f"Consolidation at the {f.side} lung base.")
        return _pick(rng, options)
    if f.name == "Nodule":
        place, size = _nodule_place(rng, f), _nodule_size(rng, f.size)
        minor = f.size * float(rng.uniform(0.75, 0.95))
        options = [
            f"A {size} nodular opacity projects over the {place}.",
            f"There is a {size} nodule in the {place}.",
            f"Rounded {size} nodule in the {place}.",
            f"A nodular opacity in the {place} measures {f.size:.1f} x {minor:.1f} mm.",
        ]
        if prior is not None:
            options.append(f"The {size} pulmonary nodule in the {place} is again seen.")
        return _pick(rng, options)
    if f.name == "Edema":
        sev = f.severity
        options = {
            "mild": [
                "Mild pulmonary vascular congestion.",
                "Mild interstitial pulmonary edema.",
                "Pulmonary vascular congestion with mild interstitial edema.",
            ],
            "moderate": [
                "Moderate pulmonary edema.",
                "Pulmonary vascular congestion and interstitial edema.",
                "Perihilar haziness and vascular indistinctness consistent with moderate "
                "pulmonary edema.",
            ],
            "severe": [
                "Severe pulmonary edema with diffuse bilateral perihilar opacities.",
                "Marked perihilar haziness and interstitial opacities consistent with severe "
                "pulmonary edema.",
            ],
        }[sev]
        options = options + [
            f"Diffuse bilateral interstitial opacities consistent with {sev} pulmonary edema.",
            f"Increased interstitial markings and Kerley B lines, compatible with {sev} "
            "interstitial edema.",
        ]
        if prior is not None:
            options.append(f"Persistent {sev} pulmonary edema.")
        return _pick(rng, options)
    raise ValueError(f"unknown finding {f.name!r}; expected one of {FINDINGS}")


def _sentence_hedged(f: Finding, rng: np.random.Generator, study: StudyPlan) -> str:
    """A FINDINGS or IMPRESSION sentence that mentions a present finding with uncertainty."""
    if f.name == "Cardiomegaly":
        options = [
            "Possible mild cardiomegaly.",
            "Cardiomegaly cannot be excluded given the low lung volumes.",
            "The cardiac silhouette may be mildly enlarged.",
        ]
        if study.truth.portable:
            options.append(
                "The heart size is possibly enlarged, which may be accentuated by AP technique."
            )
        return _pick(rng, options)
    if f.name == "Pleural Effusion":
        size, side, noun = _effusion_words(f)
        return _pick(
            rng,
            [
                f"Possible {size} {side} {noun}.",
                f"A {size} {side} {noun} cannot be excluded.",
                f"Blunting of the {'bilateral' if side == 'bilateral' else side} costophrenic "
                f"{'angles' if side == 'bilateral' else 'angle'} may represent pleural effusion "
                "or pleural thickening.",
            ],
        )
    if f.name == "Pneumothorax":
        return _pick(
            rng,
            [
                f"Possible tiny {f.side} apical pneumothorax.",
                f"A small {f.side} apical pneumothorax cannot be excluded.",
                f"Questionable {f.side} apical pneumothorax.",
                f"Lucency at the {f.side} apex may represent a small pneumothorax.",
            ],
        )
    if f.name == "Consolidation":
        lobe = LOBE_NAMES[f.lobe]
        return _pick(
            rng,
            [
                f"Opacity in the {lobe} may represent atelectasis vs. pneumonia.",
                f"Subtle {lobe} opacity; early pneumonia cannot be excluded.",
                f"Possible {lobe} pneumonia.",
                f"Hazy opacity in the {lobe} could reflect atelectasis or possibly pneumonia.",
            ],
        )
    if f.name == "Nodule":
        place, size = _nodule_place(rng, f), _nodule_size(rng, f.size)
        options = [
            f"A {size} nodular opacity in the {place} may represent overlapping vessels vs. a "
            "true nodule.",
            f"Questionable nodular opacity in the {place}.",
        ]
        if f.location[1] > 0.6:
            options.append(
                f"Possible {size} nodule in the {place}, which may represent a nipple shadow."
            )
        return _pick(rng, options)
    if f.name == "Edema":
        return _pick(
            rng,
            [
                "Possible mild pulmonary vascular congestion.",
                "Mild interstitial prominence may reflect mild pulmonary edema.",
                "Mild pulmonary edema cannot be excluded.",
            ],
        )
    raise ValueError(f"unknown finding {f.name!r}; expected one of {FINDINGS}")


def _impression_positive(f: Finding, rng: np.random.Generator, prior: Finding | None) -> str:
    if f.name == "Cardiomegaly":
        adj = f.severity if f.severity != "severe" else "marked"
        return _pick(
            rng,
            [f"{_cap(adj)} cardiomegaly.", "Cardiomegaly."]
            + ([f"Stable {adj} cardiomegaly."] if prior is not None else []),
        )
    if f.name == "Pleural Effusion":
        size, side, noun = _effusion_words(f)
        return _pick(rng, [f"{_cap(size)} {side} {noun}.", f"{_cap(side)} {noun}, {size}."])
    if f.name == "Pneumothorax":
        text = _pick(
            rng, [f"{_cap(f.severity)} {f.side} pneumothorax.", f"{_cap(f.side)} pneumothorax."]
        )
        if rng.random() < 0.4:
            text += "  Findings were communicated to Dr. ___ by telephone at ___."
        return text
    if f.name == "Consolidation":
        lobe = LOBE_NAMES[f.lobe]
        return _pick(
            rng,
            [
                f"{_cap(lobe)} pneumonia.",
                f"{_cap(lobe)} consolidation, compatible with pneumonia.",
                f"Findings consistent with {lobe} pneumonia.",
            ],
        )
    if f.name == "Nodule":
        place, size = _nodule_place(rng, f), _nodule_size(rng, f.size)
        text = _pick(rng, [f"{_cap(size)} nodule in the {place}.", f"{_cap(place)} nodule."])
        if rng.random() < 0.6:
            text += "  " + _pick(
                rng,
                [
                    "Recommend chest CT for further characterization.",
                    "Nonurgent chest CT is recommended.",
                    "Comparison with prior imaging or CT is suggested.",
                ],
            )
        return text
    if f.name == "Edema":
        return _pick(
            rng,
            [
                f"{_cap(f.severity)} pulmonary edema.",
                f"Congestive heart failure with {f.severity} pulmonary edema.",
                f"Pulmonary vascular congestion and {f.severity} interstitial edema.",
            ],
        )
    raise ValueError(f"unknown finding {f.name!r}; expected one of {FINDINGS}")


def _resolution_sentence(f: Finding) -> str | None:
    """'Interval resolution of ...' for a finding the prior study had and this one lacks."""
    if f.name == "Pleural Effusion":
        return f"Interval resolution of the previously seen {f.side} pleural effusion."
    if f.name == "Pneumothorax":
        return f"Interval resolution of the previously seen {f.side} pneumothorax."
    if f.name == "Consolidation":
        return f"Interval resolution of the previously seen {LOBE_NAMES[f.lobe]} consolidation."
    if f.name == "Edema":
        return "Interval resolution of the previously seen pulmonary edema."
    return None


_NEGATIONS = {
    "Cardiomegaly": (
        "Heart size is normal.",
        "The cardiac silhouette is normal in size.",
        "Normal heart size.",
        "The heart is not enlarged.",
        "No cardiomegaly.",
        "The cardiomediastinal silhouette is within normal limits.",
    ),
    "Pleural Effusion": (
        "No pleural effusion.",
        "There is no pleural effusion.",
        "No pleural effusion is seen.",
    ),
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
    "Consolidation": (
        "No focal consolidation.",
        "The lungs are clear without focal consolidation.",
        "No evidence of pneumonia.",
        "There is no focal consolidation.",
    ),
    "Nodule": (
        "No suspicious pulmonary nodules.",
        "No focal nodular opacity.",
        "No pulmonary nodules or masses.",
    ),
    "Edema": (
        "No pulmonary edema.",
        "No pulmonary vascular congestion.",
        "There is no pulmonary edema.",
        "No evidence of pulmonary edema or vascular congestion.",
    ),
}
_NEGATION_RATE = {
    "Cardiomegaly": 0.65,
    "Pleural Effusion": 0.75,
    "Pneumothorax": 0.7,
    "Consolidation": 0.7,
    "Nodule": 0.2,
    "Edema": 0.4,
}
_NORMAL_IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary abnormality.",
    "No acute intrathoracic process.",
    "Normal chest radiograph.",
    "No radiographic evidence of pneumonia.",
    "No acute findings in the chest.",
)
_REASONS = {
    "Consolidation": ("fever and cough", "productive cough", "fever", "leukocytosis"),
    "Edema": ("shortness of breath", "dyspnea on exertion", "CHF exacerbation", "hypoxia"),
    "Cardiomegaly": ("shortness of breath", "dyspnea", "chest pain"),
    "Pleural Effusion": ("shortness of breath", "decreased breath sounds", "dyspnea"),
    "Pneumothorax": ("chest pain", "s/p fall", "trauma", "sudden onset dyspnea"),
    "Nodule": ("cough", "weight loss", "follow-up"),
    "": (
        "chest pain",
        "cough",
        "pre-operative evaluation",
        "fever",
        "shortness of breath",
        "hypoxia",
        "weakness",
        "syncope",
        "fall",
    ),
}
_QUESTIONS = (
    "evaluate for pneumonia",
    "eval for acute process",
    "assess for interval change",
    "? pneumonia",
    "evaluate for effusion",
    "r/o pneumothorax",
)
_DEVICE_SENTENCES = {
    "ett": (
        "Endotracheal tube terminates approx. {tip} cm above the carina.",
        "The endotracheal tube tip is {tip} cm above the carina.",
        "ET tube in standard position, {tip} cm above the carina.",
    ),
    "ngt": (
        "Enteric tube courses below the diaphragm with the tip in the stomach.",
        "Nasogastric tube tip is in the stomach.",
        "An orogastric tube extends into the stomach.",
    ),
    "cvc": (
        "{route} central venous catheter terminates in the mid SVC.",
        "{route} central line tip is at the cavoatrial junction.",
        "{route} central venous catheter ends in the low SVC.",
    ),
    "picc": (
        "{route} PICC line terminates in the lower SVC.",
        "{route} PICC tip projects over the cavoatrial junction.",
    ),
}
_ROUTES = {
    "right_ij": "Right internal jugular",
    "left_ij": "Left internal jugular",
    "right_subclavian": "Right subclavian",
    "left_subclavian": "Left subclavian",
    "right_arm": "Right-sided",
    "left_arm": "Left-sided",
}


def _indication(study: StudyPlan, rng: np.random.Generator) -> str:
    present = [f.name for f in study.truth.findings]
    key = _pick(rng, present) if present and rng.random() < 0.6 else ""
    reason = _pick(rng, _REASONS[key])
    if any(d.kind == "ett" for d in study.truth.devices) and rng.random() < 0.6:
        reason = "intubation, evaluate ETT placement"
    elif any(d.kind in ("cvc", "picc") for d in study.truth.devices) and rng.random() < 0.4:
        reason = "line placement"
    man = study.patient.sex == "M"
    sex = _pick(rng, ("man", "male") if man else ("woman", "female"))
    style = rng.random()
    if style < 0.45:
        text = f"___-year-old {sex} with {reason}"
    elif style < 0.7:
        text = f"___ year old {sex} with {reason}"
    elif style < 0.85:
        text = f"___{'M' if man else 'F'} with {reason}"
    else:
        text = _cap(reason)
    if rng.random() < 0.4:
        text += f"  // {_pick(rng, _QUESTIONS)}"
    return text + "."


def _comparison(study: StudyPlan, rng: np.random.Generator) -> str:
    if study.prior is None:
        return _pick(rng, ("None.", "___", "No prior studies available.", "None available."))
    return _pick(
        rng,
        (
            "___",
            "Chest radiograph from ___.",
            "Prior study of ___.",
            "Comparison is made to the chest radiograph from ___.",
            "___ chest radiograph.",
        ),
    )


def _technique(study: StudyPlan, rng: np.random.Generator) -> str:
    if "LL" in study.views:
        return _pick(rng, ("Chest PA and lateral", "PA and lateral views of the chest"))
    if study.truth.portable:
        return _pick(rng, ("Portable AP chest radiograph", "Single portable AP view of the chest"))
    return _pick(rng, ("Single frontal view of the chest", "PA view of the chest"))


def _wrap(text: str, width: int, indent: str = " ") -> list[str]:
    return [
        indent + line
        for line in textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)
    ]


def write_report(
    study: StudyPlan, rng: np.random.Generator, planted: dict[str, str] | None = None
) -> Report:
    """MIMIC-CXR style report text for a study, and the CheXpert-style labels it supports.

    `planted` (from `planted_identifiers`) adds sentences with identifiers to the findings and
    the impression, after all random draws, so the rest of the report is unchanged.

    Every present finding is described affirmatively, or (HEDGE_RATE of them) with hedges in
    every mention, which makes its label -1.0. Absent findings are 0.0 whether or not the report
    negates them (the truth is known here; CheXpert would leave unmentioned ones blank).
    """
    truth = study.truth
    present = list(truth.findings)
    hedged = {f.name for f in present if rng.random() < HEDGE_RATE}
    has_findings = rng.random() >= IMPRESSION_ONLY_RATE
    width = int(rng.integers(68, 80))
    prior_of = {
        f.name: (study.prior.get(f.name) if study.prior is not None else None) for f in present
    }

    def mention(f: Finding) -> str:
        if f.name in hedged:
            return _sentence_hedged(f, rng, study)
        return _sentence_positive(f, rng, prior_of[f.name], study)

    # FINDINGS: devices, lungs, pleura, heart and mediastinum, bones (order varies a little).
    lungs: list[str] = []
    pleura: list[str] = []
    heart: list[str] = []
    for f in present:
        group = (
            heart
            if f.name == "Cardiomegaly"
            else pleura
            if f.name
            in (
                "Pleural Effusion",
                "Pneumothorax",
            )
            else lungs
        )
        group.append(mention(f))
    absent = [name for name in FINDINGS if not truth.has(name)]
    negate = [name for name in absent if rng.random() < _NEGATION_RATE[name]]
    if study.prior is not None:
        for f in study.prior.findings:
            if not truth.has(f.name) and rng.random() < 0.5:
                sentence = _resolution_sentence(f)
                if sentence:
                    (pleura if f.name in ("Pleural Effusion", "Pneumothorax") else lungs).append(
                        sentence
                    )
    if not any(truth.has(n) for n in ("Consolidation", "Edema", "Nodule")) and rng.random() < 0.5:
        lungs.insert(0, _pick(rng, ("The lungs are clear.", "Lungs are well expanded and clear.")))
    if "Pleural Effusion" in negate and "Pneumothorax" in negate and rng.random() < 0.6:
        pleura.append(
            _pick(
                rng,
                (
                    "No pleural effusion or pneumothorax.",
                    "There is no pleural effusion or pneumothorax.",
                    "No pleural effusion or pneumothorax is seen.",
                ),
            )
        )
        negate = [n for n in negate if n not in ("Pleural Effusion", "Pneumothorax")]
    lungs_abnormal = any(truth.has(n) for n in ("Consolidation", "Edema", "Nodule"))
    for name in negate:
        options = _NEGATIONS[name]
        if lungs_abnormal:
            options = tuple(o for o in options if "clear" not in o)
        sentence = _pick(rng, options)
        target = (
            heart
            if name == "Cardiomegaly"
            else pleura
            if name
            in (
                "Pleural Effusion",
                "Pneumothorax",
            )
            else lungs
        )
        target.append(sentence)
    if rng.random() < 0.45:
        heart.append(
            _pick(
                rng,
                (
                    "Mediastinal contours are unremarkable.",
                    "The hilar contours are normal.",
                    "Mediastinal and hilar contours are within normal limits.",
                ),
            )
        )
    devices = [
        _pick(rng, _DEVICE_SENTENCES[d.kind]).format(tip=d.tip_cm, route=_ROUTES.get(d.route, ""))
        for d in truth.devices
    ]
    bones: list[str] = []
    if rng.random() < 0.3:
        bones.append(
            _pick(
                rng,
                (
                    "No acute osseous abnormality.",
                    "Visualized osseous structures are unremarkable.",
                    "Degenerative changes are noted in the thoracic spine."
                    if study.age > 55
                    else "No acute osseous abnormality.",
                ),
            )
        )
    blocks = [lungs, pleura, heart] if rng.random() < 0.6 else [heart, lungs, pleura]
    findings_sentences = devices + [s for block in blocks for s in block] + bones

    # IMPRESSION
    priority = (
        "Pneumothorax",
        "Consolidation",
        "Edema",
        "Pleural Effusion",
        "Cardiomegaly",
        "Nodule",
    )
    ordered = sorted(present, key=lambda f: priority.index(f.name))
    # an impression-only report must name every finding; otherwise it may summarise
    chosen = (
        ([f for f in ordered if rng.random() < 0.8] or ordered[:1]) if has_findings else ordered
    )
    items = [
        _sentence_hedged(f, rng, study)
        if f.name in hedged
        else _impression_positive(f, rng, prior_of[f.name])
        for f in chosen
    ]
    if not present:
        items = [_pick(rng, _NORMAL_IMPRESSIONS)]
        if not has_findings and rng.random() < 0.5:
            items[0] += "  " + _pick(
                rng, ("No pleural effusion or pneumothorax.", "Heart size is normal.")
            )
    elif (
        len(present) == 1
        and present[0].name == "Cardiomegaly"
        and present[0].name not in hedged
        and rng.random() < 0.5
    ):
        adj = present[0].severity if present[0].severity != "severe" else "marked"
        items = [f"{_cap(adj)} cardiomegaly without acute cardiopulmonary process."]
    if truth.devices and rng.random() < 0.4:
        items.append(
            _pick(
                rng, ("Lines and tubes in appropriate position.", "Support devices as described.")
            )
        )

    if planted is not None:
        patient_sentence = (
            f"Patient {planted['title']} {planted['patient_last']} (MRN {planted['patient_id']}, "
            f"DOB {planted['birth_date']}) examined upright."
        )
        if has_findings:
            findings_sentences = [*findings_sentences, patient_sentence]
        else:
            items = [*items, patient_sentence]
        items = [
            *items,
            f"Findings discussed with Dr. {planted['referring_last']} by telephone at "
            f"{planted['time']} on {planted['study_date']}, callback {planted['phone']}; "
            f"accession number {planted['accession']}.",
        ]
    lines = ["                                 FINAL REPORT"]
    lines.append(f" EXAMINATION:  {exam_description(study)}")
    lines.append("")
    lines += _wrap(f"INDICATION:  {_indication(study, rng)}", width)
    lines.append("")
    if rng.random() < 0.6:
        lines += _wrap(f"TECHNIQUE:  {_technique(study, rng)}", width)
        lines.append("")
    lines += _wrap(f"COMPARISON:  {_comparison(study, rng)}", width)
    lines.append("")
    if has_findings:
        lines.append(" FINDINGS:")
        lines.append("")
        if len(findings_sentences) > 4 and rng.random() < 0.35:
            cut = len(findings_sentences) // 2
            paragraphs = [findings_sentences[:cut], findings_sentences[cut:]]
        else:
            paragraphs = [findings_sentences]
        for paragraph in paragraphs:
            lines += _wrap("  ".join(paragraph), width)
            lines.append("")
    lines.append(" IMPRESSION:")
    lines.append("")
    if len(items) > 1 and rng.random() < 0.5:
        for i, item in enumerate(items, 1):
            lines += _wrap(f"{i}. {item}", width)
    else:
        lines += _wrap("  ".join(items), width)
    text = "\n".join(lines) + "\n"

    labels = {name: 0.0 for name in FINDINGS}
    for f in present:
        labels[f.name] = -1.0 if f.name in hedged else 1.0
    labels["No Finding"] = 0.0 if present else 1.0
    return Report(
        text=text,
        labels=labels,
        hedged=tuple(n for n in FINDINGS if n in hedged),
        has_findings_section=has_findings,
    )


def _write_planted(root: Path, plan: WorldPlan, planted: Sequence[dict[str, str] | None]) -> None:
    """`planted_identifiers.csv`: AccessionNumber, kind, value for each planted identifier."""
    rows = [
        {"AccessionNumber": s.accession, "kind": kind, "value": value}
        for s, p in zip(plan.studies, planted, strict=True)
        if p is not None
        for kind, value in p.items()
        if kind != "title"
    ]
    if rows:
        with open(root / PLANTED_NAME, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["AccessionNumber", "kind", "value"])
            writer.writeheader()
            writer.writerows(rows)


def report_rng(spec: WorldSpec, study: StudyPlan) -> np.random.Generator:
    """The random stream of a study's report (independent of pixels)."""
    return _rng(spec.seed, _TAG_REPORT, study.study_idx)


def planted_identifiers(spec: WorldSpec, study: StudyPlan) -> dict[str, str] | None:
    """The identifiers planted in this study's report text, or None (spec.text_identifier_rate).

    Values are those of the study's DICOM headers (patient surname and id, accession, birth
    date, referring physician) written as a hospital report writes them, plus a time and a phone
    number that exist only in the text. Names follow a title ("Ms. Novak", "Dr. Castillo"):
    a bare name without a title or cue is beyond the scrubber (docs/reports.md).
    """
    if not spec.text_identifier_rate:
        return None
    rng = _rng(spec.seed, _TAG_PLANT, study.study_idx)
    if rng.random() >= spec.text_identifier_rate:
        return None
    patient = study.patient
    last = patient.name.partition("^")[0]
    birth, day = patient.birth_date, study.study_date
    return {
        "title": "Ms." if patient.sex == "F" else "Mr.",
        "patient_last": last,
        "patient_id": patient.patient_id,
        "birth_date": f"{birth[4:6]}/{birth[6:8]}/{birth[:4]}",
        "accession": study.accession,
        "study_date": f"{day[4:6]}/{day[6:8]}/{day[:4]}",
        "referring_last": study.referring.partition("^")[0],
        "time": f"{int(rng.integers(7, 19)):02d}:{int(rng.integers(0, 60)):02d}",
        "phone": f"617-{int(rng.integers(200, 999))}-{int(rng.integers(0, 10000)):04d}",
    }


# --------------------------------------------------------------------------------------------
# Rendering (display space: float32 in [0, 1], bright = attenuating)
# --------------------------------------------------------------------------------------------

_F32 = np.float32
# The anatomy is rendered on a grid this fraction of the image size, then upsampled.
_RENDER_SCALE = 0.6


@dataclass(frozen=True)
class ImageNuisance:
    """Per-image acquisition and processing variation (everything that is not the truth).

    Geometry maps image coordinates to anatomy: `scale` is the size of the chest in the frame,
    `shift` moves it (fractions of half the longer side), `rotation_deg` turns it. Exposure maps
    the density d to display: `offset + gain * film(d) ** gamma` with the film-like curve
    `film(d) = (1 - exp(-contrast * d)) / (1 - exp(-contrast))`. `finding_scale` scales the
    conspicuity of every finding (derived from the spec's difficulty).
    """

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
    fs, ns = difficulty_scales(spec.difficulty)
    size = spec.image_size
    rows = _image_side(size, rng.uniform(0.8, 1.0))
    cols = _image_side(size, rng.uniform(0.8, 1.0))
    collimation = tuple(
        float(rng.uniform(0.01, 0.06)) if rng.random() < min(0.9, 0.45 * ns) else 0.0
        for _ in range(4)
    )
    return ImageNuisance(
        view=view,
        rows=rows,
        cols=cols,
        rotation_deg=float(np.clip(rng.normal(0.0, 2.5 * ns), -9.0, 9.0)),
        shift=(
            float(np.clip(rng.normal(0.0, 0.03 * ns), -0.1, 0.1)),
            float(np.clip(rng.normal(0.0, 0.03 * ns), -0.1, 0.1)),
        ),
        scale=float(np.clip(rng.normal(0.87, 0.06 * ns), 0.72, 1.0)),
        inspiration=float(rng.normal(0.0, 0.05 * ns)) + (0.05 if view == "AP" else 0.0),
        contrast=float(3.0 * np.exp(rng.normal(0.0, 0.1 * ns))),
        gain=float(np.exp(rng.normal(0.0, 0.09 * ns))),
        gamma=float(np.exp(rng.normal(0.0, 0.13 * ns))),
        offset=float(rng.normal(0.0, 0.035 * ns)),
        noise=float(rng.uniform(0.004, 0.02) * ns),
        unsharp=float(rng.uniform(0.0, 0.6) * ns),
        heel=(float(rng.normal(0.0, 0.02 * ns)), float(rng.normal(0.0, 0.02 * ns))),
        collimation=collimation,  # type: ignore[arg-type]
        collimation_value=0.95 if rng.random() < 0.6 else 0.03,
        marker=("L" if rng.random() < 0.7 else "R") if rng.random() < 0.85 else "",
        marker_corner=int(rng.integers(4)),
        electrodes=int(rng.integers(2, 6)) if view == "AP" and rng.random() < 0.6 else 0,
        markings=float(np.exp(rng.normal(0.0, 0.22 * ns))),
        haze=float(rng.uniform(0.0, 0.04) * ns),
        finding_scale=float(fs * np.exp(rng.normal(0.0, 0.1))),
    )


def _ramp(x: np.ndarray, width: float) -> np.ndarray:
    """A soft step from 0 (x << 0) to 1 (x >> 0) over `width` (cheaper than a sigmoid)."""
    return np.clip(x * _F32(1.0 / width) + _F32(0.5), _F32(0.0), _F32(1.0))


def _resize(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Bilinear resize of a float32 image (Pillow's C resampler: several times faster than scipy)."""
    from PIL import Image

    out = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize(
        (cols, rows), Image.Resampling.BILINEAR
    )
    return np.array(out, dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed at `sigma_px`, made at low resolution and upsampled."""
    h, w = shape
    f = max(1.0, sigma_px / 1.5)
    sh, sw = int(h / f) + 3, int(w / f) + 3
    small = rng.standard_normal((sh, sw), dtype=np.float32)
    small = ndimage.gaussian_filter(small, sigma_px / f, mode="wrap")
    small /= small.std() + 1e-6
    if f > 1:
        small = _resize(small, round(sh * f), round(sw * f))
    return small[:h, :w]


def _sub(base: int, k: int) -> np.random.Generator:
    return np.random.default_rng([base, k])


@dataclass(frozen=True)
class _Frame:
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
    def of(cls, nz: ImageNuisance) -> _Frame:
        theta = math.radians(nz.rotation_deg)
        return cls(
            rows=nz.rows,
            cols=nz.cols,
            radius=0.5 * max(nz.rows, nz.cols),
            scale=nz.scale,
            cos=math.cos(theta),
            sin=math.sin(theta),
            tx=nz.shift[0],
            ty=nz.shift[1],
        )

    @property
    def px(self) -> float:
        """One pixel in anatomical units."""
        return 1.0 / (self.radius * self.scale)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        x = (np.arange(self.cols, dtype=np.float32) - _F32((self.cols - 1) / 2)) / _F32(self.radius)
        y = (np.arange(self.rows, dtype=np.float32) - _F32((self.rows - 1) / 2)) / _F32(self.radius)
        xs = (x - _F32(self.tx))[None, :]
        ys = (y - _F32(self.ty))[:, None]
        k = _F32(1.0 / self.scale)
        u = (_F32(self.cos) * xs + _F32(self.sin) * ys) * k
        v = (_F32(-self.sin) * xs + _F32(self.cos) * ys) * k
        return u.astype(np.float32), v.astype(np.float32)

    def to_pixels(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anatomical (u, v) -> (row, col) pixel coordinates."""
        x = self.scale * (self.cos * u - self.sin * v) + self.tx
        y = self.scale * (self.sin * u + self.cos * v) + self.ty
        return y * self.radius + (self.rows - 1) / 2, x * self.radius + (self.cols - 1) / 2


def _bezier(points: Sequence[tuple[float, float]], n: int) -> tuple[np.ndarray, np.ndarray]:
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
    h, w = canvas.shape
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    fr, fc = rows - r0, cols - c0
    for dr, dc, wt in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        rr, cc = r0 + dr, c0 + dc
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        np.add.at(canvas, (rr[ok], cc[ok]), (weight * wt[ok]).astype(canvas.dtype))


def _stroke(
    canvas: np.ndarray,
    frame: _Frame,
    control: Sequence[tuple[float, float]],
    amplitude: float,
    offset_px: float = 0.0,
) -> None:
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


def _draw_devices(
    canvas: np.ndarray, frame: _Frame, truth: StudyTruth, anat: Anatomy, rng: np.random.Generator
) -> None:
    def j(scale: float = 0.02) -> float:
        return float(rng.normal(0.0, scale))

    carina = -0.36
    dome_l = anat.dome + 0.06
    for device in truth.devices:
        if device.kind == "ett":
            tip = carina - device.tip_cm * 10 / _MM_PER_UNIT
            path = [(0.01 + j(), -1.3), (0.02 + j(), -0.9), (0.01 + j(0.01), tip)]
            wall = 0.012 / frame.px
            _stroke(canvas, frame, path, 0.22, offset_px=-wall)
            _stroke(canvas, frame, path, 0.22, offset_px=wall)
        elif device.kind == "ngt":
            path = [
                (0.02 + j(), -1.3),
                (0.05 + j(), -0.3),
                (0.06 + j(), dome_l - 0.05),
                (0.3 + j(0.05), dome_l + 0.2),
            ]
            _stroke(canvas, frame, path, 0.3)
        elif device.kind == "cvc":
            tip_uv = (-0.07 + j(0.01), -0.2 + j(0.04))
            starts = {
                "right_ij": [(-0.22 + j(), -1.3), (-0.15 + j(), -0.75), (-0.1, -0.45)],
                "left_ij": [(0.22 + j(), -1.3), (0.16 + j(), -0.72), (0.02, -0.5)],
                "right_subclavian": [(-0.75 + j(), -0.72), (-0.4 + j(), -0.7), (-0.12, -0.55)],
                "left_subclavian": [(0.75 + j(), -0.72), (0.35 + j(), -0.68), (0.05, -0.55)],
            }
            _stroke(canvas, frame, [*starts.get(device.route, starts["right_ij"]), tip_uv], 0.28)
        elif device.kind == "picc":
            sign = -1.0 if device.route == "right_arm" else 1.0
            path = [
                (sign * 1.3, -0.55 + j()),
                (sign * 0.7, -0.75 + j()),
                (sign * 0.2, -0.6 + j()),
                (-0.06, -0.22),
            ]
            _stroke(canvas, frame, path, 0.25)


def _draw_electrodes(
    canvas: np.ndarray, frame: _Frame, count: int, rng: np.random.Generator
) -> None:
    """ECG electrodes (rings with a central snap) and their wires, on portable films."""
    h, w = canvas.shape
    for _ in range(count):
        cu, cv = float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.85, 0.35))
        r_px = 0.045 / frame.px
        pr, pc = frame.to_pixels(np.array([cu]), np.array([cv]))
        r0, c0 = int(pr[0] - r_px - 3), int(pc[0] - r_px - 3)
        r1, c1 = int(pr[0] + r_px + 4), int(pc[0] + r_px + 4)
        r0c, c0c, r1c, c1c = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
        if r1c > r0c and c1c > c0c:
            yy, xx = np.ogrid[r0c:r1c, c0c:c1c]
            d = np.sqrt((yy - pr[0]) ** 2 + (xx - pc[0]) ** 2).astype(np.float32)
            ring = np.clip(1.2 - np.abs(d - r_px), 0, 1) + np.clip(0.35 * r_px - d, 0, 1)
            canvas[r0c:r1c, c0c:c1c] += _F32(0.2) * ring
        end = (cu + float(rng.uniform(-0.6, 0.6)), -1.3 if rng.random() < 0.5 else 1.3)
        mid = ((cu + end[0]) / 2 + float(rng.normal(0, 0.3)), (cv + end[1]) / 2)
        _stroke(canvas, frame, [(cu, cv), mid, end], 0.12)


# Centres of consolidation by lobe: (lateral fraction of lung width, fraction of lung height).
_LOBE_CENTRES = {
    "RUL": (0.5, 0.2),
    "RML": (0.34, 0.66),
    "RLL": (0.62, 0.86),
    "LUL": (0.52, 0.32),
    "LLL": (0.62, 0.88),
}


def _frontal_density(
    truth: StudyTruth, anat: Anatomy, nz: ImageNuisance, frame: _Frame, base: int
) -> np.ndarray:
    """Projected density of a frontal chest (0 = air, ~0.5 = soft tissue, bone adds ~0.1)."""
    u, v = frame.grid()
    shape = u.shape
    px = frame.px
    e = 1.3 * px
    fs = nz.finding_scale
    right = u < 0  # the patient's right is on the image left
    a = np.abs(u)

    # --- lungs: a rounded apex over near-vertical lateral walls, cut below by the hemidiaphragm
    lw_side = {"right": anat.lung_width, "left": anat.lung_width * 1.02}
    dome_side = {"right": anat.dome + nz.inspiration, "left": anat.dome + nz.inspiration + 0.06}
    lw = np.where(right, _F32(lw_side["right"]), _F32(lw_side["left"]))
    dtop = np.where(right, _F32(dome_side["right"]), _F32(dome_side["left"]))
    ac = _F32(0.45) * lw  # the apex sits over the mid-clavicular line
    aw = lw - ac
    hh = 0.5
    vcen = anat.apex + hh
    t = np.clip((_F32(vcen) - v) * _F32(1 / hh), 0, 1)
    half = aw * np.sqrt(1 - t * t) * (1 + _F32(0.04) * np.clip(v - _F32(vcen), 0, None))
    q = (a - ac) / lw
    domev = dtop + np.where(q > 0, _F32(0.6), _F32(1.2)) * q * q
    lung = _ramp(half - np.abs(a - ac), e) * _ramp(domev - v, e) * _ramp(v - _F32(anat.apex), e)
    cp_side = {s: dome_side[s] + 0.6 * 0.55**2 for s in ("right", "left")}

    # --- heart: a tilted ellipse, ctr x thoracic width wide, a third of it right of midline
    cardio = truth.get("Cardiomegaly")
    ctr = cardio.size if cardio else anat.ctr
    if nz.view == "AP":
        ctr *= 1.06  # the AP projection magnifies the heart
    thorax = 2.0 * anat.lung_width * 1.01
    width = ctr * thorax
    hx = -0.34 * width + width / 2
    ct, st = math.cos(anat.heart_tilt), math.sin(anat.heart_tilt)
    ha = (width / 2) / math.sqrt(ct**2 + (anat.heart_aspect * st) ** 2)
    hb = ha * anat.heart_aspect
    vert = math.sqrt((ha * st) ** 2 + (hb * ct) ** 2)
    hy = dome_side["right"] + 0.12 - vert
    du, dv = u - _F32(hx), v - _F32(hy)
    hp = (du * _F32(ct) + dv * _F32(st)) * _F32(1 / ha)
    hq = (dv * _F32(ct) - du * _F32(st)) * _F32(1 / hb)
    hr2 = hp * hp + hq * hq
    heart_mask = _ramp((1 - hr2) * _F32(0.5 * hb), 1.5 * e)
    # below the diaphragm the heart merges into the abdomen
    heart_mask *= _ramp(domev + _F32(0.02) - v, 0.04)

    # --- mediastinum: SVC on the right, aortic knob on the left, widening into the heart
    mw = _F32(anat.mediastinum) * (1 + _F32(0.5) * np.clip((v + _F32(0.5)) * _F32(1 / 0.55), 0, 1))
    knob = _F32(0.055) * np.exp(-(((v + _F32(0.37)) * _F32(1 / 0.07)) ** 2))
    med_half = np.where(right, mw * _F32(0.95), mw + knob)
    med = _ramp(med_half - a, 1.5 * e)
    occupied = np.maximum(med * _F32(0.9), heart_mask * _F32(0.75))
    lung_eff = lung * (1 - occupied)

    hv = -0.08
    air_scale = np.ones(shape, dtype=np.float32)
    vessel_gain = np.ones(shape, dtype=np.float32)
    extra = np.zeros(shape, dtype=np.float32)

    # one smooth noise field, read at different places, serves several textures (it is the
    # most expensive part of rendering)
    clutter = _smooth_noise(_sub(base, 8), shape, max(1.0, 0.035 / px))
    vessels = _vessel_ridges(
        a - _F32(0.14), v - _F32(hv), np.where(right, _F32(0), _F32(31)), base, clutter
    )

    sides_of = {"right": ("right",), "left": ("left",), "bilateral": ("right", "left")}

    effusion = truth.get("Pleural Effusion")
    if effusion is not None:
        fill = float(np.clip(0.5 + 0.4 * fs, 0.4, 1.0))
        # supine (AP) effusions layer posteriorly: a veil rather than a meniscus
        soft = 0.12 if nz.view == "AP" else 0.022
        for s in sides_of[effusion.side]:
            side_mask = right if s == "right" else ~right
            cp = cp_side[s]
            h = effusion.size * (cp - anat.apex)
            top = _F32(cp) - _F32(h) * (_F32(0.3) + _F32(0.7) * (a * _F32(1 / lw_side[s])) ** 2)
            fluid = _ramp(v - top, soft) * side_mask
            air_scale *= 1 - _F32(fill) * fluid
            vessel_gain *= 1 - fluid

    ptx = truth.get("Pneumothorax")
    if ptx is not None:
        s = ptx.side
        side_mask = right if s == "right" else ~right
        cp = cp_side[s]
        # an even rim along the upper lung, tapering to nothing at the costophrenic angle
        taper = np.clip((_F32(cp) - v) * _F32(1 / (0.45 * (cp - anat.apex))), 0, 1)
        rim = _F32(ptx.size * (cp - anat.apex)) * taper
        # the collapsed lung's edge: the lateral wall and the apex pulled in by `rim`
        v_top = _F32(vcen) - _F32(hh) * np.sqrt(np.clip(1 - ((a - ac) / aw) ** 2, 0, 1))
        medial_taper = np.clip((a - ac + aw) / aw, 0, 1)  # no rim along the mediastinum
        edge_d = np.minimum(ac + half - a - rim, v - v_top - rim * medial_taper)
        gap = _ramp(-edge_d, e) * lung * side_mask
        line = np.exp(-((edge_d * _F32(1 / (0.9 * px))) ** 2)) * lung * side_mask
        line *= rim > _F32(2 * px)
        air_scale += _F32(0.18 * fs) * gap
        vessel_gain *= 1 - gap
        extra += _F32(0.09 * fs) * line + _F32(0.015 * fs) * (lung * side_mask - gap)

    edema = truth.get("Edema")
    if edema is not None:
        level = edema.size
        amp = 0.1 * level * fs
        haze = np.exp(
            -(((a - _F32(0.24)) * _F32(1 / 0.32)) ** 2 + ((v - _F32(hv)) * _F32(1 / 0.45)) ** 2)
        )
        fine = np.abs(_smooth_noise(_sub(base, 2), shape, max(1.0, 0.025 / px)))
        base_weight = np.clip((v - _F32(anat.apex)) * _F32(1 / 1.2), 0, 1)
        kerley = np.clip((np.cos(v * _F32(2 * math.pi / 0.03)) - _F32(0.7)) * 3, 0, 1)
        kerley *= _ramp(a - (ac + half - _F32(0.1)), 0.03) * _ramp(v - (domev - _F32(0.3)), 0.05)
        extra += lung_eff * (
            _F32(amp) * haze
            + _F32(0.2 * amp) * np.clip(fine, 0, 2) * base_weight
            + _F32(0.25 * amp) * kerley
        )
        vessel_gain *= _F32(1 + 0.4 * level)

    consolidation = truth.get("Consolidation")
    if consolidation is not None:
        s = "right" if consolidation.lobe.startswith("R") else "left"
        side_mask = right if s == "right" else ~right
        af, vf = _LOBE_CENTRES[consolidation.lobe]
        cx = af * lw_side[s]
        cy = anat.apex + vf * (dome_side[s] - anat.apex)
        r = consolidation.size
        crng = _sub(base, 1)
        lowf = _smooth_noise(crng, shape, max(1.0, 0.06 / px))
        midf = _smooth_noise(crng, shape, max(1.0, 0.022 / px))
        d2 = ((a - _F32(cx)) * _F32(1 / (1.15 * r))) ** 2 + ((v - _F32(cy)) * _F32(1 / r)) ** 2
        # confluent centre, ill-defined irregular margins, patchy inside
        blob = np.clip(_F32(1.0) - _F32(0.8) * d2 + _F32(0.35) * lowf, 0, 1)
        blob = blob * blob * (3 - 2 * blob)
        texture = _F32(0.65) + _F32(0.35) * np.clip(midf, -1, 1)
        amp = {"mild": 0.12, "moderate": 0.15, "severe": 0.18}[consolidation.severity] * fs
        cons = _F32(amp) * blob * texture * lung * side_mask
        # air bronchograms: the vessel ridges read dark inside the opacity
        extra += cons * (1 - _F32(0.6) * np.clip(vessels * _F32(2.5), 0, 1))
        vessel_gain *= 1 - np.clip(cons * _F32(6), 0, 1)

    nodule = truth.get("Nodule")
    if nodule is not None:
        s = nodule.side
        side_mask = right if s == "right" else ~right
        af, vf = nodule.location
        cx = af * lw_side[s]
        cy = anat.apex + vf * (dome_side[s] - anat.apex)
        r = nodule.size / (2 * _MM_PER_UNIT)
        d2 = ((a - _F32(cx)) ** 2 + (v - _F32(cy)) ** 2) * _F32(1 / r**2)
        amp = 0.14 * fs * float(_sub(base, 3).uniform(0.9, 1.1))
        ball = np.sqrt(np.clip(1 - d2, 0, 1)) * _ramp((1 - d2) * _F32(r / 2), e)
        extra += _F32(amp) * ball * side_mask

    # --- compose: soft tissue minus lung air, plus mediastinum, heart, bones, markings
    shoulder = _F32(-1.25) + _F32(0.5) * np.sqrt(np.clip((a - _F32(0.2)) * _F32(1 / 0.8), 0, 1))
    body = np.sqrt(np.clip(1 - (u * _F32(1 / anat.body_width)) ** 2, 0, 1))
    body *= _ramp(v - shoulder, 0.05)
    density = _F32(0.5 * anat.soft_tissue) * body
    # less air where the lung is thin: laterally, at the apex and over the bases
    depth = (
        (_F32(0.55) + _F32(0.45) * body)
        * (
            1
            - _F32(0.2) * np.clip((v - _F32(vcen)) * _F32(1 / 0.6), 0, 1)
            - _F32(0.25) * np.exp(-(((v - _F32(anat.apex)) * _F32(1 / 0.15)) ** 2))
        )
        * _F32(1 - 1.5 * nz.inspiration)
    )  # shallow inspiration: less air, denser lungs
    density -= _F32(0.36) * lung_eff * depth * air_scale
    heart_prof = np.sqrt(np.clip(1 - hr2, 0, 1))
    density += heart_mask * (_F32(0.02) + _F32(0.03) * heart_prof) + _F32(0.04) * med
    trachea = _ramp(_F32(0.028) - np.abs(u - _F32(0.01)), 1.5 * e) * _ramp(_F32(-0.36) - v, 2 * e)
    density -= _F32(0.06) * trachea
    spine = _ramp(_F32(0.07) - a, 1.5 * e)
    density += _F32(0.035) * spine * (_F32(0.7) + _F32(0.3) * np.cos(v * _F32(2 * math.pi / 0.1)))
    # posterior ribs arch laterally downwards; anterior ribs run down towards the midline
    sp = anat.rib_spacing
    cage = (
        _ramp(ac + half + _F32(0.07) - a, 3 * e)
        * _ramp(v - _F32(anat.apex - 0.08), 2 * e)
        * _ramp(domev + _F32(0.12) - v, 0.05)
        * _ramp(a - _F32(0.08), 2 * e)
    )
    w_post = v + _F32(0.12) * a - _F32(0.62) * a * a
    c_post = np.cos((w_post * _F32(1 / sp) - _F32(anat.rib_phase)) * _F32(2 * math.pi))
    ribs = np.clip((c_post - _F32(0.4)) * 5, 0, 1) - _F32(0.4) * np.clip(
        (c_post - _F32(0.8)) * 5, 0, 1
    )
    w_ant = v - _F32(0.5) * (lw - a)
    c_ant = np.cos((w_ant * _F32(1 / (1.2 * sp)) + _F32(anat.rib_phase * 0.7)) * _F32(2 * math.pi))
    ant = (
        np.clip((c_ant - _F32(0.6)) * 4, 0, 1)
        * _ramp(_F32(0.15) - v, 0.1)
        * _ramp(a - _F32(0.3), 0.05)
    )
    density += cage * (_F32(0.03) * ribs + _F32(0.01) * ant)
    s_cl = np.clip((a - _F32(0.05)) * _F32(1 / 0.65), 0, 1)
    vcl = _F32(-0.66) - _F32(0.2) * s_cl + _F32(0.06) * np.sin(s_cl * _F32(math.pi))
    clav = (
        _ramp(_F32(0.026) - np.abs(v - vcl), 1.5 * e)
        * _ramp(a - _F32(0.06), e)
        * _ramp(_F32(0.72) - a, 3 * e)
    )
    density += _F32(0.06) * clav
    hum2 = ((a - _F32(anat.body_width - 0.05)) ** 2 + (v + _F32(0.8)) ** 2) * _F32(1 / 0.17**2)
    density += _F32(0.08) * np.sqrt(np.clip(1 - hum2, 0, 1)) * body
    if anat.breast > 0.05:
        bc_v = dome_side["right"] + 0.02
        b2 = ((a - _F32(0.6) * lw) * _F32(1 / 0.42)) ** 2 + ((v - _F32(bc_v)) * _F32(1 / 0.24)) ** 2
        density += _F32(0.06 * anat.breast) * np.sqrt(np.clip(1 - b2, 0, 1))
    # stomach bubble and bowel gas under the left hemidiaphragm
    gas = np.clip(clutter[::-1, ::-1] - _F32(1.2), 0, 1)
    gas *= ~right * _ramp(v - (domev + _F32(0.06)), 0.04) * _ramp(_F32(0.75) - a, 0.1)
    g2 = ((u - _F32(0.33)) * _F32(1 / 0.08)) ** 2 + (
        (v - _F32(dome_side["left"] + 0.12)) * _F32(1 / 0.045)
    ) ** 2
    density -= _F32(0.08) * (_ramp(1 - g2, 0.3) + gas)
    hilum = np.exp(-((a - _F32(0.19)) ** 2 + ((v - _F32(hv)) * _F32(0.7)) ** 2) * _F32(1 / 0.01))
    mottle = np.roll(clutter, (shape[0] // 2, shape[1] // 3), axis=(0, 1))
    density += lung_eff * (
        _F32(0.05) * hilum * (_F32(0.6) + _F32(2.0) * vessels)
        + _F32(0.065 * nz.markings) * vessels * vessel_gain
        + _F32(0.012 * nz.markings) * mottle
    )
    density += extra
    if nz.haze > 0:
        # scatter and overlying soft tissue: a broad uneven veil that is not disease
        veil = _smooth_noise(_sub(base, 10), shape, max(1.0, 0.25 / px))
        density += _F32(nz.haze) * veil * body
    return density


def _vessel_ridges(
    dx: np.ndarray, dy: np.ndarray, phase: np.ndarray | np.floating, base: int, clutter: np.ndarray
) -> np.ndarray:
    """Lung markings: ridges of a noise texture sampled in polar coordinates around a hilum at
    (dx, dy) = 0, so that they run radially, thin out and fade towards the periphery."""
    shape = dx.shape
    tex = _sub(base, 0).standard_normal((64, 96), dtype=np.float32)
    tex = ndimage.gaussian_filter(tex, (1.0, 2.0), mode="wrap")
    tex /= tex.std() + 1e-6
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    coords = np.stack(
        [(theta * _F32(64 / math.pi * 1.5) + phase).ravel(), (rho * _F32(36)).ravel()]
    )
    ridge = ndimage.map_coordinates(tex, coords, order=1, mode="grid-wrap").reshape(shape)
    sharp = _F32(1.6) + _F32(5.0) * rho
    segments = np.clip(_F32(0.55) + _F32(0.6) * clutter, 0, 1)  # break ridges into branches
    return np.exp(-((ridge * sharp) ** 2)) * np.exp(-rho * _F32(1.7)) * segments


def _lateral_density(
    truth: StudyTruth, anat: Anatomy, nz: ImageNuisance, frame: _Frame, base: int
) -> np.ndarray:
    """A left lateral view: anterior on the image left, spine on the right. Simpler than PA."""
    u, v = frame.grid()
    shape = u.shape
    px = frame.px
    e = 1.3 * px
    fs = nz.finding_scale
    dome = anat.dome + nz.inspiration + 0.02
    apex = anat.apex + 0.03
    depth = anat.lung_width / 0.78  # a wide chest is also a deep one
    ant = _F32(-0.58 * depth) - _F32(0.08) * np.clip(v + _F32(0.3), 0, None)
    post = _F32(0.5 * depth) + _F32(0.06) * v
    v_top = _F32(apex) + _F32(0.55) * ((u - _F32(0.05)) * _F32(1 / 0.6)) ** 2
    slope = np.clip((u - ant) * _F32(1 / (1.1 * depth)), 0, 1)
    domev = _F32(dome - 0.08) + _F32(0.3) * slope * np.sqrt(slope)  # the posterior sulcus is deep
    lung = _ramp(u - ant, e) * _ramp(post - u, e) * _ramp(v - v_top, e) * _ramp(domev - v, e)

    cardio = truth.get("Cardiomegaly")
    grow = (cardio.size if cardio else anat.ctr) / 0.44
    hx, hy = -0.27 * depth + 0.06 * (grow - 1), dome - 0.1
    ha, hb = 0.3 * grow * depth, 0.26 * (0.85 + 0.15 * grow)
    ct, st = math.cos(-0.5), math.sin(-0.5)
    du, dv = u - _F32(hx), v - _F32(hy)
    hp = (du * _F32(ct) + dv * _F32(st)) * _F32(1 / ha)
    hq = (dv * _F32(ct) - du * _F32(st)) * _F32(1 / hb)
    hr2 = hp * hp + hq * hq
    heart_mask = _ramp((1 - hr2) * _F32(0.5 * hb), 1.5 * e) * _ramp(domev + _F32(0.02) - v, 0.04)
    lung_eff = lung * (1 - _F32(0.8) * heart_mask)

    air_scale = np.ones(shape, dtype=np.float32)
    extra = np.zeros(shape, dtype=np.float32)
    hx0, hy0 = 0.02, -0.12
    clutter = _smooth_noise(_sub(base, 8), shape, max(1.0, 0.035 / px))
    vessels = _vessel_ridges(u - _F32(hx0), v - _F32(hy0), _F32(0), base, clutter)
    vessel_gain = _F32(nz.markings)

    effusion = truth.get("Pleural Effusion")
    if effusion is not None:
        # fluid gathers in the posterior costophrenic sulcus, rising posteriorly (a meniscus);
        # one side of two superimposed lungs shows less than both
        fill = float(np.clip(0.5 + 0.4 * fs, 0.4, 1.0)) * (
            1.0 if effusion.side == "bilateral" else 0.6
        )
        cp = dome + 0.22
        h = effusion.size * (cp - apex)
        top = _F32(cp) - _F32(h) * (_F32(0.25) + _F32(0.75) * slope * slope)
        fluid = _ramp(v - top, 0.025)
        air_scale *= 1 - _F32(fill) * fluid
    consolidation = truth.get("Consolidation")
    if consolidation is not None:
        centre = {
            "RUL": (-0.1, apex + 0.3),
            "LUL": (-0.2, apex + 0.4),
            "RML": (-0.35, dome - 0.22),
        }.get(consolidation.lobe, (0.3, dome - 0.05))
        r = consolidation.size
        lowf = _smooth_noise(_sub(base, 1), shape, max(1.0, 0.05 / px))
        d2 = ((u - _F32(centre[0])) * _F32(1 / (1.2 * r))) ** 2 + (
            (v - _F32(centre[1])) * _F32(1 / r)
        ) ** 2
        blob = np.clip(_F32(1.0) - _F32(0.8) * d2 + _F32(0.35) * lowf, 0, 1)
        amp = {"mild": 0.08, "moderate": 0.1, "severe": 0.12}[consolidation.severity] * fs
        extra += _F32(amp) * blob * blob * (3 - 2 * blob) * lung
    nodule = truth.get("Nodule")
    if nodule is not None:
        af, vf = nodule.location
        cu = -0.45 * depth + af * 0.9 * depth
        cv = apex + vf * (dome - apex)
        r = nodule.size / (2 * _MM_PER_UNIT)
        d2 = ((u - _F32(cu)) ** 2 + (v - _F32(cv)) ** 2) * _F32(1 / r**2)
        extra += _F32(0.1 * fs) * np.sqrt(np.clip(1 - d2, 0, 1))
    edema = truth.get("Edema")
    hil2 = (u - _F32(hx0)) ** 2 + (v - _F32(hy0)) ** 2
    if edema is not None:
        extra += _F32(0.08 * edema.size * fs) * np.exp(-hil2 * _F32(1 / 0.12)) * lung_eff
        vessel_gain *= _F32(1 + 0.4 * edema.size)

    body = np.sqrt(np.clip(1 - ((u - _F32(0.05)) * _F32(1 / (0.92 * depth))) ** 2, 0, 1))
    density = _F32(0.56 * anat.soft_tissue) * body
    density -= _F32(0.36) * lung_eff * air_scale * (_F32(0.7) + _F32(0.3) * body)
    density += heart_mask * (_F32(0.02) + _F32(0.03) * np.sqrt(np.clip(1 - hr2, 0, 1)))
    u_spine = _F32(0.66 * depth) + _F32(0.05) * v
    column = _ramp(_F32(0.075) - np.abs(u - u_spine), 1.5 * e)
    blocks = np.clip((np.cos(v * _F32(2 * math.pi / 0.12)) + _F32(0.7)) * 3, 0, 1)
    density += column * (_F32(0.03) + _F32(0.06) * blocks)
    sternum = _ramp(_F32(0.022) - np.abs(u - (ant - _F32(0.07))), 1.5 * e)
    density += _F32(0.05) * sternum * _ramp(_F32(0.3) - v, 0.05) * _ramp(v + _F32(0.75), 0.05)
    u_trachea = _F32(-0.1) + _F32(0.12 / 0.8) * (v + _F32(1.1))
    trachea = _ramp(_F32(0.028) - np.abs(u - u_trachea), 1.5 * e) * _ramp(_F32(-0.3) - v, e)
    density -= _F32(0.06) * trachea
    ribs = np.clip((np.cos((v - _F32(0.3) * u) * _F32(2 * math.pi / 0.13)) - _F32(0.7)) * 3, 0, 1)
    ribs *= _ramp(u + _F32(0.1), 0.1)  # posterior ribs overlap the back of the lungs
    hilum = np.exp(-hil2 * _F32(1 / 0.008))
    density += lung * (_F32(0.015) * ribs + _F32(0.06) * vessels * vessel_gain + _F32(0.05) * hilum)
    density += extra
    if nz.haze > 0:
        density += _F32(nz.haze) * _smooth_noise(_sub(base, 10), shape, max(1.0, 0.25 / px)) * body
    return density


_GLYPHS = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
}


def _detector(density: np.ndarray, nz: ImageNuisance, rng: np.random.Generator) -> np.ndarray:
    """Exposure, processing, noise, collimation and the laterality marker -> display [0, 1]."""
    h, w = density.shape
    mu = _F32(nz.contrast)
    film = (1 - np.exp(-mu * np.clip(density, 0, None))) * _F32(1 / (1 - math.exp(-nz.contrast)))
    x = np.power(film, _F32(nz.gamma)) * _F32(nz.gain) + _F32(nz.offset)
    if nz.unsharp > 0:
        # modality processing boosts local contrast (an unsharp mask with a wide kernel)
        # the blur is wide, so it is computed at a quarter of the resolution
        sh, sw = max(8, h // 4), max(8, w // 4)
        size = max(3, int(0.08 * max(sh, sw)))
        small = _resize(x, sh, sw)
        small = ndimage.uniform_filter(
            ndimage.uniform_filter(small, size, mode="nearest"), size, mode="nearest"
        )
        x += _F32(nz.unsharp) * (x - _resize(small, h, w))
    if nz.heel != (0.0, 0.0):
        gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * _F32(nz.heel[0])
        gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * _F32(nz.heel[1])
        x += gx + gy
    if nz.noise > 0:
        x += _F32(nz.noise) * rng.standard_normal((h, w), dtype=np.float32)
    top, bottom, left, right = (
        int(round(f * n)) for f, n in zip(nz.collimation, (h, h, w, w), strict=True)
    )
    if top or bottom or left or right:
        inside_r = _ramp(np.arange(h, dtype=np.float32) - _F32(top), 1.0) * _ramp(
            _F32(h - 1 - bottom) - np.arange(h, dtype=np.float32), 1.0
        )
        inside_c = _ramp(np.arange(w, dtype=np.float32) - _F32(left), 1.0) * _ramp(
            _F32(w - 1 - right) - np.arange(w, dtype=np.float32), 1.0
        )
        inside = inside_r[:, None] * inside_c[None, :]
        x = x * inside + _F32(nz.collimation_value) * (1 - inside)
    if nz.marker:
        glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[nz.marker]], dtype=bool)
        k = max(1, round(0.045 * h / 7))
        glyph = np.kron(glyph, np.ones((k, k), dtype=bool))
        gh, gw = glyph.shape
        margin_r, margin_c = top + int(0.03 * h), left + int(0.03 * w)
        r0 = margin_r if nz.marker_corner < 2 else h - bottom - int(0.03 * h) - gh
        c0 = margin_c if nz.marker_corner % 2 == 0 else w - right - int(0.03 * w) - gw
        r0, c0 = int(np.clip(r0, 0, h - gh)), int(np.clip(c0, 0, w - gw))
        patch = x[r0 : r0 + gh, c0 : c0 + gw]
        patch[glyph] = _F32(0.97)
    return np.clip(x, 0, 1).astype(np.float32, copy=False)


def render_image(
    truth: StudyTruth, anatomy: Anatomy, nuisance: ImageNuisance, rng: np.random.Generator
) -> np.ndarray:
    """One image in display space: float32 [rows, cols] in [0, 1], bright = attenuating.

    A pure function of its arguments. Each component draws from its own sub-stream of `rng`, so
    that rendering the same (anatomy, nuisance, rng) with and without a finding differs only
    where the finding is.
    """
    frame = _Frame.of(nuisance)
    base = int(rng.integers(0, 2**62))
    # The anatomy is smooth: render it on a coarser grid and upsample; devices, noise and
    # processing are added at full resolution.
    rows, cols = nuisance.rows, nuisance.cols
    lo_rows = max(round(rows * _RENDER_SCALE), min(rows, 48))
    lo_cols = max(round(cols * _RENDER_SCALE), min(cols, 48))
    coarse = dataclasses.replace(
        frame,
        rows=lo_rows,
        cols=lo_cols,
        radius=frame.radius * (lo_rows / rows + lo_cols / cols) / 2,
    )
    if nuisance.view == "LL":
        density = _lateral_density(truth, anatomy, nuisance, coarse, base)
    elif nuisance.view in VIEWS_FRONTAL:
        density = _frontal_density(truth, anatomy, nuisance, coarse, base)
    else:
        raise ValueError(f"view {nuisance.view!r} is not one of PA, AP, LL")
    density = _resize(density, rows, cols)
    if nuisance.view != "LL" and (truth.devices or nuisance.electrodes):
        canvas = np.zeros_like(density)
        _draw_devices(canvas, frame, truth, anatomy, _sub(base, 4))
        _draw_electrodes(canvas, frame, nuisance.electrodes, _sub(base, 5))
        density += canvas
    return _detector(density, nuisance, _sub(base, 6))


def render_study_images(
    study: StudyPlan, spec: WorldSpec
) -> list[tuple[ImageNuisance, np.ndarray]]:
    """Every image of a study, each seeded from (seed, study index, image index)."""
    out = []
    for image_idx, view in enumerate(study.views):
        nuisance = sample_nuisance(
            view, study.truth, spec, _rng(spec.seed, _TAG_NUISANCE, study.study_idx, image_idx)
        )
        image = render_image(
            study.truth,
            study.patient.anatomy,
            nuisance,
            _rng(spec.seed, _TAG_RENDER, study.study_idx, image_idx),
        )
        out.append((nuisance, image))
    return out


# --------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageEncoding:
    """How a display image becomes stored values.

    Display 0..1 maps linearly onto stored values low..high (MONOCHROME2) or high..low
    (MONOCHROME1); the window, in rescaled (modality) units, covers that range up to a small
    jitter, so modality LUT -> window -> [0, 1] -> MONOCHROME1 inversion gives the display
    image back. `window=None` leaves the file without a VOI (a decoder must pick a window).
    """

    modality: str = "DX"
    photometric: str = "MONOCHROME2"
    bits_stored: int = 12
    slope: float = 1.0
    intercept: float = 0.0
    low: int = 0
    high: int = 4095
    window: tuple[float, float] | None = (2048.0, 4096.0)
    implicit_vr: bool = False
    manufacturer: str = _MANUFACTURERS[0]


def sample_encoding(rng: np.random.Generator) -> ImageEncoding:
    bits = int(_choice(rng, (8, 10, 12, 14, 16), (0.15, 0.2, 0.3, 0.2, 0.15)))
    top = 2**bits - 1
    slope = float(_choice(rng, (1.0, 1.0, 0.5, 2.0)))
    r = rng.random()
    intercept = 0.0 if r < 0.6 else -float(2 ** (bits - 4)) if r < 0.8 else -float(2 ** (bits - 1))
    low = int(round(rng.uniform(0.0, 0.12) * top))
    high = int(round(rng.uniform(0.85, 1.0) * top))
    window: tuple[float, float] | None = None
    if rng.random() < 0.9:
        m_lo, m_hi = slope * low + intercept, slope * high + intercept
        span = m_hi - m_lo
        lo = m_lo + float(rng.uniform(-0.03, 0.03)) * span
        hi = m_hi + float(rng.uniform(-0.03, 0.03)) * span
        window = (round((lo + hi) / 2 + 0.5, 2), round(hi - lo + 1, 2))
    return ImageEncoding(
        modality="DX" if rng.random() < 0.5 else "CR",
        photometric="MONOCHROME1" if rng.random() < 1 / 3 else "MONOCHROME2",
        bits_stored=bits,
        slope=slope,
        intercept=intercept,
        low=low,
        high=high,
        window=window,
        implicit_vr=bool(rng.random() < 0.2),
        manufacturer=_choice(rng, _MANUFACTURERS),
    )


def encode_image(image: np.ndarray, enc: ImageEncoding) -> np.ndarray:
    """Display image [0, 1] -> stored values (uint8 for 8 bits stored, else uint16)."""
    span = enc.high - enc.low
    x = np.clip(image, 0, 1).astype(np.float32)  # exact enough for 16 bits (24-bit mantissa)
    stored = enc.low + x * span if enc.photometric == "MONOCHROME2" else enc.high - x * span
    dtype = np.uint8 if enc.bits_stored == 8 else np.uint16
    return np.clip(np.rint(stored), 0, 2**enc.bits_stored - 1).astype(dtype)


def _ds(value: float) -> str:
    """A Decimal String value with at most 16 characters and no float noise."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def image_uids(spec_digest: str, study_idx: int, image_idx: int) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID), deterministic from the spec and the counters."""
    series = generate_uid(entropy_srcs=[spec_digest, "series", str(study_idx), str(image_idx)])
    sop = generate_uid(entropy_srcs=[spec_digest, "sop", str(study_idx), str(image_idx)])
    return str(series), str(sop)


def build_dataset(
    study: StudyPlan,
    image_idx: int,
    nuisance: ImageNuisance,
    enc: ImageEncoding,
    stored: np.ndarray,
    spec_digest: str,
) -> Dataset:
    series_uid, sop_uid = image_uids(spec_digest, study.study_idx, image_idx)
    sop_class = _DX_PRESENTATION_STORAGE if enc.modality == "DX" else _CR_STORAGE
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(_IMPLICIT_LE if enc.implicit_vr else _EXPLICIT_LE)
    meta.ImplementationClassUID = UID(_IMPLEMENTATION_UID)
    meta.ImplementationVersionName = _IMPLEMENTATION_NAME

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession
    ds.Modality = enc.modality
    if enc.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = enc.manufacturer
    ds.InstitutionName = study.patient.institution
    ds.ReferringPhysicianName = study.referring
    ds.StudyDescription = exam_description(study)
    ds.SeriesDescription = f"CHEST {nuisance.view}"
    ds.PatientName = study.patient.name
    ds.PatientID = study.patient.patient_id
    ds.PatientBirthDate = study.patient.birth_date
    ds.PatientSex = study.patient.sex
    ds.PatientAge = f"{min(study.age, 999):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = nuisance.view
    ds.PatientOrientation = ["P", "F"] if nuisance.view == "LL" else ["L", "F"]
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ""
    ds.SeriesNumber = image_idx + 1
    ds.InstanceNumber = 1
    spacing = _ds(_MM_PER_UNIT / (0.5 * max(nuisance.rows, nuisance.cols) * nuisance.scale))
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.set_pixel_data(stored, enc.photometric, enc.bits_stored, generate_instance_uid=False)
    ds.RescaleIntercept = _ds(enc.intercept)
    ds.RescaleSlope = _ds(enc.slope)
    ds.RescaleType = "US"
    if enc.window is not None:
        ds.WindowCenter = _ds(enc.window[0])
        ds.WindowWidth = _ds(enc.window[1])
        ds.VOILUTFunction = "LINEAR"
    if enc.modality == "DX":
        # DX for presentation states the inversion of MONOCHROME1 again here (PS3.3 C.8.11.6):
        # it is the same inversion, not a second one.
        ds.PresentationLUTShape = "INVERSE" if enc.photometric == "MONOCHROME1" else "IDENTITY"
    return ds


def _write_study(task: tuple[WorldSpec, StudyPlan, str]) -> int:
    spec, study, root = task
    digest = spec.digest()
    folder = Path(root) / study.folder
    folder.mkdir(parents=True, exist_ok=True)
    for image_idx, (nuisance, image) in enumerate(render_study_images(study, spec)):
        enc = sample_encoding(_rng(spec.seed, _TAG_ENCODE, study.study_idx, image_idx))
        ds = build_dataset(study, image_idx, nuisance, enc, encode_image(image, enc), digest)
        ds.save_as(folder / f"i{image_idx:02d}.dcm", enforce_file_format=True)
    return len(study.views)


# --------------------------------------------------------------------------------------------
# The world on disk
# --------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _truth_row(study: StudyPlan, report: Report) -> dict[str, Any]:
    t = study.truth
    cardio, eff, ptx = t.get("Cardiomegaly"), t.get("Pleural Effusion"), t.get("Pneumothorax")
    cons, nod, edema = t.get("Consolidation"), t.get("Nodule"), t.get("Edema")
    return {
        "AccessionNumber": study.accession,
        "StudyInstanceUID": study.study_uid,
        "PatientID": study.patient.patient_id,
        "study_folder": study.folder,
        "views": "|".join(study.views),
        "portable": int(t.portable),
        "devices": "|".join(f"{d.kind}:{d.route}" if d.route else d.kind for d in t.devices),
        "follow_up": int(study.prior is not None),
        "cardiothoracic_ratio": round(cardio.size if cardio else study.patient.anatomy.ctr, 3),
        "cardiomegaly": int(cardio is not None),
        "cardiomegaly_severity": cardio.severity if cardio else "",
        "effusion": int(eff is not None),
        "effusion_side": eff.side if eff else "",
        "effusion_severity": eff.severity if eff else "",
        "effusion_height": round(eff.size, 3) if eff else "",
        "pneumothorax": int(ptx is not None),
        "pneumothorax_side": ptx.side if ptx else "",
        "pneumothorax_severity": ptx.severity if ptx else "",
        "pneumothorax_rim": round(ptx.size, 3) if ptx else "",
        "consolidation": int(cons is not None),
        "consolidation_lobe": cons.lobe if cons else "",
        "consolidation_severity": cons.severity if cons else "",
        "nodule": int(nod is not None),
        "nodule_side": nod.side if nod else "",
        "nodule_lobe": nod.lobe if nod else "",
        "nodule_size_mm": nod.size if nod else "",
        "nodule_x": round(nod.location[0], 3) if nod else "",
        "nodule_y": round(nod.location[1], 3) if nod else "",
        "edema": int(edema is not None),
        "edema_severity": edema.severity if edema else "",
        "hedged": "|".join(report.hedged),
        "report_has_findings": int(report.has_findings_section),
    }


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_tables(root: Path, plan: WorldPlan, reports: Sequence[Report]) -> None:
    _write_csv(
        root / "reports.csv",
        ("AccessionNumber", "StudyInstanceUID", "report"),
        ((s.accession, s.study_uid, r.text) for s, r in zip(plan.studies, reports, strict=True)),
    )
    _write_csv(
        root / "labels.csv",
        ("AccessionNumber", "StudyInstanceUID", *LABEL_COLUMNS),
        (
            (s.accession, s.study_uid, *(_fmt(r.labels[c]) for c in LABEL_COLUMNS))
            for s, r in zip(plan.studies, reports, strict=True)
        ),
    )
    truth_rows = [_truth_row(s, r) for s, r in zip(plan.studies, reports, strict=True)]
    header = list(truth_rows[0])
    _write_csv(root / "truth.csv", header, ([row[k] for k in header] for row in truth_rows))


# Per category: queries (distinct patients) and candidates. ConVIRT's CheXpert set has 8 x 200
# candidates and 10 queries per category; more queries here because evaluation keeps only the
# held-out splits' share of each list (about 30% of the patients). Query patients are at most
# RETRIEVAL_QUERY_SHARE of all patients, so that small worlds keep candidates.
RETRIEVAL_QUERIES_PER_CATEGORY = 30
RETRIEVAL_QUERY_SHARE = 0.3
RETRIEVAL_CANDIDATES_PER_CATEGORY = 200
RETRIEVAL_QUERIES_FILE = "retrieval_queries.csv"
RETRIEVAL_CANDIDATES_FILE = "retrieval_candidates.csv"


def retrieval_lists(
    plan: WorldPlan,
    reports: Sequence[Report],
    n_query: int = RETRIEVAL_QUERIES_PER_CATEGORY,
    n_candidate: int = RETRIEVAL_CANDIDATES_PER_CATEGORY,
    query_share: float = RETRIEVAL_QUERY_SHARE,
) -> tuple[list[tuple[str, str, str]], list[tuple[Any, ...]]]:
    """Category retrieval lists in the shape of ConVIRT's CheXpert 8x200 set.

    For every label column (the six findings and No Finding), frontal images of studies labelled
    positive, drawn in random order with the exclusively positive studies first (as in the
    CheXpert set, whose images are positive for their category only; here an edema study is
    rarely exclusive, so others follow). One image per study (its first frontal view). Queries
    come from distinct patients (at most `query_share` of all patients, `n_query` per category),
    and no candidate shares a patient with any query, so that no query finds its own patient.
    Uncertain (-1) studies are never drawn for that category.

    Returns:
        (queries, candidates): rows (Variable, Path, AccessionNumber) and rows (Path,
        AccessionNumber, *LABEL_COLUMNS); Path is relative to the dicom folder.
    """
    rng = _rng(plan.spec.seed, _TAG_RETRIEVAL)
    frontal: dict[int, str] = {}
    for study in plan.studies:
        for image_idx, view in enumerate(study.views):
            if view in VIEWS_FRONTAL:
                frontal[study.study_idx] = f"s{study.study_idx:06d}/i{image_idx:02d}.dcm"
                break
    label_of = {s.study_idx: r.labels for s, r in zip(plan.studies, reports, strict=True)}

    def ordered(category: str) -> list[StudyPlan]:
        positive = [
            s
            for s in plan.studies
            if s.study_idx in frontal and label_of[s.study_idx][category] == 1.0
        ]
        only = {
            s.study_idx
            for s in positive
            if all(label_of[s.study_idx][c] == 0.0 for c in LABEL_COLUMNS if c != category)
        }
        exclusive = [s for s in positive if s.study_idx in only]
        rest = [s for s in positive if s.study_idx not in only]
        return [exclusive[i] for i in rng.permutation(len(exclusive))] + [
            rest[i] for i in rng.permutation(len(rest))
        ]

    queries: list[tuple[str, str, str]] = []
    query_patients: set[int] = set()
    orders = {c: ordered(c) for c in LABEL_COLUMNS}
    per_category = min(n_query, int(query_share * len(plan.patients) / len(LABEL_COLUMNS)))
    for category in LABEL_COLUMNS:
        taken = 0
        for study in orders[category]:
            if taken == per_category:
                break
            if study.patient.index in query_patients:
                continue
            query_patients.add(study.patient.index)
            queries.append((category, frontal[study.study_idx], study.accession))
            taken += 1
    chosen: list[StudyPlan] = []
    seen: set[int] = set()
    for category in LABEL_COLUMNS:
        taken = 0
        for study in orders[category]:
            if taken == n_candidate:
                break
            if study.patient.index in query_patients or study.study_idx in seen:
                continue
            seen.add(study.study_idx)
            chosen.append(study)
            taken += 1
    candidates = [
        (
            frontal[s.study_idx],
            s.accession,
            *(_fmt(label_of[s.study_idx][c]) for c in LABEL_COLUMNS),
        )
        for s in chosen
    ]
    return queries, candidates


def _write_retrieval_lists(root: Path, plan: WorldPlan, reports: Sequence[Report]) -> None:
    queries, candidates = retrieval_lists(plan, reports)
    _write_csv(root / RETRIEVAL_QUERIES_FILE, ("Variable", "Path", "AccessionNumber"), queries)
    _write_csv(
        root / RETRIEVAL_CANDIDATES_FILE, ("Path", "AccessionNumber", *LABEL_COLUMNS), candidates
    )


def _world_meta(plan: WorldPlan, reports: Sequence[Report]) -> dict[str, Any]:
    n = len(plan.studies)
    prevalence = {name: sum(s.truth.has(name) for s in plan.studies) / n for name in FINDINGS}
    prevalence["No Finding"] = sum(not s.truth.findings for s in plan.studies) / n
    n_lateral = sum(v == "LL" for s in plan.studies for v in s.views)
    n_images = sum(len(s.views) for s in plan.studies)
    return {
        "generator_version": GENERATOR_VERSION,
        "spec": plan.spec.to_json(),
        "counts": {
            "patients": len(plan.patients),
            "studies": n,
            "images": n_images,
            "frontal": n_images - n_lateral,
            "lateral": n_lateral,
        },
        "prevalence": {k: round(v, 6) for k, v in prevalence.items()},
        "uncertain": {c: sum(r.labels[c] == -1.0 for r in reports) for c in FINDINGS},
        "files": {
            "dicom": "dicom/s{study:06d}/i{image:02d}.dcm",
            "reports": "reports.csv",
            "labels": "labels.csv",
            "truth": "truth.csv",
            "retrieval_queries": RETRIEVAL_QUERIES_FILE,
            "retrieval_candidates": RETRIEVAL_CANDIDATES_FILE,
        },
    }


def _summary(root: Path, meta: dict[str, Any]) -> WorldSummary:
    counts = meta["counts"]
    return WorldSummary(
        root=root,
        n_patients=int(counts["patients"]),
        n_studies=int(counts["studies"]),
        n_images=int(counts["images"]),
        prevalence={k: float(v) for k, v in meta["prevalence"].items()},
        n_frontal=int(counts["frontal"]),
        n_lateral=int(counts["lateral"]),
        uncertain={k: int(v) for k, v in meta["uncertain"].items()},
        spec=WorldSpec.from_json(meta["spec"]),
        generator_version=str(meta["generator_version"]),
    )


def read_world(out_dir: str | Path) -> WorldSummary | None:
    """The summary of the world in `out_dir`, or None when there is no readable world.json."""
    path = Path(out_dir) / "world.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return _summary(Path(out_dir), meta)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def generate_world(
    out_dir: str | Path, spec: WorldSpec = WorldSpec(), *, workers: int = 1
) -> WorldSummary:
    """Write the synthetic world for `spec` into `out_dir` (idempotent, atomic, deterministic).

    An existing world with the same spec and GENERATOR_VERSION is returned untouched. Otherwise
    the world is written into a temporary sibling folder and renamed into place at the end, so a
    crash never leaves a half-written world at `out_dir`. `workers > 1` renders studies in
    parallel processes (spawned, so a calling script needs the usual `__main__` guard); every
    study is seeded from (seed, study index), so the bytes are the same as with one worker.

    Raises:
        FileExistsError: `out_dir` is a non-empty folder that holds no world.json (it is not
            ours to replace).
    """
    out = Path(out_dir)
    existing = read_world(out)
    if (
        existing is not None
        and existing.spec == spec
        and existing.generator_version == GENERATOR_VERSION
    ):
        return existing
    if existing is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out}: exists and holds no world.json, so it is not a synthetic world to replace; "
            "pass an empty or new folder"
        )
    plan = plan_world(spec)
    planted = [planted_identifiers(spec, s) for s in plan.studies]
    reports = [
        write_report(s, report_rng(spec, s), p) for s, p in zip(plan.studies, planted, strict=True)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        tasks = [(spec, s, str(tmp)) for s in plan.studies]
        if workers > 1 and len(tasks) > 1:
            # spawn: safe after torch or threads were started in the parent
            context = multiprocessing.get_context("spawn")
            chunk = max(1, len(tasks) // (workers * 8))
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                list(pool.map(_write_study, tasks, chunksize=chunk))
        else:
            for task in tasks:
                _write_study(task)
        _write_tables(tmp, plan, reports)
        _write_retrieval_lists(tmp, plan, reports)
        _write_planted(tmp, plan, planted)
        meta = _world_meta(plan, reports)
        (tmp / "world.json").write_text(
            json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _summary(out, meta)
