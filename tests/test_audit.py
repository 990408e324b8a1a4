"""The privacy audit finds identifiers wherever a run could hide them (so zero hits means something)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
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


def test_a_png_site_is_audited_from_its_run_folder_without_a_hand_made_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PNG export has no headers: the identifiers are its images table's ids, which the
    audit takes from the run's own adapter config."""
    import yaml
    from PIL import Image

    export = tmp_path / "export"
    (export / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(export / "images" / "a.png")
    pd.DataFrame({"path": ["a.png"], "study": ["ACC-556677"], "mrn": ["MRN-778899"]}).to_csv(
        export / "images.csv", index=False
    )
    pd.DataFrame({"study": ["ACC-556677"], "report": ["FINDINGS: Clear."]}).to_csv(
        export / "reports.csv", index=False
    )
    run = tmp_path / "run"
    ingest = tmp_path / "ingest"
    (run / "eval").mkdir(parents=True)
    ingest.mkdir()
    pd.DataFrame({"image_key": ["0a1b"], "source": ["a.png"]}).to_parquet(
        ingest / "manifest.parquet"
    )
    adapter = {
        "_target_": "medrep.data.adapters.generic.GenericAdapter",
        "image_dir": str(export / "images"),
        "reports_csv": str(export / "reports.csv"),
        "key_column": "study",
        "images_csv": str(export / "images.csv"),
        "image_patient_column": "mrn",
    }
    config = {"data": {"adapter": adapter}, "paths": {"ingest_dir": str(ingest)}}
    (run / "resolved_config.yaml").write_text(yaml.safe_dump(config))
    (run / "eval" / "results.csv").write_text("method,value\nconvirt,0.7\n")
    assert main(["--run", str(run)]) == 0
    assert "no identifier found" in capsys.readouterr().out
    # an id leaks into a log of the ingestion folder and a table of the run
    (ingest / "ingest.log").write_text("reading MRN-778899 ...")
    pd.DataFrame({"note": ["study ACC-556677"]}).to_parquet(run / "eval" / "notes.parquet")
    assert main(["--run", str(run)]) == 1
    out = capsys.readouterr().out
    assert "patient id (adapter): 1 place(s)" in out and "ingest.log [bytes]" in out
    assert "study key (adapter): 1 place(s)" in out and "notes.parquet [column note]" in out
    assert "MRN-778899" not in out and "ACC-556677" not in out  # places, never the values
    # a run whose ingestion folder is gone cannot be called clean
    shutil.rmtree(ingest)
    assert main(["--run", str(run)]) == 2


def test_the_help_names_only_options_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--reports" not in text and "--id-column" not in text
    for option in ("--run", "--dicom", "--table", "--column", "exit status"):
        assert option in text
