"""The world on disk: DICOM files, the tables, the retrieval lists, world.json, and
`generate_world`, which writes them all atomically and idempotently.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medrep.data.labels import FINDINGS, LABEL_COLUMNS
from medrep.data.synthetic.dicom import build_dataset, encode_image, sample_encoding
from medrep.data.synthetic.plan import plan_world
from medrep.data.synthetic.render import render_study_images
from medrep.data.synthetic.reports import Report, planted_identifiers, report_rng, write_report
from medrep.data.synthetic.spec import (
    GENERATOR_VERSION,
    TAG_ENCODE,
    TAG_RETRIEVAL,
    VIEWS_FRONTAL,
    StudyPlan,
    WorldPlan,
    WorldSpec,
    stream_rng,
)

# the identifiers planted in report text (WorldSpec.text_identifier_rate), for audits
PLANTED_NAME = "planted_identifiers.csv"

# Per category: queries (distinct patients) and candidates. ConVIRT's CheXpert set has 8 x 200
# candidates and 10 queries per category; more queries here because evaluation keeps only the
# held-out splits' share of each list (about 30% of the patients). Query patients are at most
# RETRIEVAL_QUERY_SHARE of all patients, so that small worlds keep candidates.
RETRIEVAL_QUERIES_PER_CATEGORY = 30
RETRIEVAL_QUERY_SHARE = 0.3
RETRIEVAL_CANDIDATES_PER_CATEGORY = 200
RETRIEVAL_QUERIES_FILE = "retrieval_queries.csv"
RETRIEVAL_CANDIDATES_FILE = "retrieval_candidates.csv"


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


# ---- DICOM files -----------------------------------------------------------------------------


def _write_study(task: tuple[WorldSpec, StudyPlan, str]) -> int:
    """Render, encode and save every image of a study (a process pool's task); the image count."""
    spec, study, root = task
    digest = spec.digest()
    folder = Path(root) / study.folder
    folder.mkdir(parents=True, exist_ok=True)
    for image_idx, (nuisance, image) in enumerate(render_study_images(study, spec)):
        enc = sample_encoding(stream_rng(spec.seed, TAG_ENCODE, study.study_idx, image_idx))
        ds = build_dataset(study, image_idx, nuisance, enc, encode_image(image, enc), digest)
        ds.save_as(folder / f"i{image_idx:02d}.dcm", enforce_file_format=True)
    return len(study.views)


def _write_studies(root: Path, plan: WorldPlan, workers: int) -> None:
    tasks = [(plan.spec, s, str(root)) for s in plan.studies]
    if workers > 1 and len(tasks) > 1:
        # spawn: safe after torch or threads were started in the parent
        context = multiprocessing.get_context("spawn")
        chunk = max(1, len(tasks) // (workers * 8))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            list(pool.map(_write_study, tasks, chunksize=chunk))
    else:
        for task in tasks:
            _write_study(task)


# ---- tables ----------------------------------------------------------------------------------


def _label_text(value: float) -> str:
    return f"{value:.1f}"


def _truth_row(study: StudyPlan, report: Report) -> dict[str, Any]:
    truth = study.truth
    cardio = truth.get("Cardiomegaly")
    effusion, ptx = truth.get("Pleural Effusion"), truth.get("Pneumothorax")
    cons, nodule, edema = truth.get("Consolidation"), truth.get("Nodule"), truth.get("Edema")
    return {
        "AccessionNumber": study.accession,
        "StudyInstanceUID": study.study_uid,
        "PatientID": study.patient.patient_id,
        "study_folder": study.folder,
        "views": "|".join(study.views),
        "portable": int(truth.portable),
        "devices": "|".join(f"{d.kind}:{d.route}" if d.route else d.kind for d in truth.devices),
        "follow_up": int(study.prior is not None),
        "cardiothoracic_ratio": round(cardio.size if cardio else study.patient.anatomy.ctr, 3),
        "cardiomegaly": int(cardio is not None),
        "cardiomegaly_severity": cardio.severity if cardio else "",
        "effusion": int(effusion is not None),
        "effusion_side": effusion.side if effusion else "",
        "effusion_severity": effusion.severity if effusion else "",
        "effusion_height": round(effusion.size, 3) if effusion else "",
        "pneumothorax": int(ptx is not None),
        "pneumothorax_side": ptx.side if ptx else "",
        "pneumothorax_severity": ptx.severity if ptx else "",
        "pneumothorax_rim": round(ptx.size, 3) if ptx else "",
        "consolidation": int(cons is not None),
        "consolidation_lobe": cons.lobe if cons else "",
        "consolidation_severity": cons.severity if cons else "",
        "nodule": int(nodule is not None),
        "nodule_side": nodule.side if nodule else "",
        "nodule_lobe": nodule.lobe if nodule else "",
        "nodule_size_mm": nodule.size if nodule else "",
        "nodule_x": round(nodule.location[0], 3) if nodule else "",
        "nodule_y": round(nodule.location[1], 3) if nodule else "",
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
    """reports.csv, labels.csv and truth.csv."""
    _write_csv(
        root / "reports.csv",
        ("AccessionNumber", "StudyInstanceUID", "report"),
        ((s.accession, s.study_uid, r.text) for s, r in zip(plan.studies, reports, strict=True)),
    )
    _write_csv(
        root / "labels.csv",
        ("AccessionNumber", "StudyInstanceUID", *LABEL_COLUMNS),
        (
            (s.accession, s.study_uid, *(_label_text(r.labels[c]) for c in LABEL_COLUMNS))
            for s, r in zip(plan.studies, reports, strict=True)
        ),
    )
    truth_rows = [_truth_row(s, r) for s, r in zip(plan.studies, reports, strict=True)]
    header = list(truth_rows[0])
    _write_csv(root / "truth.csv", header, ([row[k] for k in header] for row in truth_rows))


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


# ---- retrieval lists -------------------------------------------------------------------------


def _first_frontal_paths(plan: WorldPlan) -> dict[int, str]:
    """Study index -> path of its first frontal image, relative to the dicom folder."""
    frontal: dict[int, str] = {}
    for study in plan.studies:
        for image_idx, view in enumerate(study.views):
            if view in VIEWS_FRONTAL:
                frontal[study.study_idx] = f"s{study.study_idx:06d}/i{image_idx:02d}.dcm"
                break
    return frontal


def _positives_in_draw_order(
    studies: Sequence[StudyPlan],
    label_of: dict[int, dict[str, float]],
    category: str,
    rng: np.random.Generator,
) -> list[StudyPlan]:
    """The studies positive for `category`: the exclusively positive ones first, each group in
    random order."""
    positive = [s for s in studies if label_of[s.study_idx][category] == 1.0]
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


def _take_per_category(
    orders: dict[str, list[StudyPlan]], limit: int, admit: Callable[[StudyPlan], bool]
) -> list[tuple[str, StudyPlan]]:
    """Up to `limit` studies per category, in each category's order, that `admit` accepts
    (`admit` records what it accepts, so later categories see earlier choices)."""
    taken_all: list[tuple[str, StudyPlan]] = []
    for category in LABEL_COLUMNS:
        taken = 0
        for study in orders[category]:
            if taken == limit:
                break
            if not admit(study):
                continue
            taken_all.append((category, study))
            taken += 1
    return taken_all


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
    rng = stream_rng(plan.spec.seed, TAG_RETRIEVAL)
    frontal = _first_frontal_paths(plan)
    label_of = {s.study_idx: r.labels for s, r in zip(plan.studies, reports, strict=True)}
    with_frontal = [s for s in plan.studies if s.study_idx in frontal]
    orders = {c: _positives_in_draw_order(with_frontal, label_of, c, rng) for c in LABEL_COLUMNS}
    per_category = min(n_query, int(query_share * len(plan.patients) / len(LABEL_COLUMNS)))
    query_patients: set[int] = set()
    candidate_studies: set[int] = set()

    def admit_query(study: StudyPlan) -> bool:  # one query per patient
        if study.patient.index in query_patients:
            return False
        query_patients.add(study.patient.index)
        return True

    def admit_candidate(study: StudyPlan) -> bool:  # no query's patient, each study once
        if study.patient.index in query_patients or study.study_idx in candidate_studies:
            return False
        candidate_studies.add(study.study_idx)
        return True

    queries = [
        (category, frontal[s.study_idx], s.accession)
        for category, s in _take_per_category(orders, per_category, admit_query)
    ]
    candidates = [
        (
            frontal[s.study_idx],
            s.accession,
            *(_label_text(label_of[s.study_idx][c]) for c in LABEL_COLUMNS),
        )
        for _, s in _take_per_category(orders, n_candidate, admit_candidate)
    ]
    return queries, candidates


def _write_retrieval_lists(root: Path, plan: WorldPlan, reports: Sequence[Report]) -> None:
    queries, candidates = retrieval_lists(plan, reports)
    _write_csv(root / RETRIEVAL_QUERIES_FILE, ("Variable", "Path", "AccessionNumber"), queries)
    _write_csv(
        root / RETRIEVAL_CANDIDATES_FILE, ("Path", "AccessionNumber", *LABEL_COLUMNS), candidates
    )


# ---- world.json and generate_world -----------------------------------------------------------


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


def _write_world(
    root: Path,
    plan: WorldPlan,
    planted: Sequence[dict[str, str] | None],
    reports: Sequence[Report],
    workers: int,
) -> dict[str, Any]:
    """Every file of the world into the (empty) folder `root`; the contents of world.json."""
    _write_studies(root, plan, workers)
    _write_tables(root, plan, reports)
    _write_retrieval_lists(root, plan, reports)
    _write_planted(root, plan, planted)
    meta = _world_meta(plan, reports)
    (root / "world.json").write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return meta


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished world `tmp` to `out`, replacing an older world there."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


_DEFAULT_SPEC = WorldSpec()  # frozen, so one shared default is safe


def generate_world(
    out_dir: str | Path, spec: WorldSpec = _DEFAULT_SPEC, *, workers: int = 1
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
        meta = _write_world(tmp, plan, planted, reports, workers)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _summary(out, meta)
