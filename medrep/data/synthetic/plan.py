"""Planning the world: patients, their habitus, studies, findings, devices, views and identifiers.

`plan_world` is cheap (no pixels, no report text). Each patient draws from a stream of its own,
in a fixed order (sex, age, name, anatomy, chronic findings, institution, dates, then study by
study), and the world-wide identifiers come from one more stream afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.uid import generate_uid

from medrep.data.labels import FINDINGS
from medrep.data.synthetic.spec import (
    LOBES,
    TAG_PATIENT,
    TAG_WORLD,
    Anatomy,
    Device,
    Finding,
    Patient,
    StudyPlan,
    StudyTruth,
    WorldPlan,
    WorldSpec,
    choose,
    stream_rng,
)


def _word_list(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Fictional names and institutions: nothing here may resemble a real person's record.
_LAST_NAMES = _word_list(
    "Abbott Alvarez Bennett Brooks Castillo Chen Dawson Ellis Fischer Foster Garcia Gupta Hansen "
    "Hughes Ibrahim Jensen Kowalski Larsen Lopez Morgan Nakamura Novak Okafor Olsen Patel Quinn "
    "Reyes Rossi Schmidt Silva Sullivan Tanaka Turner Varga Walsh Weber Yilmaz Zhang"
)
_FIRST_NAMES = {
    "F": _word_list(
        "Alice Amara Beatriz Chloe Dana Elena Fatima Grace Hana Ingrid Julia Keiko Laura Maria "
        "Nadia Olivia Priya Rosa Sofia Teresa"
    ),
    "M": _word_list(
        "Aaron Ahmed Bruno Carlos Daniel Erik Felix George Hiro Ivan James Kofi Liam Marco Noah "
        "Omar Pavel Rafael Samuel Tomas"
    ),
}
_INSTITUTIONS = (
    "RIVERSIDE GENERAL HOSPITAL",
    "ST ALDRIC MEDICAL CENTER",
    "NORTHGATE UNIVERSITY HOSPITAL",
)

_CTR_RANGE = {"mild": (0.5, 0.55), "moderate": (0.55, 0.6), "severe": (0.6, 0.67)}
_EFFUSION_HEIGHT = {"small": (0.09, 0.15), "moderate": (0.17, 0.28), "large": (0.32, 0.48)}
_PTX_RIM = {"small": (0.06, 0.09), "moderate": (0.1, 0.15), "large": (0.17, 0.26)}
_CONSOLIDATION_RADIUS = {"mild": (0.13, 0.17), "moderate": (0.17, 0.22), "severe": (0.22, 0.28)}
_EDEMA_LEVEL = {"mild": (0.35, 0.55), "moderate": (0.55, 0.8), "severe": (0.8, 1.0)}

# Share of studies that are not portable; laterals are taken on those, at a rate that gives
# spec.lateral_fraction overall.
_EXPECTED_NON_PORTABLE = 0.81


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


def _severity(
    rng: np.random.Generator,
    words: tuple[str, str, str],
    p: tuple[float, float, float] = (0.5, 0.35, 0.15),
) -> str:
    return str(choose(rng, words, p))


def _nodule_location(rng: np.random.Generator) -> tuple[str, tuple[float, float]]:
    side = "right" if rng.random() < 0.5 else "left"
    while True:
        lateral, vertical = float(rng.uniform(0.3, 0.85)), float(rng.uniform(0.12, 0.85))
        # keep the nodule off the rounded apex and out of the heart shadow on the left
        if vertical < 0.3 and lateral > 0.4 + vertical * 1.2:
            continue
        if side == "left" and vertical > 0.55 and lateral < 0.55:
            continue
        return side, (lateral, vertical)


def _lobe_of(side: str, location: tuple[float, float]) -> str:
    lateral, vertical = location
    if side == "right":
        if vertical < 0.4:
            return "RUL"
        return "RML" if (vertical < 0.7 and lateral < 0.55) else "RLL"
    return "LUL" if vertical < 0.55 else "LLL"


def _sample_chronic_findings(
    rng: np.random.Generator, age: int
) -> tuple[str | None, Finding | None]:
    """(cardiomegaly severity, nodule) a patient carries from study to study, or None."""
    p_cardio = 0.21 + 0.0025 * (age - 50)
    chronic_cardio = (
        _severity(rng, ("mild", "moderate", "severe"), (0.5, 0.35, 0.15))
        if rng.random() < p_cardio
        else None
    )
    chronic_nodule = None
    if rng.random() < 0.163:
        side, location = _nodule_location(rng)
        mm = float(rng.uniform(13.0, 24.0))
        severity = "small" if mm < 16 else "moderate" if mm < 20 else "large"
        chronic_nodule = Finding(
            "Nodule",
            severity,
            side=side,
            lobe=_lobe_of(side, location),
            size=round(mm, 1),
            location=location,
        )
    return chronic_cardio, chronic_nodule


def _sample_findings(
    rng: np.random.Generator,
    chronic_cardio: str | None,
    chronic_nodule: Finding | None,
) -> tuple[list[Finding], bool]:
    """A study's findings (in drawing order) and whether it has edema."""
    findings: list[Finding] = []
    cardio = chronic_cardio if chronic_cardio and rng.random() < 0.93 else None
    if cardio is None and rng.random() < 0.03:
        cardio = _severity(rng, ("mild", "moderate", "severe"), (0.7, 0.25, 0.05))
    if cardio:
        lo, hi = _CTR_RANGE[cardio]
        findings.append(Finding("Cardiomegaly", cardio, size=float(rng.uniform(lo, hi))))
    edema = rng.random() < (0.4 if cardio else 0.07)
    if edema:
        severity = _severity(rng, ("mild", "moderate", "severe"))
        lo, hi = _EDEMA_LEVEL[severity]
        findings.append(
            Finding("Edema", severity, side="bilateral", size=float(rng.uniform(lo, hi)))
        )
    if rng.random() < (0.6 if edema else 0.3 if cardio else 0.17):
        if edema:
            side = choose(rng, ("bilateral", "right", "left"), (0.55, 0.3, 0.15))
        else:
            side = choose(rng, ("right", "left", "bilateral"), (0.4, 0.4, 0.2))
        size = _severity(rng, ("small", "moderate", "large"), (0.55, 0.35, 0.1))
        lo, hi = _EFFUSION_HEIGHT[size]
        findings.append(
            Finding("Pleural Effusion", size, side=side, size=float(rng.uniform(lo, hi)))
        )
    if rng.random() < 0.2:
        lobe = choose(rng, LOBES, (0.15, 0.18, 0.3, 0.12, 0.25))
        severity = _severity(rng, ("mild", "moderate", "severe"), (0.4, 0.4, 0.2))
        lo, hi = _CONSOLIDATION_RADIUS[severity]
        side = "right" if lobe.startswith("R") else "left"
        findings.append(
            Finding(
                "Consolidation", severity, side=side, lobe=lobe, size=float(rng.uniform(lo, hi))
            )
        )
    if rng.random() < 0.12:
        size = _severity(rng, ("small", "moderate", "large"), (0.55, 0.3, 0.15))
        lo, hi = _PTX_RIM[size]
        side = "right" if rng.random() < 0.5 else "left"
        findings.append(Finding("Pneumothorax", size, side=side, size=float(rng.uniform(lo, hi))))
    if chronic_nodule is not None and rng.random() < 0.92:
        grown = chronic_nodule.size * float(rng.uniform(0.97, 1.06))
        findings.append(dataclasses.replace(chronic_nodule, size=round(grown, 1)))
    return findings, edema


