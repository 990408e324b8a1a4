"""Ingestion: a dataset adapter's records -> manifest, reports, labels, ledger and image cache.

The work is cut into chunks of files. A process pool turns each chunk into a part on disk
(images and rows, written under a temporary name and renamed), so a run killed at any moment
resumes by skipping the parts already written, and N independent shards (`shard=(i, N)`) can
share the work between machines before one merge step. The merge assembles the final cache
and tables, also atomically, and removes the parts.

Every file found is accounted for: it ends up cached, rejected (with a reason code) or filtered
out (by view, modality or the one-image-per-study policy); `files_seen = cached + rejected +
filtered` is checked before the summary is written. Raw identifiers (patient ids, accession
numbers, UIDs) are replaced by keyed hashes inside the workers and never written anywhere.

One concern, kept in one file: the settings, the per-file work in the workers, the parts, the
merge and the ledger share the part format and the accounting rule above.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from medrep.data.adapters.base import DatasetAdapter, ImageRecord, ReportRecord
from medrep.data.cache import ARRAY_NAME, atomic_write_text, create_cache, frame_hash, stage_cache
from medrep.data.containment import admit_records, safe_text
from medrep.data.dicom import (
    MIN_DISPLAY_SPREAD,
    DecodeOptions,
    decode_dataset_image,
    display_spread,
    read_dicom,
)
from medrep.data.errors import REASON_CODES, IngestError
from medrep.data.images import quantize, read_image_file, resize_pad, sniff_kind
from medrep.data.locking import IngestLock, exit_with_parent, ingest_lock, private_files
from medrep.data.privacy import assign_split, pseudonymise
from medrep.data.reports import ReportParser
from medrep.data.scrub import Scrubber
from medrep.data.sources import SOURCE_MODES, rewrite_message, source_writer
from medrep.data.views import CANONICAL_VIEWS, canonical_view, normalise_view

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MANIFEST_NAME = "manifest.parquet"
REPORTS_NAME = "reports.parquet"
LABELS_NAME = "labels.parquet"
LEDGER_NAME = "rejects.csv"
SUMMARY_NAME = "ingest_summary.json"
CACHE_DIR = "cache"
PARTS_DIR = "parts"
LEDGER_COLUMNS = ["kind", "reason", "source", "message"]
_MAX_RAW_VIEW = 40  # characters of a raw view value kept in the manifest and the summary


@dataclass(frozen=True)
class IngestConfig:
    """Everything ingestion needs, as plain values (built from `conf/data/*.yaml`).

    Attributes:
        out_dir: where the artifacts go.
        secret: the pseudonymisation secret (see `medrep.data.privacy.resolve_secret`).
        join_element: DICOM keyword keying an image to its report when the adapter does not.
        views / modalities: accepted views (PA, AP, LATERAL after `medrep.data.views`' vocabulary:
            "AP Supine" is AP) and DICOM Modality values (empty accepts all).
        view_map: a site's raw view spellings -> PA, AP, LATERAL or "" (unknown), over the
            vocabulary.
        keep_unknown_view: keep images whose view cannot be determined (else filtered).
        one_image_per_study: keep only the first accepted image of each study (source order).
        sections: report sections that feed pretraining.
        image_size / cache_dtype: the cache's square side and integer type.
        split_fractions / split_salt: patient-level split shares and the hash salt.
        workers: decoding processes (1 decodes in this process; None: one per core).
        chunk_size: files per part (the unit of resumption and of sharding).
        follow_symlinks: read files reached through symbolic links that resolve inside the
            adapter's `export_root` (else a link is ledgered as `symlink`, unopened).
        private: create the output folder 0700 and its files 0600 (they hold report text and
            the pseudonymised tables; a shared server's default umask 022 makes them
            world-readable).
        lock_timeout_s: how long a second ingestion into the same folder waits for the first
            (None: until it finishes; 0: stop at once, naming the holder).
        source_paths: how the `source` of manifest, report and ledger rows is written:
            `pseudonymise` (each folder and file name a keyed hash, `medrep.data.sources`),
            `relative` (the path under the export root), or `auto` (relative for adapters
            whose paths hold only a publisher's de-identified ids, else pseudonymised).
    """

    out_dir: str
    secret: str
    join_element: str = "AccessionNumber"
    views: Sequence[str] = ("PA", "AP")
    modalities: Sequence[str] = ("CR", "DX")
    keep_unknown_view: bool = False
    view_map: Mapping[str, str] = field(default_factory=dict)
    one_image_per_study: bool = False
    sections: Sequence[str] = ("findings", "impression")
    image_size: int = 224
    cache_dtype: str = "uint8"
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15}
    )
    split_salt: str = "medrep-split"
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    workers: int | None = 1
    chunk_size: int = 64
    max_report_chars: int = 100_000
    min_side: int = 16
    follow_symlinks: bool = False
    private: bool = True
    lock_timeout_s: float | None = None
    source_paths: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        # refuse a bad configuration before any file is touched, naming the setting
        allowed_joins = ("AccessionNumber", "StudyInstanceUID", "SOPInstanceUID", "PatientID")
        if self.join_element not in allowed_joins:
            raise ValueError(
                f"data.join_element must be one of {allowed_joins}, got {self.join_element!r}"
            )
        if self.image_size < 8:
            raise ValueError(f"data.image_size must be at least 8 pixels, got {self.image_size}")
        if self.cache_dtype not in ("uint8", "uint16"):
            raise ValueError(f"data.cache_dtype must be uint8 or uint16, got {self.cache_dtype!r}")
        if not self.secret:
            raise ValueError("the pseudonymisation secret is empty; see data.privacy")
        if not self.sections:
            raise ValueError("reports.sections is empty: no report text would feed pretraining")
        if (self.workers is not None and self.workers < 1) or self.chunk_size < 1:
            raise ValueError(
                f"workers and chunk_size must be >= 1, got {self.workers}, {self.chunk_size}"
            )
        unknown = [v for v in self.views if not canonical_view(v, self.view_map)]
        if unknown:
            raise ValueError(
                f"data.ingest.views {unknown} name no view; use PA, AP, LATERAL (or a spelling "
                "of medrep.data.views.VIEW_VOCABULARY)"
            )
        for raw in self.view_map.values():
            if normalise_view(raw) not in (*CANONICAL_VIEWS, ""):
                raise ValueError(
                    f"data.ingest.view_map maps to {raw!r}; use PA, AP, LATERAL or '' (unknown)"
                )
        if self.source_paths not in SOURCE_MODES:
            raise ValueError(
                f"data.ingest.source_paths must be one of {SOURCE_MODES}, got {self.source_paths!r}"
            )
        fractions = dict(self.split_fractions)
        if not fractions or sum(fractions.values()) <= 0 or min(fractions.values()) < 0:
            raise ValueError(
                f"data.split_fractions must be non-negative with a positive sum: {fractions}"
            )

    @property
    def processes(self) -> int:
        """Decoding processes: `workers`, or one per core."""
        return self.workers or os.cpu_count() or 1

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

    def fingerprint(self) -> dict[str, Any]:
        """Every setting that changes the artifacts (the secret only through a keyed check)."""
        return {
            "cache": self.cache_params(),
            "secret_check": pseudonymise("fingerprint", self.secret, "check"),
            "join_element": self.join_element,
            "views": list(self.views),
            "view_map": dict(self.view_map),
            "modalities": list(self.modalities),
            "keep_unknown_view": self.keep_unknown_view,
            "one_image_per_study": self.one_image_per_study,
            "sections": list(self.sections),
            "split": {"fractions": dict(self.split_fractions), "salt": self.split_salt},
            "chunk_size": self.chunk_size,
            "max_report_chars": self.max_report_chars,
            "min_side": self.min_side,
            "follow_symlinks": self.follow_symlinks,
        }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# ---- reports and labels ---------------------------------------------------------------------


def parse_reports(
    records: Iterable[ReportRecord],
    cfg: IngestConfig,
    parser: ReportParser,
    scrubber: Scrubber | None = None,
) -> tuple[pd.DataFrame, list[dict[str, str]], dict[str, int]]:
    """Reports keyed by pseudonymous `study_key`, with sections and sentences, and their ledger.

    The scrubber (when given) removes identifiers from the text before anything else reads it;
    only its counts per category come back. A report written in a style the parser does not
    know (it has headers, none of them a known section) is read as a whole
    (`text_source` = `whole_text`, counted in the summary); one with known sections but no
    sentence in the configured ones is rejected (`empty_report`), a second report for the same study is rejected
    (`duplicate_report`); neither stops ingestion.

    Returns:
        (reports frame, ledger entries, scrubbed-identifier counts per category).
    """
    rows: dict[str, dict[str, Any]] = {}
    ledger: list[dict[str, str]] = []
    scrubbed: dict[str, int] = {}
    for rec in records:
        if not rec.study_key:
            ledger.append(_ledger("rejected", "missing_key", rec.source, "report without a key"))
            continue
        study_key = pseudonymise(rec.study_key, cfg.secret, "study")
        if study_key in rows:
            ledger.append(
                _ledger("rejected", "duplicate_report", rec.source, "a second report for a study")
            )
            continue
        text = rec.text
        if len(text) > cfg.max_report_chars:
            ledger.append(
                _ledger(
                    "rejected",
                    "report_too_large",
                    rec.source,
                    f"{len(text)} characters, more than data.max_report_chars={cfg.max_report_chars}",
                )
            )
            continue
        if "\ufffd" in text:
            # kept: the readable text is still a report; the ledger says bytes were replaced
            ledger.append(
                _ledger(
                    "repaired", "bad_encoding", rec.source, "undecodable bytes replaced by U+FFFD"
                )
            )
        if scrubber is not None:
            result = scrubber.scrub(text)
            text = result.text
            for category, n in result.counts.items():
                scrubbed[category] = scrubbed.get(category, 0) + n
        parsed = parser.parse(text)
        sentences = [
            s
            for name in cfg.sections
            for s in parser.split_sentences(parsed.sections.get(name, ""))
        ]
        text, text_source = parsed.text(cfg.sections), "sections"
        if parsed.headers and not any(name in parser.section_names for name in parsed.headers):
            # a site's own style ("PC: ... BG: ..."): headers, none the parser knows, so the
            # whole text stands in for the configured ones (MIMIC's fallback would keep only
            # the last paragraphs)
            text, text_source = parsed.whole_text(), "whole_text"
            sentences = parser.split_sentences(text)
        if not sentences:
            ledger.append(
                _ledger(
                    "rejected",
                    "empty_report",
                    rec.source,
                    f"no sentences in sections {list(cfg.sections)}",
                )
            )
            continue
        rows[study_key] = {
            "study_key": study_key,
            **{name: parsed.sections.get(name, "") for name in cfg.sections},
            "text": text,
            "sentences": sentences,
            "text_source": text_source,
            "source": rec.source,
        }
    columns = ["study_key", *cfg.sections, "text", "sentences", "text_source", "source"]
    return pd.DataFrame(list(rows.values()), columns=columns), ledger, scrubbed


def pseudonymise_labels(labels: pd.DataFrame | None, cfg: IngestConfig) -> pd.DataFrame | None:
    """An adapter's label table with its raw `study_key` replaced by the pseudonymous key."""
    if labels is None:
        return None
    if "study_key" not in labels.columns:
        raise ValueError("an adapter's labels need a raw `study_key` column")
    out = labels.copy()
    out = out[out["study_key"].astype(str) != ""]
    out["study_key"] = [pseudonymise(str(k), cfg.secret, "study") for k in out["study_key"]]
    return out.drop_duplicates("study_key").reset_index(drop=True)


# ---- per-chunk work (runs in the pool) ------------------------------------------------------


@dataclass(frozen=True)
class _ChunkJob:
    index: int
    name: str
    records: tuple[ImageRecord, ...]
    parts_dir: str
    cfg: IngestConfig
    report_keys: frozenset[str]


def _ledger(kind: str, reason: str, source: str, message: str) -> dict[str, str]:
    if reason not in REASON_CODES:
        raise ValueError(f"unknown reason code {reason!r}; add it to REASON_CODES")
    return {
        "kind": kind,
        "reason": reason,
        "source": safe_text(source),
        "message": safe_text(message),
    }


# DICOM modalities that name the same kind of radiograph (sites label CR plates DX and back)
_SAME_MODALITY = ({"CR", "DX"},)


def _check_sop_class(header: Any, path: str) -> None:
    """A SOP Class UID that names another modality than the Modality element (a CT slice
    whose Modality says DX) is refused: the element is the one an export gets wrong."""
    implied, said = header.sop_class_modality, header.modality
    if not implied or not said or implied == said:
        return
    if any({implied, said} <= group for group in _SAME_MODALITY):
        return
    raise IngestError(
        "header_mismatch",
        path,
        f"SOP Class UID is a {implied} image but Modality says {said}",
    )


def _check_display(image: np.ndarray, path: str) -> None:
    """A decoded image must be finite and show something: not one value (after the decoder's
    window fallback), which a broken export or a collapsed window produces."""
    if not np.isfinite(image).all():
        raise IngestError(
            "non_finite", path, f"{int((~np.isfinite(image)).sum())} NaN or infinite values"
        )
    spread = display_spread(image)
    if spread < MIN_DISPLAY_SPREAD:
        raise IngestError(
            "constant_image",
            path,
            f"the image is one value (0.5-99.5 percentile spread {spread:.4f} of the display "
            "range, even with a percentile window)",
        )


def _check_radiograph_header(ds: Any, header: Any, path: str, min_side: int) -> None:
    """Refusals a radiograph's header already justifies, before any pixel is decoded."""
    allocated = int(ds.get("BitsAllocated", 0) or 0)
    if header.bits_stored > 16 or (allocated and header.bits_stored > allocated):
        raise IngestError(
            "bad_bit_depth",
            path,
            f"BitsStored={header.bits_stored} with BitsAllocated={allocated}: radiographs store "
            "at most 16 bits, and never more than they allocate",
        )
    if 0 < min(header.rows, header.columns) < min_side:
        raise IngestError(
            "bad_dimensions",
            path,
            f"{header.columns} x {header.rows} pixels, below data.min_side={min_side}",
        )


def _process_record(
    rec: ImageRecord, cfg: IngestConfig, report_keys: frozenset[str]
) -> tuple[dict[str, Any] | None, np.ndarray | None, dict[str, str] | None]:
    """One file -> (manifest row, cached image) or a ledger entry."""
    try:
        if sniff_kind(rec.path) == "image":
            header = None
            study, patient, image_id = rec.study_key, rec.patient_id, rec.image_id or rec.source
            raw_view, view_source, modality = rec.view, "adapter" if rec.view else "none", ""
        else:
            ds, header = read_dicom(rec.path)
            study = rec.study_key or header.key(cfg.join_element)
            patient = rec.patient_id or header.patient_id
            image_id = rec.image_id or header.sop_instance_uid
            raw_view = rec.view or header.view_position
            view_source = "adapter" if rec.view else header.view_source
            _check_sop_class(header, rec.path)
            modality = header.modality or header.sop_class_modality
            if cfg.modalities and modality not in cfg.modalities:
                return (
                    None,
                    None,
                    _ledger(
                        "filtered",
                        "filtered_modality",
                        rec.source,
                        f"Modality={modality or '(empty)'}",
                    ),
                )
        view_raw = normalise_view(raw_view)[:_MAX_RAW_VIEW]
        view = canonical_view(raw_view, cfg.view_map)
        accepted = {canonical_view(v, cfg.view_map) for v in cfg.views}
        if cfg.views and view not in accepted and not (not view and cfg.keep_unknown_view):
            why = (
                f"view {view_raw!r} is {view}, not in {sorted(accepted)}"
                if view
                else f"view {view_raw!r} is unknown"
                if view_raw
                else "no view in header or metadata"
            )
            entry = _ledger("filtered", "filtered_view", rec.source, why)
            return None, None, {**entry, "view_raw": view_raw}
        if not study or not patient or not image_id:
            return (
                None,
                None,
                _ledger(
                    "rejected",
                    "missing_key",
                    rec.source,
                    "study key, patient id or image id is empty",
                ),
            )
        study_key = pseudonymise(study, cfg.secret, "study")
        if study_key not in report_keys:
            return (
                None,
                None,
                _ledger(
                    "rejected",
                    "missing_report",
                    rec.source,
                    "no usable report for this image's study",
                ),
            )
        if header is None:
            image, window = read_image_file(rec.path, cfg.decode.max_pixels)
            decode_path, decode_fallback = "full", "not_offered"
        else:
            _check_radiograph_header(ds, header, rec.path, cfg.min_side)
            # the cache's side is the decoder's target: it may decode at a reduced resolution
            decoded = decode_dataset_image(ds, rec.path, cfg.decode, cfg.image_size)
            image, decode_path = decoded.image, decoded.decode_path
            decode_fallback, window = decoded.fallback, decoded.window
        _check_display(image, rec.path)
        if min(image.shape) < cfg.min_side:
            raise IngestError(
                "bad_dimensions",
                rec.path,
                f"{image.shape[1]} x {image.shape[0]} pixels, below data.min_side={cfg.min_side}",
            )
    except IngestError as err:
        return None, None, _ledger("rejected", err.reason, rec.source, err.message)
    cached = quantize(resize_pad(image, cfg.image_size), cfg.cache_dtype)
    patient_key = pseudonymise(patient, cfg.secret, "patient")
    row = {
        "image_key": pseudonymise(image_id, cfg.secret, "image"),
        "study_key": study_key,
        "patient_key": patient_key,
        "series_key": pseudonymise(header.series_instance_uid, cfg.secret, "series")
        if header and header.series_instance_uid
        else "",
        "split": assign_split(patient_key, dict(cfg.split_fractions), cfg.split_salt),
        "view": view,
        "view_raw": view_raw,
        "view_source": view_source,
        "modality": modality,
        # the source's size (a reduced decode returns a smaller image)
        "rows": header.rows if header else int(image.shape[0]),
        "columns": header.columns if header else int(image.shape[1]),
        "photometric": header.photometric if header else "",
        "bits_stored": header.bits_stored if header else 0,
        "transfer_syntax": header.transfer_syntax if header else Path(rec.path).suffix.lower(),
        "decode_path": decode_path,
        "decode_fallback": decode_fallback,
        "window": window,
        "source": safe_text(rec.source),
        # what the merge compares to find one image under two keys (not a manifest column)
        "pixel_sha256": hashlib.sha256(cached.tobytes()).hexdigest(),
    }
    return row, cached, None


def _part_paths(parts_dir: str, name: str) -> tuple[Path, Path]:
    base = Path(parts_dir)
    return base / f"{name}.npy", base / f"{name}.json"


def _process_chunk(job: _ChunkJob) -> int:
    """Process one chunk and write its part (images first, then the JSON that marks it done)."""
    rows: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    ledger: list[dict[str, str]] = []
    for rec in job.records:
        row, image, entry = _process_record(rec, job.cfg, job.report_keys)
        if entry is not None:
            ledger.append(entry)
        elif row is not None and image is not None:
            rows.append(row)
            images.append(image)
    npy, meta = _part_paths(job.parts_dir, job.name)
    size = job.cfg.image_size
    stack = np.stack(images) if images else np.zeros((0, size, size), dtype=job.cfg.cache_dtype)
    tmp = npy.with_name(f".{npy.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, stack)
    os.replace(tmp, npy)
    atomic_write_text(meta, json.dumps({"rows": rows, "ledger": ledger, "files": len(job.records)}))
    return len(job.records)


def _init_worker(parent: int) -> None:
    # a worker dies with its parent: a parent killed (-9, OOM killer, a scheduler) would
    # otherwise leave its decoding processes running, re-parented, holding their memory
    exit_with_parent(parent)
    # each decoding process does single-threaded numeric work; N processes already use N cores
    import torch

    torch.set_num_threads(1)


def _pool_imap(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    if workers <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),)
    ) as pool:
        try:
            yield from pool.map(fn, items, chunksize=1)
        except BaseException:
            # SIGTERM, Ctrl-C or a failure: the chunks not started are dropped (the pool would
            # otherwise process every queued chunk before the exception leaves this block)
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ---- the run ---------------------------------------------------------------------------------


