"""More bad inputs, each with its expected outcome: headers that disagree with their pixels,
windows that leave no contrast, odd DICOM encodings, broken PNG/JPEG/TIFF exports, paths that
leave the export, links, duplicates, link loops and damaged report tables.

As in test_bad_inputs.py, each corpus is ingested once (a module-scoped fixture per run) as a
hospital export would hold it: the run must finish, every file must get its expected ledger
entry (or be cached), files seen must equal cached + rejected + filtered, and the good files
around the bad ones must be cached. Four runs, because some settings are per run:
- `dicom_run`: DICOMs found by discovery (`GenericAdapter`, `file_glob=None`);
- `image_run`: PNG/JPEG/TIFF files and containment cases listed by an `images_csv`;
- `followed_run`: links read with `IngestConfig(follow_symlinks=True)`;
- `followed_discovery_run`: linked folders entered with the adapter's `follow_symlinks=True`.
File names that are not UTF-8 also go through a `ListAdapter` (keys given by code); report
tables are checked through `GenericAdapter.reports()` and `read_table` directly. Where the code
looked wrong, the test states the expected outcome and is marked xfail(strict=True).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import CTImageStorage

from medrep.data.adapters.base import DatasetAdapter, ImageRecord, ReportRecord
from medrep.data.adapters.common import BadRow, read_table
from medrep.data.adapters.generic import GenericAdapter
from medrep.data.errors import REASON_CODES, IngestError
from medrep.data.images import load_image_file
from medrep.data.ingest import IngestConfig, run_ingestion
from tests.helpers import ListAdapter, write_dicom

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
REPORT = "FINDINGS: No pleural effusion. Heart size is normal."


def seed_of(key: str) -> int:
    return zlib.crc32(key.encode())


def noise(key: str, shape: tuple[int, int] = (64, 48), low: int = 0, top: int = 4095) -> np.ndarray:
    """A picture of its own per key: pixel-identical images are ledgered as duplicates."""
    return np.random.default_rng(seed_of(key)).integers(low, top + 1, shape)


@dataclass(frozen=True)
class Case:
    """One bad input: how to write it and what ingestion must say about it.

    `write(folder, key)` writes it under the export `folder` and returns its source as the
    ledger and the manifest name it (a relative path, or the images_csv path cell). `kind` is
    cached, rejected, filtered, or adapter (a problem the adapter records, ledgered as rejected
    outside the file count); `window` is the manifest's window column for a cached DICOM.
    """

    name: str
    write: Callable[[Path, str], str]
    kind: str
    reason: str = ""
    window: str = ""


@dataclass(frozen=True)
class Run:
    """One ingestion's outputs, and each case's source in them."""

    summary: dict[str, Any]
    ledger: pd.DataFrame
    manifest: pd.DataFrame
    cache: np.ndarray
    sources: dict[str, str]
    root: Path


def ingest(root: Path, adapter: DatasetAdapter, sources: dict[str, str], **settings: Any) -> Run:
    out = root / "out"
    cfg = IngestConfig(
        out_dir=str(out),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
        chunk_size=5,
        **settings,
    )
    summary = run_ingestion(cfg, adapter)
    return Run(
        summary,
        pd.read_csv(out / "rejects.csv", keep_default_na=False),
        pd.read_parquet(out / "manifest.parquet"),
        np.load(out / "cache" / "images.npy"),
        sources,
        root,
    )


def check_case(run: Run, case: Case) -> None:
    source = run.sources[case.name]
    entries = run.ledger[run.ledger["source"] == source]
    cached = run.manifest[run.manifest["source"] == source]
    if case.kind == "cached":
        assert entries.empty, entries.to_dict("records")
        assert len(cached) == 1, f"{source} is not cached once"
        if case.window:
            assert cached["window"].iloc[0] == case.window
        return
    assert cached.empty, f"{source} was cached"
    assert len(entries) == 1, f"{case.name}: {entries.to_dict('records')}"
    entry = entries.iloc[0]
    kind = "rejected" if case.kind == "adapter" else case.kind
    assert (entry["kind"], entry["reason"]) == (kind, case.reason), entry["message"]
    assert entry["message"], "every ledger entry says why"


def check_accounts(run: Run, cases: list[Case]) -> None:
    summary, counted = run.summary, [c for c in cases if c.kind != "adapter"]
    assert summary["files_seen"] == summary["cached"] + summary["rejected"] + summary["filtered"]
    assert summary["files_seen"] == len(counted)
    for kind in ("cached", "rejected", "filtered"):
        assert summary[kind] == sum(c.kind == kind for c in counted), kind
    assert len(run.manifest) == summary["cached"]


def check_each_case_has_its_outcome(cases: list[Case]) -> None:
    assert len({c.name for c in cases}) == len(cases)
    for case in cases:
        assert case.kind in ("cached", "rejected", "filtered", "adapter")
        assert case.kind == "cached" or case.reason in REASON_CODES


# --- run 1: DICOMs found by discovery ----------------------------------------------------------


def dcm(suffix: str = ".dcm", **kwargs: Any) -> Callable[[Path, str], str]:
    def write(folder: Path, key: str) -> str:
        args = {
            "pixels": noise(key),
            "window": (2048, 4096),
            "accession": key,
            "patient_id": f"P-{key}",
        } | kwargs
        write_dicom(folder / f"{key}{suffix}", args.pop("pixels"), **args)
        return f"{key}{suffix}"

    return write


def changed(change: Callable[[pydicom.Dataset], None], **kwargs: Any) -> Callable[[Path, str], str]:
    """A valid DICOM first, then a header change saved with pydicom."""

    def write(folder: Path, key: str) -> str:
        name = dcm(**kwargs)(folder, key)
        ds = pydicom.dcmread(folder / name)
        change(ds)
        ds.save_as(folder / name)
        return name

    return write


def patched(old: bytes, new: bytes, **kwargs: Any) -> Callable[[Path, str], str]:
    """A valid DICOM whose bytes `old` (a header value) become `new` (what pydicom would not
    write: NaN, inf)."""

    def write(folder: Path, key: str) -> str:
        name = dcm(**kwargs)(folder, key)
        data = (folder / name).read_bytes()
        assert data.count(old) == 1 and len(old) == len(new)
        (folder / name).write_bytes(data.replace(old, new))
        return name

    return write


def dicom_bytes(folder: Path, key: str, **kwargs: Any) -> bytes:
    """A valid DICOM file's bytes (written beside, read, removed)."""
    path = folder / f"{key}.tmp.dcm"
    dcm(suffix=".tmp.dcm", **kwargs)(folder, key)
    data = path.read_bytes()
    path.unlink()
    return data


