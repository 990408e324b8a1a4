"""What the adapters share: problem records with reason codes, and checked CSV reading.

An adapter never drops a record silently: whatever it skips becomes an
`AdapterProblem(reason, source, message)` in its `problems` list, which ingestion copies into
its ledger (as `rejected`). Configuration errors (a CSV without a required column, a missing dataset folder) are
raised at once instead, because no record of the dataset could be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

# Reason codes for what an adapter skips. Adapters yield every record they can build, even
# one with empty text or an empty key: ingestion judges those (`empty_report`, `missing_key`,
# `duplicate_report` in medrep.data.errors.REASON_CODES) so that a record is ledgered once.
# What never becomes a record is an adapter problem. `missing_key` has ingestion's meaning; the
# others are proposed additions to REASON_CODES.
ADAPTER_REASON_CODES: dict[str, str] = {
    "missing_key": "the record has no key to join it by (empty id column, unexpected file name)",
    "unreadable_report": "a report file could not be read or parsed (XML error, bad encoding)",
    "missing_file": "a metadata row or report names an image file that is not on disk",
}


@dataclass(frozen=True)
class AdapterProblem:
    """A record an adapter skipped or could only partly use.

    Attributes:
        reason: a key of `ADAPTER_REASON_CODES`.
        source: where (a path relative to the dataset root, or `file.csv#rowN`); never an
            identifier beyond what the layout's own paths show.
        message: what was wrong and, where it helps, what to do.
    """

    reason: str
    source: str
    message: str

    def __post_init__(self) -> None:
        if self.reason not in ADAPTER_REASON_CODES:
            raise ValueError(f"unknown reason code {self.reason!r}; add it to ADAPTER_REASON_CODES")


class ProblemLog:
    """Problems per stage (`reports`, `images`, `labels`), so iterating again does not repeat them.

    Adapters record problems while their iterators run: `problems` is complete once the
    iterators have been exhausted.
    """

    def __init__(self) -> None:
        self._by_stage: dict[str, list[AdapterProblem]] = {}

    def start(self, stage: str) -> None:
        """Forget the problems an earlier pass over `stage` recorded."""
        self._by_stage[stage] = []

    def add(self, stage: str, reason: str, source: str, message: str) -> None:
        self._by_stage.setdefault(stage, []).append(AdapterProblem(reason, source, message))

    @property
    def problems(self) -> list[AdapterProblem]:
        return [p for stage in self._by_stage.values() for p in stage]


class ProblemLogMixin:
    """The problem log of a dataclass adapter, and the `problems` of `DatasetAdapter`.

    An adapter calls `_start_stage(stage)` when a pass over a stage begins (so that a second
    pass replaces the first pass's problems instead of repeating them) and `_record_problem`
    for each record it skips. The log is made in `__post_init__`, not as a dataclass field, so
    the adapter's fields and constructor are its own; an adapter with its own `__post_init__`
    calls `super().__post_init__()`.
    """

    _problem_log: ProblemLog

    def __post_init__(self) -> None:
        self._problem_log = ProblemLog()

    @property
    def problems(self) -> list[AdapterProblem]:
        """The records skipped so far, stage by stage.

        Complete once `reports()` and `images()` have been exhausted: problems are recorded
        while the iterators run, so a partly consumed iterator has recorded only what it reached.
        """
        return self._problem_log.problems

    def _start_stage(self, stage: str) -> None:
        self._problem_log.start(stage)

    def _record_problem(self, stage: str, reason: str, source: str, message: str) -> None:
        """Record a skipped record; `reason` is a key of `ADAPTER_REASON_CODES`."""
        self._problem_log.add(stage, reason, source, message)


def read_table(path: str | Path, required: Sequence[str], fix: str) -> pd.DataFrame:
    """A CSV as strings (empty cells stay ""), after checking its required columns.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: required columns are missing; the message names the file, the columns
            found and `fix`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; {fix}")
    # undecodable bytes become U+FFFD: the row survives and ingestion ledgers it as repaired
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding_errors="replace")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} (found {list(table.columns)}); {fix}"
        )
    return table


def label_frame(
    keys: Iterable[str], table: pd.DataFrame, label_columns: Sequence[str]
) -> pd.DataFrame:
    """A labels frame: raw `study_key` then float32 label columns (1, 0, -1 or NaN)."""
    out = pd.DataFrame({"study_key": list(keys)})
    for col in label_columns:
        values = pd.to_numeric(table[col].replace("", None), errors="coerce")
        out[col] = values.astype("float32").to_numpy()
    return out


def require_dir(path: str | Path, what: str, fix: str) -> Path:
    """`path` as a Path, or a FileNotFoundError that says what it should have been."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} is not a folder; {fix}")
    return folder
