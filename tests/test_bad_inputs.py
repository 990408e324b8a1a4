"""A corpus of bad inputs, generated here, each with its expected outcome.

One ingestion runs over the whole corpus (as a hospital export would hold them together): it
must finish, every file must get the expected ledger entry (or be cached), and files seen must
equal cached + rejected + filtered. Bad configurations must fail at once with a clear error.
The table in docs/reliability.md lists the same cases.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.ingest import IngestConfig, run_ingestion
from tests.helpers import ListAdapter, write_dicom


def pixels(rows: int = 64, cols: int = 48, top: int = 4095, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top + 1, (rows, cols)).astype(np.uint16)


@dataclass(frozen=True)
class Case:
    """One bad input: how to write it and what ingestion must say about it."""

    name: str
    write: Callable[[Path, str], str]  # (folder, study key) -> file name written
    kind: str  # cached | rejected | filtered
    reason: str = ""
    report: str = "FINDINGS: No pleural effusion. Heart size is normal."


def dcm(**kwargs) -> Callable[[Path, str], str]:  # type: ignore[no-untyped-def]
    def write(folder: Path, key: str) -> str:
        args = {
            # a picture of its own per case: pixel-identical images are ledgered as duplicates
            "pixels": pixels(seed=sum(map(ord, key)) * 7919 + len(key)),
            "window": (2048, 4096),
            "accession": key,
            "patient_id": f"P-{key}",
        } | kwargs
        name = f"{key}.dcm"
        write_dicom(folder / name, args.pop("pixels"), **args)
        return name

    return write


def mutate(change: Callable[[pydicom.Dataset, Path], None], **kwargs) -> Callable[[Path, str], str]:  # type: ignore[no-untyped-def]
    """A valid DICOM first, then a change that breaks it."""

    def write(folder: Path, key: str) -> str:
        name = dcm(**kwargs)(folder, key)
        ds = pydicom.dcmread(folder / name)
        change(ds, folder / name)
        return name

    return write


def save(ds: pydicom.Dataset, path: Path) -> None:
    ds.save_as(path)


def truncate(folder: Path, key: str) -> str:
    name = dcm()(folder, key)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    return name


def raw_bytes(content: bytes, suffix: str = ".dcm") -> Callable[[Path, str], str]:
    def write(folder: Path, key: str) -> str:
        (folder / f"{key}{suffix}").write_bytes(content)
        return f"{key}{suffix}"

    return write


def drop_pixels(ds: pydicom.Dataset, path: Path) -> None:
    del ds.PixelData
    ds.save_as(path)


def lying_syntax(ds: pydicom.Dataset, path: Path) -> None:
    # the header claims JPEG 2000, the pixel data is raw little-endian samples
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([ds.PixelData])
    ds.save_as(path)


def short_pixels(ds: pydicom.Dataset, path: Path) -> None:
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    ds.save_as(path)


def huge_header(ds: pydicom.Dataset, path: Path) -> None:
    ds.Rows, ds.Columns = 30000, 30000  # 900 Mpixel claimed, 6 KB present
    ds.save_as(path)


def bits_32(ds: pydicom.Dataset, path: Path) -> None:
    values = ds.pixel_array.astype(np.uint32)  # read before the header changes under it
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 24, 23
    ds.PixelData = values.tobytes()
    ds.save_as(path)


def signed(ds: pydicom.Dataset, path: Path) -> None:
    values = (ds.pixel_array.astype(np.int32) - 2048).astype(np.int16)
    ds.PixelRepresentation = 1
    ds.PixelData = values.tobytes()
    ds.WindowCenter, ds.WindowWidth = 0, 4096
    ds.save_as(path)


def rgb_photometric(ds: pydicom.Dataset, path: Path) -> None:
    rgb = np.repeat(ds.pixel_array[..., None].astype(np.uint8), 3, axis=-1)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.PhotometricInterpretation = "RGB"
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)


def corrupt_jpeg(folder: Path, key: str) -> str:
    name = dcm(pixels=pixels(top=255), bits_stored=8, window=(128, 256))(folder, key)
    ds = pydicom.dcmread(folder / name)
    buf = io.BytesIO()
    Image.fromarray(ds.pixel_array.astype(np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    # a Huffman table whose code counts are garbage: every decoder must give up (a truncated
    # scan, by contrast, decodes "successfully" with grey fill in libjpeg: not detectable)
    dht = data.find(b"\xff\xc4")
    data[dht + 5 : dht + 21] = b"\xff" * 16
    ds.PixelData = encapsulate([bytes(data)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(folder / name)
    return name


def png(mode: str) -> Callable[[Path, str], str]:
    def write(folder: Path, key: str) -> str:
        gray = (pixels(top=255) % 256).astype(np.uint8)
        image = {
            "rgba": Image.fromarray(np.dstack([gray] * 3 + [np.full_like(gray, 200)])),
            "gray16": Image.fromarray(gray.astype(np.uint16) * 257),
        }[mode]
        image.save(folder / f"{key}.png")
        return f"{key}.png"

    return write


CASES = [
    Case("valid", dcm(), "cached"),
    Case("truncated_dicom", truncate, "rejected", "decode_error"),
    Case("zero_byte_file", raw_bytes(b""), "rejected", "not_dicom"),
    Case(
        "text_file_named_dcm",
        raw_bytes(b"Radiology report: no acute process.\n"),
        "rejected",
        "not_dicom",
    ),
    Case("no_pixel_data", mutate(drop_pixels), "rejected", "no_pixel_data"),
    Case("lying_transfer_syntax", mutate(lying_syntax), "rejected", "decode_error"),
    Case("pixel_data_too_short", mutate(short_pixels), "rejected", "decode_error"),
    Case(
        "one_by_one_image", dcm(pixels=np.array([[1000]], np.uint16)), "rejected", "bad_dimensions"
    ),
    Case("30000_square_header", mutate(huge_header), "rejected", "bad_dimensions"),
    Case(
        "multi_frame",
        dcm(pixels=np.stack([pixels(), pixels(seed=1)]), frames=2),
        "rejected",
        "multi_frame",
    ),
    Case("signed_pixels", mutate(signed), "cached"),
    Case("bits_stored_over_16", mutate(bits_32), "rejected", "bad_bit_depth"),
    Case("rgb_photometric", mutate(rgb_photometric), "rejected", "unsupported_photometric"),
    Case("missing_view_position", dcm(view=""), "filtered", "filtered_view"),
    Case("lateral_view", dcm(view="LL"), "filtered", "filtered_view"),
    Case("ct_modality", dcm(modality="CT"), "filtered", "filtered_modality"),
    Case("missing_patient_id", dcm(patient_id=""), "rejected", "missing_key"),
    Case("corrupt_jpeg_in_dicom", corrupt_jpeg, "rejected", "decode_error"),
    Case("png_with_alpha", png("rgba"), "cached"),
    Case("png_16_bit", png("gray16"), "cached"),
    Case(
        "broken_png",
        raw_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR broken", ".png"),
        "rejected",
        "not_image",
    ),
    Case("empty_report", dcm(), "rejected", "missing_report", report=""),
    Case(
        "report_of_placeholders",
        dcm(),
        "rejected",
        "missing_report",
        report="FINDINGS: ___ XXXX ___.\nIMPRESSION: XXXX",
    ),
    Case(
        "ten_megabyte_report",
        dcm(),
        "rejected",
        "missing_report",
        report="FINDINGS: " + "No effusion. " * 800_000,
    ),
    Case("image_without_report", dcm(), "rejected", "missing_report", report="<none>"),
]


def build_corpus(root: Path) -> tuple[list[ImageRecord], list[ReportRecord]]:
    folder = root / "export"
    folder.mkdir(parents=True)
    images, reports = [], []
    for i, case in enumerate(CASES):
        key = f"ACC{i:03d}"
        name = case.write(folder, key)
        # non-DICOM files carry their keys in the adapter's records (as a metadata CSV would)
        is_image = name.endswith(".png")
        images.append(
            ImageRecord(
                path=str(folder / name),
                source=f"{case.name}/{name}",
                study_key=key if is_image else "",
                patient_id=f"P-{key}" if is_image else "",
                view="PA" if is_image else "",
            )
        )
        if case.report != "<none>":
            reports.append(ReportRecord(key, case.report, f"reports.csv#{case.name}"))
    # report-level cases: a duplicate row, a report whose images are missing, bad bytes
    reports.append(
        ReportRecord(
            "ACC000", "FINDINGS: A second report for the first study.", "reports.csv#duplicate"
        )
    )
    reports.append(
        ReportRecord("ACC999", "IMPRESSION: Nothing to see.", "reports.csv#report_without_images")
    )
    reports.append(ReportRecord("", "IMPRESSION: Unkeyed.", "reports.csv#report_without_key"))
    return images, reports


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pd.DataFrame, pd.DataFrame]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("corpus")
    images, reports = build_corpus(root)
    cfg = IngestConfig(
        out_dir=str(root / "out"),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
        chunk_size=5,
    )
    summary = run_ingestion(cfg, ListAdapter(images, reports))
    ledger = pd.read_csv(root / "out" / "rejects.csv", keep_default_na=False)
    manifest = pd.read_parquet(root / "out" / "manifest.parquet")
    return summary, ledger, manifest


def test_corpus_has_at_least_25_kinds() -> None:
    assert len({c.name for c in CASES}) + 3 >= 25  # + the three report-level cases


def test_ingestion_finishes_and_accounts_for_every_file(corpus_run) -> None:
    summary, _, _ = corpus_run
    assert summary["files_seen"] == len(CASES)
    assert summary["files_seen"] == summary["cached"] + summary["rejected"] + summary["filtered"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_gets_its_expected_outcome(corpus_run, case: Case) -> None:
    _, ledger, manifest = corpus_run
    entries = ledger[ledger["source"].str.startswith(f"{case.name}/")]
    if case.kind == "cached":
        assert entries.empty, entries.to_dict("records")
        assert manifest["source"].str.startswith(f"{case.name}/").sum() == 1
        return
    assert len(entries) == 1, f"{case.name}: {entries.to_dict('records')}"
    entry = entries.iloc[0]
    assert (entry["kind"], entry["reason"]) == (case.kind, case.reason), entry["message"]
    assert entry["message"], "every ledger entry says why"


@pytest.mark.parametrize(
    "source, reason",
    [
        ("reports.csv#empty_report", "empty_report"),
        ("reports.csv#report_of_placeholders", "empty_report"),
        ("reports.csv#ten_megabyte_report", "report_too_large"),
        ("reports.csv#duplicate", "duplicate_report"),
        ("reports.csv#report_without_key", "missing_key"),
        ("reports.csv#report_without_images", "report_without_images"),
    ],
)
def test_report_level_cases_are_ledgered(corpus_run, source: str, reason: str) -> None:
    _, ledger, _ = corpus_run
    assert reason in set(ledger.loc[ledger["source"] == source, "reason"]), source


def test_non_utf8_report_bytes_are_kept_and_marked_repaired(tmp_path: Path, dicom_writer) -> None:
    from medrep.data.adapters.generic import GenericAdapter

    dicom_writer(tmp_path / "img" / "a.dcm", pixels(), accession="A1", window=(2048, 4096))
    (tmp_path / "reports.csv").write_bytes(
        b"AccessionNumber,report\nA1,FINDINGS: No effusion \xff\xfe here. Heart normal.\n"
    )
    cfg = IngestConfig(
        out_dir=str(tmp_path / "out"),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
    )
    summary = run_ingestion(
        cfg, GenericAdapter(str(tmp_path / "img"), str(tmp_path / "reports.csv"))
    )
    assert summary["cached"] == 1
    ledger = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert list(ledger["reason"]) == ["bad_encoding"] and list(ledger["kind"]) == ["repaired"]


def test_missing_report_column_is_a_clear_error(tmp_path: Path, dicom_writer) -> None:
    from medrep.data.adapters.generic import GenericAdapter

    dicom_writer(tmp_path / "img" / "a.dcm", pixels(), accession="A1")
    pd.DataFrame({"Accession": ["A1"], "text": ["x"]}).to_csv(tmp_path / "reports.csv", index=False)
    cfg = IngestConfig(
        out_dir=str(tmp_path / "out"), secret="s", source_paths="relative", progress=False
    )
    with pytest.raises(ValueError, match="missing column"):
        run_ingestion(cfg, GenericAdapter(str(tmp_path / "img"), str(tmp_path / "reports.csv")))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"join_element": "PatientName"}, "join_element"),
        ({"image_size": 0}, "image_size"),
        ({"cache_dtype": "float16"}, "cache_dtype"),
        ({"secret": ""}, "secret"),
        ({"split_fractions": {"train": 0.0}}, "split_fractions"),
        ({"workers": 0}, "workers"),
        ({"sections": ()}, "sections"),
    ],
)
def test_bad_configurations_fail_before_any_file_is_read(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        IngestConfig(**{"out_dir": "/nonexistent", "secret": "s", **kwargs})


@pytest.mark.realdata
def test_real_broken_jpeg_is_ledgered_and_ingestion_goes_on(
    shared_data: Path, tmp_path: Path
) -> None:
    good, bad = shared_data / "dicom" / "RG2_JPLY_fixed.dcm", shared_data / "dicom" / "RG2_JPLY.dcm"
    images = [
        ImageRecord(str(p), p.name, study_key=f"s{i}", patient_id="p", image_id=p.name, view="PA")
        for i, p in enumerate((bad, good))
    ]
    reports = [ReportRecord(f"s{i}", "IMPRESSION: Hip.", f"r{i}") for i in range(2)]
    cfg = IngestConfig(
        out_dir=str(tmp_path / "out"),
        secret="s",
        source_paths="relative",
        image_size=32,
        progress=False,
        modalities=(),
    )
    summary = run_ingestion(cfg, ListAdapter(images, reports))
    ledger = pd.read_csv(tmp_path / "out" / "rejects.csv")
    files = ledger[ledger["kind"] != "unmatched"]  # its report has no image left: unmatched
    assert summary["cached"] == 1 and list(files["reason"]) == ["decode_error"]
    assert files["source"].iloc[0] == "RG2_JPLY.dcm"
