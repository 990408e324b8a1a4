"""Reduced-resolution decoding (JPEG 2000 levels, JPEG DCT scaling) against the full decode.

The default tests run on DICOMs the tests write; the real-file tests (`realdata`) check the
chests in ../shared/data/dicom against the issue's bound (mean absolute difference < 1% of the
range after windowing and resizing).
"""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, get_frame
from pydicom.uid import JPEG2000Lossless

import medrep.data.reduced as reduced
from medrep.data.dicom import DecodeOptions, decode_dataset_image, decode_dicom, read_dicom
from medrep.data.images import resize_pad
from medrep.data.reduced import (
    FALLBACK_REASONS,
    J2KHeaderError,
    decode_j2k_reduced,
    decode_reduced,
    j2k_reduction,
    jpeg_scale,
    parse_j2k_codestream,
)
from tests.helpers import encode_as, lung_and_mediastinum


def smooth(
    rows: int, cols: int, top: int, *, lung: float = 0.12, inverted: bool = False
) -> np.ndarray:
    """A smooth radiograph-like picture: two lung fields (`lung` wide, as a fraction of the
    width) darker than the body, a vertical ramp; stored values in [0, top], high = bright, or
    high = dark when `inverted` (as MONOCHROME1 files store them)."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    lungs = sum(
        np.exp(-(((xx - cols * c) / (cols * lung)) ** 2 + ((yy - rows / 2) / (rows * 0.3)) ** 2))
        for c in (0.3, 0.7)
    )
    body = 0.85 - 0.55 * lungs + 0.1 * yy / rows
    if inverted:
        body = 1.0 - body
    return np.round(top * body).astype(np.int64)


def mad_after_resize(a: np.ndarray, b: np.ndarray, size: int) -> float:
    return float(np.abs(resize_pad(a, size) - resize_pad(b, size)).mean())


def area_downsample(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(values.astype(np.float32))[None, None]
    return F.interpolate(t, size=shape, mode="area")[0, 0].numpy()


def j2k_with_levels(src: Path, dst: Path, resolutions: int) -> Path:
    """Re-encode a 16-bit DICOM's pixels as a bare J2K codestream (Pillow, lossless 5/3) with
    `resolutions` resolution levels, i.e. `resolutions - 1` decomposition levels."""
    ds = pydicom.dcmread(src)
    buf = io.BytesIO()
    Image.fromarray(ds.pixel_array.astype(np.uint16)).save(
        buf, format="JPEG2000", no_jp2=True, num_resolutions=resolutions
    )
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(dst)
    return dst


def frame_of(path: Path) -> bytes:
    return get_frame(pydicom.dcmread(path).PixelData, 0, number_of_frames=1)


# ---- the codestream header ------------------------------------------------------------------


def segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">HH", marker, len(body) + 2) + body


def codestream(
    main_levels: int, tile_levels: list[int | None], main_coc: int | None = None
) -> bytes:
    """A header-only J2K codestream: SIZ (64 x 48, 12-bit signed), COD, optional COC, and one
    tile-part per entry of `tile_levels` (with a COC for component 0 when not None)."""
    siz = struct.pack(">HIIIIIIII", 0, 64, 48, 0, 0, 64, 48, 0, 0) + struct.pack(">H", 1)
    siz += bytes([0x80 | 11, 1, 1])
    cod = bytes([0, 0, 0, 1, 0, main_levels, 4, 4, 0, 1])
    out = b"\xff\x4f" + segment(0xFF51, siz) + segment(0xFF52, cod)
    if main_coc is not None:
        out += segment(0xFF53, bytes([0, 0, main_coc, 4, 4, 0, 1]))
    for index, levels in enumerate(tile_levels):
        header = segment(0xFF53, bytes([0, 0, levels, 4, 4, 0, 1])) if levels is not None else b""
        data = b"\x00" * 7
        psot = 12 + len(header) + 2 + len(data)
        out += struct.pack(">HHHIBB", 0xFF90, 10, index, psot, 0, 1) + header + b"\xff\x93" + data
    return out + b"\xff\xd9"


def test_codestream_header_gives_size_precision_sign_and_the_fewest_levels() -> None:
    info = parse_j2k_codestream(codestream(5, [None, None]))
    assert (info.width, info.height, info.precision, info.signed) == (64, 48, 12, True)
    assert info.levels == 5
    # a COC for component 0 overrides the COD, in the main header and in any tile
    assert parse_j2k_codestream(codestream(5, [None], main_coc=3)).levels == 3
    assert parse_j2k_codestream(codestream(5, [None, 2, None])).levels == 2
    assert parse_j2k_codestream(codestream(1, [4], main_coc=2)).levels == 4


def test_codestream_header_refuses_what_it_cannot_read() -> None:
    with pytest.raises(J2KHeaderError, match="SOC"):
        parse_j2k_codestream(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 40)
    with pytest.raises(J2KHeaderError, match="truncated"):
        parse_j2k_codestream(codestream(5, [None])[:60])


def test_reduction_is_the_largest_that_keeps_the_target() -> None:
    info = parse_j2k_codestream(codestream(5, [None]))  # 64 x 48
    assert [j2k_reduction(info, t) for t in (64, 33, 32, 16, 8, 2, 1)] == [0, 0, 1, 2, 3, 5, 5]
    assert info.reduced_size(2) == (16, 12)
    assert j2k_reduction(parse_j2k_codestream(codestream(1, [None])), 2) == 1  # capped by levels
    assert [jpeg_scale(1024, 1000, t) for t in (1024, 512, 300, 256, 128, 100)] == [
        1,
        2,
        2,
        4,
        8,
        8,
    ]


# ---- JPEG 2000: values, bit depth, sign ------------------------------------------------------


@pytest.mark.parametrize(
    "bits_stored, signed, offset",
    [(12, False, 0), (16, False, 0), (12, True, -2048), (16, True, -30000), (8, False, 0)],
)
def test_j2k_reduced_values_keep_bit_depth_and_sign(
    tmp_path: Path, dicom_writer, bits_stored: int, signed: bool, offset: int
) -> None:
    top = 2**bits_stored - 1 if offset == 0 else 2 * abs(offset) - 1
    stored = smooth(97, 83, top, lung=0.2) + offset  # odd sizes: Pillow's rounding is off
    path = dicom_writer(tmp_path / "n.dcm", np.zeros((97, 83)), bits_stored=max(bits_stored, 9))
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, int(signed)
    if bits_stored == 8:
        ds.BitsAllocated = 8
    dtype = f"{'i' if signed else 'u'}{ds.BitsAllocated // 8}"
    ds.PixelData = stored.astype(dtype).tobytes()
    ds.compress(JPEG2000Lossless, stored.astype(dtype))
    ds.save_as(tmp_path / "j.dcm")
    frame = frame_of(tmp_path / "j.dcm")
    info = parse_j2k_codestream(frame)
    assert (info.precision, info.signed, info.levels > 2) == (bits_stored, signed, True)
    for reduce in (1, 2, 3):
        out = decode_j2k_reduced(frame, info, reduce)
        size = info.reduced_size(reduce)
        assert out.shape == (size[1], size[0])
        assert out.dtype.kind == ("i" if signed else "u")
        assert out.dtype.itemsize == (1 if bits_stored <= 8 else 2)
        # the low-pass band of a smooth picture is close to the picture on the reduced grid
        # (every 2**r-th sample): a wrong shift would double or halve it, a wrong sign offset
        # would move it by 2**(bits-1)
        expected = stored[:: 2**reduce, :: 2**reduce]
        # (1.5%: 8-bit rounding at r=3 on a 13 x 11 image costs about 1.2%)
        assert np.abs(out - expected).mean() < 0.015 * (stored.max() - stored.min()), reduce
        if signed:
            assert out.min() < 0


def test_pillow_rounding_of_reduced_sizes_is_worked_around(tmp_path: Path, dicom_writer) -> None:
    # 77 columns at r=2: the standard gives ceil(77 / 4) = 20, Pillow's own rule 19 (it would
    # then refuse the tile); at r=1 both agree and Pillow's public path is used
    assert reduced._pillow_reduced_size((77, 61), 2) != (20, 16)
    assert reduced._pillow_reduced_size((77, 61), 1) == (39, 31)
    src = dicom_writer(tmp_path / "s.dcm", smooth(61, 77, 60000), bits_stored=16)
    frame = frame_of(j2k_with_levels(src, tmp_path / "j.dcm", resolutions=4))
    info = parse_j2k_codestream(frame)
    assert decode_j2k_reduced(frame, info, 1).shape == (31, 39)
    assert decode_j2k_reduced(frame, info, 2).shape == (16, 20)


# ---- display output equals the full path -----------------------------------------------------


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("syntax", ["j2k_lossless", "j2k_lossy"])
def test_j2k_reduced_display_matches_full_decode(
    tmp_path: Path, dicom_writer, syntax: str, photometric: str
) -> None:
    src = dicom_writer(
        tmp_path / "s.dcm",
        smooth(150, 130, 4095, inverted=photometric == "MONOCHROME1"),
        bits_stored=12,
        window=(2000, 3000),
        photometric=photometric,
    )
    path = encode_as(src, tmp_path / "j.dcm", syntax)
    ds, _ = read_dicom(path)
    full = decode_dataset_image(ds, path, DecodeOptions())
    small = decode_dataset_image(ds, path, DecodeOptions(), target_size=32)
    assert (full.decode_path, small.decode_path) == ("full", "j2k_reduce_2")
    assert small.image.shape == (38, 33) and max(small.image.shape) >= 32
    assert mad_after_resize(full.image, small.image, 32) < 0.01
    # window and MONOCHROME1 applied after the reduced decode: the body is bright either way
    lungs, centre = lung_and_mediastinum(small.image)
    assert lungs < centre - 0.1


def test_jpeg_draft_display_matches_full_decode(tmp_path: Path, dicom_writer) -> None:
    src = dicom_writer(tmp_path / "s8.dcm", smooth(200, 160, 255), bits_stored=8, window=(128, 256))
    path = encode_as(src, tmp_path / "jpeg.dcm", "jpeg_baseline")
    ds, _ = read_dicom(path)
    full = decode_dataset_image(ds, path, DecodeOptions())
    for target, scale, shape in ((48, 4, (50, 40)), (25, 8, (25, 20)), (100, 2, (100, 80))):
        small = decode_dataset_image(ds, path, DecodeOptions(), target_size=target)
        assert small.decode_path == f"jpeg_draft_{scale}"
        assert small.image.shape == shape
        assert mad_after_resize(full.image, small.image, target) < 0.01


def test_monochrome1_inverts_the_reduced_image_exactly(tmp_path: Path, dicom_writer) -> None:
    outs = []
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        src = dicom_writer(
            tmp_path / f"{photometric}.dcm",
            smooth(120, 100, 4095),
            bits_stored=12,
            window=(2000, 3000),
            photometric=photometric,
        )
        outs.append(
            decode_dicom(
                encode_as(src, tmp_path / f"{photometric}j.dcm", "j2k_lossless"), target_size=30
            )
        )
    assert outs[0].shape == (30, 25)
    np.testing.assert_allclose(outs[1], 1.0 - outs[0], atol=1e-6)


# ---- fallbacks -------------------------------------------------------------------------------


def assert_full(tmp_path_file: Path, result, fallback: str) -> None:
    reference = decode_dicom(tmp_path_file)
    assert (result.decode_path, result.fallback) == ("full", fallback)
    np.testing.assert_array_equal(result.image, reference)


def test_without_a_target_or_when_disabled_the_decode_is_full(tmp_path: Path, dicom_writer) -> None:
    src = dicom_writer(tmp_path / "s.dcm", smooth(120, 100, 4095), bits_stored=12)
    path = encode_as(src, tmp_path / "j.dcm", "j2k_lossless")
    ds, _ = read_dicom(path)
    assert_full(path, decode_dataset_image(ds, path, DecodeOptions()), "")
    off = DecodeOptions(reduced_decode=False)
    assert_full(path, decode_dataset_image(ds, path, off, target_size=16), "disabled")
    assert decode_dataset_image(ds, path, DecodeOptions(), 16).decode_path == "j2k_reduce_2"
    with pytest.raises(ValueError, match="target_size"):
        decode_dataset_image(ds, path, DecodeOptions(), 0)


@pytest.mark.parametrize("syntax", ["rle", "jpegls"])
def test_syntaxes_without_a_reduced_decode_are_decoded_in_full(
    tmp_path: Path, dicom_writer, syntax: str
) -> None:
    src = dicom_writer(tmp_path / "s.dcm", smooth(120, 100, 4095), bits_stored=12)
    path = encode_as(src, tmp_path / f"{syntax}.dcm", syntax)
    ds, _ = read_dicom(path)
    assert_full(path, decode_dataset_image(ds, path, DecodeOptions(), 16), "not_offered")
    ds, _ = read_dicom(src)
    assert_full(src, decode_dataset_image(ds, src, DecodeOptions(), 16), "not_offered")


def test_an_image_already_near_the_target_is_decoded_in_full(tmp_path: Path, dicom_writer) -> None:
    src = dicom_writer(tmp_path / "s.dcm", smooth(60, 50, 4095), bits_stored=12)
    path = encode_as(src, tmp_path / "j.dcm", "j2k_lossless")
    ds, _ = read_dicom(path)
    assert_full(path, decode_dataset_image(ds, path, DecodeOptions(), 31), "already_small")
    assert decode_dataset_image(ds, path, DecodeOptions(), 30).decode_path == "j2k_reduce_1"


def test_levels_in_the_codestream_cap_the_reduction(tmp_path: Path, dicom_writer) -> None:
    src = dicom_writer(tmp_path / "s.dcm", smooth(120, 100, 60000), bits_stored=16)
    one = j2k_with_levels(src, tmp_path / "one.dcm", resolutions=2)
    ds, _ = read_dicom(one)
    assert decode_dataset_image(ds, one, DecodeOptions(), 8).decode_path == "j2k_reduce_1"
    none = j2k_with_levels(src, tmp_path / "none.dcm", resolutions=1)
    ds, _ = read_dicom(none)
    assert_full(none, decode_dataset_image(ds, none, DecodeOptions(), 8), "codec_limit")


def test_a_codestream_refusing_deeper_reductions_falls_back_to_full(
    tmp_path: Path, dicom_writer, monkeypatch, caplog
) -> None:
    src = dicom_writer(tmp_path / "s.dcm", smooth(120, 100, 60000), bits_stored=16)
    path = j2k_with_levels(src, tmp_path / "one.dcm", resolutions=2)
    real = reduced.parse_j2k_codestream

    def claims_more_levels(frame: bytes) -> reduced.J2KCodestreamInfo:
        from dataclasses import replace

        return replace(real(frame), levels=4)  # the codestream has 1: OpenJPEG refuses r > 1

    monkeypatch.setattr(reduced, "parse_j2k_codestream", claims_more_levels)
    ds, _ = read_dicom(path)
    with caplog.at_level(logging.WARNING, logger="medrep.data.reduced"):
        result = decode_dataset_image(ds, path, DecodeOptions(), 8)
    assert_full(path, result, "reduced_decode_error")
    assert "one.dcm" in caplog.text and "reduced_decode_error" in caplog.text


def test_a_failing_codec_falls_back_to_full(tmp_path: Path, dicom_writer, monkeypatch) -> None:
    def broken(*args: object) -> np.ndarray:
        raise OSError("broken data stream when reading image file")

    src = dicom_writer(tmp_path / "s8.dcm", smooth(120, 100, 255), bits_stored=8)
    jpeg = encode_as(src, tmp_path / "jpeg.dcm", "jpeg_baseline")
    j2k = encode_as(src, tmp_path / "j2k.dcm", "j2k_lossless")
    monkeypatch.setattr(reduced, "decode_j2k_reduced", broken)
    monkeypatch.setattr(reduced, "_draft_load", broken)
    for path in (jpeg, j2k):
        ds, _ = read_dicom(path)
        assert_full(
            path, decode_dataset_image(ds, path, DecodeOptions(), 16), "reduced_decode_error"
        )


def test_header_and_codestream_disagreeing_falls_back_to_full(
    tmp_path: Path, dicom_writer, caplog
) -> None:
    # Pillow writes 16-bit precision; the header says 12 bits stored (values fit in 12)
    src = dicom_writer(tmp_path / "s.dcm", smooth(120, 100, 4095), bits_stored=12)
    path = j2k_with_levels(src, tmp_path / "m.dcm", resolutions=3)
    ds, _ = read_dicom(path)
    with caplog.at_level(logging.WARNING, logger="medrep.data.reduced"):
        result = decode_dataset_image(ds, path, DecodeOptions(), 16)
    assert_full(path, result, "header_mismatch")
    assert "BitsStored 12 in the header, 16 in the codestream" in caplog.text


def test_jpeg_the_codec_cannot_scale_is_decoded_in_full(tmp_path: Path, dicom_writer) -> None:
    src = dicom_writer(tmp_path / "s8.dcm", smooth(120, 100, 255), bits_stored=8)
    path = encode_as(src, tmp_path / "jpeg.dcm", "jpeg_baseline")
    ds = pydicom.dcmread(path)
    ds.BitsStored = 12  # as a 12-bit JPEG extended file says: Pillow's libjpeg is 8-bit only
    result = decode_reduced(ds, path, 16)
    assert (result.pixels, result.fallback) == (None, "codec_limit")
    assert "8-bit" in result.detail
    assert set(FALLBACK_REASONS) >= {result.fallback}


# ---- ingestion records the path --------------------------------------------------------------


def test_ingestion_records_and_counts_decode_paths(tmp_path: Path, dicom_writer) -> None:
    from medrep.data.adapters.generic import GenericAdapter
    from medrep.data.ingest import IngestConfig, run_ingestion, summary_table

    export = tmp_path / "export"
    native = dicom_writer(
        export / "native.dcm",
        smooth(120, 100, 4095, lung=0.2),
        bits_stored=12,
        window=(2048, 4096),
        accession="A1",
    )
    # a 12-bit JPEG 2000 and an 8-bit JPEG baseline, each written natively, then re-encoded
    for name, top, bits, window, accession, syntax in (
        ("j2k", 4095, 12, (2048, 4096), "A2", "j2k_lossless"),
        ("jpeg", 255, 8, (128, 256), "A3", "jpeg_baseline"),
    ):
        source = dicom_writer(
            tmp_path / f"{name}-source.dcm",
            # not native.dcm's picture: pixel-identical images are ledgered as duplicates
            smooth(120, 100, top, lung=0.25),
            bits_stored=bits,
            window=window,
            accession=accession,
        )
        encode_as(source, export / f"{name}.dcm", syntax)
    assert native.exists()
    pd.DataFrame(
        {"AccessionNumber": ["A1", "A2", "A3"], "report": ["IMPRESSION: Normal chest."] * 3}
    ).to_csv(tmp_path / "reports.csv", index=False)
    adapter = GenericAdapter(str(export), str(tmp_path / "reports.csv"))
    base = IngestConfig(out_dir=str(tmp_path / "on"), secret="s", image_size=24, progress=False)
    summary = run_ingestion(base, adapter)
    assert summary["decode_paths"] == {"full": 1, "j2k_reduce_2": 1, "jpeg_draft_4": 1}
    assert summary["decode_fallbacks"] == {"not_offered": 1}
    assert summary["cache_params"]["decode"]["reduced_decode"] is True
    assert "j2k_reduce_2 1" in summary_table(summary)
    manifest = pd.read_parquet(tmp_path / "on" / "manifest.parquet")
    # rows and columns stay the source's size, whatever the decode path
    assert set(zip(manifest["rows"], manifest["columns"], strict=True)) == {(120, 100)}

    from dataclasses import replace

    off = replace(base, out_dir=str(tmp_path / "off"), decode=DecodeOptions(reduced_decode=False))
    summary_off = run_ingestion(off, adapter)
    assert summary_off["decode_paths"] == {"full": 3}
    assert summary_off["decode_fallbacks"] == {"disabled": 3}
    a = np.load(tmp_path / "on" / "cache" / "images.npy").astype(np.float64)
    b = np.load(tmp_path / "off" / "cache" / "images.npy").astype(np.float64)
    assert a.shape == b.shape and np.abs(a - b).mean() / 255 < 0.01


# ---- the real files (../shared/data/dicom) ---------------------------------------------------

REAL = [
    ("RG1_J2KR.dcm", "j2k_reduce_2"),
    ("RG1_J2KI.dcm", "j2k_reduce_2"),
    ("RG3_J2KR.dcm", "j2k_reduce_2"),
    ("SIIM_chest_PA_jpeg_baseline.dcm", "jpeg_draft_4"),
    ("SIIM_chest_PA_jpeg_baseline_header_MONOCHROME1.dcm", "jpeg_draft_4"),
    ("RG2_JPLY_fixed.dcm", "full"),  # 12-bit JPEG extended: Pillow's libjpeg is 8-bit only
    ("RG1_UNCR.dcm", "full"),
]


@pytest.mark.realdata
@pytest.mark.parametrize("name, path_taken", REAL)
def test_real_files_reduced_match_full_within_one_percent(
    shared_data: Path, name: str, path_taken: str
) -> None:
    path = shared_data / "dicom" / name
    ds, _ = read_dicom(path)
    full = decode_dataset_image(ds, path, DecodeOptions())
    for size in (224, 256, 512):
        small = decode_dataset_image(ds, path, DecodeOptions(), target_size=size)
        assert max(small.image.shape) >= size
        assert mad_after_resize(full.image, small.image, size) < 0.01, (name, size)
    assert decode_dataset_image(ds, path, DecodeOptions(), 256).decode_path == path_taken


@pytest.mark.realdata
def test_real_reduced_chests_keep_orientation_and_photometric(shared_data: Path) -> None:
    d = shared_data / "dicom"
    for name in ("RG1_J2KR.dcm", "RG1_J2KI.dcm", "SIIM_chest_PA_jpeg_baseline.dcm"):
        lungs, centre = lung_and_mediastinum(decode_dicom(d / name, target_size=256))
        assert lungs < centre - 0.1, name
    m2 = decode_dicom(d / "SIIM_chest_PA_jpeg_baseline.dcm", target_size=256)
    m1 = decode_dicom(d / "SIIM_chest_PA_jpeg_baseline_header_MONOCHROME1.dcm", target_size=256)
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)
    # the same chest, lossless J2K reduced vs the uncompressed file: same picture, same way up
    reference = resize_pad(decode_dicom(d / "RG1_UNCR.dcm"), 256)
    assert (
        np.abs(
            resize_pad(decode_dicom(d / "RG1_J2KR.dcm", target_size=256), 256) - reference
        ).mean()
        < 0.01
    )


@pytest.mark.realdata
def test_real_j2k_reduced_keeps_bits_stored(shared_data: Path) -> None:
    for name, bits in (("RG1_J2KR.dcm", 15), ("RG3_J2KR.dcm", 10)):
        ds = pydicom.dcmread(shared_data / "dicom" / name)
        assert int(ds.BitsStored) == bits
        out = decode_reduced(ds, name, 256)
        assert out.pixels is not None and out.pixels.dtype == np.uint16
        full = ds.pixel_array
        assert out.pixels.max() < 2**bits
        # the reduced values live on the full decode's scale (not Pillow's 16-bit widening)
        on_grid = full[::4, ::4].astype(np.float64)
        assert np.abs(out.pixels - on_grid).mean() < 0.01 * float(full.max() - full.min()), name