def parse_shard(text: str | None) -> tuple[int, int]:
    """`"i/N"` -> (i, N); None -> the whole dataset."""
    if not text:
        return 0, 1
    try:
        index, total = (int(x) for x in str(text).split("/"))
    except ValueError as exc:
        raise ValueError(f"data.shard must look like 3/8, got {text!r}") from exc
    return index, total


def run_ingestion(
    cfg: IngestConfig,
    adapter: DatasetAdapter,
    parser: ReportParser | None = None,
    *,
    scrubber: Scrubber | None = None,
    shard: tuple[int, int] = (0, 1),
    merge: bool = True,
) -> dict[str, Any]:
    """Ingest a dataset into `cfg.out_dir`; resumable, and shardable as `shard=(i, N)`.

    With one shard, processes whatever parts are missing and merges. With N shards, each call
    processes its share of the parts; the merge runs when `merge` is true and all parts exist
    (typically a last call with `shard=(0, 1)` after all shards finished, which then only
    merges). A finished ingestion with the same inputs and configuration is not redone.

    Returns:
        The summary (also written as `ingest_summary.json`), or, for a shard that does not
        merge, a smaller record of what the shard did.
    """
    index, n_shards = shard
    if not 0 <= index < n_shards:
        raise ValueError(f"shard must be i/N with 0 <= i < N, got {index}/{n_shards}")
    out = Path(cfg.out_dir)
    with private_files(cfg.private):
        out.mkdir(parents=True, exist_ok=True)
        if cfg.private:
            os.chmod(out, 0o700)
        # shards of one ingestion run side by side (each writes its own parts): shared lock
        with ingest_lock(out, cfg.lock_timeout_s, shared=n_shards > 1) as lock:
            return _run_ingestion(
                cfg, adapter, parser or ReportParser(), scrubber, (index, n_shards), merge, lock
            )