def _sample_devices(rng: np.random.Generator, portable: bool) -> list[Device]:
    """Tubes and lines: mostly on portable (ICU) studies, now and then a PICC on others."""
    devices: list[Device] = []
    if portable:
        if rng.random() < 0.35:
            devices.append(Device("ett", "oral", round(float(rng.uniform(2.5, 6.5)), 1)))
            if rng.random() < 0.8:
                devices.append(Device("ngt", "nasal"))
        elif rng.random() < 0.1:
            devices.append(Device("ngt", "nasal"))
        if rng.random() < 0.45:
            route = choose(rng, ("right_ij", "left_ij", "left_subclavian", "right_subclavian"))
            devices.append(Device("cvc", route))
    elif rng.random() < 0.05:
        devices.append(Device("picc", choose(rng, ("right_arm", "left_arm"))))
    return devices


def _sample_study_truth(
    rng: np.random.Generator,
    chronic_cardio: str | None,
    chronic_nodule: Finding | None,
) -> StudyTruth:
    findings, edema = _sample_findings(rng, chronic_cardio, chronic_nodule)
    sick = edema or any(f.name == "Pleural Effusion" and f.severity == "large" for f in findings)
    portable = bool(rng.random() < (0.38 if sick else 0.16))
    devices = _sample_devices(rng, portable)
    order = {name: i for i, name in enumerate(FINDINGS)}
    findings.sort(key=lambda f: order[f.name])
    return StudyTruth(findings=tuple(findings), portable=portable, devices=tuple(devices))


def _sample_views(rng: np.random.Generator, truth: StudyTruth, spec: WorldSpec) -> tuple[str, ...]:
    frontal = "AP" if truth.portable else "PA"
    views = [frontal]
    if rng.random() < 0.12:
        views.append(frontal)
    p_lateral = min(1.0, spec.lateral_fraction / _EXPECTED_NON_PORTABLE)
    if not truth.portable and rng.random() < p_lateral:
        views.append("LL")
    return tuple(views)


@dataclass(frozen=True)
class _StudyDraw:
    """One study of a patient as drawn, before the world-wide identifiers are assigned."""

    order: int
    date: dt.date
    time: str
    truth: StudyTruth
    prior: StudyTruth | None
    views: tuple[str, ...]
    referring: str
    institution: str