def without_preamble(folder: Path, key: str) -> str:
    data = dicom_bytes(folder, key)
    assert data[128:132] == b"DICM"
    (folder / f"{key}.dcm").write_bytes(data[132:])  # starts with the group 0002 meta
    return f"{key}.dcm"


def bare_dataset(implicit: bool, suffix: str = ".dcm") -> Callable[[Path, str], str]:
    """The dataset alone: no preamble, no DICM, no file meta (old PACS exports)."""

    def write(folder: Path, key: str) -> str:
        ds = pydicom.dcmread(io.BytesIO(dicom_bytes(folder, key)))
        del ds.file_meta
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, implicit
        write_dataset(fp, ds)
        (folder / f"{key}{suffix}").write_bytes(fp.getvalue())
        return f"{key}{suffix}"

    return write


def preamble_no_extension(folder: Path, key: str) -> str:
    (folder / key).write_bytes(dicom_bytes(folder, key))
    return key


def random_bytes(folder: Path, key: str) -> str:
    (folder / f"{key}.dcm").write_bytes(np.random.default_rng(5).bytes(4096))
    return f"{key}.dcm"


def text_no_extension(folder: Path, key: str) -> str:
    (folder / f"{key}_README").write_text("Export of 2021-03-04. Contact PACS support.\n")
    return f"{key}_README"


