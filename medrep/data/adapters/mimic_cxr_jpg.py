"""MIMIC-CXR-JPG: the MIMIC-CXR tree with `.jpg` files, its metadata and label CSVs.

`mimic-cxr-2.0.0-metadata.csv` (dicom_id, subject_id, study_id, ViewPosition, ...) gives each
image its view; `mimic-cxr-2.0.0-chexpert.csv` gives each study its CheXpert labels. The reports
are MIMIC-CXR's `.txt` files (same study ids), a separate download. Either CSV may be gzipped as
distributed (`.csv.gz`). The images listed are the files on disk; a metadata row whose file is
absent (a partial download) is a `missing_file` problem, and a file without a metadata row is
still listed, with an empty view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pandas as pd

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.common import ProblemLogMixin, read_table
from medrep.data.adapters.mimic_cxr import mimic_image_files, mimic_labels, mimic_reports, resolve

METADATA_COLUMNS: tuple[str, ...] = ("dicom_id", "subject_id", "study_id", "ViewPosition")


@dataclass
class MimicCxrJpgAdapter(ProblemLogMixin):
    """MIMIC-CXR-JPG images with MIMIC-CXR reports.

    Args:
        root: the MIMIC-CXR-JPG folder (holding `files/` and the CSVs).
        reports_root: the folder holding MIMIC-CXR's `files/.../sNNNNNNNN.txt` reports.
        metadata_csv: relative to `root` unless absolute.
        labels_csv: relative to `root` unless absolute; None for no labels.
        suffix: image file ending.
        name: the adapter's name in manifests and logs.
    """

    root: str
    reports_root: str
    metadata_csv: str = "mimic-cxr-2.0.0-metadata.csv"
    labels_csv: str | None = "mimic-cxr-2.0.0-chexpert.csv"
    suffix: str = ".jpg"
    name: str = "mimic_cxr_jpg"
    # its paths hold only the publisher\'s de-identified ids: kept as they are in `source`
    public_paths: bool = True

    @property
    def export_root(self) -> str | None:
        """The folder every image path must lie under (ingestion checks)."""
        return str(self.root) if self.root else None

    def reports(self) -> Iterator[ReportRecord]:
        self._start_stage("reports")
        yield from mimic_reports(self.reports_root, self._problem_log)

    def images(self) -> Iterator[ImageRecord]:
        self._start_stage("images")
        path = resolve(self.root, self.metadata_csv)
        table = read_table(
            path,
            METADATA_COLUMNS,
            "set metadata_csv to MIMIC-CXR-JPG's metadata CSV",
            self._bad_rows("images"),
        )
        rows: dict[str, tuple[int, str]] = {}  # dicom_id -> (CSV line, view)
        for line, dicom_id, subject, study, view in zip(
            table.index, *(table[c] for c in METADATA_COLUMNS), strict=True
        ):
            where = f"{path.name}#row{line}"
            if not (dicom_id and subject and study):
                self._record_problem(
                    "images", "missing_key", where, "dicom_id, subject_id or study_id empty"
                )
                continue
            rows[dicom_id] = (int(line), view.strip().upper())
        seen: set[str] = set()
        for record in mimic_image_files(self.root, self.suffix, self._problem_log):
            line, view = rows.get(record.image_id, (0, ""))
            seen.add(record.image_id)
            yield replace(record, view=view)
        for dicom_id, (line, _) in rows.items():
            if dicom_id not in seen:
                self._record_problem(
                    "images",
                    "missing_file",
                    f"{path.name}#row{line}",
                    f"no {self.suffix} file for this metadata row under {self.root}/files",
                )

    def labels(self) -> pd.DataFrame | None:
        if not self.labels_csv:
            return None
        self._start_stage("labels")
        return mimic_labels(resolve(self.root, self.labels_csv), self._bad_rows("labels"))
