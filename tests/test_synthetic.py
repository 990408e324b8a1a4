"""The synthetic world: determinism, DICOM validity, the display contract, reports vs labels,
finding rendering, prevalence and confounds. Small worlds at 64 px keep the file fast."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID

from medrep.data.synthetic import (
    FINDINGS,
    GENERATOR_VERSION,
    LABEL_COLUMNS,
    Anatomy,
    Finding,
    ImageNuisance,
    StudyTruth,
    WorldSpec,
    generate_world,
    plan_world,
    render_image,
    render_study_images,
    report_rng,
    write_report,
)

SMALL = WorldSpec(n_patients=30, image_size=64, seed=7)
TINY = WorldSpec(n_patients=6, image_size=64, seed=3)
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "world"
    generate_world(root, SMALL)
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def decode(ds: pydicom.Dataset) -> np.ndarray:
    """The project's display contract, written with pydicom's own LUT functions."""
    modality = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds:
        voi = apply_voi_lut(modality, ds)
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = intercept, (2**ds.BitsStored - 1) * slope + intercept
    else:
        voi = modality
        lo, hi = np.percentile(modality, [0.5, 99.5])
    x = np.clip((voi - lo) / (hi - lo), 0, 1)
    return 1 - x if ds.PhotometricInterpretation == "MONOCHROME1" else x


# ------------------------------------------------------------------ determinism and idempotency


def test_same_seed_gives_identical_bytes_and_workers_do_not_matter(tmp_path: Path) -> None:
    a = tree_bytes(generate_world(tmp_path / "a", TINY).root)
    b = tree_bytes(generate_world(tmp_path / "b", TINY, workers=2).root)
    assert len(a) > 10
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_different_seed_gives_different_world(tmp_path: Path) -> None:
    from dataclasses import replace

    a = tree_bytes(generate_world(tmp_path / "a", TINY).root)
    b = tree_bytes(generate_world(tmp_path / "b", replace(TINY, seed=4)).root)
    assert a["reports.csv"] != b["reports.csv"]
    shared = [k for k in a.keys() & b.keys() if k.endswith(".dcm")]
    assert shared and all(a[k] != b[k] for k in shared)


def test_second_call_returns_summary_without_rewriting(world: Path) -> None:
    files = sorted(world.rglob("*"))
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    summary = generate_world(world, SMALL)
    assert summary.root == world and summary.spec == SMALL
    assert summary.generator_version == GENERATOR_VERSION
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(world.rglob("*"))} == before


def test_changed_spec_regenerates_in_place_and_foreign_folders_are_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    root = tmp_path / "w"
    first = generate_world(root, TINY)
    second = generate_world(root, replace(TINY, n_patients=3))
    assert second.n_studies < first.n_studies
    assert len(list((root / "dicom").iterdir())) == second.n_studies
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="world.json"):
        generate_world(foreign, TINY)


def test_spec_is_validated() -> None:
    with pytest.raises(ValueError, match="difficulty"):
        WorldSpec(difficulty=1.5)
    with pytest.raises(ValueError, match="studies_per_patient"):
        WorldSpec(studies_per_patient=(3, 1))


# ------------------------------------------------------------------ files and DICOM headers


def test_layout_and_tables(world: Path) -> None:
    meta_counts = generate_world(world, SMALL)
    dicoms = sorted(world.glob("dicom/*/*.dcm"))
    assert len(dicoms) == meta_counts.n_images
    assert all(re.fullmatch(r"dicom/s\d{6}/i\d{2}\.dcm", str(p.relative_to(world))) for p in dicoms)
    reports = read_csv(world / "reports.csv")
    labels = read_csv(world / "labels.csv")
    truth = read_csv(world / "truth.csv")
    assert list(reports[0]) == ["AccessionNumber", "StudyInstanceUID", "report"]
    assert list(labels[0]) == ["AccessionNumber", "StudyInstanceUID", *LABEL_COLUMNS]
    assert len(reports) == len(labels) == len(truth) == meta_counts.n_studies
    assert len({r["AccessionNumber"] for r in reports}) == len(reports)
    for row in labels:
        values = {c: float(row[c]) for c in LABEL_COLUMNS}
        assert set(values.values()) <= {1.0, 0.0, -1.0}
        assert values["No Finding"] in (0.0, 1.0)
        assert (values["No Finding"] == 1.0) == all(values[f] == 0.0 for f in FINDINGS)
    by_acc = {r["AccessionNumber"]: r for r in truth}
    keys = {
        "Cardiomegaly": "cardiomegaly",
        "Pleural Effusion": "effusion",
        "Pneumothorax": "pneumothorax",
        "Consolidation": "consolidation",
        "Nodule": "nodule",
        "Edema": "edema",
    }
    for row in labels:
        t = by_acc[row["AccessionNumber"]]
        for finding, key in keys.items():
            assert (float(row[finding]) != 0.0) == (t[key] == "1"), (finding, row)


def test_dicom_headers_are_valid_and_varied(world: Path) -> None:
    paths = sorted(world.glob("dicom/*/*.dcm"))
    reports = {r["AccessionNumber"]: r for r in read_csv(world / "reports.csv")}
    seen: Counter[str] = Counter()
    sop_uids, study_of_folder = set(), {}
    accession_of_study: dict[str, str] = {}
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword in (
            "SOPClassUID",
            "SOPInstanceUID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "PatientID",
            "PatientName",
            "PatientBirthDate",
            "PatientSex",
            "StudyDate",
            "StudyTime",
            "AccessionNumber",
            "InstitutionName",
            "ReferringPhysicianName",
            "StudyDescription",
            "BodyPartExamined",
            "ViewPosition",
            "Modality",
            "Rows",
            "Columns",
            "SamplesPerPixel",
            "PhotometricInterpretation",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "RescaleSlope",
            "RescaleIntercept",
        ):
            assert keyword in ds and str(ds[keyword].value) != "", f"{path.name}: {keyword} missing"
        meta = ds.file_meta
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert {"CR": CR_STORAGE, "DX": DX_STORAGE}[ds.Modality] == ds.SOPClassUID
        assert meta.TransferSyntaxUID in (EXPLICIT, IMPLICIT)
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
            assert UID(uid).is_valid, uid
        assert ds.SOPInstanceUID not in sop_uids
        sop_uids.add(ds.SOPInstanceUID)
        folder = path.parent.name
        assert study_of_folder.setdefault(folder, ds.StudyInstanceUID) == ds.StudyInstanceUID
        assert (
            accession_of_study.setdefault(ds.StudyInstanceUID, ds.AccessionNumber)
            == ds.AccessionNumber
        )
        assert re.fullmatch(r"MRN\d{8}", ds.PatientID)
        assert re.fullmatch(r"[A-Z][a-z]+\^[A-Z][a-z]+", str(ds.PatientName))
        assert ds.BodyPartExamined == "CHEST" and ds.ViewPosition in ("PA", "AP", "LL")
        assert ds.SamplesPerPixel == 1 and ds.PixelRepresentation == 0
        assert ds.BitsStored in (8, 10, 12, 14, 16)
        assert ds.BitsAllocated == (8 if ds.BitsStored == 8 else 16)
        assert ds.HighBit == ds.BitsStored - 1
        assert 0.8 * SMALL.image_size <= ds.Rows <= SMALL.image_size
        assert 0.8 * SMALL.image_size <= ds.Columns <= SMALL.image_size
        pixels = ds.pixel_array
        assert pixels.shape == (ds.Rows, ds.Columns)
        assert int(pixels.max()) < 2**ds.BitsStored and pixels.std() > 0
        assert ds.AccessionNumber in reports
        assert reports[ds.AccessionNumber]["StudyInstanceUID"] == ds.StudyInstanceUID
        seen.update(
            [
                ds.PhotometricInterpretation,
                f"bits{ds.BitsStored}",
                meta.TransferSyntaxUID,
                ds.Modality,
                "window" if "WindowCenter" in ds else "no_window",
                f"slope{float(ds.RescaleSlope):g}",
                "negative_intercept" if float(ds.RescaleIntercept) < 0 else "zero_intercept",
            ]
        )
    assert len(study_of_folder) == len(set(study_of_folder.values()))
    for needed in (
        "MONOCHROME1",
        "MONOCHROME2",
        EXPLICIT,
        IMPLICIT,
        "CR",
        "DX",
        "window",
        "no_window",
        "negative_intercept",
    ):
        assert seen[needed] > 0, needed
    assert seen["MONOCHROME1"] < seen["MONOCHROME2"] and seen[IMPLICIT] < seen[EXPLICIT]
    assert seen["no_window"] < seen["window"]
    assert sum(1 for k in seen if k.startswith("bits")) >= 3
    assert sum(1 for k in seen if k.startswith("slope")) >= 2


# ------------------------------------------------------------------ display contract


def regions(x: np.ndarray) -> tuple[float, float]:
    """(mean of both lung boxes, mean of the mediastinum/spine box) of a frontal image."""
    h, w = x.shape
    rows = slice(int(0.3 * h), int(0.55 * h))
    lungs = np.concatenate(
        [
            x[rows, int(0.18 * w) : int(0.34 * w)].ravel(),
            x[rows, int(0.66 * w) : int(0.82 * w)].ravel(),
        ]
    )
    mediastinum = x[rows, int(0.46 * w) : int(0.54 * w)]
    return float(lungs.mean()), float(mediastinum.mean())


def test_display_contract_gives_conventional_radiographs(world: Path) -> None:
    plan = {s.study_idx: s for s in plan_world(SMALL).studies}
    n_frontal = 0
    for path in sorted(world.glob("dicom/*/*.dcm")):
        ds = pydicom.dcmread(path)
        decoded = decode(ds)
        if ds.ViewPosition != "LL":
            lungs, mediastinum = regions(decoded)
            assert lungs + 0.1 < mediastinum, (
                f"{path}: lungs {lungs:.2f} vs mediastinum {mediastinum:.2f}"
            )
            n_frontal += 1
        # the decoded file is the rendered display image up to the window's small jitter
        study = plan[int(path.parent.name[1:])]
        _, rendered = render_study_images(study, SMALL)[int(path.stem[1:])]
        corr = np.corrcoef(decoded.ravel(), rendered.ravel())[0, 1]
        assert corr > (0.995 if "WindowCenter" in ds else 0.97), f"{path}: corr {corr:.3f}"
    assert n_frontal > 40


def test_display_contract_fails_without_inversion(world: Path) -> None:
    """The check above can fail: MONOCHROME1 files decoded without inversion look inverted."""
    for path in sorted(world.glob("dicom/*/*.dcm")):
        ds = pydicom.dcmread(path)
        if ds.PhotometricInterpretation == "MONOCHROME1" and ds.ViewPosition != "LL":
            lungs, mediastinum = regions(1 - decode(ds))
            assert lungs > mediastinum
            return
    pytest.fail("no frontal MONOCHROME1 file in the world")


# ------------------------------------------------------------------ reports vs labels

TERMS = {
    "Cardiomegaly": r"cardiomegaly|enlarged|enlargement",
    "Pleural Effusion": r"effusions?|blunting",
    "Pneumothorax": r"pneumothorax|pneumothoraces|visceral pleural line",
    "Consolidation": r"consolidation|pneumonia|airspace",
    "Nodule": r"nodul\w*",
    "Edema": r"edema|congestion",
}
NEGATION = re.compile(r"\b(no|without|not|negative for|free of|resolution of)\b", re.I)
TERMINATOR = re.compile(r"\b(but|however|although)\b|;", re.I)
HEDGE = re.compile(
    r"\b(possible|possibly|may|could|questionable|versus|vs\.)|cannot be (excluded|ruled out)", re.I
)
SENTENCE_END = re.compile(r"(?<!\bvs)(?<!\bapprox)(?<!\bDr)\.(?:\s+|$)")


def sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    name = "preamble"
    for line in text.splitlines():
        match = re.match(r"^ ([A-Z][A-Z ]+):(.*)$", line)
        if match:
            name = match.group(1)
            out[name] = match.group(2)
        else:
            out[name] = out.get(name, "") + " " + line
    return {k: " ".join(v.split()) for k, v in out.items()}


def mentions(text: str, finding: str) -> set[str]:
    """A small NegEx: 'positive', 'uncertain' or nothing, per mention of the finding."""
    found = set()
    for sentence in SENTENCE_END.split(text):
        for term in re.finditer(TERMS[finding], sentence, re.I):
            before = sentence[: term.start()]
            cues = list(NEGATION.finditer(before))
            negated = bool(cues) and not TERMINATOR.search(before[cues[-1].end() :])
            if not negated:
                found.add("uncertain" if HEDGE.search(sentence) else "positive")
    return found


def test_reports_support_their_labels() -> None:
    spec = WorldSpec(n_patients=250, seed=5)
    n_uncertain = n_impression_only = 0
    for study in plan_world(spec).studies:
        report = write_report(study, report_rng(spec, study))
        parts = sections(report.text)
        assert {"EXAMINATION", "INDICATION", "COMPARISON", "IMPRESSION"} <= parts.keys(), (
            report.text
        )
        assert ("FINDINGS" in parts) == report.has_findings_section
        n_impression_only += not report.has_findings_section
        body = parts.get("FINDINGS", "") + " " + parts["IMPRESSION"]
        for finding in FINDINGS:
            found = mentions(body, finding)
            label = report.labels[finding]
            context = f"{finding}={label}\n{report.text}"
            if label == 1.0:
                assert "positive" in found, context
            elif label == -1.0:
                assert found == {"uncertain"}, context
                n_uncertain += 1
            else:
                assert not found, context
        truth = study.truth
        for name in ("Pleural Effusion", "Pneumothorax", "Consolidation"):
            f = truth.get(name)
            if f is not None and report.labels[name] == 1.0:
                side = "right" if f.side == "right" or f.lobe.startswith("R") else "left"
                side_words = {"bilateral"} if f.side == "bilateral" else {side}
                positive_sentences = [
                    s
                    for s in SENTENCE_END.split(body)
                    if re.search(TERMS[name], s, re.I) and "positive" in mentions(s, name)
                ]
                assert any(w in s.lower() for s in positive_sentences for w in side_words), (
                    report.text
                )
        assert report.labels["No Finding"] == (0.0 if truth.findings else 1.0)
    assert n_uncertain > 10 and n_impression_only > 10


def test_the_label_check_can_fail() -> None:
    assert mentions("No pleural effusion or pneumothorax.", "Pleural Effusion") == set()
    assert mentions("Small left pleural effusion without pneumothorax.", "Pneumothorax") == set()
    assert mentions("Small left pleural effusion without pneumothorax.", "Pleural Effusion") == {
        "positive"
    }
    assert mentions("Opacity may represent atelectasis vs. pneumonia.", "Consolidation") == {
        "uncertain"
    }


def test_report_text_is_mimic_like_and_deidentified(world: Path) -> None:
    reports = read_csv(world / "reports.csv")
    identifiers: set[str] = set()
    for path in sorted(world.glob("dicom/*/*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        identifiers |= {ds.PatientID, ds.AccessionNumber, ds.PatientBirthDate, ds.StudyDate}
        identifiers |= set(str(ds.PatientName).split("^")) | set(
            str(ds.ReferringPhysicianName).split("^")
        )
    texts = [r["report"] for r in reports]
    for text in texts:
        assert text.startswith("                                 FINAL REPORT\n")
        assert max(len(line) for line in text.splitlines()) <= 81
        assert not re.search(r"\d{6,}|\b(19|20|21)\d\d\b", text), text
        lowered = text.lower()
        assert not [i for i in identifiers if len(i) > 3 and i.lower() in lowered], text
    assert sum("___" in t for t in texts) > 0.8 * len(texts)
    assert sum("TECHNIQUE:" in t for t in texts) not in (0, len(texts))
    assert len(set(texts)) == len(texts)
    wrapped = [t for t in texts if any(len(line) > 65 for line in t.splitlines())]
    assert len(wrapped) > 0.5 * len(texts)


# ------------------------------------------------------------------ rendering


def finding_change(finding: Finding, size: int = 128, view: str = "PA") -> np.ndarray:
    nuisance = ImageNuisance.plain(view, size, size)
    before = render_image(StudyTruth(), Anatomy(), nuisance, np.random.default_rng(11))
    after = render_image(
        StudyTruth(findings=(finding,)), Anatomy(), nuisance, np.random.default_rng(11)
    )
    return np.abs(after - before).astype(np.float64)


def share(diff: np.ndarray, rows: tuple[float, float], cols: tuple[float, float]) -> float:
    h, w = diff.shape
    part = diff[int(rows[0] * h) : int(rows[1] * h), int(cols[0] * w) : int(cols[1] * w)]
    return float(part.sum() / diff.sum())


def test_renderer_is_pure() -> None:
    truth = StudyTruth(
        findings=(
            Finding("Nodule", "small", side="left", lobe="LUL", size=14.0, location=(0.5, 0.4)),
        )
    )
    nuisance = ImageNuisance(rotation_deg=3.0, noise=0.02, unsharp=0.3, electrodes=3, view="AP")
    a = render_image(truth, Anatomy(), nuisance, np.random.default_rng(1))
    b = render_image(truth, Anatomy(), nuisance, np.random.default_rng(1))
    assert a.dtype == np.float32 and a.shape == (256, 256)
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("finding", "rows", "cols"),
    [
        (Finding("Pleural Effusion", "moderate", side="right", size=0.22), (0.5, 1.0), (0.0, 0.5)),
        (Finding("Pleural Effusion", "small", side="left", size=0.12), (0.5, 1.0), (0.5, 1.0)),
        (Finding("Pneumothorax", "moderate", side="left", size=0.12), (0.0, 0.8), (0.5, 1.0)),
        (Finding("Pneumothorax", "small", side="right", size=0.07), (0.0, 0.8), (0.0, 0.5)),
        (
            Finding("Consolidation", "moderate", side="right", lobe="RUL", size=0.18),
            (0.0, 0.5),
            (0.0, 0.5),
        ),
        (
            Finding("Consolidation", "moderate", side="left", lobe="LLL", size=0.18),
            (0.45, 1.0),
            (0.5, 1.0),
        ),
        (
            Finding("Nodule", "small", side="right", lobe="RUL", size=13.0, location=(0.5, 0.3)),
            (0.1, 0.5),
            (0.1, 0.45),
        ),
    ],
)
def test_findings_change_pixels_in_their_region(finding: Finding, rows, cols) -> None:
    diff = finding_change(finding)
    assert diff.max() > 0.08, "the finding is invisible"
    assert share(diff, rows, cols) > 0.9


def test_nodule_is_small_and_cardiomegaly_grows_leftwards() -> None:
    nodule = finding_change(
        Finding("Nodule", "small", side="left", lobe="LUL", size=12.0, location=(0.6, 0.5))
    )
    r, c = np.unravel_index(nodule.argmax(), nodule.shape)
    assert c > 64
    assert share(nodule, ((r - 8) / 128, (r + 9) / 128), ((c - 8) / 128, (c + 9) / 128)) > 0.95
    assert (nodule > 0.02).sum() >= 12  # at least ~3% of the width across
    heart = finding_change(Finding("Cardiomegaly", "moderate", size=0.6))
    assert heart.max() > 0.1
    assert share(heart, (0.0, 1.0), (0.5, 1.0)) > 0.6  # the patient's left is the image right
    assert share(heart, (0.35, 1.0), (0.15, 0.9)) > 0.9


def test_edema_is_bilateral_and_views_differ() -> None:
    edema = finding_change(Finding("Edema", "moderate", side="bilateral", size=0.7))
    left, right = share(edema, (0, 1), (0.5, 1)), share(edema, (0, 1), (0, 0.5))
    assert 0.5 < left / right < 2.0
    lateral = finding_change(Finding("Cardiomegaly", "severe", size=0.66), view="LL")
    assert lateral.max() > 0.05
    ap = render_image(
        StudyTruth(), Anatomy(), ImageNuisance.plain("AP", 128, 128), np.random.default_rng(0)
    )
    pa = render_image(
        StudyTruth(), Anatomy(), ImageNuisance.plain("PA", 128, 128), np.random.default_rng(0)
    )
    magnified = np.abs(ap - pa).astype(np.float64)  # the AP projection magnifies the heart
    assert magnified.max() > 0.1 and share(magnified, (0.35, 1.0), (0.15, 0.9)) > 0.9


# ------------------------------------------------------------------ world statistics

TARGETS = {
    "Cardiomegaly": 0.25,
    "Pleural Effusion": 0.25,
    "Pneumothorax": 0.12,
    "Consolidation": 0.2,
    "Nodule": 0.15,
    "Edema": 0.15,
}


def test_prevalence_persistence_and_views() -> None:
    spec = WorldSpec(n_patients=300, seed=11)
    plan = plan_world(spec)
    studies = plan.studies
    n = len(studies)
    assert 450 < n < 750
    for name, target in TARGETS.items():
        rate = sum(s.truth.has(name) for s in studies) / n
        assert abs(rate - target) < 0.06, (name, rate)
    normal = sum(not s.truth.findings for s in studies) / n
    assert 0.27 < normal < 0.43
    lateral = sum("LL" in s.views for s in studies) / n
    assert abs(lateral - spec.lateral_fraction) < 0.07
    assert sum(s.truth.portable for s in studies) / n > 0.1
    assert all(s.views.count("LL") <= 1 and s.views[0] in ("PA", "AP") for s in studies)
    # cardiomegaly and nodules persist across a patient's studies
    for name in ("Cardiomegaly", "Nodule"):
        pairs = [(s.prior.has(name), s.truth.has(name)) for s in studies if s.prior is not None]
        given = [now for before, now in pairs if before]
        assert sum(given) / len(given) > 0.65, name  # independent draws would give ~0.2
    by_patient: dict[int, list] = {}
    for s in studies:
        by_patient.setdefault(s.patient.index, []).append(s)
    assert all(len({s.patient.anatomy for s in group}) == 1 for group in by_patient.values())
    hedged = sum(
        v == -1.0 for s in studies for v in write_report(s, report_rng(spec, s)).labels.values()
    )
    present = sum(len(s.truth.findings) for s in studies)
    assert 0.05 < hedged / present < 0.16


def test_no_finding_is_given_away_by_global_brightness() -> None:
    """Image mean and spread separate no finding better than chance does.

    The bound is 3.5 standard errors of a chance AUROC (Hanley-McNeil under the null,
    sqrt((n1 + n0 + 1) / (12 n1 n0)), about 0.035 here), not a fixed 0.28-0.72: measured on
    2026-12-07 the largest deviation is 0.092 (Edema, image spread), 2.6 of them. A finding
    that changed the global brightness by a visible amount would be caught.
    """
    from sklearn.metrics import roc_auc_score

    spec = WorldSpec(n_patients=300, image_size=64, seed=21)
    rows = []
    for study in plan_world(spec).studies:
        nuisance, image = render_study_images(study, spec)[0]
        rows.append((study.truth, float(image.mean()), float(image.std())))
    checked = 0
    for name in FINDINGS:
        y = np.array([t.has(name) for t, _, _ in rows])
        n1, n0 = int(y.sum()), int((~y).sum())
        if n1 < 20:
            continue
        chance_se = np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
        for column in (1, 2):
            auc = roc_auc_score(y, [r[column] for r in rows])
            assert abs(auc - 0.5) < 3.5 * chance_se, (name, column, auc, chance_se)
            checked += 1
    assert checked >= 10


def test_planted_report_identifiers_are_in_the_text_and_scrubbed_away() -> None:
    """text_identifier_rate plants header identifiers in report text; the scrubber removes each."""
    from medrep.data.scrub import Scrubber
    from medrep.data.synthetic import (
        WorldSpec,
        plan_world,
        planted_identifiers,
        report_rng,
        write_report,
    )

    assert "text_identifier_rate" not in WorldSpec(n_patients=5).to_json()  # old worlds unchanged
    spec = WorldSpec(n_patients=20, text_identifier_rate=0.5)
    plan = plan_world(spec)
    scrubber = Scrubber()
    n_planted = 0
    for study in plan.studies:
        planted = planted_identifiers(spec, study)
        plain = write_report(study, report_rng(spec, study)).text
        report = write_report(study, report_rng(spec, study), planted).text
        if planted is None:
            assert report == plain
            continue
        n_planted += 1
        values = [v for k, v in planted.items() if k != "title"]
        assert study.accession in values and study.patient.patient_id in values
        flat = " ".join(report.split())
        assert all(v in flat for v in values)
        # the rest of the report is the plain one: the planted sentences are additions
        assert set(plain.split()) <= set(report.split())
        scrubbed = " ".join(scrubber.scrub(report).text.split())
        assert not [v for v in values if v in scrubbed], scrubbed
    assert 0.2 * len(plan.studies) < n_planted < 0.8 * len(plan.studies)