def non_utf8_name(folder: Path, key: str) -> str:
    data = dicom_bytes(folder, key)
    fd = os.open(os.fsencode(folder) + b"/" + key.encode() + b"\xff.dcm", os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return f"{key}\\xff.dcm"  # as the ledger and manifest write it (safe_text)


def nested(folder: Path, key: str) -> str:
    (folder / "sub").mkdir(exist_ok=True)
    dcm()(folder / "sub", key)
    return f"sub/{key}.dcm"


def loop_link(folder: Path, key: str) -> str:
    (folder / "sub").mkdir(exist_ok=True)
    os.symlink("..", folder / "sub" / "up")  # sub/up is the export root again
    return "sub/up"


def outside(folder: Path) -> Path:
    path = folder.parent / f"outside_{folder.name}"
    path.mkdir(exist_ok=True)
    return path


def folder_link_outside(folder: Path, key: str) -> str:
    dcm()(outside(folder), key)
    os.symlink(outside(folder), folder / "ext")
    return "ext"


def file_link_outside(folder: Path, key: str) -> str:
    name = dcm()(outside(folder), key)
    os.symlink(outside(folder) / name, folder / f"{key}.dcm")
    return f"{key}.dcm"


def rows_fewer(ds: pydicom.Dataset) -> None:
    ds.Rows = 32  # the Pixel Data holds 64 rows


def signed_label(ds: pydicom.Dataset) -> None:
    ds.PixelRepresentation = 1  # the data is unsigned 12-bit, no sign extension


def rows_zero(ds: pydicom.Dataset) -> None:
    ds.Rows = 0


def bits_allocated_8(ds: pydicom.Dataset) -> None:
    ds.BitsAllocated = 8  # BitsStored stays 12


DICOM_CASES = [
    Case("valid_dicom", dcm(), "cached", window="file"),
    Case("rows_claim_fewer_pixels", changed(rows_fewer), "rejected", "header_mismatch"),
    Case(
        "signed_label_on_values_below_2048",
        changed(signed_label, pixels=noise("small", top=2047)),
        "cached",
    ),
    Case(
        "ct_sop_class_modality_dx",
        dcm(extra={"SOPClassUID": CTImageStorage}),
        "rejected",
        "header_mismatch",
    ),
    Case("cr_sop_class_modality_dx", dcm(extra={"SOPClassUID": CR_IMAGE_STORAGE}), "cached"),
    Case("rescale_slope_zero", dcm(slope=0.0, intercept=0.0), "rejected", "bad_header"),
    Case("rescale_slope_nan", patched(b"7.77", b"NaN ", slope=7.77), "rejected", "bad_header"),
    Case(
        "rescale_intercept_inf",
        patched(b"7.77", b"inf ", slope=1.0, intercept=7.77),
        "rejected",
        "bad_header",
    ),
    Case("rescale_slope_text", patched(b"7.77", b"abc ", slope=7.77), "rejected", "bad_header"),
    Case(
        "window_centre_far_outside",
        dcm(window=(1e6, 10)),
        "cached",
        window="percentile_fallback",
    ),
    Case(
        "window_width_one_below_data",
        dcm(pixels=noise("tiny", low=100), window=(50, 1)),
        "cached",
        window="percentile_fallback",
    ),
    Case(
        "rescale_intercept_1e9",
        dcm(slope=1.0, intercept=1e9, window=None),
        "cached",
        window="percentile",
    ),
    Case(
        "constant_pixels",
        dcm(pixels=np.full((64, 48), 1000)),
        "rejected",
        "constant_image",
    ),
    Case("rows_zero", changed(rows_zero), "rejected", "bad_dimensions"),
    Case("bits_allocated_below_stored", changed(bits_allocated_8), "rejected", "bad_bit_depth"),
    Case(
        "odd_length_8_bit_with_pad_byte",
        dcm(pixels=noise("odd", (17, 33), top=255), bits_stored=8, window=(128, 256)),
        "cached",
    ),
    Case("no_preamble", without_preamble, "cached"),
    Case("bare_dataset_implicit_vr", bare_dataset(implicit=True), "cached"),
    Case("bare_dataset_explicit_vr", bare_dataset(implicit=False), "cached"),
    Case("bare_dataset_no_extension", bare_dataset(implicit=True, suffix=""), "cached"),
    Case("random_binary_named_dcm", random_bytes, "rejected", "not_dicom"),
    Case("upper_case_extension", dcm(suffix=".DCM"), "cached"),
    Case("dicom_without_extension", preamble_no_extension, "cached"),
    Case("text_without_extension", text_no_extension, "adapter", "unsupported_file"),
    Case("non_utf8_file_name", non_utf8_name, "cached"),
    Case("dicom_in_subfolder", nested, "cached"),
    Case("folder_link_loop", loop_link, "adapter", "symlink"),
    Case("folder_link_outside", folder_link_outside, "adapter", "symlink"),
    Case("file_link_outside", file_link_outside, "rejected", "symlink"),
    Case("second_valid_dicom", dcm(), "cached", window="file"),
]
RAGGED_AFTER = 3  # report rows before the ragged one


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("dicoms")
    folder = root / "export"
    folder.mkdir()
    sources, lines = {}, ["AccessionNumber,report"]
    for i, case in enumerate(DICOM_CASES):
        key = f"ACC{i:03d}"
        sources[case.name] = case.write(folder, key)
        lines.append(f"{key},{REPORT}")
        if i + 1 == RAGGED_AFTER:
            lines.append(f"RAGGED,{REPORT},an extra field")
    (root / "reports.csv").write_text("\n".join(lines) + "\n")
    adapter = GenericAdapter(str(folder), str(root / "reports.csv"), file_glob=None)
    return ingest(root, adapter, sources)


def test_dicom_cases_are_well_formed() -> None:
    check_each_case_has_its_outcome(DICOM_CASES)


def test_dicom_run_accounts_for_every_file(dicom_run: Run) -> None:
    check_accounts(dicom_run, DICOM_CASES)
    assert dicom_run.summary["windows"]["percentile_fallback"] == 2


@pytest.mark.parametrize("case", DICOM_CASES, ids=[c.name for c in DICOM_CASES])
def test_dicom_case_gets_its_expected_outcome(dicom_run: Run, case: Case) -> None:
    check_case(dicom_run, case)


def test_non_utf8_name_is_written_escaped(dicom_run: Run) -> None:
    sources = set(dicom_run.manifest["source"])
    escaped = [s for s in sources if "\\xff" in s]
    assert escaped == [dicom_run.sources["non_utf8_file_name"]]
    assert all(s.encode("utf-8") for s in sources)  # no lone surrogate reached the outputs


def test_ragged_report_row_is_ledgered_and_the_rest_read(dicom_run: Run) -> None:
    bad = dicom_run.ledger[dicom_run.ledger["reason"] == "bad_table_row"]
    row = RAGGED_AFTER + 2  # the header is row 1
    assert bad[["kind", "source"]].values.tolist() == [["rejected", f"reports.csv#row{row}"]]
    assert "3 fields where the header has 2" in bad["message"].iloc[0]
    # the rows after it were read: their studies' images are cached
    assert dicom_run.sources["second_valid_dicom"] in set(dicom_run.manifest["source"])
    # an unreadable row is the adapter's problem, not a rejected report
    assert dicom_run.summary["reports_rejected"] == 0
    assert dicom_run.summary["adapter_problems"] == 1 + sum(
        c.kind == "adapter" for c in DICOM_CASES
    )


def test_percentile_fallback_images_have_contrast(dicom_run: Run) -> None:
    for name in ("window_centre_far_outside", "window_width_one_below_data"):
        row = dicom_run.manifest[dicom_run.manifest["source"] == dicom_run.sources[name]]
        image = dicom_run.cache[int(row["cache_index"].iloc[0])]
        content = image[:, 4:28]  # 64 x 48 -> 32 x 24, centred
        assert content.std() > 20, name  # uniform noise, 2 x 2 area means: about 37


# --- run 2: image exports and containment, listed by an images_csv -----------------------------


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def gray8(key: str) -> Image.Image:
    return Image.fromarray(noise(key, top=255).astype(np.uint8))


def picture(
    make: Callable[[str], bytes], suffix: str, name: str | None = None
) -> Callable[[Path, str], str]:
    """A file holding `make(key)`, named `name` or `<key><suffix>`."""

    def write(folder: Path, key: str) -> str:
        file = name or f"{key}{suffix}"
        (folder / file).write_bytes(make(key))
        return file

    return write


def png(key: str) -> bytes:
    return encode(gray8(key), "PNG")


def jpeg(key: str) -> bytes:
    return encode(gray8(key), "JPEG", quality=90)


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_claiming(width: int, height: int) -> Callable[[str], bytes]:
    """A tiny valid PNG whose IHDR then claims another size (its CRC fixed)."""

    def make(key: str) -> bytes:
        data = bytearray(png(key))
        assert data[12:16] == b"IHDR"
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
        return bytes(data)

    return make


def float_tiff(bad: float) -> Callable[[str], bytes]:
    def make(key: str) -> bytes:
        values = np.random.default_rng(seed_of(key)).random((64, 48)).astype(np.float32)
        values[5, 7] = bad
        return encode(Image.fromarray(values), "TIFF")

    return make


def sixteen_bit(fmt: str, top: int) -> Callable[[str], bytes]:
    return lambda key: encode(Image.fromarray(noise(key, top=top).astype(np.uint16)), fmt)


def listed(rel: str) -> Callable[[Path, str], str]:
    """A row naming `rel` (written by another case, or by nobody)."""
    return lambda folder, key: rel


def folder_row(folder: Path, key: str) -> str:
    (folder / f"{key}_folder").mkdir()
    return f"{key}_folder"


def outside_file(folder: Path, key: str) -> Path:
    """A valid image outside the export (what a `..` or a link would reach)."""
    path = outside(folder) / f"{key}.png"
    path.write_bytes(png(key))
    return path


def dotdot_outside(folder: Path, key: str) -> str:
    outside_file(folder, key)
    return f"../{outside(folder).name}/{key}.png"


def absolute_outside(folder: Path, key: str) -> str:
    return str(outside_file(folder, key))


def absolute_inside(folder: Path, key: str) -> str:
    (folder / f"{key}.png").write_bytes(png(key))
    return str(folder / f"{key}.png")


def link_outside(folder: Path, key: str) -> str:
    os.symlink(outside_file(folder, key), folder / f"{key}_link.png")
    return f"{key}_link.png"


def link_inside(folder: Path, key: str) -> str:
    (folder / "targets").mkdir(exist_ok=True)
    (folder / "targets" / f"{key}.png").write_bytes(png(key))  # never listed itself
    os.symlink(folder / "targets" / f"{key}.png", folder / f"{key}_link.png")
    return f"{key}_link.png"


def dangling_link(folder: Path, key: str) -> str:
    os.symlink(f"{key}_gone.png", folder / f"{key}_dangling.png")  # inside, to nothing
    return f"{key}_dangling.png"


def hard_link(target: str) -> Callable[[Path, str], str]:
    def write(folder: Path, key: str) -> str:
        os.link(folder / target, folder / f"{key}_hard.png")
        return f"{key}_hard.png"

    return write


IMAGE_CASES = [
    Case("valid_png", picture(png, ".png"), "cached"),
    Case(
        "png_header_claims_30000_square",
        picture(png_claiming(30000, 30000), ".png"),
        "rejected",
        "bad_dimensions",
    ),
    Case(
        "jpeg_cut_in_half", picture(lambda k: half(jpeg(k)), ".jpg"), "rejected", "truncated_image"
    ),
    Case(
        "jpeg_cut_in_half_with_end_marker",
        picture(lambda k: half(jpeg(k)) + b"\xff\xd9", ".jpg"),
        "rejected",
        "truncated_image",
    ),
    Case("png_cut_short", picture(lambda k: half(png(k)), ".png"), "rejected", "truncated_image"),
    Case(
        "tiff_cut_short",
        picture(lambda k: half(encode(gray8(k), "TIFF")), ".tif"),
        "rejected",
        "truncated_image",
    ),
    Case("png_16_bit_holding_12_bit", picture(sixteen_bit("PNG", 4095), ".png"), "cached"),
    Case("tiff_16_bit_holding_14_bit", picture(sixteen_bit("TIFF", 16383), ".tiff"), "cached"),
    Case("float_tiff_with_nan", picture(float_tiff(np.nan), ".tif"), "rejected", "non_finite"),
    Case("float_tiff_with_inf", picture(float_tiff(np.inf), ".tif"), "rejected", "non_finite"),
    Case(
        "constant_grey_png",
        picture(lambda k: encode(Image.new("L", (48, 64), 128), "PNG"), ".png"),
        "rejected",
        "constant_image",
    ),
    Case("png_named_jpg", picture(png, ".jpg"), "cached"),
    Case("zero_byte_png", picture(lambda k: b"", ".png"), "rejected", "not_image"),
    Case("bmp_export", picture(lambda k: encode(gray8(k), "BMP"), ".bmp"), "cached"),
    Case(
        "rgb_jpeg",
        picture(lambda k: encode(gray8(k).convert("RGB"), "JPEG", quality=95), ".jpeg"),
        "cached",
    ),
    Case("folder_listed_as_image", folder_row, "rejected", "unsupported_file"),
    Case("row_naming_a_missing_file", listed("nowhere/missing.png"), "adapter", "missing_file"),
    Case("row_with_empty_path", listed(""), "adapter", "missing_file"),
    Case("dotdot_leaving_the_export", dotdot_outside, "rejected", "outside_export"),
    Case("absolute_path_outside", absolute_outside, "rejected", "outside_export"),
    Case("absolute_path_inside", absolute_inside, "cached"),
    Case("link_to_a_file_outside", link_outside, "rejected", "symlink"),
    Case("link_to_a_file_inside", link_inside, "rejected", "symlink"),
    Case("dangling_link", dangling_link, "rejected", "symlink"),
    Case("listed_once", picture(png, ".png", name="twice.png"), "cached"),
    Case(
        "listed_again_spelled_otherwise", listed("./a/../twice.png"), "rejected", "duplicate_file"
    ),
    Case("same_pixels_first", picture(lambda k: png("same"), ".png", name="same_1.png"), "cached"),
    Case(
        "same_pixels_other_patient",
        picture(lambda k: png("same"), ".png", name="same_2.png"),
        "rejected",
        "duplicate_content",
    ),
    Case("hard_link_target", picture(png, ".png", name="hard.png"), "cached"),
    Case("hard_link_to_a_listed_file", hard_link("hard.png"), "rejected", "duplicate_content"),
    Case("second_valid_png", picture(png, ".png"), "cached"),
]


def write_listed_corpus(root: Path, cases: list[Case], prefix: str) -> tuple[Path, dict[str, str]]:
    """The cases' files under root/export, their rows in images.csv and reports.csv."""
    folder = root / "export"
    (folder / "a").mkdir(parents=True)
    sources: dict[str, str] = {}
    rows = [["path", "AccessionNumber", "patient", "view"]]
    for i, case in enumerate(cases):
        key = f"{prefix}{i:03d}"
        rel = case.write(folder, key)
        rows.append([rel, key, f"P-{key}", "PA"])
        sources[case.name] = f"images.csv#row{i + 2}" if case.kind == "adapter" else rel
    with open(root / "images.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    reports = [["AccessionNumber", "report"], *([r[1], REPORT] for r in rows[1:])]
    with open(root / "reports.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(reports)
    return folder, sources


def listing_adapter(root: Path, folder: Path) -> GenericAdapter:
    return GenericAdapter(
        str(folder),
        str(root / "reports.csv"),
        images_csv=str(root / "images.csv"),
        image_patient_column="patient",
        image_view_column="view",
    )


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("images")
    folder, sources = write_listed_corpus(root, IMAGE_CASES, "IMG")
    return ingest(root, listing_adapter(root, folder), sources)


def test_image_cases_are_well_formed() -> None:
    check_each_case_has_its_outcome(IMAGE_CASES)


def test_image_run_accounts_for_every_file(image_run: Run) -> None:
    check_accounts(image_run, IMAGE_CASES)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.name for c in IMAGE_CASES])
def test_image_case_gets_its_expected_outcome(image_run: Run, case: Case) -> None:
    check_case(image_run, case)


def test_12_bit_values_in_a_16_bit_png_are_not_nearly_black(image_run: Run) -> None:
    source = image_run.sources["png_16_bit_holding_12_bit"]
    row = image_run.manifest[image_run.manifest["source"] == source]
    content = image_run.cache[int(row["cache_index"].iloc[0])][:, 4:28].astype(float) / 255
    # values uniform in 0..4095: about 0.5 scaled by 4095, about 0.03 scaled by 65535
    assert 0.4 < content.mean() < 0.6


def test_targets_outside_the_export_never_reach_the_manifest(image_run: Run) -> None:
    outside_folder = outside(image_run.root / "export")
    assert len(list(outside_folder.iterdir())) == 3  # `..`, absolute and linked targets
    for source in image_run.manifest["source"]:
        assert outside_folder.name not in source
        real = os.path.realpath(image_run.root / "export" / source)
        assert not real.startswith(str(outside_folder))


def test_duplicate_content_keeps_one_patient_per_image(image_run: Run) -> None:
    manifest, ledger = image_run.manifest, image_run.ledger
    second = ledger[ledger["source"] == image_run.sources["same_pixels_other_patient"]]
    assert image_run.sources["same_pixels_first"] in second["message"].iloc[0]
    assert manifest["image_key"].is_unique
    assert int(manifest.groupby("patient_key")["split"].nunique().max()) == 1
    # one patient per cached image: the second patient's copy is not there under any split
    assert manifest["patient_key"].is_unique


def test_adapter_rows_are_ledgered_outside_the_file_count(image_run: Run) -> None:
    problems = image_run.ledger[image_run.ledger["reason"] == "missing_file"]
    assert sorted(problems["source"]) == sorted(
        image_run.sources[c.name] for c in IMAGE_CASES if c.kind == "adapter"
    )


# --- file names that are not UTF-8, listed by an adapter that knows their keys ---------------


def listed_by_code(tmp_path: Path, files: dict[bytes, bytes]) -> Run:
    """Files written under byte names, listed by a `ListAdapter` (keys from code, as a site's
    own adapter would give them) with the export as its root."""
    folder = tmp_path / "export"
    folder.mkdir()
    images, reports = [], []
    for i, (raw, data) in enumerate(files.items()):
        fd = os.open(os.fsencode(folder) + b"/" + raw, os.O_WRONLY | os.O_CREAT)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        path = os.fsdecode(os.fsencode(folder) + b"/" + raw)  # lone surrogates for bad bytes
        images.append(
            ImageRecord(path, os.fsdecode(raw), study_key=f"S{i}", patient_id=f"P{i}", view="PA")
        )
        reports.append(ReportRecord(f"S{i}", REPORT, f"reports#{i}"))
    adapter = ListAdapter(images, reports)
    adapter.export_root = str(folder)  # type: ignore[attr-defined]
    return ingest(tmp_path, adapter, {})


def test_broken_png_under_a_non_utf8_name_is_ledgered_escaped(tmp_path: Path) -> None:
    run = listed_by_code(tmp_path, {b"ok.png": png("ok"), b"empty\xfe.png": b""})
    assert run.summary["files_seen"] == 2 and run.summary["cached"] == 1
    assert list(run.manifest["source"]) == ["ok.png"]
    entry = run.ledger[run.ledger["kind"] == "rejected"]
    assert entry[["reason", "source"]].values.tolist() == [["not_image", "empty\\xfe.png"]]


def test_valid_png_under_a_non_utf8_name_is_cached_escaped(tmp_path: Path) -> None:
    run = listed_by_code(tmp_path, {b"ok.png": png("ok"), b"bad\xff.png": png("bad")})
    assert run.summary["files_seen"] == 2 == run.summary["cached"]
    assert sorted(run.manifest["source"]) == ["bad\\xff.png", "ok.png"]


def jpeg_with_bottom_rows(tmp_path: Path, value: int) -> Path:
    pixels = noise("border", top=255).astype(np.uint8)
    pixels[-16:] = value  # a flat border, two block rows high
    path = tmp_path / f"border{value}.jpg"
    path.write_bytes(encode(Image.fromarray(pixels), "JPEG", quality=90))
    return path


def test_valid_jpeg_with_a_flat_border_of_127_is_read(tmp_path: Path) -> None:
    assert load_image_file(jpeg_with_bottom_rows(tmp_path, 127)).shape == (64, 48)


@pytest.mark.xfail(
    strict=True,
    raises=IngestError,
    reason="known limitation of the cut-scan heuristic (docs/reliability.md): a complete JPEG "
    "whose last 8 rows are exactly 128, the grey libjpeg fills a cut scan with, is refused as "
    "truncated_image",
)
def test_valid_jpeg_with_a_flat_border_of_128_is_read(tmp_path: Path) -> None:
    assert load_image_file(jpeg_with_bottom_rows(tmp_path, 128)).shape == (64, 48)


# --- run 3: links read with follow_symlinks ----------------------------------------------------


def relative_link(target: str) -> Callable[[Path, str], str]:
    def write(folder: Path, key: str) -> str:
        os.symlink(target, folder / f"{key}_alias.png")
        return f"{key}_alias.png"

    return write


FOLLOWED_CASES = [
    Case("valid_png_followed_run", picture(png, ".png"), "cached"),
    Case("followed_link_leaving_the_export", link_outside, "rejected", "outside_export"),
    Case("followed_link_inside", link_inside, "cached"),
    Case("followed_link_target_listed", picture(png, ".png", name="target.png"), "cached"),
    Case(
        "followed_link_to_a_listed_target",
        relative_link("target.png"),
        "rejected",
        "duplicate_file",
    ),
    Case("dotdot_leaving_the_export_followed", dotdot_outside, "rejected", "outside_export"),
    Case("followed_dangling_link", dangling_link, "rejected", "missing_file"),
]


@pytest.fixture(scope="module")
def followed_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("followed")
    folder, sources = write_listed_corpus(root, FOLLOWED_CASES, "FOL")
    return ingest(root, listing_adapter(root, folder), sources, follow_symlinks=True)


def test_followed_run_accounts_for_every_file(followed_run: Run) -> None:
    check_each_case_has_its_outcome(FOLLOWED_CASES)
    check_accounts(followed_run, FOLLOWED_CASES)


@pytest.mark.parametrize("case", FOLLOWED_CASES, ids=[c.name for c in FOLLOWED_CASES])
def test_followed_case_gets_its_expected_outcome(followed_run: Run, case: Case) -> None:
    check_case(followed_run, case)


# --- run 4: linked folders entered by discovery ------------------------------------------------


@pytest.fixture(scope="module")
def followed_discovery_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("discovery")
    folder = root / "export"
    folder.mkdir()
    sources = {
        "top": dcm()(folder, "D0"),
        "nested": nested(folder, "D1"),
        "loop": loop_link(folder, "D2"),
        "ext": folder_link_outside(folder, "D3"),
    }
    (folder / "sub" / "linked").symlink_to(folder / "deep")  # a folder link that stays inside
    (folder / "deep").mkdir()
    sources["deep"] = "deep/" + dcm()(folder / "deep", "D4")
    (root / "reports.csv").write_text(
        "AccessionNumber,report\n" + "".join(f"D{i},{REPORT}\n" for i in range(5))
    )
    adapter = GenericAdapter(str(folder), str(root / "reports.csv"), follow_symlinks=True)
    listing: list[str] = []
    # a link loop must end discovery, not hang it: listed in a thread that must finish
    thread = threading.Thread(target=lambda: listing.extend(r.source for r in adapter.images()))
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "discovery did not finish (a link loop?)"
    sources["listing"] = "|".join(listing)
    return ingest(root, adapter, sources)


def test_followed_discovery_lists_each_file_once_and_nothing_outside(
    followed_discovery_run: Run,
) -> None:
    run = followed_discovery_run
    # the folder entered through sub/linked (inside) is listed once, under its first name
    expected = sorted(
        [run.sources["top"], run.sources["nested"], run.sources["deep"]],
    )
    assert sorted(run.sources["listing"].split("|")) == expected
    assert sorted(run.manifest["source"]) == expected
    assert run.summary["files_seen"] == 3 == run.summary["cached"]
    problems = run.ledger[run.ledger["kind"] == "rejected"]
    assert problems[["reason", "source"]].values.tolist() == [["outside_export", "ext"]]


# --- report tables -----------------------------------------------------------------------------

TABLE_ROWS = [
    ("R1", "FINDINGS: No effusion."),
    ("R2", "FINDINGS: Heart normal, lungs clear."),
    ("R3", 'IMPRESSION: "Stable" appearance.'),
]


def table_text(delimiter: str = ",", line_end: str = "\n") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=line_end)
    writer.writerows([("AccessionNumber", "report"), *TABLE_ROWS])
    return buf.getvalue()


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


