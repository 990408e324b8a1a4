"""Dataset adapters on small fake trees: MIMIC-CXR (DICOM and JPG), CheXpert, generic folder + CSV."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate

from medrep.data.adapters.base import ImageRecord
from medrep.data.adapters.chexpert import CHEXPERT_LABELS, CheXpertAdapter
from medrep.data.adapters.common import ADAPTER_REASON_CODES, AdapterProblem
from medrep.data.adapters.generic import GenericAdapter
from medrep.data.adapters.iu_xray import IUXrayAdapter
from medrep.data.adapters.mimic_cxr import MimicCxrAdapter
from medrep.data.adapters.mimic_cxr_jpg import MimicCxrJpgAdapter
from medrep.data.errors import REASON_CODES
from tests.helpers import compose, compose_config

REPORT = "FINAL REPORT\n FINDINGS: Lungs are clear.\n\n IMPRESSION: No acute process.\n"


def _touch(path: Path, data: bytes | str = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _mimic_tree(root: Path, suffix: str) -> None:
    """Two patients, three studies; one stray file, one unreadable report."""
    _touch(root / f"files/p10/p10000032/s50414267/02aa804e.{suffix}")
    _touch(root / f"files/p10/p10000032/s50414267/174413ec.{suffix}")
    _touch(root / f"files/p10/p10000032/s53189527/2a2277a9.{suffix}")
    _touch(root / f"files/p11/p11000011/s51029426/3a2b6c9d.{suffix}")
    _touch(root / f"files/p11/p11000011/notes/stray.{suffix}")


def _mimic_reports(root: Path) -> None:
    _touch(root / "files/p10/p10000032/s50414267.txt", REPORT)
    _touch(root / "files/p10/p10000032/s53189527.txt", "")
    _touch(root / "files/p11/p11000011/s51029426.txt", b"\xff\xfe not utf-8 \xff")
    _touch(root / "files/p11/p10000032/s59999999.txt", REPORT)  # patient outside its group


def test_every_problem_code_is_documented() -> None:
    with pytest.raises(ValueError, match="unknown reason code"):
        AdapterProblem("lost", "x", "y")
    # codes shared with ingestion keep ingestion's name; the rest are proposed additions
    assert "missing_key" in REASON_CODES
    assert set(ADAPTER_REASON_CODES) - set(REASON_CODES) <= {"unreadable_report", "missing_file"}


# ---- MIMIC-CXR --------------------------------------------------------------------------------


def test_mimic_cxr_dicom(tmp_path: Path) -> None:
    _mimic_tree(tmp_path / "mimic", "dcm")
    _mimic_reports(tmp_path / "reports")
    adapter = MimicCxrAdapter(str(tmp_path / "mimic"), reports_root=str(tmp_path / "reports"))
    reports = list(adapter.reports())
    assert [(r.study_key, r.patient_id, r.source) for r in reports] == [
        ("s50414267", "p10000032", "files/p10/p10000032/s50414267.txt"),
        ("s53189527", "p10000032", "files/p10/p10000032/s53189527.txt"),
    ]
    assert reports[0].text == REPORT and reports[1].text == ""
    images = list(adapter.images())
    assert [(i.study_key, i.patient_id, i.image_id) for i in images] == [
        ("s50414267", "p10000032", "02aa804e"),
        ("s50414267", "p10000032", "174413ec"),
        ("s53189527", "p10000032", "2a2277a9"),
        ("s51029426", "p11000011", "3a2b6c9d"),
    ]
    assert images[0].source == "files/p10/p10000032/s50414267/02aa804e.dcm"
    assert all(Path(i.path).is_absolute() and i.view == "" for i in images)
    assert sorted((p.reason, p.source) for p in adapter.problems) == [
        ("missing_key", "files/p11/p10000032/s59999999.txt"),
        ("missing_key", "files/p11/p11000011/notes/stray.dcm"),
        ("unreadable_report", "files/p11/p11000011/s51029426.txt"),
    ]
    assert adapter.labels() is None


def _jpg_csvs(root: Path, gz: bool) -> None:
    metadata = pd.DataFrame(
        {
            "dicom_id": ["02aa804e", "174413ec", "2a2277a9", "ffffffff", ""],
            "subject_id": ["10000032", "10000032", "10000032", "10000032", "11000011"],
            "study_id": ["50414267", "50414267", "53189527", "53189527", "51029426"],
            "ViewPosition": ["PA", "lateral", "AP", "PA", "PA"],
            "Rows": ["3056"] * 5,
        }
    )
    labels = pd.DataFrame(
        {
            "subject_id": ["10000032", "10000032"],
            "study_id": ["50414267", "53189527"],
            "Cardiomegaly": ["1.0", ""],
            "Edema": ["-1.0", "0.0"],
        }
    )
    if gz:
        with gzip.open(root / "mimic-cxr-2.0.0-metadata.csv.gz", "wt") as f:
            metadata.to_csv(f, index=False)
    else:
        metadata.to_csv(root / "mimic-cxr-2.0.0-metadata.csv", index=False)
    labels.to_csv(root / "mimic-cxr-2.0.0-chexpert.csv", index=False)


@pytest.mark.parametrize("gz", [False, True])
def test_mimic_cxr_jpg(tmp_path: Path, gz: bool) -> None:
    root = tmp_path / "jpg"
    _mimic_tree(root, "jpg")
    _mimic_reports(tmp_path / "reports")
    _jpg_csvs(root, gz)
    adapter = MimicCxrJpgAdapter(str(root), reports_root=str(tmp_path / "reports"))
    images = list(adapter.images())
    assert [(i.image_id, i.study_key, i.view) for i in images] == [
        ("02aa804e", "s50414267", "PA"),
        ("174413ec", "s50414267", "LATERAL"),
        ("2a2277a9", "s53189527", "AP"),
        ("3a2b6c9d", "s51029426", ""),  # on disk, not in the metadata: listed, view unknown
    ]
    name = "mimic-cxr-2.0.0-metadata.csv" + (".gz" if gz else "")
    assert sorted((p.reason, p.source) for p in adapter.problems) == [
        ("missing_file", f"{name}#row5"),  # ffffffff is not on disk
        ("missing_key", "files/p11/p11000011/notes/stray.jpg"),
        ("missing_key", f"{name}#row6"),
    ]
    assert [r.study_key for r in adapter.reports()][:1] == ["s50414267"]
    labels = adapter.labels()
    assert labels is not None
    assert list(labels.columns) == ["study_key", "Cardiomegaly", "Edema"]
    assert labels["study_key"].tolist() == ["s50414267", "s53189527"]
    assert labels["Cardiomegaly"].isna().tolist() == [False, True]
    assert labels["Edema"].tolist() == [-1.0, 0.0]


def test_mimic_cxr_jpg_metadata_without_views_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "jpg"
    _mimic_tree(root, "jpg")
    pd.DataFrame({"dicom_id": ["a"], "subject_id": ["1"], "study_id": ["2"]}).to_csv(
        root / "mimic-cxr-2.0.0-metadata.csv", index=False
    )
    adapter = MimicCxrJpgAdapter(str(root), reports_root=str(tmp_path))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ViewPosition'\]"):
        list(adapter.images())


# ---- CheXpert ---------------------------------------------------------------------------------


def _chexpert(root: Path) -> None:
    rows = [
        ("train/patient00001/study1/view1_frontal.jpg", "Female", "68", "Frontal", "AP"),
        ("train/patient00001/study1/view2_lateral.jpg", "Female", "68", "Lateral", ""),
        ("train/patient00002/study2/view1_frontal.jpg", "Male", "92", "Frontal", "PA"),
        ("train/patient00003/study1/view1_frontal.jpg", "Male", "40", "Frontal", "PA"),  # absent
        ("bad.jpg", "Male", "40", "Frontal", "PA"),
    ]
    table = pd.DataFrame(
        [
            {
                "Path": f"CheXpert-v1.0-small/{p}",
                "Sex": sex,
                "Age": age,
                "Frontal/Lateral": fl,
                "AP/PA": appa,
                **{label: "" for label in CHEXPERT_LABELS},
            }
            for p, sex, age, fl, appa in rows
        ]
    )
    table.loc[0:1, "Cardiomegaly"] = "1.0"
    table.loc[2, "Pleural Effusion"] = "-1.0"
    table.loc[2, "No Finding"] = "0.0"
    table.to_csv(root / "train.csv", index=False)
    table.iloc[:1].assign(
        Path="CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg"
    ).to_csv(root / "valid.csv", index=False)
    for p, *_ in rows[:3]:
        _touch(root / p)
    _touch(root / "valid/patient64541/study1/view1_frontal.jpg")


def test_chexpert(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    _chexpert(root)
    adapter = CheXpertAdapter(str(root))
    assert list(adapter.reports()) == []
    images = list(adapter.images())
    assert [(i.source, i.study_key, i.patient_id, i.view) for i in images] == [
        (
            "train/patient00001/study1/view1_frontal.jpg",
            "patient00001/study1",
            "patient00001",
            "AP",
        ),
        (
            "train/patient00001/study1/view2_lateral.jpg",
            "patient00001/study1",
            "patient00001",
            "LL",
        ),
        (
            "train/patient00002/study2/view1_frontal.jpg",
            "patient00002/study2",
            "patient00002",
            "PA",
        ),
        (
            "valid/patient64541/study1/view1_frontal.jpg",
            "patient64541/study1",
            "patient64541",
            "AP",
        ),
    ]
    assert images[2].extra == {"csv": "train.csv", "sex": "Male", "age": "90+"}
    assert images[0].image_id == "train/patient00001/study1/view1_frontal"
    assert sorted((p.reason, p.source) for p in adapter.problems) == [
        ("missing_file", "train.csv#row5"),
        ("missing_key", "train.csv#row6"),
    ]
    labels = adapter.labels().set_index("study_key")
    assert list(labels.columns) == list(CHEXPERT_LABELS)
    assert len(labels) == 4  # one row per study (patient00003's study has labels, not images)
    assert labels.loc["patient00001/study1", "Cardiomegaly"] == 1.0
    assert labels.loc["patient00002/study2", "Pleural Effusion"] == -1.0
    assert pd.isna(labels.loc["patient00002/study2", "Cardiomegaly"])


def test_chexpert_without_path_column_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"path": ["a.jpg"]}).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Path'\]"):
        list(CheXpertAdapter(str(tmp_path), csvs=["train.csv"]).images())
    with pytest.raises(FileNotFoundError, match="CheXpert"):
        list(CheXpertAdapter(str(tmp_path / "absent")).images())


# ---- generic ----------------------------------------------------------------------------------


def _generic(root: Path) -> None:
    _touch(root / "dicom/s1/i1.dcm")
    _touch(root / "dicom/s1/i2.dcm")
    _touch(root / "dicom/s2/i1.dcm")
    _touch(root / "dicom/notes.txt")
    pd.DataFrame(
        {
            "AccessionNumber": ["ACC1", "ACC2", "", "ACC1"],
            "StudyInstanceUID": ["1.2.1", "1.2.2", "1.2.3", "1.2.1"],
            "PatientID": ["P1", "P2", "P3", "P1"],
            "report": [REPORT, REPORT, REPORT, "duplicate"],
        }
    ).to_csv(root / "reports.csv", index=False)
    pd.DataFrame(
        {
            "AccessionNumber": ["ACC1", "ACC2"],
            "StudyInstanceUID": ["1.2.1", "1.2.2"],
            "Cardiomegaly": [1.0, 0.0],
            "Edema": [None, -1.0],
        }
    ).to_csv(root / "labels.csv", index=False)


def test_generic_dicom_folder(tmp_path: Path) -> None:
    _generic(tmp_path)
    adapter = GenericAdapter(
        str(tmp_path / "dicom"),
        str(tmp_path / "reports.csv"),
        labels_csv=str(tmp_path / "labels.csv"),
        patient_column="PatientID",
    )
    images = list(adapter.images())
    assert [i.source for i in images] == ["s1/i1.dcm", "s1/i2.dcm", "s2/i1.dcm"]
    assert all(i.study_key == i.patient_id == i.image_id == "" for i in images)
    reports = list(adapter.reports())
    # every row is passed on: ingestion ledgers the empty key and the duplicate
    assert [(r.study_key, r.patient_id, r.source) for r in reports] == [
        ("ACC1", "P1", "reports.csv#row2"),
        ("ACC2", "P2", "reports.csv#row3"),
        ("", "P3", "reports.csv#row4"),
        ("ACC1", "P1", "reports.csv#row5"),
    ]
    labels = adapter.labels()
    assert labels is not None and list(labels.columns) == ["study_key", "Cardiomegaly", "Edema"]
    # a file that is neither DICOM nor an image is said, not silently skipped
    assert [(p.reason, p.source) for p in adapter.problems] == [("unsupported_file", "notes.txt")]
    keyed = GenericAdapter(
        str(tmp_path / "dicom"), str(tmp_path / "reports.csv"), key_column="StudyInstanceUID"
    )
    assert [r.study_key for r in keyed.reports()][:2] == ["1.2.1", "1.2.2"]


def test_generic_image_table(tmp_path: Path) -> None:
    _touch(tmp_path / "png/a.png")
    _touch(tmp_path / "png/b.png")
    # test data alike only in shape to _generic's reports.csv: other columns, other cases
    pd.DataFrame(
        {
            "file": ["a.png", "b.png", "c.png", ""],
            "accession": ["ACC1", "ACC1", "ACC2", "ACC3"],
            "patient": ["P1", "P1", "P2", "P3"],
            "view": ["pa", "ll", "ap", "pa"],
        }
    ).to_csv(tmp_path / "images.csv", index=False)
    pd.DataFrame({"AccessionNumber": ["ACC1"], "report": [REPORT]}).to_csv(
        tmp_path / "reports.csv", index=False
    )
    adapter = GenericAdapter(
        str(tmp_path / "png"),
        str(tmp_path / "reports.csv"),
        images_csv=str(tmp_path / "images.csv"),
        image_path_column="file",
        image_key_column="accession",
        image_patient_column="patient",
        image_view_column="view",
    )
    images = list(adapter.images())
    assert images == [
        ImageRecord(str((tmp_path / "png/a.png").resolve()), "a.png", "ACC1", "P1", "", "PA"),
        ImageRecord(str((tmp_path / "png/b.png").resolve()), "b.png", "ACC1", "P1", "", "LL"),
    ]
    assert [(p.reason, p.source) for p in adapter.problems] == [
        ("missing_file", "images.csv#row4"),
        ("missing_file", "images.csv#row5"),
    ]
    with pytest.raises(ValueError, match="report_text"):
        list(
            GenericAdapter(
                str(tmp_path), str(tmp_path / "reports.csv"), text_column="report_text"
            ).reports()
        )


# ---- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("iu_xray", IUXrayAdapter),
        ("mimic_cxr", MimicCxrAdapter),
        ("mimic_cxr_jpg", MimicCxrJpgAdapter),
        ("chexpert", CheXpertAdapter),
        ("generic", GenericAdapter),
    ],
)
def test_dataset_configs_build_adapters(tmp_path: Path, group: str, kind: type) -> None:
    cfg = compose_config(tmp_path, [f"dataset={group}"])
    assert cfg.data.name == group
    adapter = instantiate(cfg.data.adapter)
    assert isinstance(adapter, kind)
    assert adapter.name == group
    assert str(tmp_path) in str(next(iter(vars(adapter).values())))


def test_example_site_config_ingests_an_export_not_the_synthetic_world() -> None:
    """conf/site/example.yaml, as a hospital copies it: its export's adapter, no synthetic world."""
    cfg = compose(["site=example", "model=convirt"])
    assert cfg.data.synthetic is None
    adapter = cfg.data.adapter
    assert adapter.image_dir == "/data/radiology/medrep/export/dicom"
    assert adapter.labels_csv is None
    assert cfg.data.ingest.secret.secret is None and cfg.data.ingest.secret.secret_env
    assert cfg.paths.ingest_dir.endswith(f"site_export-{cfg.data.image_size}px")
    assert cfg.model.module.text_encoder.model_path == "/models/Bio_ClinicalBERT"