def _run_ingestion(
    cfg: IngestConfig,
    adapter: DatasetAdapter,
    parser: ReportParser,
    scrubber: Scrubber | None,
    shard: tuple[int, int],
    merge: bool,
    lock: IngestLock,
) -> dict[str, Any]:
    """`run_ingestion`'s work, under the folder's lock."""
    index, n_shards = shard
    start = time.time()
    out = Path(cfg.out_dir)
    report_frame, report_ledger, scrubbed = parse_reports(adapter.reports(), cfg, parser, scrubber)
    listed = list(adapter.images())
    if not listed:
        raise FileNotFoundError(f"the {adapter.name} dataset lists no image files")
    records, refused = admit_records(
        listed, getattr(adapter, "export_root", None), cfg.follow_symlinks
    )
    path_ledger = [_ledger("rejected", reason, r.source, why) for r, reason, why in refused]
    labels = pseudonymise_labels(adapter.labels(), cfg)
    # records the adapter could not build (a report file it could not parse, a metadata row
    # naming a missing image): ledgered beside the reports, outside the file count
    problems = [_ledger("rejected", p.reason, p.source, p.message) for p in adapter.problems]
    report_ledger += problems
    source_mode, write_source = source_writer(
        cfg.source_paths, getattr(adapter, "public_paths", False), cfg.secret
    )
    inputs = {
        "source_paths": source_mode,
        "files": _digest([r.source for r in listed]),
        "reports": frame_hash(report_frame),
        "labels": frame_hash(labels) if labels is not None else None,
    }
    fingerprint = _digest({"config": cfg.fingerprint(), "inputs": inputs})
    summary_path = out / SUMMARY_NAME
    previous = _complete_outputs(out, fingerprint)
    if previous is not None:
        log.info("ingestion in %s is complete for these inputs and settings; reusing it", out)
        return previous

    parts_dir = out / PARTS_DIR
    parts_dir.mkdir(exist_ok=True)
    report_keys = frozenset(report_frame["study_key"])
    chunk_names = [
        f"{i:06d}-{_digest([fingerprint, [r.source for r in records[s : s + cfg.chunk_size]]])[:12]}"
        for i, s in enumerate(range(0, len(records), cfg.chunk_size))
    ]
    todo = [
        _ChunkJob(
            i,
            name,
            tuple(records[i * cfg.chunk_size : (i + 1) * cfg.chunk_size]),
            str(parts_dir),
            cfg,
            report_keys,
        )
        for i, name in enumerate(chunk_names)
        if i % n_shards == index and not _part_paths(str(parts_dir), name)[1].exists()
    ]
    done_files = sum(
        len(records[i * cfg.chunk_size : (i + 1) * cfg.chunk_size])
        for i in range(len(chunk_names))
        if i % n_shards == index
    ) - sum(len(j.records) for j in todo)
    bar = tqdm(
        total=done_files + sum(len(j.records) for j in todo),
        initial=done_files,
        desc="ingest",
        unit="file",
        disable=not cfg.progress,
        mininterval=1.0,
        smoothing=0.1,
    )
    for n in _pool_imap(_process_chunk, todo, cfg.processes):
        bar.update(n)
    bar.close()

    missing = [name for name in chunk_names if not _part_paths(str(parts_dir), name)[1].exists()]
    if not merge or missing:
        if merge and n_shards == 1:
            raise RuntimeError(f"{len(missing)} parts are missing after processing; see the log")
        return {
            "shard": f"{index}/{n_shards}",
            "parts_written": len(todo),
            "parts_missing": len(missing),
            "seconds": round(time.time() - start, 2),
        }
    if not lock.exclusive:
        # the last shard to finish merges, alone: another shard may have merged meanwhile
        lock.acquire(exclusive=True)
        previous = _complete_outputs(out, fingerprint)
        if previous is not None:
            return previous
        if any(not _part_paths(str(parts_dir), name)[1].exists() for name in chunk_names):
            raise RuntimeError("parts vanished while waiting to merge; run the same command again")
    summary = _merge(
        cfg,
        chunk_names,
        parts_dir,
        report_frame,
        report_ledger,
        labels,
        len(listed),
        path_ledger,
        len(problems),
        write_source,
    )
    summary.update(
        {
            # how `source` was written (medrep.data.sources): evaluation matches lists by it
            "source_paths": source_mode,
            "fingerprint": fingerprint,
            "scrubbed_identifiers": scrubbed,
            "seconds": round(time.time() - start, 2),
        }
    )
    atomic_write_text(summary_path, json.dumps(summary, indent=2, sort_keys=True))
    shutil.rmtree(parts_dir, ignore_errors=True)
    return summary


