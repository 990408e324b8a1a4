"""Privacy audit: search every file a run wrote for the identifiers of the patients it read.

    python -m medrep.audit --run outputs/runs/demo/<stamp>
    python -m medrep.audit --dicom <export folder> [--table ids.csv --column MRN]
        outputs/runs/demo/<stamp> outputs/ingest/<dataset>

With --run, the identifiers are those the run's ingestion read, from its saved config's dataset
adapter: the raw patient ids, study keys and image ids of its records (an images table's
columns, a layout's folder names), the reports' keys, and the identifying DICOM header elements
(names, patient ids, accession numbers, dates of birth, institutions, physicians), and the
folder and file names under the export root that look like names or numbers ("SMITH_JOHN",
"MRN0012345.png"; `path_components`); the run folder and its ingestion folder are searched.
Every parquet and CSV table is also searched by pattern for the scrubber's categories (dates,
phones, e-mail, ids, addresses, institutions, names after titles, ages over 89, places;
`--no-patterns` turns this off), which finds identifiers that no table lists. --dicom and --table/--column add identifiers from
an export's headers or a table's columns. Every file under the given folders is searched: text and binary files byte by byte
(UTF-8 and UTF-16), parquet tables and npz arrays cell by cell after decoding (their strings are
compressed or stored as UTF-32, where a byte search would miss them). Zero hits is the bar; the
findings are grouped by kind of identifier, with each file and column (never the identifier
itself). Exit status: 0 no identifier found, 1 identifiers found, 2 nothing to search for.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# header elements whose values identify a patient or a study (PS3.15 Annex E basic profile's
# most common ones in radiograph exports)
IDENTIFYING_ELEMENTS = (
    "PatientID",
    "PatientName",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)
MIN_LENGTH = 4  # shorter values ("M", "Li") match everywhere by chance


@dataclass(frozen=True)
class Hit:
    """A file (and where in it) that holds an identifier; `kind` says which element it came from."""

    path: str
    where: str
    kind: str


def _variants(kind: str, value: str) -> set[str]:
    value = value.strip()
    out = {value}
    if kind == "PatientName":
        out |= {part.strip() for part in value.replace("^", " ").split() if part.strip()}
        out.add(value.replace("^", " ").strip())
    if kind == "PatientBirthDate" and len(value) == 8 and value.isdigit():
        y, m, d = value[:4], value[4:6], value[6:]
        out |= {f"{y}-{m}-{d}", f"{m}/{d}/{y}", f"{d}/{m}/{y}", f"{d}.{m}.{y}"}
    return {v for v in out if len(v) >= MIN_LENGTH}


def identifiers_from_dicom(folder: str | Path, pattern: str = "**/*.dcm") -> dict[str, str]:
    """Every identifying header value of an export: {value: element it came from}."""
    found: dict[str, str] = {}
    for path in sorted(Path(folder).glob(pattern)):
        for value, kind in _header_identifiers(path).items():
            found.setdefault(value, kind)
    return found


class Matcher:
    """Case-insensitive search for many identifier values at once (one compiled regex)."""

    def __init__(self, identifiers: dict[str, str]) -> None:
        self.kinds = {value.lower(): kind for value, kind in identifiers.items()}
        # longest first, so a full name wins over its components
        ordered = sorted(self.kinds, key=len, reverse=True)
        self._text = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)
        self._utf8 = re.compile(b"|".join(re.escape(v.encode()) for v in ordered), re.IGNORECASE)
        self._utf16 = re.compile(
            b"|".join(re.escape(v.encode("utf-16-le")) for v in ordered), re.IGNORECASE
        )

    def in_bytes(self, data: bytes) -> set[str]:
        found = {m.group().decode(errors="replace").lower() for m in self._utf8.finditer(data)}
        found |= {
            m.group().decode("utf-16-le", errors="replace").lower()
            for m in self._utf16.finditer(data)
        }
        return {self.kinds.get(v, "identifier") for v in found}

    def in_strings(self, values: Iterable[object]) -> set[str]:
        found = {m.group().lower() for v in values for m in self._text.finditer(str(v))}
        return {self.kinds.get(v, "identifier") for v in found}


def audit_files(roots: Sequence[str | Path], identifiers: dict[str, str]) -> tuple[list[Hit], int]:
    """Search every file under `roots`; returns (hits, number of files searched).

    Numeric arrays (the image cache, tensors in checkpoints) are not searched: identifiers are
    text, and burned-in text in pixels is a different problem this audit does not address.
    """
    matcher = Matcher(identifiers)
    hits: list[Hit] = []
    n_files = 0
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            n_files += 1
            for where, kind in sorted(set(_scan_file(path, matcher))):
                hits.append(Hit(str(path), where, kind))
    return hits, n_files


def _scan_file(path: Path, matcher: Matcher) -> Iterable[tuple[str, str]]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.dtype.kind in "US":
            yield from (
                ("array", k) for k in matcher.in_strings(np.asarray(array).ravel().tolist())
            )
        return
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            for name in data.files:
                array = data[name]
                if array.dtype.kind in "US":
                    yield from (
                        (f"array {name}", k) for k in matcher.in_strings(array.ravel().tolist())
                    )
        return
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        yield from (("column names", k) for k in matcher.in_strings(frame.columns))
        for column in frame.columns:
            values = frame[column].explode() if frame[column].dtype == object else frame[column]
            yield from ((f"column {column}", k) for k in matcher.in_strings(values.astype(str)))
        return
    if zipfile.is_zipfile(path):  # torch checkpoints: pickled structure plus tensor storages
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if "/data/" in member:  # tensor storage: numbers
                    continue
                yield from ((f"member {member}", k) for k in matcher.in_bytes(archive.read(member)))
        return
    yield from (("bytes", k) for k in matcher.in_bytes(path.read_bytes()))


def identifiers_from_run(run_dir: str | Path) -> tuple[dict[str, str], list[Path]]:
    """What the run's ingestion read that identifies someone, and the folders the run wrote.

    The run's saved config names its dataset adapter: every image record's raw patient id,
    study key and image id (an images table's columns, a layout's folder names), every report's
    raw key and patient id, and the identifying header elements of its DICOM files. No table
    to make by hand, whatever the export's format.

    Returns:
        ({value: kind}, [run folder, ingestion folder]).
    """
    import yaml

    from medrep.data.containment import admit_records
    from medrep.data.images import sniff_kind
    from medrep.evaluation.explore import locate_ingest_dir

    run = Path(run_dir)
    config_path = run / "resolved_config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path}: not a run folder (no resolved_config.yaml)")
    config = yaml.safe_load(config_path.read_text()) or {}
    adapter_cfg = (config.get("data") or {}).get("adapter")
    if not adapter_cfg:
        raise ValueError(f"{config_path} names no data.adapter: audit with --dicom/--table")
    adapter = _build(adapter_cfg)
    found: dict[str, str] = {}

    def add(kind: str, value: str) -> None:
        for variant in _variants(kind, str(value)):
            found.setdefault(variant, kind)

    records = list(adapter.images())
    for rec in records:
        add("patient id (adapter)", rec.patient_id)
        add("study key (adapter)", rec.study_key)
        add("image id (adapter)", rec.image_id)
        for component in path_components(rec.source):
            add("path component (export)", component)
    # headers only of the files ingestion would open (inside the export, regular, no links)
    readable, _ = admit_records(records, getattr(adapter, "export_root", None), False)
    dicom_files = [Path(r.path) for r in readable if sniff_kind(r.path) == "dicom"]
    for report in adapter.reports():
        add("study key (reports)", report.study_key)
        add("patient id (reports)", report.patient_id)
        for component in path_components(report.source.partition("#")[0]):
            add("path component (export)", component)
    for path in dicom_files:
        found.update({k: v for k, v in _header_identifiers(path).items() if k not in found})
    record_path = run / "run_record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    ingest = locate_ingest_dir(run, record, config)
    if ingest is None:
        raise FileNotFoundError(
            f"the ingestion folder of {run} was not found: audit it by naming it as a folder to "
            "search, with --dicom/--table for the identifiers"
        )
    return found, [run, ingest]


def path_components(source: str) -> set[str]:
    """The folder and file names of a path under the export root that may name someone.

    A name written like a person's or a number ("SMITH_JOHN", "John Smith", "MRN0012345",
    "smith-1950.png"): a capital, digit or separator in it. All-lower-case words ("images",
    "frontal", "dicom") are folder kinds that every log and config names, not identifiers.
    """
    found = set()
    for part in source.replace("\\", "/").split("/"):
        stem = part.rsplit(".", 1)[0] if "." in part[1:] else part
        if len(stem) >= MIN_LENGTH and not re.fullmatch(r"[a-z]+", stem):
            found |= {part, stem}
    return found


def pattern_hits(roots: Sequence[str | Path], categories: Sequence[str] | None = None) -> list[Hit]:
    """Cells of the tables under `roots` in which the scrubber's rules still find identifiers.

    Report text, sources and ledger messages live in the parquet and CSV tables; a date, phone
    number, e-mail, address, place or name after a title found there is a finding of kind
    `pattern: <category>` (the scrubber's categories, `medrep.data.scrub`), with file and column.
    """
    from medrep.data.scrub import SCRUB_CATEGORIES, Scrubber

    scrubber = Scrubber(categories=categories or SCRUB_CATEGORIES)
    hits: list[Hit] = []
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            frame = _table(path)
            if frame is None:
                continue
            for column in frame.columns:
                if frame[column].dtype.kind not in "OSU" and str(frame[column].dtype) != "str":
                    continue
                kinds = {
                    category
                    for value in frame[column].dropna().astype(str).unique()
                    if not _KEY_LIKE.fullmatch(value)
                    for _, _, category in scrubber.spans(_HASH.sub("#", value))
                }
                hits += [Hit(str(path), f"column {column}", f"pattern: {k}") for k in sorted(kinds)]
    return hits


# pseudonymised keys and sources (hex digests, `3f9a0c1b2d4e/77aa01.png#row3`): their digit runs
# are not record numbers
_KEY_LIKE = re.compile(r"[0-9a-f]{12,}|(?:[0-9a-f]{12}(?:\.\w+)?/?)+(?:#\w+)?")


# a keyed hash inside a text (a pseudonymised file name in a ledger message): its digit runs are
# not record numbers either
_HASH = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,}(?![0-9A-Za-z])")


def _table(path: Path) -> pd.DataFrame | None:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None
    return None


def _build(spec: dict[str, Any]) -> Any:
    """An adapter from its saved config (`_target_` and plain arguments), without Hydra."""
    module_name, _, name = str(spec["_target_"]).rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    return cls(**{k: v for k, v in spec.items() if not k.startswith("_")})


def _header_identifiers(path: Path) -> dict[str, str]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # an unreadable file carries no readable identifiers
        return {}
    found: dict[str, str] = {}
    for kind in IDENTIFYING_ELEMENTS:
        raw = ds.get(kind)
        if raw is None:
            continue
        values = raw if isinstance(raw, pydicom.multival.MultiValue) else [raw]
        for value in values:
            for variant in _variants(kind, str(value)):
                found.setdefault(variant, kind)
    return found


def report(hits: Sequence[Hit], n_files: int, identifiers: dict[str, str]) -> str:
    """The audit's findings grouped by kind of identifier, each with its files and places."""
    kinds = sorted(set(identifiers.values()))
    lines = [
        f"searched {n_files} files for {len(identifiers)} identifier values "
        f"({len(kinds)} kinds: {', '.join(kinds)})"
    ]
    by_kind: dict[str, list[Hit]] = {}
    for hit in hits:
        by_kind.setdefault(hit.kind, []).append(hit)
    for kind in sorted(by_kind):
        found = by_kind[kind]
        lines.append(f"{kind}: {len(found)} place(s)")
        lines += [f"  {hit.path} [{hit.where}]" for hit in found]
    lines.append(f"{len(hits)} hits" + ("" if hits else ": no identifier found"))
    return "\n".join(lines)


EXIT_CODES = {
    0: "no identifier found",
    1: "identifiers found",
    2: "nothing to search for, or a run that cannot be audited",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()),
    )
    parser.add_argument(
        "roots", nargs="*", type=Path, help="folders (or files) to search (with --run: more)"
    )
    parser.add_argument(
        "--run",
        type=Path,
        action="append",
        default=[],
        help="a run folder: searches it and its ingestion folder for the identifiers its "
        "ingestion read (the adapter's ids, report keys, DICOM headers)",
    )
    parser.add_argument(
        "--dicom",
        type=Path,
        action="append",
        default=[],
        help="an export whose DICOM headers hold identifiers",
    )
    parser.add_argument(
        "--table",
        type=Path,
        action="append",
        default=[],
        help="a CSV with identifier columns (see --column)",
    )
    parser.add_argument(
        "--column", action="append", default=[], help="an identifier column of --table"
    )
    parser.add_argument(
        "--no-patterns",
        action="store_true",
        help="do not also search the tables' text for the scrubber's categories by pattern",
    )
    args = parser.parse_args(argv)
    identifiers: dict[str, str] = {}
    roots = list(args.roots)
    for run in args.run:
        try:
            found, run_roots = identifiers_from_run(run)
        except (FileNotFoundError, ValueError) as exc:
            print(f"cannot audit {run}: {exc}", file=sys.stderr)
            return 2
        identifiers.update({k: v for k, v in found.items() if k not in identifiers})
        roots += run_roots
    for folder in args.dicom:
        identifiers.update(identifiers_from_dicom(folder))
    for table in args.table:
        frame = pd.read_csv(table, dtype=str, keep_default_na=False)
        for column in args.column:
            for value in frame.get(column, []):
                for variant in _variants(column, value):
                    identifiers.setdefault(variant, f"column {column!r} of {table.name}")
    if not identifiers or not roots:
        print(
            "nothing to search: give --run <run folder>, or folders with --dicom and/or "
            "--table/--column",
            file=sys.stderr,
        )
        return 2
    hits, n_files = audit_files(roots, identifiers)
    if not args.no_patterns:
        hits += pattern_hits(roots)
    print(report(hits, n_files, identifiers))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
