"""Ingestion: DICOM export + report table -> manifest, reports, labels, ledger and image cache.

Every file found is accounted for: it ends up cached, rejected (with a reason code) or filtered
out (by view or modality), and `files_seen = cached + rejected + filtered` is checked before the
summary is written. Raw identifiers (PatientID, AccessionNumber, UIDs) are replaced by keyed
hashes here and never written to any output.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from medrep.data.cache import atomic_write_text, create_cache, finalize_cache, frame_hash
from medrep.data.dicom import DecodeOptions, DicomHeader, decode_dicom, read_header
from medrep.data.errors import REASON_CODES, IngestError
from medrep.data.images import quantize, resize_pad
from medrep.data.privacy import assign_split, pseudonymise
from medrep.data.reports import ReportParser

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MANIFEST_NAME = "manifest.parquet"
REPORTS_NAME = "reports.parquet"
LABELS_NAME = "labels.parquet"
LEDGER_NAME = "rejects.csv"
SUMMARY_NAME = "ingest_summary.json"
CACHE_DIR = "cache"


@dataclass(frozen=True)
class IngestConfig:
    """Everything ingestion needs, as plain values (built from `conf/data/*.yaml`).

    Attributes:
        dicom_dir: root of the DICOM export.
        reports_csv: table of reports, one row per study.
        out_dir: where the artifacts go.
        secret: the pseudonymisation secret (see `medrep.data.privacy.resolve_secret`).
        labels_csv: optional evaluation labels keyed like the reports.
        join_element: DICOM keyword that keys an image to its report row.
        report_key_column / report_text_column: the report table's key and text columns.
        views / modalities: accepted ViewPosition and Modality values (empty accepts all).
        sections: report sections that feed pretraining.
        image_size / cache_dtype: the cache's square side and integer type.
        split_fractions: patient-level split shares.
        workers: decoding processes (1 decodes in this process).
    """

    dicom_dir: str
    reports_csv: str
    out_dir: str
    secret: str
    labels_csv: str | None = None
    file_glob: str = "**/*.dcm"
    join_element: str = "AccessionNumber"
    report_key_column: str = "AccessionNumber"
    report_text_column: str = "report"
    views: Sequence[str] = ("PA", "AP")
    modalities: Sequence[str] = ("CR", "DX")
    sections: Sequence[str] = ("findings", "impression")
    image_size: int = 224
    cache_dtype: str = "uint8"
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15}
    )
    split_salt: str = "medrep-split"
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    workers: int = 1
    progress: bool = True

    def cache_params(self) -> dict[str, Any]:
        """The preprocessing parameters that define the cache's content."""
        return {
            "image_size": self.image_size,
            "dtype": self.cache_dtype,
            "resize": "longest-side area, centre pad",
            "decode": {
                k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.decode).items()
            },
        }


@dataclass
class Ledger:
    """Rejected and filtered files or records, with reason codes and messages."""

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, reason: str, source: str, message: str) -> None:
        if reason not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason!r}; add it to REASON_CODES")
        self.rows.append({"kind": kind, "reason": reason, "source": source, "message": message})

    def reject(self, err: IngestError, root: Path) -> None:
        self.add("rejected", err.reason, _relative(err.path, root), err.message)

    def count(self, kind: str, prefix: str = "") -> int:
        return sum(1 for r in self.rows if r["kind"] == kind and r["source"].startswith(prefix))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["kind", "reason", "source", "message"])