def _complete_outputs(out: Path, fingerprint: str) -> dict[str, Any] | None:
    """The summary of a finished ingestion of these inputs and settings in `out`, or None.

    Finished means every output belongs to the same merge: the summary's fingerprint is this
    one, and the manifest on disk, the summary and the cache's metadata name the same manifest
    hash (a folder left mixed by an interrupted or concurrent writer is redone, not reused).
    """
    summary_path = out / SUMMARY_NAME
    meta_path = out / CACHE_DIR / "cache_meta.json"
    manifest_path = out / MANIFEST_NAME
    if not (summary_path.exists() and meta_path.exists() and manifest_path.exists()):
        return None
    try:
        previous = json.loads(summary_path.read_text())
        meta = json.loads(meta_path.read_text())
        manifest_sha = frame_hash(pd.read_parquet(manifest_path))
    except (OSError, ValueError) as exc:
        log.warning("ingestion outputs in %s are unreadable (%s); redoing them", out, exc)
        return None
    if previous.get("fingerprint") != fingerprint:
        return None
    if not previous.get("manifest_sha256") == meta.get("manifest_sha256") == manifest_sha:
        log.warning("ingestion outputs in %s do not belong together; redoing them", out)
        return None
    return dict(previous)


def _merge(
    cfg: IngestConfig,
    chunk_names: list[str],
    parts_dir: Path,
    reports: pd.DataFrame,
    report_ledger: list[dict[str, str]],
    labels: pd.DataFrame | None,
    n_files: int,
    path_ledger: list[dict[str, str]],
    n_problems: int,
    write_source: Callable[[str], str],
) -> dict[str, Any]:
    """Assemble parts (in chunk order) into the final cache, manifest, tables and ledger;
    `path_ledger` holds the files refused before any was opened (`admit_records`)."""
    out = Path(cfg.out_dir)
    ledger: list[dict[str, str]] = list(path_ledger)
    keep: list[tuple[str, int, dict[str, Any]]] = []
    seen_images: set[str] = set()
    seen_studies: set[str] = set()
    seen_pixels: dict[str, str] = {}
    for name in chunk_names:
        part = json.loads(_part_paths(str(parts_dir), name)[1].read_text())
        ledger.extend(part["ledger"])
        for pos, row in enumerate(part["rows"]):
            if row["image_key"] in seen_images:
                ledger.append(
                    _ledger(
                        "rejected",
                        "duplicate_image",
                        row["source"],
                        "the same image id was seen in an earlier file",
                    )
                )
                continue
            seen_images.add(row["image_key"])
            pixels = row.pop("pixel_sha256")
            first = seen_pixels.get(pixels)
            if first is not None:
                # one image under two keys or patients (a re-sent study, a merged record) would
                # otherwise land in two splits: the first is kept
                ledger.append(
                    _ledger(
                        "rejected",
                        "duplicate_content",
                        row["source"],
                        f"pixel-identical to {first} (cached)",
                    )
                )
                continue
            seen_pixels[pixels] = row["source"]
            if cfg.one_image_per_study and row["study_key"] in seen_studies:
                ledger.append(
                    _ledger(
                        "filtered",
                        "filtered_one_per_study",
                        row["source"],
                        "one image per study is kept",
                    )
                )
                continue
            seen_studies.add(row["study_key"])
            keep.append((name, pos, row))

    cache_dir = out / CACHE_DIR
    staged: list[tuple[Path, Path]] = []  # (temporary file, final name), renamed at the end
    try:
        manifest, reports, labels, ledger_frame, report_ledger, unmatched = _stage_outputs(
            cfg, keep, parts_dir, reports, report_ledger, labels, ledger, staged, write_source
        )
        # every output is on disk under a temporary name: only renames remain, which need no
        # space, so a full disk or a read-only folder stops the run above with the previous
        # outputs untouched
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        (cache_dir / f".{ARRAY_NAME}.tmp").unlink(missing_ok=True)
        raise OutputWriteError(out, exc) from exc
    manifest_sha = frame_hash(manifest)

    file_ledger = pd.DataFrame(ledger, columns=LEDGER_COLUMNS)
    n_rejected = int((file_ledger["kind"] == "rejected").sum())
    n_filtered = int((file_ledger["kind"] == "filtered").sum())
    if n_files != len(manifest) + n_rejected + n_filtered:
        raise RuntimeError(
            f"ingestion lost track of files: seen {n_files} != cached {len(manifest)} + "
            f"rejected {n_rejected} + filtered {n_filtered}"
        )
    reasons = ledger_frame.groupby(["kind", "reason"]).size().rename("n").reset_index()
    return {
        "files_seen": n_files,
        "cached": len(manifest),
        "rejected": n_rejected,
        "filtered": n_filtered,
        # rejected report rows and records the adapter could not build
        "reports_rejected": sum(1 for e in report_ledger if e["kind"] == "rejected") - n_problems,
        # what the adapter could not turn into a record (bad table rows, files it could not
        # list or find); ledgered as rejected, outside the file count
        "adapter_problems": n_problems,
        "reports_without_images": len(unmatched),
        "reasons": reasons.to_dict("records"),
        "patients": int(manifest["patient_key"].nunique()),
        "studies": int(manifest["study_key"].nunique()),
        "images_per_split": {
            str(k): int(v) for k, v in manifest["split"].value_counts().sort_index().items()
        },
        "views": {str(k): int(v) for k, v in manifest["view"].value_counts().sort_index().items()},
        "reports_whole_text": int((reports["text_source"] == "whole_text").sum()),
        # raw view values (normalised) of the filtered images, and of kept unknown views
        "views_filtered_raw": _counts(
            pd.Series([e.get("view_raw", "") for e in ledger if e["reason"] == "filtered_view"])
        ),
        "views_unknown_raw": _counts(manifest.loc[manifest["view"] == "", "view_raw"]),
        "decode_paths": _counts(manifest["decode_path"]),
        "windows": _counts(manifest["window"]),
        "decode_fallbacks": _counts(manifest["decode_fallback"][manifest["decode_fallback"] != ""]),
        "manifest_sha256": manifest_sha,
        "cache_params": cfg.cache_params(),
    }


