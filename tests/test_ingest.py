"""Ingestion on DICOMs the tests write: accounting, privacy of outputs, cache guard, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medrep.data.cache import CacheMismatchError, ImageCache, frame_hash
from medrep.data.ingest import IngestConfig, run_ingestion

IDENTIFIERS = ("MRN-ALPHA", "MRN-BETA", "ACC-100", "ACC-200", "ACC-300", "ACC-404", "Doe^Jane")


def make_export(root: Path, dicom_writer) -> IngestConfig:
    rng = np.random.default_rng(0)
    dicom_dir = root / "export"

    def img() -> np.ndarray:
        return rng.integers(0, 4096, size=(40, 30)).astype(np.uint16)

    dicom_writer(
        dicom_dir / "a" / "1.dcm",
        img(),
        patient_id="MRN-ALPHA",
        accession="ACC-100",
        window=(2048, 4096),
    )
    dicom_writer(
        dicom_dir / "a" / "2.dcm",
        img(),
        patient_id="MRN-ALPHA",
        accession="ACC-100",
        photometric="MONOCHROME1",
    )
    dicom_writer(
        dicom_dir / "a" / "3.dcm", img(), patient_id="MRN-ALPHA", accession="ACC-100", view="LL"
    )
    dicom_writer(
        dicom_dir / "b" / "1.dcm", img(), patient_id="MRN-BETA", accession="ACC-200", implicit=True
    )
    dicom_writer(
        dicom_dir / "b" / "2.dcm", img(), patient_id="MRN-BETA", accession="ACC-300", modality="CT"
    )
    dicom_writer(
        dicom_dir / "b" / "3.dcm", img(), patient_id="MRN-BETA", accession="ACC-404"
    )  # no report
    (dicom_dir / "b" / "4.dcm").write_text("not an image")
    reports = pd.DataFrame(
        {
            "AccessionNumber": ["ACC-100", "ACC-200", "ACC-300", "ACC-500"],
            "report": [
                "FINDINGS: Small left pleural effusion. Heart size is normal.\nIMPRESSION: Effusion.",
                "FINDINGS: No pneumothorax.\n\nIMPRESSION: No acute cardiopulmonary process.",
                "IMPRESSION: Normal.",
                "INDICATION: ___",
            ],
        }
    )
    reports.to_csv(root / "reports.csv", index=False)
    labels = pd.DataFrame(
        {"AccessionNumber": ["ACC-100", "ACC-200", "ACC-300"], "Pleural Effusion": [1, 0, -1]}
    )
    labels.to_csv(root / "labels.csv", index=False)
    return IngestConfig(
        dicom_dir=str(dicom_dir),
        reports_csv=str(root / "reports.csv"),
        labels_csv=str(root / "labels.csv"),
        out_dir=str(root / "ingest"),
        secret="test-secret",
        image_size=24,
        progress=False,
    )


def test_every_file_is_accounted_for(tmp_path: Path, dicom_writer) -> None:
    cfg = make_export(tmp_path, dicom_writer)
    summary = run_ingestion(cfg)
    assert summary["files_seen"] == 7
    assert (summary["cached"], summary["rejected"], summary["filtered"]) == (3, 2, 2)
    ledger = pd.read_csv(Path(cfg.out_dir) / "rejects.csv")
    reasons = sorted(zip(ledger["kind"], ledger["reason"], strict=True))
    assert reasons == [
        ("filtered", "filtered_modality"),
        ("filtered", "filtered_view"),
        ("rejected", "empty_report"),  # the report row of ACC-500 (INDICATION only)
        ("rejected", "missing_report"),
        ("rejected", "not_dicom"),
    ]
    assert summary["reports_rejected"] == 1


def test_outputs_hold_no_identifiers(tmp_path: Path, dicom_writer) -> None:
    cfg = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg)
    for path in Path(cfg.out_dir).rglob("*"):
        if path.is_file() and path.suffix != ".npy":
            text = path.read_bytes().decode("latin-1")
            for ident in IDENTIFIERS:
                assert ident not in text, f"{ident} leaked into {path.name}"


def test_manifest_joins_reports_and_labels_by_key(tmp_path: Path, dicom_writer) -> None:
    cfg = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg)
    out = Path(cfg.out_dir)
    manifest = pd.read_parquet(out / "manifest.parquet")
    reports = pd.read_parquet(out / "reports.parquet")
    labels = pd.read_parquet(out / "labels.parquet")
    assert manifest["study_key"].nunique() == 2 and manifest["patient_key"].nunique() == 2
    assert set(manifest["study_key"]) == set(reports["study_key"]) == set(labels["study_key"])
    # the two images of patient ALPHA share a patient key and a split
    alpha = manifest[manifest["source"].str.startswith("a/")]
    assert alpha["patient_key"].nunique() == 1 and alpha["split"].nunique() == 1
    effusion = reports.merge(labels, on="study_key").set_index("findings")["Pleural Effusion"]
    assert effusion["Small left pleural effusion. Heart size is normal."] == 1.0
    assert list(reports["sentences"].map(len)) == [3, 2] or list(reports["sentences"].map(len)) == [
        2,
        3,
    ]


def test_cache_matches_decoding_and_guards_its_configuration(tmp_path: Path, dicom_writer) -> None:
    cfg = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg)
    out = Path(cfg.out_dir)
    manifest = pd.read_parquet(out / "manifest.parquet")
    cache = ImageCache(
        out / "cache", expected_params=cfg.cache_params(), manifest_sha256=frame_hash(manifest)
    )
    assert cache.size == 24 and cache.array.dtype == np.uint8
    from medrep.data.dicom import decode_dicom
    from medrep.data.images import quantize, resize_pad

    row = manifest.iloc[0]
    expected = quantize(resize_pad(decode_dicom(Path(cfg.dicom_dir) / row["source"]), 24))
    np.testing.assert_array_equal(cache.array[row["cache_index"]], expected)
    with pytest.raises(CacheMismatchError, match="asked for"):
        ImageCache(out / "cache", expected_params={**cfg.cache_params(), "image_size": 32})
    with pytest.raises(CacheMismatchError, match="manifest"):
        ImageCache(out / "cache", manifest_sha256=frame_hash(manifest.iloc[:1]))
    meta = json.loads((out / "cache" / "cache_meta.json").read_text())
    assert meta["manifest_sha256"] == frame_hash(manifest)


def test_parallel_ingestion_gives_identical_artifacts(tmp_path: Path, dicom_writer) -> None:
    cfg = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg)
    from dataclasses import replace

    parallel = replace(cfg, out_dir=str(tmp_path / "ingest2"), workers=2)
    run_ingestion(parallel)
    a, b = Path(cfg.out_dir), Path(parallel.out_dir)
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "manifest.parquet"), pd.read_parquet(b / "manifest.parquet")
    )
    np.testing.assert_array_equal(
        np.load(a / "cache" / "images.npy"), np.load(b / "cache" / "images.npy")
    )


def test_report_table_without_the_key_column_is_a_clear_error(tmp_path: Path, dicom_writer) -> None:
    from dataclasses import replace

    cfg = replace(make_export(tmp_path, dicom_writer), report_key_column="StudyId")
    with pytest.raises(ValueError, match="StudyId"):
        run_ingestion(cfg)