@dataclass(frozen=True)
class Table:
    """A report table, its file name and what reading it must give."""

    name: str
    file: str
    data: bytes
    keys: tuple[str, ...] = ("R1", "R2", "R3")
    bad_rows: tuple[str, ...] = ()  # sources of bad_table_row problems


UTF8 = table_text().encode()
GOOD_TABLES = [
    Table("utf16_with_bom", "reports.csv", table_text().encode("utf-16")),
    Table("utf16_le_without_bom", "reports.csv", table_text().encode("utf-16-le")),
    Table("utf16_be_without_bom", "reports.csv", table_text().encode("utf-16-be")),
    Table("utf8_with_bom", "reports.csv", codecs.BOM_UTF8 + UTF8),
    Table("semicolon_delimited", "reports.csv", table_text(";").encode()),
    Table("tab_delimited", "reports.csv", table_text("\t").encode()),
    Table("pipe_delimited", "reports.csv", table_text("|").encode()),
    Table("crlf_line_ends", "reports.csv", table_text(line_end="\r\n").encode()),
    Table("gzipped", "reports.csv.gz", gzip.compress(UTF8)),
    Table("bzipped", "reports.csv.bz2", bz2.compress(UTF8)),
    Table("zipped_one_file", "reports.csv.zip", zipped({"reports.csv": UTF8})),
    Table("blank_lines", "reports.csv", UTF8.replace(b"\nR2", b"\n\n\nR2")),
    Table(
        "ragged_row",
        "reports.csv",
        UTF8.replace(b"\nR2", b"\nR9,FINDINGS: Extra.,an extra field\nR2"),
        bad_rows=("reports.csv#row3",),
    ),
    Table(
        "short_row",
        "reports.csv",
        UTF8.replace(b"\nR3", b"\nR7\nR3"),
        bad_rows=("reports.csv#row4",),
    ),
    Table(
        "unclosed_final_quote",
        "reports.csv",
        UTF8 + b'R4,"FINDINGS: The quote never closes.\n',
        bad_rows=("reports.csv#row5",),
    ),
    Table(
        "stray_quote_in_a_field",
        "reports.csv",
        UTF8.replace(b"\nR2", b'\nR8,"FINDINGS: a"b\nR2'),
        bad_rows=("reports.csv#row3",),
    ),
]
BAD_TABLES = [
    ("key_column_missing", "reports.csv", b"id;report\nR1;FINDINGS: x.\n", "missing column"),
    ("empty_file", "reports.csv", b"", "missing column"),
    ("zip_of_two_files", "reports.csv.zip", zipped({"a.csv": UTF8, "b.csv": UTF8}), "one file"),
    ("corrupt_gzip", "reports.csv.gz", gzip.compress(UTF8)[:20], "cannot be read"),
    ("nul_characters", "reports.csv", UTF8.replace(b"R2", b"R\x002"), "NUL"),
]