class OutputWriteError(OSError):
    """Ingestion could not write its outputs (disk full, read-only folder); nothing was replaced."""

    def __init__(self, out_dir: Path, cause: OSError) -> None:
        what = errno.errorcode.get(cause.errno or 0, "OSError")
        super().__init__(
            cause.errno,
            f"cannot write the ingestion outputs in {out_dir}: {cause.strerror or cause} ({what}"
            f"{', ' + str(cause.filename) if cause.filename else ''}). The previous manifest, "
            "cache and ledger there (if any) are unchanged and the processed parts are kept: "
            "free space or point paths.output_dir at a writable disk, then run the same command "
            "again.",
        )


def _stage_outputs(
    cfg: IngestConfig,
    keep: list[tuple[str, int, dict[str, Any]]],
    parts_dir: Path,
    reports: pd.DataFrame,
    report_ledger: list[dict[str, str]],
    labels: pd.DataFrame | None,
    ledger: list[dict[str, str]],
    staged: list[tuple[Path, Path]],
    write_source: Callable[[str], str],
) -> tuple[
    pd.DataFrame, pd.DataFrame, pd.DataFrame | None, pd.DataFrame, list[dict[str, str]], Any
]:
    """Write every final output under a temporary name, appending (tmp, final) to `staged`."""
    out = Path(cfg.out_dir)
    cache_dir = out / CACHE_DIR
    array = create_cache(cache_dir, max(1, len(keep)), cfg.image_size, cfg.cache_dtype)
    loaded: tuple[str, np.ndarray] | None = None
    rows = []
    for slot, (name, pos, row) in enumerate(keep):
        if loaded is None or loaded[0] != name:
            loaded = (name, np.load(_part_paths(str(parts_dir), name)[0], mmap_mode="r"))
        array[slot] = loaded[1][pos]
        rows.append({**row, "cache_index": slot})
    array.flush()
    del array, loaded

    manifest = pd.DataFrame(rows, columns=[*_MANIFEST_COLUMNS, "cache_index"])
    used = set(manifest["study_key"])
    unmatched = reports[~reports["study_key"].isin(used)]
    for source in unmatched["source"]:
        report_ledger.append(
            _ledger("unmatched", "report_without_images", source, "no cached image of this study")
        )
    reports = reports[reports["study_key"].isin(used)].reset_index(drop=True)
    if labels is not None:
        labels = labels[labels["study_key"].isin(used)].reset_index(drop=True)
    # folder and file names may name patients: every `source` is written as
    # data.ingest.source_paths says, and so is a file named in a ledger message ("a.png is not
    # under ...", "pixel-identical to b.png")
    ledger_frame = pd.DataFrame(ledger + report_ledger, columns=LEDGER_COLUMNS)
    ledger_frame["message"] = [
        rewrite_message(m, write_source) for m in ledger_frame["message"].astype(str)
    ]
    ledger_frame["source"] = ledger_frame["source"].astype(str).map(write_source)
    manifest["source"] = manifest["source"].map(write_source)
    reports["source"] = reports["source"].map(write_source)
    staged.append((_stage_parquet(manifest, out / MANIFEST_NAME), out / MANIFEST_NAME))
    staged.append((_stage_parquet(reports, out / REPORTS_NAME), out / REPORTS_NAME))
    if labels is not None:
        staged.append((_stage_parquet(labels, out / LABELS_NAME), out / LABELS_NAME))
    tmp = out / f".{LEDGER_NAME}.tmp"
    ledger_frame.to_csv(tmp, index=False)
    staged.append((tmp, out / LEDGER_NAME))
    # the cache's metadata last: its presence marks a finished cache
    staged.extend(stage_cache(cache_dir, cfg.cache_params(), frame_hash(manifest)))
    return manifest, reports, labels, ledger_frame, report_ledger, unmatched


