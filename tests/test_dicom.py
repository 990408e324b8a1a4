"""DICOM decoding: display order (modality LUT, VOI, MONOCHROME1), refusals with reason codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medrep.data.dicom import DecodeOptions, decode_dicom, read_header
from medrep.data.errors import IngestError
from tests.helpers import encode_as, lung_and_mediastinum


def ramp(rows: int = 16, cols: int = 20, top: int = 4095) -> np.ndarray:
    return np.linspace(0, top, rows * cols).reshape(rows, cols).round().astype(np.uint16)


def test_window_maps_linearly_and_clips(tmp_path: Path, dicom_writer) -> None:
    pixels = ramp()
    path = dicom_writer(tmp_path / "a.dcm", pixels, window=(2048, 1024))
    out = decode_dicom(path)
    assert out.dtype == np.float32 and out.shape == pixels.shape
    lo, hi = 2048 - 512, 2048 + 512
    expected = np.clip((pixels.astype(float) - lo) / (hi - lo), 0, 1)
    # pydicom's LINEAR window is (c - 0.5, w - 1): agree to within one grey level of 4096
    assert np.abs(out - expected).max() < 2 / 1024
    assert out.min() == 0.0 and out.max() == 1.0


def test_monochrome1_is_exact_inverse_of_monochrome2(tmp_path: Path, dicom_writer) -> None:
    pixels = ramp()
    m2 = decode_dicom(dicom_writer(tmp_path / "m2.dcm", pixels, window=(2000, 3000)))
    m1 = decode_dicom(
        dicom_writer(tmp_path / "m1.dcm", pixels, window=(2000, 3000), photometric="MONOCHROME1")
    )
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)


def test_rescale_is_applied_before_the_window(tmp_path: Path, dicom_writer) -> None:
    pixels = ramp(top=1000)
    # stored v -> 2v - 1000 in modality units; the window is written in those units
    path = dicom_writer(
        tmp_path / "r.dcm", pixels, bits_stored=10, slope=2.0, intercept=-1000.0, window=(0, 1000)
    )
    out = decode_dicom(path)
    modality = 2.0 * pixels - 1000.0
    expected = np.clip((modality + 500) / 1000, 0, 1)
    assert np.abs(out - expected).max() < 3e-3
    # without applying the rescale first, this window would saturate almost everything
    assert 0.3 < out.mean() < 0.7


def test_missing_window_falls_back_to_percentiles(tmp_path: Path, dicom_writer) -> None:
    pixels = ramp(64, 64, top=3000)
    pixels[0, 0] = 4095  # an outlier the percentile window ignores
    out = decode_dicom(
        dicom_writer(tmp_path / "p.dcm", pixels), DecodeOptions(percentile_window=(1, 99))
    )
    assert out.min() == 0.0 and out.max() == 1.0
    # about 1% saturates at each end (a min-max scaling would saturate only the outlier)
    assert 0.005 < (out == 1.0).mean() < 0.03
    assert 0.005 < (out == 0.0).mean() < 0.03


def test_implicit_vr_reads_the_same(tmp_path: Path, dicom_writer) -> None:
    pixels = ramp()
    a = decode_dicom(dicom_writer(tmp_path / "e.dcm", pixels, window=(2048, 4096)))
    b = decode_dicom(dicom_writer(tmp_path / "i.dcm", pixels, window=(2048, 4096), implicit=True))
    np.testing.assert_array_equal(a, b)


def test_header_reads_without_pixels(tmp_path: Path, dicom_writer) -> None:
    path = dicom_writer(tmp_path / "h.dcm", ramp(), view="AP", modality="CR", accession="A9")
    header = read_header(path)
    assert (header.view_position, header.modality, header.rows, header.columns) == (
        "AP",
        "CR",
        16,
        20,
    )
    assert header.key("AccessionNumber") == "A9"
    with pytest.raises(ValueError, match="unsupported join element"):
        header.key("PatientName")


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "not_dicom"),
        (lambda p: p.write_text("this is a report, not an image"), "not_dicom"),
    ],
)
def test_non_dicom_files_are_refused_with_a_reason(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "x.dcm"
    make(path)
    with pytest.raises(IngestError) as info:
        decode_dicom(path)
    assert info.value.reason == reason
    assert "x.dcm" in str(info.value)


def test_truncated_pixel_data_is_a_decode_error(tmp_path: Path, dicom_writer) -> None:
    path = dicom_writer(tmp_path / "t.dcm", ramp(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 2000])
    with pytest.raises(IngestError) as info:
        decode_dicom(path)
    assert info.value.reason in {"decode_error", "unreadable"}


def test_multi_frame_needs_an_explicit_frame(tmp_path: Path, dicom_writer) -> None:
    frames = np.stack([ramp(), ramp()[::-1]])
    path = dicom_writer(tmp_path / "mf.dcm", frames, frames=2, window=(2048, 4096))
    with pytest.raises(IngestError) as info:
        decode_dicom(path)
    assert info.value.reason == "multi_frame"
    second = decode_dicom(path, DecodeOptions(frame=1))
    first = decode_dicom(path, DecodeOptions(frame=0))
    np.testing.assert_allclose(second, first[::-1])


def test_oversized_images_are_refused_before_decoding(tmp_path: Path, dicom_writer) -> None:
    path = dicom_writer(tmp_path / "big.dcm", ramp(64, 64))
    with pytest.raises(IngestError) as info:
        decode_dicom(path, DecodeOptions(max_pixels=1000))
    assert info.value.reason == "bad_dimensions"


def test_missing_pixel_data_is_refused(tmp_path: Path, dicom_writer) -> None:
    import pydicom

    path = dicom_writer(tmp_path / "np.dcm", ramp())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(IngestError) as info:
        decode_dicom(path)
    assert info.value.reason == "no_pixel_data"


# ---- real files (../shared/data/dicom) -------------------------------------------------------


@pytest.mark.realdata
def test_real_lossless_encodings_of_one_chest_agree(shared_data: Path) -> None:
    d = shared_data / "dicom"
    reference = decode_dicom(d / "RG1_UNCR.dcm")
    for name, tolerance in (("RG1_J2KR.dcm", 1e-6), ("RG1_JLSN.dcm", 0.01)):
        other = decode_dicom(d / name)
        assert other.shape == reference.shape
        assert np.abs(other - reference).mean() < tolerance, name


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name", ["RG1_UNCR.dcm", "SIIM_chest_PA_jpeg_baseline.dcm", "NIH_chest_DX_implicit_vr.dcm"]
)
def test_real_chests_have_dark_lungs(shared_data: Path, name: str) -> None:
    lungs, centre = lung_and_mediastinum(decode_dicom(shared_data / "dicom" / name))
    assert lungs < centre - 0.1, (lungs, centre)


@pytest.mark.realdata
def test_header_saying_monochrome1_inverts_the_same_pixels(shared_data: Path) -> None:
    d = shared_data / "dicom"
    m2 = decode_dicom(d / "SIIM_chest_PA_jpeg_baseline.dcm")
    m1 = decode_dicom(d / "SIIM_chest_PA_jpeg_baseline_header_MONOCHROME1.dcm")
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)


@pytest.mark.realdata
def test_real_voi_window_is_used_not_min_max(shared_data: Path) -> None:
    import pydicom

    path = shared_data / "dicom" / "RG1_UNCR.dcm"
    ds = pydicom.dcmread(path)
    assert "WindowCenter" in ds
    windowed = decode_dicom(path)
    raw = ds.pixel_array.astype(np.float64)
    centre, width = float(ds.WindowCenter), float(ds.WindowWidth)
    # the file's own window (then MONOCHROME1 inversion), not a min-max of the pixels
    expected = 1.0 - np.clip((raw - (centre - width / 2)) / width, 0, 1)
    assert np.abs(windowed - expected).max() < 1e-3
    minmax = 1.0 - (raw - raw.min()) / (raw.max() - raw.min())
    assert np.abs(windowed - minmax).mean() > 0.01  # about 0.02 on this file


@pytest.mark.realdata
def test_real_broken_jpeg_is_a_decode_error(shared_data: Path) -> None:
    with pytest.raises(IngestError) as info:
        decode_dicom(shared_data / "dicom" / "RG2_JPLY.dcm")
    assert info.value.reason == "decode_error"
    assert "RG2_JPLY.dcm" in str(info.value)
    fixed = decode_dicom(shared_data / "dicom" / "RG2_JPLY_fixed.dcm")
    assert fixed.shape == (2140, 1760)


# ---- the lookup-table path equals pydicom applied to the whole image -------------------------


def reference_display(path: Path) -> np.ndarray:
    """pydicom's modality LUT and VOI on the full image, scaled and inverted (no lookup table)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from medrep.data.dicom import _voi_output_range

    ds = pydicom.dcmread(path)
    modality = apply_modality_lut(ds.pixel_array, ds)
    if "WindowCenter" in ds:
        low, high = _voi_output_range(ds)
        out = (apply_voi_lut(modality, ds) - low) / (high - low)
    else:
        low, high = np.percentile(modality, (0.5, 99.5), method="inverted_cdf")
        out = np.clip((modality - low) / (high - low), 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
        out = 1 - out
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits_stored": 12, "window": (1500, 2000)},
        {"bits_stored": 12, "slope": -1.0, "intercept": 4095.0, "window": (2000, 1000)},
        {"bits_stored": 14, "slope": 0.5, "intercept": -100.0},
        {"bits_stored": 8, "photometric": "MONOCHROME1", "window": (100, 150)},
        {"bits_stored": 16, "extra": {"PresentationLUTShape": "INVERSE"}, "window": (30000, 40000)},
    ],
)
def test_lookup_table_path_equals_pydicom_on_the_image(
    tmp_path: Path, dicom_writer, kwargs
) -> None:
    rng = np.random.default_rng(0)
    top = 2 ** kwargs["bits_stored"] - 1
    pixels = rng.integers(0, top + 1, size=(37, 53))
    path = dicom_writer(tmp_path / "l.dcm", pixels, **kwargs)
    np.testing.assert_allclose(decode_dicom(path), reference_display(path), atol=1e-6)


