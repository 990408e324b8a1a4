"""What the adapters share: problem records with reason codes, and checked CSV reading.

An adapter never drops a record silently: whatever it skips becomes an
`AdapterProblem(reason, source, message)` in its `problems` list, which ingestion copies into
its ledger (as `rejected`). Configuration errors (a CSV without a required column, a missing dataset folder) are
raised at once instead, because no record of the dataset could be trusted.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medrep.data.containment import is_under
from medrep.data.errors import REASON_CODES

# Reason codes for what an adapter skips. Adapters yield every record they can build, even
# one with empty text or an empty key: ingestion judges those (`empty_report`, `missing_key`,
# `duplicate_report` in medrep.data.errors.REASON_CODES) so that a record is ledgered once.
# What never becomes a record is an adapter problem. `missing_key` has ingestion's meaning; the
# others are proposed additions to REASON_CODES.
ADAPTER_REASON_CODES: dict[str, str] = {
    code: REASON_CODES[code]
    for code in (
        "missing_key",
        "unreadable_report",
        "missing_file",
        "bad_table_row",
        "outside_export",
        "unsupported_file",
        "symlink",
    )
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

    def bad_rows(self, stage: str) -> Callable[[BadRow], None]:
        """`read_table`'s `on_bad_row` that records each unreadable row as `bad_table_row`."""
        return lambda row: self.add(stage, "bad_table_row", row.where, row.message)

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

    def _bad_rows(self, stage: str) -> Callable[[BadRow], None]:
        """`read_table`'s `on_bad_row` that records each unreadable row as `bad_table_row`."""
        return self._problem_log.bad_rows(stage)


# what a table's bytes may start with, and the encoding that mark names
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# delimiters tried, in this order, when the header does not show the required columns
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class BadRow:
    """A table row that could not be read as a record: where it is and what was wrong."""

    where: str  # `file.csv#row12` (the row as a spreadsheet numbers it; the message has the line)
    message: str


def decode_table_bytes(data: bytes) -> tuple[str, str, bool]:
    """(text, encoding, repaired): a byte-order mark wins; else UTF-8, else UTF-8 with
    undecodable bytes replaced by U+FFFD (repaired, so that the row survives and ingestion
    ledgers it as `bad_encoding`). UTF-16 without a mark is recognised by its zero bytes."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding, False
    head = data[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 4:
        encoding = "utf-16-le" if head[1] == 0 else "utf-16-be"
        return data.decode(encoding, errors="replace"), encoding, False
    try:
        return data.decode("utf-8"), "utf-8", False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), "utf-8", True


def read_table(
    path: str | Path,
    required: Sequence[str],
    fix: str,
    on_bad_row: Callable[[BadRow], None] | None = None,
    delimiter: str | None = None,
) -> pd.DataFrame:
    """A CSV as strings (empty cells stay ""), after checking its required columns.

    The encoding is found from a byte-order mark (UTF-8, UTF-16, UTF-32), else UTF-8; bytes
    that do not decode become U+FFFD. The delimiter is `delimiter`, or the first of `,`, `;`,
    tab and `|` whose header holds every required column. A row that cannot be read (more or
    fewer fields than the header, a quote left open, a stray quote inside a field) is passed to
    `on_bad_row` with its line and the rest of the table is read; without `on_bad_row` it is an
    error that names the file and the line.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: required columns are missing with every delimiter (the message names the
            file, the columns found and `fix`), or a bad row without `on_bad_row`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; {fix}")
    try:
        data = _decompress(path, path.read_bytes())
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, lzma.LZMAError, zlib.error) as exc:
        raise ValueError(f"{path}: cannot be read ({exc}); {fix}") from exc
    text, encoding, _ = decode_table_bytes(data)
    if "\x00" in text:
        raise ValueError(
            f"{path}: holds NUL characters after decoding as {encoding}: not a text table; {fix}"
        )
    header, chosen = _choose_delimiter(text, required, delimiter)
    # a spreadsheet's trailing empty columns ("a,b,,") have no name: read, then dropped
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise ValueError(f"{path}: the header names {repeated} more than once; {fix}")
    missing = [c for c in required if c not in header]
    if missing:
        tried = f"delimiter {delimiter!r}" if delimiter else f"delimiters {list(DELIMITERS)}"
        raise ValueError(
            f"{path}: missing column(s) {missing} (found {header} with {tried}, read as "
            f"{encoding}); {fix}"
        )
    numbers, rows, bad = _read_rows(text, chosen, len(header), path.name)
    for row in bad:
        if on_bad_row is None:
            raise ValueError(f"{path}: {row.where.split('#')[-1]}, {row.message}; {fix}")
        on_bad_row(row)
    # the index is each row's number as a spreadsheet shows it (what `file.csv#rowN` names)
    named = [i for i, h in enumerate(header) if h]
    return pd.DataFrame(
        [[row[i] for i in named] for row in rows],
        columns=[header[i] for i in named],
        index=pd.Index(numbers, name="row"),
        dtype=str,
    )


