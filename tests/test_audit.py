"""The privacy audit finds identifiers wherever a run could hide them (so zero hits means something)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medrep.audit import audit_files, identifiers_from_dicom, main


def export(tmp_path: Path, dicom_writer) -> Path:
    folder = tmp_path / "export"
    dicom_writer(
        folder / "a.dcm",
        np.zeros((16, 16), np.uint16),
        patient_id="MRN77001234",
        accession="ACC55512345",
        extra={
            "PatientName": "Quixote^Alonso",
            "PatientBirthDate": "19470312",
            "InstitutionName": "Saint Elsewhere Hospital",
        },
    )
    return folder


def test_identifiers_come_from_headers_with_their_variants(tmp_path: Path, dicom_writer) -> None:
    ids = identifiers_from_dicom(export(tmp_path, dicom_writer))
    assert ids["MRN77001234"] == "PatientID" and ids["ACC55512345"] == "AccessionNumber"
    assert ids["Quixote"] == "PatientName" and ids["Alonso"] == "PatientName"
    assert {"19470312", "1947-03-12", "03/12/1947"} <= set(ids)
    assert "Saint Elsewhere Hospital" in ids


def test_every_hiding_place_is_searched(tmp_path: Path, dicom_writer) -> None:
    ids = identifiers_from_dicom(export(tmp_path, dicom_writer))
    run = tmp_path / "run"
    run.mkdir()
    (run / "clean.log").write_text("epoch 1 loss 3.2\n")
    pd.DataFrame({"key": ["abc"], "note": ["MRN77001234"]}).to_parquet(run / "table.parquet")
    np.savez(run / "emb.npz", keys=np.array(["x", "quixote"]), values=np.zeros(3))  # UTF-32 strings
    (run / "train.log").write_text("saw ACC55512345 in batch 3\n")
    (run / "utf16.txt").write_bytes("born 1947-03-12".encode("utf-16-le"))
    torch.save(
        {"hparams": {"site": "Saint Elsewhere Hospital"}, "w": torch.zeros(4)}, run / "model.pt"
    )
    hits, n = audit_files([run], ids)
    found = {(Path(h.path).name, h.kind) for h in hits}
    assert n == 6
    assert found == {
        ("table.parquet", "PatientID"),
        ("emb.npz", "PatientName"),
        ("train.log", "AccessionNumber"),
        ("utf16.txt", "PatientBirthDate"),
        ("model.pt", "InstitutionName"),
    }
    assert main([str(run), "--dicom", str(tmp_path / "export")]) == 1


def test_a_clean_folder_passes(tmp_path: Path, dicom_writer) -> None:
    export(tmp_path, dicom_writer)
    run = tmp_path / "run"
    run.mkdir()
    np.save(
        run / "pixels.npy", np.frombuffer(b"MRN77001234" * 10, dtype=np.uint8)
    )  # pixels are not text
    (run / "results.csv").write_text("metric,value\nauroc,0.8\n")
    assert main([str(run), "--dicom", str(tmp_path / "export")]) == 0
