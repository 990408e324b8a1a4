"""CheXpert: `train.csv` / `valid.csv` with image paths and 14 labels, and no reports.

The `Path` column reads `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`: its
first part names the release folder, which is `root` here. A study is `patient/study` (study
numbers restart for every patient). CheXpert has no report text, so it serves image-only
evaluation (linear probes, zero-shot with written prompts): `reports()` yields nothing and
ingestion must be told not to require reports for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.common import (
    ProblemLogMixin,
    is_under,
    label_frame,
    read_table,
    require_dir,
)

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
# ages above this are written as "90+" (HIPAA Safe Harbor)
_MAX_AGE = 89


@dataclass
class CheXpertAdapter(ProblemLogMixin):
    """CheXpert images and labels.

    Args:
        root: the release folder (`CheXpert-v1.0-small` or `CheXpert-v1.0`).
        csvs: the label CSVs, relative to `root` unless absolute; each row is one image.
        check_files: ledger rows whose image is not on disk (`missing_file`) instead of
            listing them.
        name: the adapter's name in manifests and logs.
    """

    root: str
    csvs: Sequence[str] = ("train.csv", "valid.csv")
    check_files: bool = True
    name: str = "chexpert"
    # its paths hold only the publisher\'s de-identified ids: kept as they are in `source`
    public_paths: bool = True

    def _tables(self, stage: str, record: bool = True) -> Iterator[tuple[str, pd.DataFrame]]:
        root = require_dir(self.root, "the CheXpert folder", "point root at CheXpert-v1.0-small")
        for name in self.csvs:
            path = Path(name) if Path(name).is_absolute() else root / name
            yield (
                path.name,
                read_table(
                    path,
                    ["Path"],
                    "use CheXpert's train.csv or valid.csv",
                    self._bad_rows(stage) if record else lambda row: None,
                ),
            )

    def _relative(self, value: str) -> Path:
        parts = Path(value).parts
        # the CSV names the release folder first; `root` is that folder, whatever its name
        if parts and (parts[0].startswith("CheXpert-v1.0") or parts[0] == Path(self.root).name):
            return Path(*parts[1:]) if len(parts) > 1 else Path()
        return Path(value)

    @property
    def export_root(self) -> str | None:
        """The folder every image path must lie under (ingestion checks)."""
        return str(self.root) if self.root else None

    def reports(self) -> Iterator[ReportRecord]:
        """CheXpert ships no reports."""
        return iter(())

    def images(self) -> Iterator[ImageRecord]:
        self._start_stage("images")
        root = Path(self.root)
        for csv_name, table in self._tables("images"):
            columns = set(table.columns)
            for line, row in zip(table.index, table.to_dict("records"), strict=True):
                where = f"{csv_name}#row{line}"
                rel = self._relative(row["Path"])
                if len(rel.parts) < 3:
                    self._record_problem(
                        "images", "missing_key", where, "Path is not .../patient/study/view.jpg"
                    )
                    continue
                path = Path(os.path.abspath(root / rel))
                # a path leaving the root is never looked at: ingestion ledgers it
                inside = is_under(str(path), os.path.abspath(root))
                if self.check_files and inside and not os.path.lexists(path):
                    self._record_problem(
                        "images", "missing_file", where, f"{rel} is not under {root}"
                    )
                    continue
                patient, study = rel.parts[-3], rel.parts[-2]
                yield ImageRecord(
                    path=str(path),
                    source=str(rel),
                    study_key=f"{patient}/{study}",
                    patient_id=patient,
                    image_id=str(rel.with_suffix("")),
                    view=_view(row) if "Frontal/Lateral" in columns else "",
                    extra=_extra(row, csv_name),
                )

    def labels(self) -> pd.DataFrame:
        """One row per study (the labels of its first image row: CheXpert's are per study)."""
        self._start_stage("labels")
        frames = []
        # the same tables as images(): their bad rows are recorded there, once
        for _, table in self._tables("labels", record=False):
            keys = [
                "/".join(self._relative(p).parts[-3:-1])
                if len(self._relative(p).parts) >= 3
                else ""
                for p in table["Path"]
            ]
            columns = [c for c in CHEXPERT_LABELS if c in table.columns]
            frames.append(label_frame(keys, table, columns))
        out = pd.concat(frames, ignore_index=True)
        out = out[out["study_key"] != ""]
        return out.drop_duplicates("study_key").reset_index(drop=True)


def _view(row: dict[str, str]) -> str:
    """PA/AP for frontal images (from `AP/PA`), LL for laterals, as DICOM ViewPosition spells."""
    if row.get("Frontal/Lateral", "").strip().lower() == "lateral":
        return "LL"
    return row.get("AP/PA", "").strip().upper()


def _extra(row: dict[str, str], csv_name: str) -> dict[str, str]:
    extra = {"csv": csv_name}
    if row.get("Sex"):
        extra["sex"] = row["Sex"]
    age = row.get("Age", "")
    if age.isdigit():
        extra["age"] = "90+" if int(age) > _MAX_AGE else age
    return extra