_MANIFEST_COLUMNS = [
    "image_key", "study_key", "patient_key", "series_key", "split", "view", "view_raw",
    "view_source",
    "modality", "rows", "columns", "photometric", "bits_stored", "transfer_syntax", "decode_path",
    "decode_fallback", "window", "source",
]  # fmt: skip


def _counts(column: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in column.value_counts().sort_index().items()}


def summary_table(summary: dict[str, Any]) -> str:
    """The end-of-ingestion summary as a few aligned lines."""
    lines = [
        f"files seen {summary['files_seen']} = cached {summary['cached']} + rejected "
        f"{summary['rejected']} + filtered {summary['filtered']}",
        f"patients {summary['patients']}, studies {summary['studies']}, images per split "
        f"{summary['images_per_split']}; reports rejected {summary['reports_rejected']}, read "
        f"whole (no known section) {summary.get('reports_whole_text', 0)}",
    ]
    for r in summary["reasons"]:
        lines.append(f"  {r['kind']:9s} {r['reason']:24s} {r['n']}")
    paths, fallbacks = summary.get("decode_paths") or {}, summary.get("decode_fallbacks") or {}
    lines.append(
        "decode paths: "
        + (", ".join(f"{k} {v}" for k, v in paths.items()) or "none")
        + "; why full: "
        + (", ".join(f"{k} {v}" for k, v in fallbacks.items()) or "none")
    )
    scrubbed = summary.get("scrubbed_identifiers") or {}
    lines.append(
        "identifiers scrubbed from report text: "
        + (", ".join(f"{k} {v}" for k, v in sorted(scrubbed.items())) or "none")
    )
    return "\n".join(lines)


def _stage_parquet(df: pd.DataFrame, path: Path) -> Path:
    """Write `path`'s content under a temporary name beside it; the caller renames it."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    return tmp