@pytest.mark.parametrize("table", GOOD_TABLES, ids=[t.name for t in GOOD_TABLES])
def test_report_table_is_read(tmp_path: Path, table: Table) -> None:
    (tmp_path / table.file).write_bytes(table.data)
    adapter = GenericAdapter(str(tmp_path), str(tmp_path / table.file))
    records = list(adapter.reports())
    assert [r.study_key for r in records] == list(table.keys)
    assert [r.text for r in records] == [text for _, text in TABLE_ROWS]
    assert [(p.reason, p.source) for p in adapter.problems] == [
        ("bad_table_row", where) for where in table.bad_rows
    ]
    assert all(p.message.startswith("line ") for p in adapter.problems)


def test_bad_table_rows_reach_the_ingestion_ledger(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    for key, _ in TABLE_ROWS:
        dcm()(folder, key)
    table = next(t for t in GOOD_TABLES if t.name == "stray_quote_in_a_field")
    (tmp_path / "reports.csv").write_bytes(table.data + b'R4,"FINDINGS: open\n')
    run = ingest(tmp_path, GenericAdapter(str(folder), str(tmp_path / "reports.csv")), {})
    assert run.summary["cached"] == 3 == run.summary["files_seen"]
    bad = run.ledger[run.ledger["reason"] == "bad_table_row"]
    assert bad[["kind", "source"]].values.tolist() == [
        ["rejected", "reports.csv#row3"],
        ["rejected", "reports.csv#row6"],
    ]


@pytest.mark.parametrize("name, file, data, message", BAD_TABLES, ids=[t[0] for t in BAD_TABLES])
def test_unreadable_report_table_is_a_clear_error(
    tmp_path: Path, name: str, file: str, data: bytes, message: str
) -> None:
    (tmp_path / file).write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        list(GenericAdapter(str(tmp_path), str(tmp_path / file)).reports())
    assert str(tmp_path / file) in str(info.value)


def test_missing_key_column_names_the_columns_found(tmp_path: Path) -> None:
    (tmp_path / "reports.csv").write_bytes(b"id;report\nR1;FINDINGS: x.\n")
    with pytest.raises(ValueError) as info:
        list(GenericAdapter(str(tmp_path), str(tmp_path / "reports.csv")).reports())
    message = str(info.value)
    assert str(tmp_path / "reports.csv") in message
    assert "missing column(s) ['AccessionNumber', 'report']" in message
    # every delimiter was tried; the columns found are the header under the first one
    assert "found ['id;report']" in message and "';'" in message


def test_duplicate_header_column_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "reports.csv"
    path.write_bytes(b"AccessionNumber,report,report\nR1,FINDINGS: a.,FINDINGS: b.\n")
    with pytest.raises(ValueError) as info:
        list(GenericAdapter(str(tmp_path), str(path)).reports())
    assert str(path) in str(info.value) and "report" in str(info.value)


FUZZ_BASE = (
    table_text()
    + 'R4,"FINDINGS: Two lines,\nwith a comma."\n'
    + "R5,IMPRESSION: Résumé of the ÿ case.\n"
).encode()
SPECIAL = [b'"', b",", b"\n", b"\r", b"\x00", b"\xff", b"\xc3", b";", b"\t", b'""', b"\xef\xbb\xbf"]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        at = int(rng.integers(0, len(out) + 1))
        op = int(rng.integers(0, 4))
        if op == 0 and out:
            del out[at : at + int(rng.integers(1, 9))]
        elif op == 1:
            out[at:at] = rng.bytes(int(rng.integers(1, 9)))
        elif op == 2 and at < len(out):
            out[at] = int(rng.integers(0, 256))
        else:
            out[at:at] = SPECIAL[int(rng.integers(0, len(SPECIAL)))]
    return bytes(out)


def test_read_table_fuzz_returns_strings_or_raises_value_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(20240917)
    required = ["AccessionNumber", "report"]
    outcomes = {"table": 0, "bad_rows": 0, "error": 0}
    for i in range(200):
        data = mutate(FUZZ_BASE, rng)
        path = tmp_path / f"fuzz{i}.csv"
        path.write_bytes(data)
        bad: list[BadRow] = []
        try:
            table = read_table(path, required, "fix it", bad.append)
        except ValueError:
            outcomes["error"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - any other type is the failure under test
            pytest.fail(f"mutation {i}: {type(exc).__name__}: {exc}; bytes {data!r}")
        assert set(required) <= set(table.columns), (i, data)
        assert all(isinstance(v, str) for v in table.to_numpy().ravel()), (i, data)
        assert all(b.where.startswith(f"{path.name}#row") for b in bad), (i, bad)
        outcomes["table"] += 1
        outcomes["bad_rows"] += bool(bad)
    # the mutations reach every outcome: read cleanly, read with bad rows, refused
    assert min(outcomes.values()) >= 5, outcomes


# --- the corpus as a whole ---------------------------------------------------------------------


def test_at_least_40_new_kinds_of_bad_input() -> None:
    kinds = (
        len(DICOM_CASES)
        + len(IMAGE_CASES)
        + len(FOLLOWED_CASES)
        + len(GOOD_TABLES)
        + len(BAD_TABLES)
        + 2  # non-UTF-8 names listed by code: a broken PNG, a valid PNG
        + 1  # a complete JPEG with a mid-grey border
        + 1  # a report header naming a column twice
        + 2  # followed discovery: a folder link loop, a linked folder leaving the export
    )
    assert kinds >= 40