def test_signed_pixels_use_the_signed_range(tmp_path: Path, dicom_writer) -> None:
    import pydicom

    pixels = np.linspace(-2000, 2000, 400).reshape(20, 20).astype(np.int16)
    path = dicom_writer(
        tmp_path / "s.dcm", pixels.view(np.uint16), bits_stored=16, window=(0, 2000)
    )
    ds = pydicom.dcmread(path)
    ds.PixelRepresentation = 1
    ds.save_as(path)
    out = decode_dicom(path)
    expected = np.clip((pixels.astype(float) + 1000) / 2000, 0, 1)
    assert np.abs(out - expected).max() < 2e-3


def test_view_falls_back_to_descriptions(tmp_path: Path, dicom_writer) -> None:
    from medrep.data.dicom import read_header

    cases = {
        "a.dcm": ({"SeriesDescription": "CHEST PA"}, ("PA", "SeriesDescription")),
        "b.dcm": ({"SeriesDescription": "Chest Lateral"}, ("LL", "SeriesDescription")),
        "c.dcm": ({"ProtocolName": "Portable chest"}, ("AP", "ProtocolName")),
        "d.dcm": ({}, ("", "none")),
    }
    for name, (extra, expected) in cases.items():
        path = dicom_writer(tmp_path / name, ramp(), view="", extra=extra)
        header = read_header(path)
        assert (header.view_position, header.view_source) == expected, name
    path = dicom_writer(
        tmp_path / "e.dcm", ramp(), view="AP", extra={"SeriesDescription": "LATERAL"}
    )
    assert read_header(path).view_position == "AP"  # ViewPosition wins when present