def _decompress(path: Path, data: bytes) -> bytes:
    """The table's bytes, decompressed when its name ends in .gz, .bz2, .xz or .zip."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.decompress(data)
    if suffix == ".bz2":
        return bz2.decompress(data)
    if suffix == ".xz":
        return lzma.decompress(data)
    if suffix == ".zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise ValueError(f"a zipped table must hold one file, found {len(names)}")
            return archive.read(names[0])
    return data


def _choose_delimiter(
    text: str, required: Sequence[str], delimiter: str | None
) -> tuple[list[str], str]:
    """(header, delimiter): the given delimiter, or the first whose header has `required`."""
    candidates = (delimiter,) if delimiter else DELIMITERS
    first: list[str] | None = None
    for candidate in candidates:
        try:
            header = next(csv.reader(io.StringIO(text), delimiter=candidate), [])
        except csv.Error:
            header = []
        header = [h.strip() for h in header]
        if first is None:
            first = header
        if all(c in header for c in required):
            return header, candidate
    return first or [], candidates[0]


def _read_rows(
    text: str, delimiter: str, n_columns: int, name: str
) -> tuple[list[int], list[list[str]], list[BadRow]]:
    """(row numbers, rows) of every data row with exactly `n_columns` fields; the others as
    `BadRow`s. Rows are numbered as a spreadsheet shows them (the header is row 1, blank lines
    are not rows), so a multi-line report is one row; a bad row's message adds its line."""
    numbers: list[int] = []
    rows: list[list[str]] = []
    bad: list[BadRow] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = 0
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # strict mode stops at a quote left open (to the end of the file) or a stray one
            number += 1
            bad.append(BadRow(f"{name}#row{number}", f"line {line}: malformed quoting ({exc})"))
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        number += 1
        if number == 1:
            continue  # the header
        if len(row) != n_columns:
            bad.append(
                BadRow(
                    f"{name}#row{number}",
                    f"line {line}: {len(row)} fields where the header has {n_columns} (a "
                    "delimiter or quote inside an unquoted field?)",
                )
            )
            continue
        numbers.append(number)
        rows.append(row)
    return numbers, rows, bad


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over relative POSIX paths as a case-insensitive regular expression: `**/` is any
    number of folders (none included), `*` and `?` stay within one name.

    Written here because `fnmatch` lets `*` cross `/` and has no `**`, `Path.match` has no `**`
    before Python 3.13, and `glob.translate` arrived in 3.13 (we support 3.10)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def discover_files(
    root: Path,
    pattern: str | None,
    follow_symlinks: bool,
    record: Callable[[str, str, str], None],
) -> list[Path]:
    """The image files under `root`, sorted by relative path; what is skipped goes to `record`
    as (reason, relative path, message).

    With `pattern`, the files whose relative path matches it in any case; without, the files
    `medrep.data.images.sniff_kind` recognises (DICOM and image extensions in any case, and
    files without one that start like DICOM or an image; the others are `unsupported_file`).
    Links to files are listed as they are (ingestion refuses or follows them); linked folders
    are entered only with `follow_symlinks`, only when they resolve inside `root`, and only
    once (a link loop ends there), else recorded. Nothing behind a link that leaves `root` is
    opened.
    """
    from medrep.data.images import sniff_kind

    matcher = glob_regex(pattern) if pattern else None
    root_real = os.path.realpath(root)
    visited = {root_real}
    found: list[tuple[str, Path]] = []

    def walk_error(exc: OSError) -> None:
        where = os.path.relpath(exc.filename, root) if exc.filename else str(root)
        record("unsupported_file", where, f"folder could not be listed ({exc.strerror})")

    for dirpath, dirnames, filenames in os.walk(
        root, followlinks=follow_symlinks, onerror=walk_error
    ):
        kept = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            real = os.path.realpath(full)
            if os.path.islink(full) and not follow_symlinks:
                record("symlink", rel, "a linked folder, not entered (data.ingest.follow_symlinks)")
                continue
            if not is_under(real, root_real):
                record("outside_export", rel, "a linked folder that leaves the export; not listed")
                continue
            if real in visited:
                continue  # a link loop, or a second way into a folder already listed
            visited.add(real)
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            posix = rel.replace(os.sep, "/")
            if matcher is not None:
                if matcher.match(posix):
                    found.append((posix, Path(full)))
                continue
            linked_out = os.path.islink(full) and (
                not follow_symlinks or not is_under(os.path.realpath(full), root_real)
            )
            # a link is listed unread: ingestion refuses it (and never opens what it points at);
            # a FIFO or device is never opened (reading it would block)
            if linked_out or (os.path.islink(full) or _regular(full)) and sniff_kind(full):
                found.append((posix, Path(full)))
            else:
                record("unsupported_file", rel, "neither DICOM nor a PNG/JPEG/TIFF/BMP image")
    return [path for _, path in sorted(found, key=lambda item: item[0])]


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


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
