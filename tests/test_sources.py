"""Folder and file names that name patients never reach an output; the audit finds them if they do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from medrep.audit import main as audit_main
from medrep.audit import path_components, pattern_hits
from medrep.data.adapters.generic import GenericAdapter
from medrep.data.ingest import IngestConfig, run_ingestion
from medrep.data.scrub import Scrubber
from medrep.data.sources import locate_sources, pseudonymise_source, rewrite_message

SECRET = "site-secret"
NAMES = ("SMITH_JOHN", "Doe Jane", "QUIXOTE-1947", "Rossi, Maria", "Jane.Doe")


def site_export(root: Path) -> GenericAdapter:
    """A PNG export whose folders and files carry patient names, with one missing file and two
    pixel-identical images (ledger messages that name files)."""
    rng = np.random.default_rng(0)
    rows, reports = [], []
    for i, name in enumerate(NAMES):
        folder = root / "export" / name
        folder.mkdir(parents=True)
        file = f"{name}_chest.png"
        pixels = rng.integers(0, 255, (24, 24), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / file)
        rows.append({"path": f"{name}/{file}", "study": f"S{i}", "mrn": f"P{i}", "view": "PA"})
        reports.append({"study": f"S{i}", "report": "FINDINGS: No effusion."})
    # the same pixels as the first image under another patient, and a row naming no file
    Image.open(root / "export" / NAMES[0] / f"{NAMES[0]}_chest.png").save(
        root / "export" / NAMES[1] / "Doe Jane_copy.png"
    )
    rows.append({"path": f"{NAMES[1]}/Doe Jane_copy.png", "study": "S9", "mrn": "P9", "view": "PA"})
    rows.append(
        {"path": f"{NAMES[2]}/QUIXOTE-1947_lateral.png", "study": "S2", "mrn": "P2", "view": "PA"}
    )
    reports.append({"study": "S9", "report": "FINDINGS: Clear lungs."})
    pd.DataFrame(rows).to_csv(root / "export" / "images.csv", index=False)
    pd.DataFrame(reports).to_csv(root / "export" / "Smith notes.csv", index=False)
    return GenericAdapter(
        image_dir=str(root / "export"),
        reports_csv=str(root / "export" / "Smith notes.csv"),
        key_column="study",
        images_csv=str(root / "export" / "images.csv"),
        image_patient_column="mrn",
        image_view_column="view",
    )


def ingest(root: Path, adapter: GenericAdapter, mode: str) -> Path:
    out = root / f"ingest-{mode}"
    cfg = IngestConfig(
        out_dir=str(out), secret=SECRET, image_size=16, progress=False, source_paths=mode
    )
    run_ingestion(cfg, adapter)
    return out


def written_text(folder: Path) -> str:
    """Every table and text file of an ingestion folder, as one string."""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".parquet":
            parts.append(pd.read_parquet(path).to_csv())
        elif path.suffix in (".csv", ".json"):
            parts.append(path.read_text())
    return "\n".join(parts)


def test_names_in_paths_never_reach_the_ingestion_outputs(tmp_path: Path) -> None:
    adapter = site_export(tmp_path)
    out = ingest(tmp_path, adapter, "auto")  # the generic adapter: pseudonymised
    text = written_text(out)
    for name in (*NAMES, "Doe", "Jane", "Rossi", "Smith notes"):
        assert name not in text, name
    manifest = pd.read_parquet(out / "manifest.parquet")
    ledger = pd.read_csv(out / "rejects.csv", keep_default_na=False)
    # what was refused is still in the ledger, under the same pseudonymised names
    assert set(ledger["reason"]) >= {"duplicate_content", "missing_file"}
    copy = ledger[ledger["reason"] == "duplicate_content"]
    kept = pseudonymise_source(f"{NAMES[0]}/{NAMES[0]}_chest.png", SECRET)
    assert copy["message"].str.contains(kept, regex=False).all()
    assert kept in set(manifest["source"])
    # a site finds every file again with its secret
    found = dict(locate_sources(tmp_path / "export", list(manifest["source"]), SECRET))
    assert sorted(found.values()) == sorted(f"{n}/{n}_chest.png" for n in NAMES)
    assert set(found) == set(manifest["source"])
    # reports keep their row numbers
    reports = pd.read_parquet(out / "reports.parquet")
    assert reports["source"].str.fullmatch(r"[0-9a-f]{12}\.csv#row\d+").all()


def test_relative_sources_keep_the_names_and_the_audit_finds_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = site_export(tmp_path)
    results = {}
    for mode in ("auto", "relative"):
        out = ingest(tmp_path, adapter, mode)
        run = tmp_path / f"run-{mode}"
        run.mkdir()
        adapter_cfg = {"_target_": "medrep.data.adapters.generic.GenericAdapter"}
        adapter_cfg |= {
            k: getattr(adapter, k) for k in ("image_dir", "reports_csv", "key_column", "images_csv")
        }
        adapter_cfg |= {"image_patient_column": "mrn", "image_view_column": "view"}
        config = {"data": {"adapter": adapter_cfg}, "paths": {"ingest_dir": str(out)}}
        (run / "resolved_config.yaml").write_text(yaml.safe_dump(config))
        results[mode] = audit_main(["--run", str(run)])
        results[mode + "_out"] = capsys.readouterr().out
    assert results["auto"] == 0, results["auto_out"]
    assert results["relative"] == 1
    assert "path component (export)" in results["relative_out"]
    assert "manifest.parquet [column source]" in results["relative_out"]
    assert "SMITH_JOHN" not in results["relative_out"]  # places, never the values


def test_path_components_worth_searching() -> None:
    assert path_components("SMITH_JOHN/img_0001.png") == {
        "SMITH_JOHN",
        "img_0001",
        "img_0001.png",
    }
    # folder kinds and short names are not searched (every log names them)
    assert path_components("images/frontal/a.png") == set()


def test_messages_name_files_only_through_the_writer() -> None:
    def write(source: str) -> str:
        return f"<{source}>"

    assert (
        rewrite_message("SMITH JOHN/x.png is not under /exports/site", write)
        == "<SMITH JOHN/x.png> is not under </exports/site>"
    )
    assert (
        rewrite_message("pixel-identical to Smith, John/img.png (cached)", write)
        == "pixel-identical to <Smith, John/img.png> (cached)"
    )
    assert rewrite_message("the same file as O'Brien/x.dcm", write) == (
        "the same file as <O'Brien/x.dcm>"
    )
    assert rewrite_message("see SMITH_JOHN/a.png.", write) == "see <SMITH_JOHN/a.png>."
    message = (
        "JPEG extended 12-bit could not be decoded (pylibjpeg-libjpeg); 1.2.840.10008.1.2.4.51"
    )
    assert rewrite_message(message, write) == message
    assert rewrite_message("PA view filtered", write) == "PA view filtered"


def test_pseudonymised_sources_are_stable_and_keyed() -> None:
    a = pseudonymise_source("SMITH_JOHN/chest.PNG", SECRET)
    assert a == pseudonymise_source("SMITH_JOHN/chest.PNG", SECRET)
    assert a != pseudonymise_source("SMITH_JOHN/chest.PNG", "another secret")
    assert a.endswith(".png") and "SMITH" not in a and a.count("/") == 1
    assert pseudonymise_source("notes.csv#row7", SECRET).endswith(".csv#row7")
    assert "IM-0001" not in pseudonymise_source("ecgen/1.xml#CXR1_IM-0001", SECRET)
    # a folder's dotted name is a name, not an extension
    folder = pseudonymise_source("Jane.Doe/chest.png", SECRET)
    assert "doe" not in folder.lower() and folder.endswith(".png") and folder.count(".") == 1


def test_the_audit_finds_identifiers_by_pattern_in_tables(tmp_path: Path) -> None:
    (tmp_path / "eval").mkdir()
    pd.DataFrame(
        {"text": ["No effusion.", "Lives in Bristol; seen at St Mary's Hospital on 13 February."]}
    ).to_parquet(tmp_path / "eval" / "texts.parquet")
    pd.DataFrame({"method": ["convirt"], "auroc": [0.7]}).to_csv(tmp_path / "results.csv")
    hits = pattern_hits([tmp_path])
    assert {h.kind for h in hits} == {"pattern: geo", "pattern: institution", "pattern: date"}
    assert {h.where for h in hits} == {"column text"}
    # the scrubbed text passes
    scrubbed = Scrubber().scrub("Lives in Bristol; seen at St Mary's Hospital on 13 February.").text
    pd.DataFrame({"text": [scrubbed]}).to_parquet(tmp_path / "eval" / "texts.parquet")
    assert pattern_hits([tmp_path]) == []
    # pseudonymised names in a ledger message are no record numbers, whatever digits they hold
    message = "0123456789ab/9876543210cd.png is not under /4444444444ab/5555555555cd"
    pd.DataFrame({"message": [message]}).to_csv(tmp_path / "rejects.csv", index=False)
    assert pattern_hits([tmp_path]) == []
