"""The view vocabulary: raw values as exports spell them -> PA, AP, LATERAL or unknown, and what
ingestion keeps and counts with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.ingest import IngestConfig, run_ingestion
from medrep.data.views import canonical_view
from tests.helpers import ListAdapter


@pytest.mark.parametrize(
    ("raw", "view"),
    [
        ("PA", "PA"),
        ("pa", "PA"),
        (" PA  erect ", "PA"),
        ("Postero-anterior", "PA"),
        ("CHEST PA 2 VIEWS", "PA"),
        ("AP", "AP"),
        ("AP Supine", "AP"),
        ("AP SUPINE", "AP"),
        ("ap_supine", "AP"),
        ("AP Erect", "AP"),
        ("AP PORTABLE", "AP"),
        ("Portable AP", "AP"),
        ("PORTABLE", "AP"),
        ("supine", "AP"),
        ("AP semi-erect", "AP"),
        ("LATERAL", "LATERAL"),
        ("lat", "LATERAL"),
        ("LL", "LATERAL"),
        ("RL", "LATERAL"),
        ("Left lateral", "LATERAL"),
        ("", ""),
        ("   ", ""),
        ("?", ""),
        ("-", ""),
        ("XXXX", ""),
        ("AP LAT", ""),  # two kinds of view named: unknown, never a guess
        ("OBLIQUE", ""),
        ("A.P.", "AP"),
        ("P.A. erect", "PA"),
        ("Portable lateral", "LATERAL"),
        ("LATERAL SUPINE", "LATERAL"),
        ("AP supine portable", "AP"),
        ("Left lateral decubitus", ""),  # a horizontal-beam frontal: no view of ours
        ("LLD", ""),
    ],
)
def test_raw_views_map_to_canonical_views(raw: str, view: str) -> None:
    assert canonical_view(raw) == view


def test_a_site_map_wins_over_the_vocabulary() -> None:
    site = {"ap lordotic": "AP", "Portable": ""}
    assert canonical_view("AP-Lordotic", site) == "AP"
    assert canonical_view("PORTABLE", site) == ""
    assert canonical_view("PORTABLE AP", site) == "AP"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"views": ("PA", "SIDEWAYS")}, "name no view"),
        ({"view_map": {"AP LORDOTIC": "FRONT"}}, "view_map maps to"),
    ],
)
def test_bad_view_settings_fail_before_any_file_is_read(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        IngestConfig(out_dir="/nonexistent", secret="s", **kwargs)


def test_every_frontal_spelling_is_kept_and_filtered_values_are_counted(tmp_path: Path) -> None:
    raws = ["PA", "AP Supine", "ap supine", "Portable AP", "AP ERECT", "LATERAL", "LL", "", "?"]
    rng = np.random.default_rng(0)
    records, reports = [], []
    for i, raw in enumerate(raws):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32)).astype(np.uint8)).save(path)
        records.append(ImageRecord(str(path), path.name, f"s{i}", f"p{i}", view=raw))
        reports.append(ReportRecord(f"s{i}", "FINDINGS: Clear lungs.", f"r{i}"))
    cfg = IngestConfig(
        out_dir=str(tmp_path / "out"),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
    )
    summary = run_ingestion(cfg, ListAdapter(records, reports))
    assert (summary["cached"], summary["filtered"]) == (5, 4)
    assert summary["views"] == {"AP": 4, "PA": 1}
    assert summary["views_filtered_raw"] == {"": 1, "?": 1, "LATERAL": 1, "LL": 1}
    assert summary["views_unknown_raw"] == {}
    # unknown views kept on request, and counted by raw value
    keep = IngestConfig(
        out_dir=str(tmp_path / "keep"),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
        keep_unknown_view=True,
    )
    summary = run_ingestion(keep, ListAdapter(records, reports))
    assert summary["cached"] == 7 and summary["views_unknown_raw"] == {"": 1, "?": 1}


def test_reports_in_a_site_style_are_read_whole_and_known_styles_keep_their_rules(
    tmp_path: Path,
) -> None:
    """'PC: ... BG: ...' notes (no header the parser knows) are read as a whole, recorded per
    report; a MIMIC-style report whose known sections hold no findings is still empty."""
    texts = {
        "site": "PC: cough for two weeks. BG: smoker. Patchy air space opacification bilaterally.",
        # headers on their own lines and a last paragraph: MIMIC's fallback would keep only it
        "lines": "PC: cough.\nBG: asthma.\nCXR: The lungs are clear.\n\nNo acute disease.",
        "plain": "Patchy areas of air space opacification bilaterally. No effusion.",
        "mimic": "INDICATION: Cough.\n\nCOMPARISON: None.",
        "normal": "FINDINGS: Clear lungs.\n\nIMPRESSION: Normal chest.",
    }
    rng = np.random.default_rng(1)
    records, reports = [], []
    for i, (key, text) in enumerate(texts.items()):
        path = tmp_path / f"{key}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32)).astype(np.uint8)).save(path)
        records.append(ImageRecord(str(path), path.name, key, f"p{i}", view="PA"))
        reports.append(ReportRecord(key, text, f"r-{key}"))
    cfg = IngestConfig(
        out_dir=str(tmp_path / "out"),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
    )
    summary = run_ingestion(cfg, ListAdapter(records, reports))
    assert summary["cached"] == 4 and summary["reports_whole_text"] == 2
    import pandas as pd

    table = pd.read_parquet(tmp_path / "out" / "reports.parquet")
    by_source = dict(zip(table["source"], table["text_source"], strict=True))
    # a note without headers was already read: the parser's fallback makes it the impression
    assert by_source == {
        "r-site": "whole_text",
        "r-lines": "whole_text",
        "r-plain": "sections",
        "r-normal": "sections",
    }
    lines = table.loc[table["source"] == "r-lines", "text"].iloc[0]
    assert "The lungs are clear." in lines and "No acute disease." in lines
    site = table.loc[table["source"] == "r-site", "text"].iloc[0]
    assert "Patchy air space opacification bilaterally." in site and "PC:" not in site
    ledger = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert ledger.loc[ledger["source"] == "r-mimic", "reason"].tolist() == ["empty_report"]