def _sample_studies(
    rng: np.random.Generator,
    spec: WorldSpec,
    n_studies: int,
    first_day: dt.date,
    chronic: tuple[str | None, Finding | None],
    institution: str,
) -> list[_StudyDraw]:
    """A patient's studies in time order, each with its predecessor's truth as the prior."""
    studies: list[_StudyDraw] = []
    day = first_day
    prior: StudyTruth | None = None
    for order in range(n_studies):
        if order:
            day = day + dt.timedelta(days=int(rng.integers(1, 500)))
        truth = _sample_study_truth(rng, *chronic)
        views = _sample_views(rng, truth, spec)
        hour = int(rng.integers(0, 24)) if truth.portable else int(rng.integers(7, 19))
        minute, second = int(rng.integers(0, 60)), int(rng.integers(0, 60))
        referring = (
            f"{choose(rng, _LAST_NAMES)}^{choose(rng, _FIRST_NAMES['F'] + _FIRST_NAMES['M'])}"
        )
        study_institution = institution if rng.random() < 0.9 else choose(rng, _INSTITUTIONS)
        studies.append(
            _StudyDraw(
                order=order,
                date=day,
                time=f"{hour:02d}{minute:02d}{second:02d}",
                truth=truth,
                prior=prior,
                views=views,
                referring=referring,
                institution=study_institution,
            )
        )
        prior = truth
    return studies


def _sample_patient(spec: WorldSpec, index: int) -> tuple[Patient, list[_StudyDraw]]:
    """A patient (without the MRN, drawn world-wide) and their studies."""
    rng = stream_rng(spec.seed, TAG_PATIENT, index)
    sex = "F" if rng.random() < 0.5 else "M"
    first_age = int(18 + rng.beta(2.2, 1.5) * 76)
    name = f"{choose(rng, _LAST_NAMES)}^{choose(rng, _FIRST_NAMES[sex])}"
    anatomy = _sample_anatomy(rng, sex, first_age)
    chronic = _sample_chronic_findings(rng, first_age)
    institution = choose(rng, _INSTITUTIONS)
    first_day = dt.date(2150, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 30)))
    birth = first_day - dt.timedelta(days=int(first_age * 365.25 + rng.integers(0, 365)))
    low, high = spec.studies_per_patient
    n_studies = int(rng.integers(low, high + 1))
    studies = _sample_studies(rng, spec, n_studies, first_day, chronic, institution)
    patient = Patient(
        index=index,
        patient_id="",
        name=name,
        sex=sex,
        birth_date=birth.strftime("%Y%m%d"),
        institution=institution,
        anatomy=anatomy,
    )
    return patient, studies


def _study_plan(
    draw: _StudyDraw, patient: Patient, study_idx: int, accession: int, digest: str
) -> StudyPlan:
    age = int(
        (draw.date - dt.datetime.strptime(patient.birth_date, "%Y%m%d").date()).days // 365.25
    )
    return StudyPlan(
        study_idx=study_idx,
        patient=dataclasses.replace(patient, institution=draw.institution),
        order=draw.order,
        accession=f"{accession:08d}",
        study_uid=str(generate_uid(entropy_srcs=[digest, "study", str(study_idx)])),
        study_date=draw.date.strftime("%Y%m%d"),
        study_time=draw.time,
        age=age,
        views=draw.views,
        truth=draw.truth,
        prior=draw.prior,
        referring=draw.referring,
    )


def plan_world(spec: WorldSpec) -> WorldPlan:
    """Patients, studies and their ground truth; no pixels, no report text (cheap)."""
    patient_draws = [_sample_patient(spec, index) for index in range(spec.n_patients)]

    # Identifiers are drawn world-wide so that they are unique; study order is shuffled so that
    # folder order says nothing about which studies share a patient.
    world_rng = stream_rng(spec.seed, TAG_WORLD)
    n_studies_total = sum(len(s) for _, s in patient_draws)
    mrns = world_rng.choice(90_000_000, size=spec.n_patients, replace=False) + 10_000_000
    accessions = world_rng.choice(90_000_000, size=n_studies_total, replace=False) + 10_000_000
    folder_order = world_rng.permutation(n_studies_total)
    digest = spec.digest()
    patients: list[Patient] = []
    studies: list[StudyPlan] = []
    for (patient, draws), mrn in zip(patient_draws, mrns, strict=True):
        patient = dataclasses.replace(patient, patient_id=f"MRN{int(mrn):08d}")
        patients.append(patient)
        for draw in draws:
            study_idx = int(folder_order[len(studies)])
            accession = int(accessions[study_idx])
            studies.append(_study_plan(draw, patient, study_idx, accession, digest))
    studies.sort(key=lambda s: s.study_idx)
    return WorldPlan(spec=spec, patients=tuple(patients), studies=tuple(studies))
