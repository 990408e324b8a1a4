"""MIMIC-CXR (DICOM): `files/pNN/pNNNNNNNN/sNNNNNNNN/*.dcm` with `files/pNN/pNNNNNNNN/sNNNNNNNN.txt`.

The tree itself carries the keys: the `sNNNNNNNN` folder (or report file stem) is the study key
and the `pNNNNNNNN` folder the patient id, both with their letter prefix, so that MIMIC-CXR and
MIMIC-CXR-JPG records (whose CSVs write bare numbers) join on the same strings. The reports come
as a separate download (`mimic-cxr-reports.zip`), hence `reports_root`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.common import (
    BadRow,
    ProblemLog,
    ProblemLogMixin,
    discover_files,
    label_frame,
    read_table,
    require_dir,
)

_PATIENT = re.compile(r"p\d+")
_STUDY = re.compile(r"s\d+")


def _tree_keys(path: Path, study: str) -> tuple[str, str] | None:
    """(study key, patient id) from `.../pNN/pNNNNNNNN/<study>`, or None off the layout."""
    patient, group = path.parent.name, path.parent.parent.name
    if _STUDY.fullmatch(study) and _PATIENT.fullmatch(patient) and patient.startswith(group):
        return study, patient
    return None


def mimic_reports(
    root: str | Path, log: ProblemLog, stage: str = "reports"
) -> Iterator[ReportRecord]:
    """Every `files/pNN/pNNNNNNNN/sNNNNNNNN.txt` under `root`, in path order."""
    base = require_dir(root, "the MIMIC-CXR reports root", "point it at the folder holding files/")
    for path in sorted((base / "files").rglob("*.txt")):
        source = str(path.relative_to(base))
        keys = _tree_keys(path, path.stem)
        if keys is None:
            log.add(stage, "missing_key", source, "not named files/pNN/pNNNNNNNN/sNNNNNNNN.txt")
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            log.add(stage, "unreadable_report", source, f"could not be read as UTF-8 text: {err}")
            continue
        yield ReportRecord(study_key=keys[0], text=text, source=source, patient_id=keys[1])


def mimic_image_files(
    root: str | Path, suffix: str, log: ProblemLog, stage: str = "images"
) -> Iterator[ImageRecord]:
    """An image record for each `files/pNN/pNNNNNNNN/sNNNNNNNN/*<suffix>` (image id: the stem)."""
    base = require_dir(root, "the MIMIC-CXR image root", "point it at the folder holding files/")
    files = base / "files"
    found = discover_files(
        files, f"**/*{suffix}", False, lambda r, s, m: log.add(stage, r, f"files/{s}", m)
    )
    for path in found:
        source = str(path.relative_to(base))
        keys = _tree_keys(path.parent, path.parent.name)
        if keys is None:
            log.add(stage, "missing_key", source, "not under files/pNN/pNNNNNNNN/sNNNNNNNN/")
            continue
        yield ImageRecord(
            path=os.path.abspath(path),
            source=source,
            study_key=keys[0],
            patient_id=keys[1],
            image_id=path.stem,
        )


def mimic_labels(
    path: str | Path, on_bad_row: Callable[[BadRow], None] | None = None
) -> pd.DataFrame:
    """`mimic-cxr-2.0.0-chexpert.csv` (or negbio): `study_key` = `s<study_id>`, float labels.
    Unreadable rows go to `on_bad_row` (see `read_table`)."""
    table = read_table(
        path,
        ["study_id"],
        "use the CheXpert or NegBio label CSV of MIMIC-CXR-JPG",
        on_bad_row,
    )
    columns = [c for c in table.columns if c not in ("subject_id", "study_id")]
    return label_frame((f"s{s}" for s in table["study_id"]), table, columns)


def resolve(root: str | Path, name: str) -> Path:
    """`name` under `root` unless absolute; a missing `x.csv` falls back to `x.csv.gz`."""
    path = Path(name) if Path(name).is_absolute() else Path(root) / name
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else path


@dataclass
class MimicCxrAdapter(ProblemLogMixin):
    """MIMIC-CXR DICOM files and their free-text reports.

    Args:
        root: the folder that holds `files/` with the DICOM files.
        reports_root: the folder that holds `files/` with the `.txt` reports (default: `root`).
        labels_csv: optional CheXpert/NegBio label CSV (from MIMIC-CXR-JPG), relative to
            `root` unless absolute.
        suffix: image file ending.
        name: the adapter's name in manifests and logs.

    Image records leave `view` empty: ingestion reads ViewPosition from each DICOM header.
    """

    root: str
    reports_root: str | None = None
    labels_csv: str | None = None
    suffix: str = ".dcm"
    name: str = "mimic_cxr"
    # its paths hold only the publisher\'s de-identified ids: kept as they are in `source`
    public_paths: bool = True

    @property
    def export_root(self) -> str | None:
        """The folder every image path must lie under (ingestion checks)."""
        return str(self.root) if self.root else None

    def reports(self) -> Iterator[ReportRecord]:
        self._start_stage("reports")
        yield from mimic_reports(self.reports_root or self.root, self._problem_log)

    def images(self) -> Iterator[ImageRecord]:
        self._start_stage("images")
        yield from mimic_image_files(self.root, self.suffix, self._problem_log)

    def labels(self) -> pd.DataFrame | None:
        if not self.labels_csv:
            return None
        self._start_stage("labels")
        return mimic_labels(resolve(self.root, self.labels_csv), self._bad_rows("labels"))