# ---- every transfer syntax hospitals send, on files the test writes --------------------------


def smooth_chest(rows: int = 96, cols: int = 80, top: int = 4095) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    lungs = np.exp(-(((xx - cols * 0.3) / 12) ** 2 + ((yy - rows / 2) / 30) ** 2))
    lungs += np.exp(-(((xx - cols * 0.7) / 12) ** 2 + ((yy - rows / 2) / 30) ** 2))
    return (top * (0.9 - 0.6 * lungs)).round().astype(np.uint16)


@pytest.mark.parametrize(
    "syntax, tolerance",
    [
        ("big_endian", 0.0),
        ("rle", 0.0),
        ("j2k_lossless", 0.0),
        ("jpegls", 0.0),
        ("j2k_lossy", 0.01),
    ],
)
def test_every_transfer_syntax_decodes_to_the_same_picture(
    tmp_path: Path, dicom_writer, syntax: str, tolerance: float
) -> None:
    from medrep.data.dicom import read_header

    src = dicom_writer(
        tmp_path / "src.dcm",
        smooth_chest(),
        bits_stored=12,
        window=(2048, 4096),
        photometric="MONOCHROME1",
    )
    reference = decode_dicom(src)
    encoded = encode_as(src, tmp_path / f"{syntax}.dcm", syntax)
    assert read_header(encoded).transfer_syntax != read_header(src).transfer_syntax
    out = decode_dicom(encoded)
    assert np.abs(out - reference).mean() <= tolerance + 1e-7


def test_jpeg_baseline_8bit(tmp_path: Path, dicom_writer) -> None:
    pixels = (smooth_chest(top=255)).astype(np.uint8)
    src = dicom_writer(tmp_path / "src8.dcm", pixels, bits_stored=8, window=(128, 256))
    out = decode_dicom(encode_as(src, tmp_path / "jpeg.dcm", "jpeg_baseline"))
    assert np.abs(out - decode_dicom(src)).mean() < 0.01