def _relative(path: str | Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _init_worker() -> None:
    # each decoding process does single-threaded numeric work; N processes already use N cores
    import torch

    torch.set_num_threads(1)


def _pool_map(
    fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str, progress: bool
) -> Iterator[R]:
    """Map in order over a process pool (or inline for one worker), with a progress bar."""
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=not progress, mininterval=1.0)
    if workers <= 1 or len(items) < 2:
        for item in items:
            yield fn(item)
            bar.update()
    else:
        chunk = max(1, min(64, len(items) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
            for out in pool.map(fn, items, chunksize=chunk):
                yield out
                bar.update()
    bar.close()


def _safe_header(path: str) -> DicomHeader | IngestError:
    try:
        return read_header(path)
    except IngestError as err:
        return err


@dataclass(frozen=True)
class _DecodeJob:
    path: str
    size: int
    dtype: str
    options: DecodeOptions


def _decode_job(job: _DecodeJob) -> np.ndarray | IngestError:
    try:
        image = decode_dicom(job.path, job.options)
    except IngestError as err:
        return err
    return quantize(resize_pad(image, job.size), job.dtype)


def load_reports(
    cfg: IngestConfig, parser: ReportParser, ledger: Ledger
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Parse the report table into a study-keyed frame of sections and sentences.

    Returns:
        (reports frame keyed by `study_key`, mapping raw report key -> study_key). The mapping
        stays in memory: it holds raw identifiers and is never written.
    """
    table = pd.read_csv(cfg.reports_csv, dtype=str, keep_default_na=False)
    missing = {cfg.report_key_column, cfg.report_text_column} - set(table.columns)
    if missing:
        raise ValueError(
            f"{cfg.reports_csv}: missing column(s) {sorted(missing)}; set data.report_key_column "
            f"and data.report_text_column (found {list(table.columns)})"
        )
    rows = []
    key_map: dict[str, str] = {}
    source = Path(cfg.reports_csv).name
    for i, (raw_key, text) in enumerate(
        zip(table[cfg.report_key_column], table[cfg.report_text_column], strict=True)
    ):
        where = f"{source}#row{i + 2}"  # the CSV line number, never the key itself
        if not raw_key:
            ledger.add("rejected", "missing_key", where, f"empty {cfg.report_key_column}")
            continue
        study_key = pseudonymise(raw_key, cfg.secret, "study")
        if study_key in key_map.values():
            ledger.add("rejected", "duplicate_report", where, "a second report for the same study")
            continue
        parsed = parser.parse(text)
        sentences = [
            s
            for name in cfg.sections
            for s in parser.split_sentences(parsed.sections.get(name, ""))
        ]
        if not sentences:
            ledger.add(
                "rejected", "empty_report", where, f"no sentences in sections {list(cfg.sections)}"
            )
            continue
        key_map[raw_key] = study_key
        rows.append(
            {
                "study_key": study_key,
                **{name: parsed.sections.get(name, "") for name in cfg.sections},
                "text": parsed.text(cfg.sections),
                "sentences": sentences,
            }
        )
    return pd.DataFrame(rows), key_map


def load_labels(cfg: IngestConfig, key_map: dict[str, str]) -> pd.DataFrame | None:
    """Evaluation labels keyed by `study_key` (rows without a known report are dropped)."""
    if not cfg.labels_csv:
        return None
    table = pd.read_csv(cfg.labels_csv, dtype={cfg.report_key_column: str})
    if cfg.report_key_column not in table.columns:
        raise ValueError(f"{cfg.labels_csv}: no column {cfg.report_key_column!r} to key labels by")
    label_cols = [
        c
        for c in table.columns
        if c not in {cfg.report_key_column, "StudyInstanceUID", "AccessionNumber"}
    ]
    table = table[table[cfg.report_key_column].isin(key_map)]
    out = pd.DataFrame({"study_key": table[cfg.report_key_column].map(key_map)})
    for col in label_cols:
        out[col] = pd.to_numeric(table[col], errors="coerce").astype("float32").to_numpy()
    return out.reset_index(drop=True)


def _filter_reason(header: DicomHeader, cfg: IngestConfig) -> str | None:
    if cfg.modalities and header.modality not in cfg.modalities:
        return "filtered_modality"
    if cfg.views and header.view_position not in cfg.views:
        return "filtered_view"
    return None


def run_ingestion(cfg: IngestConfig, parser: ReportParser | None = None) -> dict[str, Any]:
    """Build every ingestion artifact in `cfg.out_dir`; returns the summary (also written as JSON)."""
    start = time.time()
    parser = parser or ReportParser()
    root = Path(cfg.dicom_dir)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM folder {root} does not exist; set data.dicom_dir")
    ledger = Ledger()

    reports, key_map = load_reports(cfg, parser, ledger)
    files = sorted(str(p) for p in root.glob(cfg.file_glob) if p.is_file())
    if not files:
        raise FileNotFoundError(f"no files match {cfg.file_glob!r} under {root}")

    candidates: list[tuple[DicomHeader, dict[str, str]]] = []
    seen_sops: set[str] = set()
    for header in _pool_map(_safe_header, files, cfg.workers, "headers", cfg.progress):
        if isinstance(header, IngestError):
            ledger.reject(header, root)
            continue
        rel = _relative(header.path, root)
        reason = _filter_reason(header, cfg)
        if reason:
            ledger.add(
                "filtered",
                reason,
                rel,
                f"ViewPosition={header.view_position or '(empty)'} Modality={header.modality or '(empty)'}",
            )
            continue
        raw_join = header.key(cfg.join_element)
        if not raw_join or not header.patient_id or not header.sop_instance_uid:
            ledger.add(
                "rejected",
                "missing_key",
                rel,
                f"{cfg.join_element}, PatientID or SOPInstanceUID is empty",
            )
            continue
        if raw_join not in key_map:
            ledger.add(
                "rejected",
                "missing_report",
                rel,
                f"no usable report for this image's {cfg.join_element}",
            )
            continue
        if header.sop_instance_uid in seen_sops:
            ledger.add("rejected", "duplicate_image", rel, "SOPInstanceUID seen in an earlier file")
            continue
        seen_sops.add(header.sop_instance_uid)
        patient_key = pseudonymise(header.patient_id, cfg.secret, "patient")
        candidates.append(
            (
                header,
                {
                    "image_key": pseudonymise(header.sop_instance_uid, cfg.secret, "image"),
                    "study_key": key_map[raw_join],
                    "patient_key": patient_key,
                    "split": assign_split(patient_key, dict(cfg.split_fractions), cfg.split_salt),
                    "view": header.view_position,
                    "modality": header.modality,
                    "rows": str(header.rows),
                    "columns": str(header.columns),
                    "photometric": header.photometric,
                    "bits_stored": str(header.bits_stored),
                    "transfer_syntax": header.transfer_syntax,
                    "source": rel,
                },
            )
        )

    cache_dir = out / CACHE_DIR
    array = create_cache(cache_dir, max(1, len(candidates)), cfg.image_size, cfg.cache_dtype)
    jobs = [_DecodeJob(h.path, cfg.image_size, cfg.cache_dtype, cfg.decode) for h, _ in candidates]
    manifest_rows: list[dict[str, Any]] = []
    for slot, decoded in enumerate(
        _pool_map(_decode_job, jobs, cfg.workers, "decode", cfg.progress)
    ):
        if isinstance(decoded, IngestError):
            ledger.reject(decoded, root)
            continue
        array[slot] = decoded
        manifest_rows.append({**candidates[slot][1], "cache_index": slot})
    array.flush()
    del array

    manifest = pd.DataFrame(manifest_rows)
    for col in ("rows", "columns", "bits_stored"):
        if col in manifest:
            manifest[col] = manifest[col].astype(int)
    used_studies = set(manifest["study_key"]) if len(manifest) else set()
    reports = reports[reports["study_key"].isin(used_studies)].reset_index(drop=True)
    labels = load_labels(cfg, key_map)
    if labels is not None:
        labels = labels[labels["study_key"].isin(used_studies)].reset_index(drop=True)

    _write_parquet(manifest, out / MANIFEST_NAME)
    _write_parquet(reports, out / REPORTS_NAME)
    if labels is not None:
        _write_parquet(labels, out / LABELS_NAME)
    ledger_frame = ledger.frame()
    tmp = out / f".{LEDGER_NAME}.tmp"
    ledger_frame.to_csv(tmp, index=False)
    os.replace(tmp, out / LEDGER_NAME)
    manifest_sha = frame_hash(manifest)
    finalize_cache(cache_dir, cfg.cache_params(), manifest_sha)

    n_files = len(files)
    n_cached = len(manifest)
    n_rejected = ledger.count("rejected", prefix="") - _report_rows(ledger, cfg)
    n_filtered = ledger.count("filtered")
    if n_files != n_cached + n_rejected + n_filtered:
        raise RuntimeError(
            f"ingestion lost track of files: seen {n_files} != cached {n_cached} + rejected "
            f"{n_rejected} + filtered {n_filtered}"
        )
    summary = {
        "files_seen": n_files,
        "cached": n_cached,
        "rejected": n_rejected,
        "filtered": n_filtered,
        "reports_rejected": _report_rows(ledger, cfg),
        "reasons": ledger_frame.groupby(["kind", "reason"])
        .size()
        .rename("n")
        .reset_index()
        .to_dict("records")
        if len(ledger_frame)
        else [],
        "patients": int(manifest["patient_key"].nunique()) if n_cached else 0,
        "studies": int(manifest["study_key"].nunique()) if n_cached else 0,
        "images_per_split": manifest["split"].value_counts().sort_index().to_dict()
        if n_cached
        else {},
        "manifest_sha256": manifest_sha,
        "cache_params": cfg.cache_params(),
        "seconds": round(time.time() - start, 2),
    }
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _report_rows(ledger: Ledger, cfg: IngestConfig) -> int:
    return ledger.count("rejected", prefix=f"{Path(cfg.reports_csv).name}#")


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
