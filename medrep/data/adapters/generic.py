"""A generic layout: a folder of DICOM or image files and a CSV of reports keyed by study.

Two ways to key images to reports:
- DICOM files found by `file_glob` carry their keys in their headers, so the image records
  leave study, patient and image ids empty and ingestion reads them (its `join_element`, e.g.
  AccessionNumber or StudyInstanceUID, must match the report CSV's `key_column`);
- PNG/JPEG exports have no header, so `images_csv` lists them with their keys (a path relative
  to `image_dir`, the study key and optionally the patient id and view).

Report rows are all passed on, even with an empty key or text, for ingestion to ledger
(`missing_key`, `empty_report`, `duplicate_report`). The constructor's first arguments are
those of `DicomFolderAdapter`, which this layout generalises.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.common import (
    ProblemLogMixin,
    discover_files,
    is_under,
    label_frame,
    read_table,
    require_dir,
)

# identifier columns that are never labels
_ID_COLUMNS = frozenset({"AccessionNumber", "StudyInstanceUID", "PatientID", "SOPInstanceUID"})


@dataclass
class GenericAdapter(ProblemLogMixin):
    """Images under `image_dir`, reports (and labels) in CSV files.

    Args:
        image_dir: root of the image export.
        reports_csv: one row per study with `key_column` and `text_column`.
        labels_csv: optional evaluation labels keyed by `key_column` (other columns numeric).
        key_column: the study key column of the report and label CSVs.
        text_column: the report text column.
        file_glob: which files under `image_dir` are images (used without `images_csv`), a
            glob matched in any case (`**/*.dcm` also finds `A/B.DCM`); None takes every DICOM
            or image file, by extension in any case or, without one, by its first bytes.
        patient_column: optional patient id column of the report CSV.
        images_csv: optional table listing the images with their keys (for PNG/JPEG).
        image_path_column: path of each image, relative to `image_dir`.
        image_key_column: study key column of `images_csv` (default: `key_column`).
        image_patient_column / image_view_column: optional columns of `images_csv`.
        follow_symlinks: enter linked folders that stay inside `image_dir` (ingestion's
            setting of the same name decides whether linked files are read).
        delimiter: the CSVs' delimiter; None finds it (`,`, `;`, tab or `|`) from the header.
        name: the adapter's name in manifests and logs.
    """

    image_dir: str
    reports_csv: str
    labels_csv: str | None = None
    key_column: str = "AccessionNumber"
    text_column: str = "report"
    file_glob: str | None = None
    patient_column: str | None = None
    images_csv: str | None = None
    image_path_column: str = "path"
    image_key_column: str | None = None
    image_patient_column: str | None = None
    image_view_column: str | None = None
    delimiter: str | None = None
    follow_symlinks: bool = False
    name: str = "generic"

    @property
    def export_root(self) -> str | None:
        """The folder every image path must lie under (ingestion checks)."""
        return str(self.image_dir) if self.image_dir else None

    def reports(self) -> Iterator[ReportRecord]:
        self._start_stage("reports")
        columns = [self.key_column, self.text_column, *filter(None, [self.patient_column])]
        table = read_table(
            self.reports_csv,
            columns,
            "set key_column and text_column (and patient_column) to the report table's columns",
            self._bad_rows("reports"),
            self.delimiter,
        )
        name = Path(self.reports_csv).name
        patients = table[self.patient_column] if self.patient_column else [""] * len(table)
        for line, key, text, patient in zip(
            table.index, table[self.key_column], table[self.text_column], patients, strict=True
        ):
            # the CSV line number names the row, never the key itself (an identifier)
            yield ReportRecord(
                study_key=key.strip(), text=text, source=f"{name}#row{line}", patient_id=patient
            )

    def images(self) -> Iterator[ImageRecord]:
        self._start_stage("images")
        root = require_dir(self.image_dir, "the image folder", "set image_dir")
        if self.images_csv:
            yield from self._listed_images(root)
            return
        for path in discover_files(
            root, self.file_glob, self.follow_symlinks, self._images_problem
        ):
            # the path as listed (not resolved): ingestion checks links and containment
            yield ImageRecord(path=os.path.abspath(path), source=str(path.relative_to(root)))

    def _images_problem(self, reason: str, source: str, message: str) -> None:
        self._record_problem("images", reason, source, message)

    def _listed_images(self, root: Path) -> Iterator[ImageRecord]:
        assert self.images_csv is not None
        key_column = self.image_key_column or self.key_column
        optional = [c for c in (self.image_patient_column, self.image_view_column) if c]
        table = read_table(
            self.images_csv,
            [self.image_path_column, key_column, *optional],
            "set image_path_column, image_key_column (and the optional columns) to its columns",
            self._bad_rows("images"),
            self.delimiter,
        )
        name = Path(self.images_csv).name
        for line, row in zip(table.index, table.to_dict("records"), strict=True):
            where = f"{name}#row{line}"
            rel = row[self.image_path_column].strip()
            if not rel:
                self._record_problem(
                    "images", "missing_file", where, f"empty {self.image_path_column}"
                )
                continue
            path = Path(os.path.abspath(root / rel))
            # never stat a path outside the export: ingestion ledgers it as outside_export
            if is_under(str(path), os.path.abspath(root)) and not os.path.lexists(path):
                self._record_problem("images", "missing_file", where, f"{rel} is not under {root}")
                continue
            yield ImageRecord(
                path=str(path),
                source=rel,
                study_key=row[key_column].strip(),
                patient_id=row[self.image_patient_column] if self.image_patient_column else "",
                view=row[self.image_view_column].strip().upper() if self.image_view_column else "",
            )

    def labels(self) -> pd.DataFrame | None:
        if not self.labels_csv:
            return None
        self._start_stage("labels")
        table = read_table(
            self.labels_csv,
            [self.key_column],
            "set key_column",
            self._bad_rows("labels"),
            self.delimiter,
        )
        skip = _ID_COLUMNS | {self.key_column, self.patient_column}
        columns = [c for c in table.columns if c not in skip]
        return label_frame(table[self.key_column], table, columns)
