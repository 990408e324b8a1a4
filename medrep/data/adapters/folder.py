"""A folder of DICOM (or PNG/JPEG) files and a CSV of reports keyed by a header element.

This is the layout of a plain PACS export (and of the embedded synthetic world): images carry
their patient and study identifiers in their DICOM headers, so the image records leave those
fields empty and ingestion reads them from the headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medrep.data.adapters.base import ImageRecord, ReportRecord


@dataclass(frozen=True)
class DicomFolderAdapter:
    """Images under `image_dir` matching `file_glob`; reports in `reports_csv`.

    Args:
        image_dir: root of the export.
        reports_csv: one row per study with `key_column` and `text_column`.
        labels_csv: optional evaluation labels keyed by `key_column`.
        file_glob: which files are images (relative to `image_dir`).
    """

    image_dir: str
    reports_csv: str
    labels_csv: str | None = None
    key_column: str = "AccessionNumber"
    text_column: str = "report"
    file_glob: str = "**/*.dcm"
    name: str = "dicom_folder"

    def images(self) -> Iterator[ImageRecord]:
        root = Path(self.image_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist; set data.dicom_dir")
        for path in sorted(p for p in root.glob(self.file_glob) if p.is_file()):
            yield ImageRecord(path=str(path), source=str(path.relative_to(root)))

    def _table(self, path: str, columns: list[str]) -> pd.DataFrame:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = set(columns) - set(table.columns)
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {sorted(missing)}; set data.report_key_column and "
                f"data.report_text_column (found {list(table.columns)})"
            )
        return table

    def reports(self) -> Iterator[ReportRecord]:
        table = self._table(self.reports_csv, [self.key_column, self.text_column])
        name = Path(self.reports_csv).name
        for i, (key, text) in enumerate(
            zip(table[self.key_column], table[self.text_column], strict=True)
        ):
            # the CSV line number names the row, never the key itself (an identifier)
            yield ReportRecord(study_key=key, text=text, source=f"{name}#row{i + 2}")

    def labels(self) -> pd.DataFrame | None:
        if not self.labels_csv:
            return None
        table = self._table(self.labels_csv, [self.key_column])
        other_keys = {"StudyInstanceUID", "AccessionNumber"} - {self.key_column}
        out = pd.DataFrame({"study_key": table[self.key_column]})
        for col in table.columns:
            if col != self.key_column and col not in other_keys:
                out[col] = pd.to_numeric(table[col], errors="coerce").astype("float32")
        return out
