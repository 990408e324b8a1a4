"""The adapter interface: raw records in, before pseudonymisation.

Records carry raw identifiers (patient ids, study keys) because ingestion needs them to join
and to hash; they never leave ingestion. `source` strings name where a record came from (a
relative path or `file#row`) and must not contain identifiers beyond what the site's own file
layout already shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from medrep.data.adapters.common import AdapterProblem


@dataclass(frozen=True)
class ReportRecord:
    """One study's report.

    Attributes:
        study_key: raw key joining images to this report (accession number, study id...).
        text: the report as free text (sections with upper-case headers, as hospitals write).
        source: where it came from, for the ledger (e.g. `reports.csv#row12`, `ecgen/1.xml`).
        patient_id: the raw patient id when the report source knows it (else empty).
    """

    study_key: str
    text: str
    source: str
    patient_id: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """One image file and what the layout says about it.

    Attributes:
        path: absolute path of the file (DICOM, PNG or JPEG).
        source: the path relative to the dataset root (for the ledger and the manifest).
        study_key: raw key of its report; empty when the layout must read it from the DICOM
            header (`join_element`).
        patient_id: raw patient id; empty when it comes from the DICOM header.
        image_id: raw unique image id; empty when it comes from the DICOM header (SOP UID).
        view: view position when the layout knows it (CSV metadata); empty to use the header.
        extra: layout-specific plain values worth keeping (never identifiers).
    """

    path: str
    source: str
    study_key: str = ""
    patient_id: str = ""
    image_id: str = ""
    view: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class DatasetAdapter(Protocol):
    """A dataset layout. Implementations are cheap to construct and read lazily.

    An adapter may also have `export_root` (a folder): ingestion then refuses every image path
    that resolves outside it, without opening it (`medrep.data.ingest`). The adapters of this
    package all have one. An adapter whose paths hold only a publisher's de-identified ids may
    set `public_paths = True`: `source` then keeps the relative path (`medrep.data.sources`).
    """

    name: str

    @property
    def problems(self) -> list[AdapterProblem]:
        """The records the adapter skipped (an unreadable report, a row naming a missing
        file), which ingestion ledgers as `rejected`. Recorded while the iterators run, so
        complete only once `reports()` and `images()` have been exhausted. Dataclass adapters
        get it from `ProblemLogMixin` (medrep.data.adapters.common)."""
        ...

    def reports(self) -> Iterator[ReportRecord]:
        """Every report of the dataset (may be empty for image-only sets such as CheXpert)."""
        ...

    def images(self) -> Iterator[ImageRecord]:
        """Every image file of the dataset, in a stable order."""
        ...

    def labels(self) -> pd.DataFrame | None:
        """Evaluation labels with a `study_key` column (raw) and one column per finding
        (CheXpert style 1/0/-1/NaN), or None when the dataset has none."""
        ...
