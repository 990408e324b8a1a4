"""IU X-ray / Open-I: XML reports read from the archive, rendered to free text, parsed back."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import pytest

from medrep.data.adapters.iu_xray import (
    IUXrayAdapter,
    mesh_labels,
    parse_iu_xml,
    render_report,
    section_agreement,
)
from medrep.data.reports import ReportParser


def _xml(uid: str, sections: dict[str, str], mesh: list[str], images: list[str]) -> str:
    texts = "".join(
        f'<AbstractText Label="{label}">{text}</AbstractText>' for label, text in sections.items()
    )
    terms = "".join(f"<major>{t}</major>" for t in mesh)
    parents = "".join(
        f'<parentImage id="{i}"><caption>Xray</caption></parentImage>' for i in images
    )
    uid_node = f'<uId id="{uid}"/>' if uid else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><eCitation>'
        f"{uid_node}<MedlineCitation><Article><Abstract>{texts}</Abstract></Article>"
        f"</MedlineCitation><MeSH>{terms}</MeSH>{parents}</eCitation>"
    )


DOCUMENTS = {
    "ecgen-radiology/2.xml": _xml(
        "CXR2",
        {
            "COMPARISON": "None.",
            "INDICATION": "XXXX-year-old with cough",
            "FINDINGS": "The heart is normal in size. No pleural effusion. The lungs are clear",
            "IMPRESSION": "Normal chest x-XXXX.",
        },
        ["normal"],
        ["CXR2_1_IM-0652-1001", "CXR2_1_IM-0652-2001"],
    ),
    "ecgen-radiology/10.xml": _xml(
        "CXR10",
        {
            "COMPARISON": "XXXX",
            "INDICATION": "Dyspnea",
            "FINDINGS": "",
            "IMPRESSION": "1. Borderline cardiomegaly. 2. Small right pleural effusion "
            "3. Right lower lobe pneumonia &amp;gt; 2 cm",
        },
        ["Cardiomegaly/borderline", "Pleural Effusion/right/small", "Pneumonia/lower lobe/right"],
        ["CXR10_1_IM-0033-1001"],
    ),
    "ecgen-radiology/11.xml": _xml(
        "CXR11",
        {"COMPARISON": "", "INDICATION": "", "FINDINGS": "", "IMPRESSION": ""},
        ["No Indexing"],
        [],
    ),
    "ecgen-radiology/12.xml": "<eCitation><uId id='CXR12'/><unclosed></eCitation>",
    "ecgen-radiology/13.xml": _xml("", {"FINDINGS": "Clear."}, [], []),
}


def _write_tgz(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in DOCUMENTS.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _write_folder(root: Path) -> Path:
    for name, text in DOCUMENTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(params=["tgz", "folder"])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> IUXrayAdapter:
    if request.param == "tgz":
        return IUXrayAdapter(str(_write_tgz(tmp_path / "reports.tgz")))
    return IUXrayAdapter(str(_write_folder(tmp_path / "xml")))


def test_reports_are_read_in_file_order_and_problems_are_ledgered(adapter: IUXrayAdapter) -> None:
    reports = list(adapter.reports())
    # 2.xml before 10.xml (numeric order); the empty report is passed on for ingestion to judge
    assert [r.study_key for r in reports] == ["CXR2", "CXR10", "CXR11"]
    assert [r.source for r in reports][:2] == ["ecgen-radiology/2.xml", "ecgen-radiology/10.xml"]
    assert all(r.patient_id == r.study_key for r in reports)
    assert sorted((p.reason, p.source) for p in adapter.problems) == [
        ("unreadable_report", "ecgen-radiology/12.xml"),
        ("unreadable_report", "ecgen-radiology/13.xml"),
    ]
    # iterating again does not repeat the problems
    list(adapter.reports())
    assert len(adapter.problems) == 2


def test_rendered_reports_parse_back_into_the_xml_sections(adapter: IUXrayAdapter) -> None:
    parser = ReportParser()
    normal, abnormal, empty = (parser.parse(r.text) for r in adapter.reports())
    assert normal.sections["findings"] == (
        "The heart is normal in size. No pleural effusion. The lungs are clear"
    )
    assert normal.sections["impression"] == "Normal chest x-."
    assert normal.sections["indication"] == "-year-old with cough"
    assert "findings" not in abnormal.sections and "comparison" not in abnormal.sections
    # the doubly escaped entity is decoded, the list numbers stripped
    assert parser.split_sentences(abnormal.sections["impression"]) == [
        "Borderline cardiomegaly.",
        "Small right pleural effusion.",
        "Right lower lobe pneumonia > 2 cm",
    ]
    assert empty.sections == {}
    result = section_agreement(adapter, parser)
    assert (result.reports, result.exact, result.words) == (3, 3, 3)
    assert result.sentence_counts == {0: 1, 3: 1, 4: 1}


def test_rendering() -> None:
    sections = {"FINDINGS": "Lungs clear.", "COMPARISON": "None.", "TECHNIQUE": "PA"}
    assert (
        render_report(sections) == "COMPARISON: None.\n\nFINDINGS: Lungs clear.\n\nTECHNIQUE: PA\n"
    )
    wrapped = render_report({"FINDINGS": "word " * 30}, width=40)
    assert all(len(line) <= 40 for line in wrapped.splitlines())
    assert ReportParser().parse(wrapped).sections["findings"] == ("word " * 30).strip()


def test_parse_iu_xml_fields() -> None:
    study = parse_iu_xml(DOCUMENTS["ecgen-radiology/10.xml"].encode(), "10.xml")
    assert study.study_key == "CXR10"
    assert study.image_ids == ("CXR10_1_IM-0033-1001",)
    assert study.mesh[0] == "Cardiomegaly/borderline"
    assert study.sections["FINDINGS"] == ""
    with pytest.raises(ValueError, match="uId"):
        parse_iu_xml(DOCUMENTS["ecgen-radiology/13.xml"].encode(), "13.xml")


def test_mesh_labels() -> None:
    assert mesh_labels(["normal"]) == {
        "Cardiomegaly": 0.0,
        "Pleural Effusion": 0.0,
        "Pneumothorax": 0.0,
        "Consolidation": 0.0,
        "Nodule": 0.0,
        "Edema": 0.0,
        "No Finding": 1.0,
    }
    labels = mesh_labels(
        ["Cardiomegaly/borderline", "Pulmonary Congestion/mild", "Nodule/lung/upper lobe/right"]
    )
    assert labels["Cardiomegaly"] == -1.0 and labels["Edema"] == 1.0 and labels["Nodule"] == 1.0
    assert labels["No Finding"] == 0.0 and labels["Pneumothorax"] == 0.0
    # a certain mention wins over an uncertain one, in either order
    assert mesh_labels(["Cardiomegaly", "Cardiomegaly/borderline"])["Cardiomegaly"] == 1.0
    assert mesh_labels(["Cardiomegaly/borderline", "Cardiomegaly"])["Cardiomegaly"] == 1.0
    assert all(math.isnan(v) for v in mesh_labels(["No Indexing"]).values())
    assert all(math.isnan(v) for v in mesh_labels([]).values())


def test_labels_frame(adapter: IUXrayAdapter) -> None:
    labels = adapter.labels()
    assert list(labels["study_key"]) == ["CXR2", "CXR10", "CXR11"]
    row = labels.set_index("study_key").loc["CXR10"]
    assert (row["Cardiomegaly"], row["Pleural Effusion"], row["Consolidation"]) == (-1.0, 1.0, 1.0)
    assert labels.set_index("study_key").loc["CXR11"].isna().all()
    assert str(labels["Edema"].dtype) == "float32"


def test_images_are_the_referenced_files_that_exist(tmp_path: Path) -> None:
    archive = _write_tgz(tmp_path / "reports.tgz")
    assert list(IUXrayAdapter(str(archive)).images()) == []
    images = tmp_path / "png"
    images.mkdir()
    (images / "CXR2_1_IM-0652-1001.png").write_bytes(b"png")
    (images / "CXR10_1_IM-0033-1001.jpg").write_bytes(b"jpg")
    (images / "unrelated.png").write_bytes(b"png")
    adapter = IUXrayAdapter(str(archive), image_dir=str(images))
    records = list(adapter.images())
    assert [(r.source, r.study_key, r.patient_id, r.image_id) for r in records] == [
        ("CXR2_1_IM-0652-1001.png", "CXR2", "CXR2", "CXR2_1_IM-0652-1001"),
        ("CXR10_1_IM-0033-1001.jpg", "CXR10", "CXR10", "CXR10_1_IM-0033-1001"),
    ]
    assert all(Path(r.path).is_file() for r in records)
    missing = [p for p in adapter.problems if p.reason == "missing_file"]
    assert [p.source for p in missing] == ["ecgen-radiology/2.xml#CXR2_1_IM-0652-2001"]


def test_a_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    adapter = IUXrayAdapter(str(tmp_path / "nope.tgz"))  # cheap to construct
    with pytest.raises(FileNotFoundError, match="NLMCXR_reports.tgz"):
        list(adapter.reports())


# ---- the real collection ----------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
def test_real_iu_reports(shared_data: Path) -> None:
    archive = shared_data / "iu_reports" / "NLMCXR_reports.tgz"
    if not archive.is_file():
        pytest.skip(f"{archive} is not present")
    adapter = IUXrayAdapter(str(archive))
    parser = ReportParser()
    reports = list(adapter.reports())
    assert len(reports) == 3955 and adapter.problems == []
    assert len({r.study_key for r in reports}) == 3955
    # docs/reports.md: exact agreement of findings and impression with the XML's own sections
    for width in (None, 72):
        result = section_agreement(adapter, parser, width=width)
        assert result.reports == 3955
        assert result.exact / result.reports >= 0.99, (width, result.disagreeing[:10])
        assert result.words / result.reports >= 0.99
    # 28 reports have no text at all; every other one gives sentences
    counts = result.sentence_counts
    assert counts.get(0, 0) <= 28
    labels = adapter.labels()
    assert labels.shape == (3955, 8)
    assert (labels["No Finding"] == 1).sum() > 1000 and (labels["Cardiomegaly"] == 1).sum() > 300
