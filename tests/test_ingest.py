"""Ingestion on files the tests write: accounting, privacy of outputs, cache guard, resumption,
shards, PNG exports, selection policies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.generic import GenericAdapter
from medrep.data.cache import CacheMismatchError, ImageCache, frame_hash
from medrep.data.ingest import IngestConfig, run_ingestion
from tests.helpers import ListAdapter

IDENTIFIERS = ("MRN-ALPHA", "MRN-BETA", "ACC-100", "ACC-200", "ACC-300", "ACC-404", "Doe^Jane")


def make_export(root: Path, dicom_writer) -> tuple[IngestConfig, GenericAdapter]:
    rng = np.random.default_rng(0)
    dicom_dir = root / "export"

    def img() -> np.ndarray:
        return rng.integers(0, 4096, size=(40, 30)).astype(np.uint16)

    w = dicom_writer
    w(
        dicom_dir / "a" / "1.dcm",
        img(),
        patient_id="MRN-ALPHA",
        accession="ACC-100",
        window=(2048, 4096),
    )
    w(
        dicom_dir / "a" / "2.dcm",
        img(),
        patient_id="MRN-ALPHA",
        accession="ACC-100",
        photometric="MONOCHROME1",
    )
    w(dicom_dir / "a" / "3.dcm", img(), patient_id="MRN-ALPHA", accession="ACC-100", view="LL")
    w(dicom_dir / "b" / "1.dcm", img(), patient_id="MRN-BETA", accession="ACC-200", implicit=True)
    w(dicom_dir / "b" / "2.dcm", img(), patient_id="MRN-BETA", accession="ACC-300", modality="CT")
    w(dicom_dir / "b" / "3.dcm", img(), patient_id="MRN-BETA", accession="ACC-404")  # no report
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
    cfg = IngestConfig(
        out_dir=str(root / "ingest"),
        secret="test-secret",
        source_paths="relative",
        image_size=24,
        progress=False,
        chunk_size=2,
    )
    adapter = GenericAdapter(str(dicom_dir), str(root / "reports.csv"), str(root / "labels.csv"))
    return cfg, adapter


def artifacts(out: str | Path) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    out = Path(out)
    return (
        pd.read_parquet(out / "manifest.parquet"),
        np.load(out / "cache" / "images.npy"),
        pd.read_csv(out / "rejects.csv").sort_values(["source", "reason"]).reset_index(drop=True),
    )


def assert_same_artifacts(a: str | Path, b: str | Path) -> None:
    ma, ia, la = artifacts(a)
    mb, ib, lb = artifacts(b)
    pd.testing.assert_frame_equal(ma, mb)
    np.testing.assert_array_equal(ia, ib)
    pd.testing.assert_frame_equal(la, lb)


def test_every_file_is_accounted_for(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    summary = run_ingestion(cfg, adapter)
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
        ("unmatched", "report_without_images"),  # ACC-300: its only image is a CT
    ]
    assert summary["reports_rejected"] == 1 and summary["reports_without_images"] == 1
    assert not (Path(cfg.out_dir) / "parts").exists()


def test_outputs_hold_no_identifiers(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg, adapter)
    for path in Path(cfg.out_dir).rglob("*"):
        if path.is_file() and path.suffix != ".npy":
            text = path.read_bytes().decode("latin-1")
            for ident in IDENTIFIERS:
                assert ident not in text, f"{ident} leaked into {path.name}"


def test_manifest_joins_reports_and_labels_by_key(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg, adapter)
    out = Path(cfg.out_dir)
    manifest = pd.read_parquet(out / "manifest.parquet")
    reports = pd.read_parquet(out / "reports.parquet")
    labels = pd.read_parquet(out / "labels.parquet")
    assert manifest["study_key"].nunique() == 2 and manifest["patient_key"].nunique() == 2
    assert set(manifest["study_key"]) == set(reports["study_key"]) == set(labels["study_key"])
    alpha = manifest[manifest["source"].str.startswith("a/")]
    assert alpha["patient_key"].nunique() == 1 and alpha["split"].nunique() == 1
    effusion = reports.merge(labels, on="study_key").set_index("findings")["Pleural Effusion"]
    assert effusion["Small left pleural effusion. Heart size is normal."] == 1.0
    assert sorted(reports["sentences"].map(len)) == [2, 3]


def test_cache_matches_decoding_and_guards_its_configuration(tmp_path: Path, dicom_writer) -> None:
    from medrep.data.dicom import decode_dicom
    from medrep.data.images import quantize, resize_pad

    cfg, adapter = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg, adapter)
    out = Path(cfg.out_dir)
    manifest = pd.read_parquet(out / "manifest.parquet")
    cache = ImageCache(
        out / "cache", expected_params=cfg.cache_params(), manifest_sha256=frame_hash(manifest)
    )
    assert cache.size == 24 and cache.array.dtype == np.uint8
    for _, row in manifest.iterrows():
        expected = quantize(resize_pad(decode_dicom(Path(adapter.image_dir) / row["source"]), 24))
        np.testing.assert_array_equal(cache.array[row["cache_index"]], expected)
    with pytest.raises(CacheMismatchError, match="asked for"):
        ImageCache(out / "cache", expected_params={**cfg.cache_params(), "image_size": 32})
    with pytest.raises(CacheMismatchError, match="manifest"):
        ImageCache(out / "cache", manifest_sha256=frame_hash(manifest.iloc[:1]))


def test_parallel_ingestion_gives_identical_artifacts(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg, adapter)
    parallel = replace(cfg, out_dir=str(tmp_path / "ingest2"), workers=2)
    run_ingestion(parallel, adapter)
    assert_same_artifacts(cfg.out_dir, parallel.out_dir)


def test_shards_then_merge_equal_one_run(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg, adapter)
    sharded = replace(cfg, out_dir=str(tmp_path / "sharded"))
    first = run_ingestion(sharded, adapter, shard=(0, 2), merge=False)
    assert first["parts_missing"] > 0 and not (Path(sharded.out_dir) / "manifest.parquet").exists()
    second = run_ingestion(sharded, adapter, shard=(1, 2), merge=False)
    assert second["parts_missing"] == 0
    merged = run_ingestion(sharded, adapter)  # only merges: every part is there
    assert merged["cached"] == 3
    assert_same_artifacts(cfg.out_dir, sharded.out_dir)
    with pytest.raises(ValueError, match="shard"):
        run_ingestion(sharded, adapter, shard=(2, 2))


def test_finished_ingestion_is_reused_and_redone_when_settings_change(
    tmp_path: Path, dicom_writer
) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    first = run_ingestion(cfg, adapter)
    again = run_ingestion(cfg, adapter)
    assert again["seconds"] == first["seconds"]  # the stored summary: nothing was redone
    bigger = run_ingestion(replace(cfg, image_size=32), adapter)
    assert bigger["cache_params"]["image_size"] == 32
    assert np.load(Path(cfg.out_dir) / "cache" / "images.npy").shape[-1] == 32


def test_report_table_without_the_key_column_is_a_clear_error(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    with pytest.raises(ValueError, match="StudyId"):
        run_ingestion(cfg, replace(adapter, key_column="StudyId"))


def test_one_image_per_study_and_duplicates(tmp_path: Path, dicom_writer) -> None:
    cfg, adapter = make_export(tmp_path, dicom_writer)
    export = Path(adapter.image_dir)
    sop = "1.2.826.0.1.3680043.8.498.99"
    pixels = np.random.default_rng(5).integers(0, 4096, (16, 16)).astype(np.uint16)
    dicom_writer(
        export / "c" / "1.dcm", pixels, patient_id="MRN-ALPHA", accession="ACC-100", sop_uid=sop
    )
    dicom_writer(
        export / "c" / "2.dcm", pixels, patient_id="MRN-ALPHA", accession="ACC-100", sop_uid=sop
    )
    summary = run_ingestion(replace(cfg, one_image_per_study=True), adapter)
    reasons = {r["reason"]: r["n"] for r in summary["reasons"]}
    assert reasons["duplicate_image"] == 1
    # ACC-100: a/1, a/2 and c/1 are accepted (c/2 repeats c/1), a/1 is kept
    assert reasons["filtered_one_per_study"] == 2
    assert summary["cached"] == 2
    assert summary["files_seen"] == summary["cached"] + summary["rejected"] + summary["filtered"]


def test_png_and_jpeg_exports_in_every_mode(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    # a grey picture of its own per file (pixel-identical images would be ledgered as duplicates)
    grey = {
        n: rng.integers(0, 256, (30, 40)).astype(np.uint8) for n in ("g8", "g16", "rgb", "rgba")
    }
    files = {
        "g8.png": Image.fromarray(grey["g8"]),
        "g16.png": Image.fromarray(grey["g16"].astype(np.uint16) * 257),
        "rgb.jpg": Image.fromarray(np.stack([grey["rgb"]] * 3, -1)),
        "rgba.png": Image.fromarray(
            np.dstack([grey["rgba"]] * 3 + [np.full_like(grey["g8"], 255)])
        ),
    }
    records = []
    for i, (name, img) in enumerate(files.items()):
        img.save(tmp_path / name)
        records.append(
            ImageRecord(
                path=str(tmp_path / name), source=name, study_key=f"s{i}", patient_id="p", view="PA"
            )
        )
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    records.append(
        ImageRecord(
            path=str(tmp_path / "bad.png"),
            source="bad.png",
            study_key="s0",
            patient_id="p",
            view="PA",
        )
    )
    Image.fromarray(rng.integers(0, 256, (30, 40)).astype(np.uint8)).save(tmp_path / "nv.png")
    records.append(
        ImageRecord(path=str(tmp_path / "nv.png"), source="nv.png", study_key="s0", patient_id="p")
    )
    reports = [ReportRecord(f"s{i}", "IMPRESSION: No acute process.", f"r{i}") for i in range(4)]
    cfg = IngestConfig(
        out_dir=str(tmp_path / "out"),
        secret="s",
        source_paths="relative",
        image_size=40,
        progress=False,
        modalities=(),
    )
    summary = run_ingestion(cfg, ListAdapter(records, reports))
    assert (summary["cached"], summary["rejected"], summary["filtered"]) == (4, 1, 1)
    manifest, images, ledger = artifacts(cfg.out_dir)
    assert set(ledger["reason"]) == {"not_image", "filtered_view"}
    by_source = {
        s: images[i] for s, i in zip(manifest["source"], manifest["cache_index"], strict=True)
    }
    # every mode lands on (nearly) the grey picture it was made from: 40 px wide, so the cache
    # holds it unresized below 5 rows of padding
    for name, key in (("g8.png", "g8"), ("g16.png", "g16"), ("rgba.png", "rgba")):
        assert np.abs(by_source[name][5:35].astype(int) - grey[key]).max() <= 1, name
    assert np.abs(by_source["rgb.jpg"][5:35].astype(int) - grey["rgb"]).mean() < 12  # lossy


KILL_SCRIPT = """
import sys
from pathlib import Path
from medrep.data.adapters.generic import GenericAdapter
from medrep.data.ingest import IngestConfig, run_ingestion
root = Path(sys.argv[1])
cfg = IngestConfig(out_dir=sys.argv[2], secret="s", source_paths="relative", image_size=32, progress=False, chunk_size=4, workers=int(sys.argv[3]))
run_ingestion(cfg, GenericAdapter(str(root / "export"), str(root / "reports.csv")))
"""


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_matches_an_uninterrupted_run(
    tmp_path: Path, dicom_writer
) -> None:
    rng = np.random.default_rng(2)
    export = tmp_path / "export"
    rows = []
    for i in range(160):
        acc = f"ACC{i // 2:04d}"
        dicom_writer(
            export / f"{i:04d}.dcm",
            rng.integers(0, 4096, (256, 256)),
            patient_id=f"P{i // 6}",
            accession=acc,
            window=(2048, 4096),
        )
        if i % 2 == 0:
            rows.append(
                {"AccessionNumber": acc, "report": f"FINDINGS: Finding number {i}. Heart normal."}
            )
    pd.DataFrame(rows).to_csv(tmp_path / "reports.csv", index=False)
    script = tmp_path / "ingest.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def run(out: str, workers: int, kill_at_parts: int | None) -> int:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), out, str(workers)],
            env=env,
            start_new_session=True,
        )
        if kill_at_parts is None:
            return proc.wait(timeout=300)
        # kill at a random point of the work: once that many parts are on disk
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            if len(list(Path(out).glob("parts/*.json"))) >= kill_at_parts:
                # the whole job, workers included, as a pre-emption does (a killed parent
                # alone leaves its pool's workers behind, waiting for work forever)
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        return proc.wait(timeout=60)

    reference = str(tmp_path / "reference")
    assert run(reference, 1, None) == 0
    finished_parts = []
    for seed, workers in ((0, 1), (1, 2), (2, 1)):
        out = str(tmp_path / f"killed{seed}")
        run(out, workers, int(np.random.default_rng(seed).integers(1, 36)))
        finished_parts.append(len(list(Path(out).glob("parts/*.json"))))
        assert run(out, workers, None) == 0
        assert_same_artifacts(reference, out)
        summary = json.loads((Path(out) / "ingest_summary.json").read_text())
        assert summary["files_seen"] == 160
        assert summary["cached"] + summary["rejected"] + summary["filtered"] == 160
    # at least one kill landed in the middle of the work (40 parts in all), not before or after
    assert any(0 < n < 40 for n in finished_parts), finished_parts


@pytest.mark.parametrize("shape", [(40, 30), (30, 40), (257, 100), (64, 64), (10, 300), (5, 5)])
def test_resize_pad_equals_monai(shape: tuple[int, int]) -> None:
    from monai.transforms import Resize, SpatialPad

    from medrep.data.images import resize_pad

    image = np.random.default_rng(0).random(shape).astype(np.float32)
    resized = Resize(spatial_size=24, size_mode="longest", mode="area")(image[None])
    expected = np.asarray(SpatialPad(spatial_size=(24, 24), method="symmetric")(resized))[0]
    np.testing.assert_allclose(resize_pad(image, 24), expected, atol=1e-6)


@pytest.mark.parametrize("failure", ["disk_full", "read_only"])
def test_a_full_disk_or_read_only_folder_is_a_clear_error_and_keeps_the_previous_outputs(
    tmp_path: Path, dicom_writer, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """Re-ingesting into a folder that can no longer be written leaves the last good outputs.

    Root ignores permission bits (CI runs as root), so the failure is injected where the outputs
    are written: the parquet writer raises ENOSPC or EROFS at the reports table, after the new
    cache array and manifest have been written.
    """
    import errno as errno_mod

    from medrep.data.ingest import OutputWriteError

    cfg, adapter = make_export(tmp_path, dicom_writer)
    run_ingestion(cfg, adapter)
    out = Path(cfg.out_dir)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = errno_mod.ENOSPC if failure == "disk_full" else errno_mod.EROFS

    write_parquet = pd.DataFrame.to_parquet

    def refuse(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "reports" in Path(path).name:
            raise OSError(code, os.strerror(code), str(path))
        return write_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", refuse)
    # another cache size: the whole ingestion is redone into the same folder
    with pytest.raises(OutputWriteError) as info:
        run_ingestion(replace(cfg, image_size=cfg.image_size // 2), adapter)
    message = str(info.value)
    assert str(out) in message and os.strerror(code) in message
    assert "unchanged" in message and info.value.errno == code
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # the last good manifest, cache and ledger, byte for byte; no temporary file left behind;
    # only the new run's processed parts remain (for the re-run)
    assert {k: v for k, v in after.items() if "parts" not in k.parts} == before
    assert not [k for k in after if k.name.endswith(".tmp")]
    monkeypatch.undo()
    summary = run_ingestion(replace(cfg, image_size=cfg.image_size // 2), adapter)
    assert ImageCache(out / "cache").array.shape[1] == cfg.image_size // 2
    assert summary["cached"] == len(pd.read_parquet(out / "manifest.parquet"))
