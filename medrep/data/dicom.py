"""DICOM reading and decoding in the standard's display order.

The pixel pipeline is the one PS3.4 Annex N describes for a grayscale softcopy: stored values ->
modality LUT (or Rescale Slope/Intercept) -> VOI LUT or window -> presentation (MONOCHROME1 is
inverted last). The output is float32 in [0, 1] with bright meaning attenuating (bone, heart,
fluid) whatever the file's photometric interpretation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medrep.data.errors import IngestError
from medrep.data.reduced import FULL, decode_reduced

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


# ViewPosition is often empty in real exports; these words, found in the series/study
# descriptions or the view code's meaning, stand in for it (checked in this order)
VIEW_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("LL", ("LATERAL", "LAT ", " LAT", "LL")),
    ("RL", ("RL",)),
    ("AP", ("AP", "PORTABLE", "SUPINE", "ANTERO-POSTERIOR", "ANTEROPOSTERIOR")),
    ("PA", ("PA", "POSTERO-ANTERIOR", "POSTEROANTERIOR", "FRONTAL")),
)


@dataclass(frozen=True)
class DicomHeader:
    """The header fields ingestion needs; identifiers stay raw here and are hashed by the caller.

    Nothing in this object may be written to an output as is: PatientID, AccessionNumber and the
    UIDs are pseudonymised in `medrep.data.ingest` before they leave ingestion.
    """

    path: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    accession_number: str
    view_position: str
    view_source: str
    modality: str
    rows: int
    columns: int
    n_frames: int
    photometric: str
    bits_stored: int
    transfer_syntax: str
    sop_class_modality: str = ""  # the modality the SOP Class UID implies ("" when it does not)

    def key(self, element: str) -> str:
        """The raw value of a join element by its DICOM keyword (e.g. `AccessionNumber`)."""
        mapping = {
            "AccessionNumber": self.accession_number,
            "StudyInstanceUID": self.study_instance_uid,
            "SOPInstanceUID": self.sop_instance_uid,
            "PatientID": self.patient_id,
        }
        if element not in mapping:
            raise ValueError(f"unsupported join element {element!r}; use one of {sorted(mapping)}")
        return mapping[element]


# elements of which a dataset read without its preamble must hold at least one to count as DICOM
_DATASET_EVIDENCE = ("SOPClassUID", "SOPInstanceUID", "Rows", "PixelData", "StudyInstanceUID")


def _read(path: Path, *, pixels: bool) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as exc:
        return _read_bare(path, pixels=pixels, first=exc)
    except Exception as exc:  # pydicom raises many types on truncated or corrupt files
        raise IngestError(
            "unreadable", path, f"could not be parsed ({type(exc).__name__}: {exc})"
        ) from exc


def _read_bare(path: Path, *, pixels: bool, first: Exception) -> Dataset:
    """A dataset without the 128-byte preamble or without file meta (old PACS, hand-made
    exports): read with `force=True`, accepted only when it holds the elements of an image
    instance, and given the transfer syntax its encoding shows (uncompressed: a bare dataset
    cannot hold an encapsulated one)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
        evidence = [k for k in _DATASET_EVIDENCE if k in ds]
    except Exception:  # noqa: BLE001 - any failure here means "not DICOM", the first error says why
        evidence = []
    if not evidence:
        raise IngestError("not_dicom", path, f"not a DICOM file ({first})") from first
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
        )
    return ds


def infer_view(ds: Dataset) -> tuple[str, str]:
    """(view, where it came from): ViewPosition, else the view code, else descriptions.

    Returns ("", "none") when nothing says which view the image is.
    """
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if view:
        return view, "ViewPosition"
    texts: list[tuple[str, str]] = []
    for item in ds.get("ViewCodeSequence", None) or []:
        texts.append(("ViewCodeSequence", str(item.get("CodeMeaning", ""))))
    for keyword in (
        "SeriesDescription",
        "ProtocolName",
        "StudyDescription",
        "PerformedProcedureStepDescription",
    ):
        texts.append((keyword, str(ds.get(keyword, "") or "")))
    for where, text in texts:
        padded = f" {text.upper().replace('_', ' ').replace('-', ' ')} "
        for name, words in VIEW_WORDS:
            if any(f" {w.strip()} " in padded for w in words):
                return name, where
    return "", "none"


def header_from_dataset(ds: Dataset, path: str | Path) -> DicomHeader:
    """The ingestion header of a dataset already read (with or without its pixels)."""
    meta = getattr(ds, "file_meta", None)
    tsuid = str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    try:
        return _header(ds, path, tsuid)
    except Exception as exc:
        # a damaged or hand-edited header: multi-valued Rows, text where a number belongs, an
        # element whose length does not fit its VR (pydicom parses elements lazily, on access)
        raise IngestError(
            "bad_header", path, f"invalid header value ({type(exc).__name__}: {exc})"
        ) from exc


def _header(ds: Dataset, path: str | Path, tsuid: str) -> DicomHeader:
    view, view_source = infer_view(ds)
    return DicomHeader(
        path=str(path),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "")),
        accession_number=str(ds.get("AccessionNumber", "")),
        view_position=view,
        view_source=view_source,
        modality=str(ds.get("Modality", "")).strip().upper(),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        n_frames=int(ds.get("NumberOfFrames", 1) or 1),
        photometric=str(ds.get("PhotometricInterpretation", "")).strip().upper(),
        bits_stored=int(ds.get("BitsStored", 0) or 0),
        transfer_syntax=tsuid,
        sop_class_modality=sop_class_modality(str(ds.get("SOPClassUID", "") or "")),
    )


# SOP Class names (pydicom's UID dictionary) and the modality each implies; classes not listed
# (Secondary Capture, private ones) imply nothing and the Modality element decides alone
_SOP_CLASS_MODALITIES: tuple[tuple[str, str], ...] = (
    ("Computed Radiography", "CR"),
    ("Digital X-Ray", "DX"),
    ("Digital Mammography", "MG"),
    ("Digital Intra-Oral", "IO"),
    ("Enhanced CT", "CT"),
    ("CT ", "CT"),
    ("Enhanced MR", "MR"),
    ("MR ", "MR"),
    ("Ultrasound", "US"),
    ("Nuclear Medicine", "NM"),
    ("Positron Emission", "PT"),
    ("X-Ray Angiographic", "XA"),
    ("X-Ray Radiofluoroscopic", "RF"),
)


def sop_class_modality(uid: str) -> str:
    """The modality a SOP Class UID implies (`CT` for CT Image Storage), or ""."""
    name = UID(uid).name if uid else ""
    for prefix, modality in _SOP_CLASS_MODALITIES:
        if name.startswith(prefix):
            return modality
    return ""


def read_header(path: str | Path) -> DicomHeader:
    """Read the header without pixel data.

    Raises:
        IngestError: `not_dicom` or `unreadable` when the file cannot be parsed.
    """
    path = Path(path)
    return header_from_dataset(_read(path, pixels=False), path)


def read_dicom(path: str | Path) -> tuple[Dataset, DicomHeader]:
    """Read a file once (pixels are decoded lazily, only if asked) and its header."""
    path = Path(path)
    ds = _read(path, pixels=True)
    return ds, header_from_dataset(ds, path)


@dataclass(frozen=True)
class DecodeOptions:
    """How to turn stored values into a display image.

    Attributes:
        window_index: which of several VOI windows/LUTs to apply (the first by default).
        percentile_window: the (low, high) percentiles used when the file carries no VOI window.
        frame: which frame to take from a multi-frame file; None rejects multi-frame files.
        max_pixels: refuse images larger than this before decoding (bounded memory).
        reduced_decode: when the caller names a target size, decode JPEG 2000 and 8-bit JPEG
            directly at the largest reduction whose longest side is still >= the target
            (`medrep.data.reduced`), falling back to the full decode per file. Changes pixels
            (within 1% after the caller's resize), so it is part of the cache's parameters.
    """

    window_index: int = 0
    percentile_window: tuple[float, float] = (0.5, 99.5)
    frame: int | None = None
    max_pixels: int = 10000 * 10000
    reduced_decode: bool = True


@dataclass(frozen=True)
class DecodedImage:
    """A display image and how its pixels were decoded.

    Attributes:
        image: float32 [h, w] in [0, 1]; smaller than Rows x Columns after a reduced decode
            (never with a longest side below the target size).
        decode_path: `full`, `j2k_reduce_<r>` (2**r smaller) or `jpeg_draft_<s>` (s smaller).
        fallback: why the decode was full although a target size was given (a key of
            `medrep.data.reduced.FALLBACK_REASONS`); "" after a reduced decode or without a
            target.
        window: which window made the display: `file` (the file's VOI window or LUT),
            `percentile` (the file has none), or `percentile_fallback` (the file's window
            mapped the image to one value: a centre far outside the data, a zero width).
    """

    image: np.ndarray
    decode_path: str
    fallback: str = ""
    window: str = ""


def _voi_output_range(ds: Dataset) -> tuple[float, float]:
    """The output range of pydicom's `apply_voi_lut` for this dataset.

    pydicom maps a window onto the input's possible range and a VOI LUT onto its descriptor's bit
    depth (PS3.3 C.11.2.1.2); it returns raw values, so we need the same range to reach [0, 1].
    """
    voi_seq = ds.get("VOILUTSequence")
    if voi_seq:
        bits = int(voi_seq[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        lo, hi = 0.0, float(2**bits - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return min(lo, hi), max(lo, hi)


def _has_voi(ds: Dataset) -> bool:
    return bool(ds.get("VOILUTSequence")) or ("WindowCenter" in ds and "WindowWidth" in ds)


def window_to_unit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear window [low, high] -> [0, 1], clipped; float32."""
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    # in float64: a large Rescale Intercept (1e9) would leave float32 no precision for the data
    out = (values.astype(np.float64) - low) / (high - low)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32)


def _inverted(ds: Dataset) -> bool:
    """Whether display inverts the VOI output (MONOCHROME1, or an INVERSE Presentation LUT).

    DX "for presentation" files pair MONOCHROME1 with Presentation LUT Shape INVERSE: both name
    the same inversion (PS3.3 C.8.11.7), so it is applied once. An INVERSE shape on a MONOCHROME2
    file is a real request to invert and is honoured.
    """
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and shape == "INVERSE")


def _weighted_percentiles(
    values: np.ndarray, weights: np.ndarray, q: tuple[float, float]
) -> tuple[float, float]:
    """Percentiles of `values` repeated `weights` times, nearest-rank ('inverted_cdf')."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    total = cum[-1]
    out = []
    for p in q:
        rank = max(1.0, np.ceil(p / 100.0 * total))
        out.append(float(v[min(np.searchsorted(cum, rank), len(v) - 1)]))
    return out[0], out[1]


def _display_from_modality(
    modality: np.ndarray, ds: Dataset, options: DecodeOptions, window: tuple[float, float] | None
) -> np.ndarray:
    if window is None:
        voi = apply_voi_lut(modality, ds, index=options.window_index)
        low, high = _voi_output_range(ds)
        display = window_to_unit(voi, low, high)
    else:
        display = window_to_unit(modality, *window)
    if _inverted(ds):
        display = 1.0 - display
    return display.astype(np.float32, copy=False)


# a display whose 0.5-99.5 percentile spread is under this is "one value" (two uint8 levels)
MIN_DISPLAY_SPREAD = 2.0 / 255.0


def display_spread(display: np.ndarray) -> float:
    """The spread between the 0.5th and 99.5th percentile of a display image (subsampled)."""
    step = max(1, int(np.sqrt(display.size / 250_000)))
    sample = display[::step, ::step]
    if not sample.size:
        return 0.0
    low, high = np.percentile(sample, (0.5, 99.5))
    return float(high - low)


def display_with_window(
    arr: np.ndarray, ds: Dataset, options: DecodeOptions
) -> tuple[np.ndarray, str]:
    """`pixels_to_display` and which window it used (`DecodedImage.window`): a file window that
    leaves no contrast is replaced by the percentile window, and the caller records that."""
    if not _has_voi(ds):
        return pixels_to_display(arr, ds, options), "percentile"
    display = pixels_to_display(arr, ds, options)
    if display_spread(display) >= MIN_DISPLAY_SPREAD:
        return display, "file"
    return pixels_to_display(arr, ds, options, ignore_voi=True), "percentile_fallback"


def pixels_to_display(
    arr: np.ndarray, ds: Dataset, options: DecodeOptions, *, ignore_voi: bool = False
) -> np.ndarray:
    """Stored pixel values -> display image in [0, 1] (modality LUT, VOI, inversion last).

    Integer images of at most 16 bits go through a lookup table: pydicom's own modality and VOI
    functions are applied once to every possible stored value, then the table is indexed by the
    image. The result is identical to applying them to the image (tested), and several times
    faster on 2-4 Mpixel radiographs, where pydicom's float64, mask-based windowing otherwise
    costs as much as decoding the file. `ignore_voi` windows by percentiles even when the file
    has a VOI window (its fallback, `display_with_window`).
    """
    use_voi = _has_voi(ds) and not ignore_voi
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        info = np.iinfo(arr.dtype)
        domain = np.arange(info.min, info.max + 1, dtype=np.int64).astype(arr.dtype)
        offset = -int(info.min)
        index = arr.astype(np.int32) + offset if offset else arr
        modality_lut = apply_modality_lut(domain, ds)
        window = None
        if not use_voi:
            counts = np.bincount(np.asarray(index).ravel(), minlength=domain.size)
            present = counts > 0
            window = _weighted_percentiles(
                np.asarray(modality_lut, dtype=np.float64)[present],
                counts[present],
                options.percentile_window,
            )
        lut = _display_from_modality(modality_lut, ds, options, window)
        return lut[index]
    modality = apply_modality_lut(arr, ds)
    window = None
    if not use_voi:
        lo, hi = np.percentile(modality, options.percentile_window, method="inverted_cdf")
        window = (float(lo), float(hi))
    return _display_from_modality(modality, ds, options, window)


def decode_dataset(
    ds: Dataset, path: str | Path, options: DecodeOptions, target_size: int | None = None
) -> np.ndarray:
    """Decode a dataset read by `read_dicom` to a float32 [H, W] display image in [0, 1].

    With `target_size` (the longest side the caller will resize to) and
    `options.reduced_decode`, the image may come back smaller than Rows x Columns, never with a
    longest side below `target_size`; see `decode_dataset_image` for which path was taken.

    Raises:
        IngestError: with a reason code when the file is refused; the message names the field.
    """
    return decode_dataset_image(ds, path, options, target_size).image


def decode_dataset_image(
    ds: Dataset, path: str | Path, options: DecodeOptions, target_size: int | None = None
) -> DecodedImage:
    """`decode_dataset`, also saying whether the pixels were decoded in full or reduced.

    Checks run before any pixel is decoded, so a refused file costs no decode time or memory.
    A reduced decode that is refused or fails falls back to pydicom's full decode of the same
    file; only a file that the full decode cannot read either is refused.

    Raises:
        IngestError: with a reason code when the file is refused; the message names the field.
            Any other failure on a damaged dataset (a header value of the wrong type, a codec
            error pydicom does not wrap) is refused as `decode_error`, never raised as is: one
            bad file must not end a batch job.
    """
    if target_size is not None and target_size < 1:
        raise ValueError(f"target_size must be a positive side in pixels, got {target_size}")
    try:
        return _decode_dataset_image(ds, path, options, target_size)
    except IngestError:
        raise
    except Exception as exc:  # the file's fault: any failure of the decode is per file
        raise IngestError("decode_error", path, f"{type(exc).__name__}: {exc}") from exc


def _decode_dataset_image(
    ds: Dataset, path: str | Path, options: DecodeOptions, target_size: int | None
) -> DecodedImage:
    n_frames = _check_decodable(ds, path, options)
    fallback = ""
    if target_size is not None:
        if options.reduced_decode:
            reduced = decode_reduced(ds, path, target_size, options.frame or 0)
            if reduced.pixels is not None:
                display, window = display_with_window(reduced.pixels, ds, options)
                return DecodedImage(display, reduced.decode_path, "", window)
            fallback = reduced.fallback
        else:
            fallback = "disabled"
    arr = _decode_full(ds, path, options, n_frames)
    display, window = display_with_window(arr, ds, options)
    return DecodedImage(display, FULL, fallback, window)


def _check_decodable(ds: Dataset, path: str | Path, options: DecodeOptions) -> int:
    """Refuse what no decode path handles (before decoding anything); the number of frames."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise IngestError("no_pixel_data", path, "no Pixel Data element (7FE0,0010)")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in MONOCHROME:
        raise IngestError(
            "unsupported_photometric",
            path,
            f"PhotometricInterpretation {photometric or '(missing)'} is not MONOCHROME1/2",
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0 or rows * cols > options.max_pixels:
        raise IngestError(
            "bad_dimensions",
            path,
            f"Rows x Columns = {rows} x {cols} outside 1..{options.max_pixels} pixels",
        )
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames > 1 and options.frame is None:
        raise IngestError(
            "multi_frame", path, f"{n_frames} frames; set a frame index to take one of them"
        )
    if options.frame is not None and not 0 <= options.frame < n_frames:
        raise IngestError(
            "multi_frame", path, f"frame {options.frame} asked, the file has {n_frames}"
        )
    _check_rescale(ds, path)
    _check_native_length(ds, path, rows * cols * n_frames)
    return n_frames


def _check_rescale(ds: Dataset, path: str | Path) -> None:
    """A Rescale Slope of 0 or a non-finite slope or intercept maps every pixel to one value."""
    if ds.get("ModalityLUTSequence"):
        return
    slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
    try:
        values = (float(slope if slope is not None else 1), float(intercept or 0))
    except (TypeError, ValueError) as exc:
        raise IngestError(
            "bad_header", path, f"RescaleSlope/Intercept not numbers ({exc})"
        ) from exc
    if not all(np.isfinite(values)) or values[0] == 0:
        raise IngestError(
            "bad_header",
            path,
            f"RescaleSlope {values[0]} / RescaleIntercept {values[1]} map every pixel to one value",
        )


def _check_native_length(ds: Dataset, path: str | Path, n_pixels: int) -> None:
    """Uncompressed Pixel Data must hold no more than Rows x Columns x frames samples (plus one
    pad byte): pydicom decodes a longer one by dropping the excess, which turns a header that
    disagrees with its data into a sheared image."""
    meta = getattr(ds, "file_meta", None)
    tsuid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if tsuid is None or tsuid.is_compressed or "PixelData" not in ds:
        return
    allocated = int(ds.get("BitsAllocated", 0) or 0)
    if allocated not in (8, 16, 32):
        return
    expected = n_pixels * int(ds.get("SamplesPerPixel", 1) or 1) * allocated // 8
    actual = len(ds.PixelData)
    # shorter data fails pydicom's decode (a cut-off file: decode_error)
    if actual > expected + 1:
        raise IngestError(
            "header_mismatch",
            path,
            f"Pixel Data holds {actual} bytes, Rows x Columns x frames at {allocated} bits "
            f"needs {expected}",
        )


def _decode_full(ds: Dataset, path: str | Path, options: DecodeOptions, n_frames: int) -> Any:
    """pydicom's decode of the whole frame (stored values)."""
    try:
        if n_frames > 1:
            assert options.frame is not None
            arr: Any = pixel_array(ds, index=options.frame)
        else:
            arr = ds.pixel_array
    except Exception as exc:
        tsuid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = tsuid.name if tsuid is not None else "unknown transfer syntax"
        raise IngestError(
            "decode_error", path, f"{name} could not be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    if arr.ndim != 2:
        raise IngestError("bad_dimensions", path, f"decoded array has shape {arr.shape}, not 2-D")
    return np.asarray(arr)


def decode_dicom(
    path: str | Path, options: DecodeOptions | None = None, target_size: int | None = None
) -> np.ndarray:
    """Read and decode one grayscale radiograph to a float32 [H, W] display image in [0, 1].

    `target_size` allows a reduced decode (see `decode_dataset`); without it the image is
    Rows x Columns.

    Raises:
        IngestError: with a reason code when the file is refused; the message names the field.
    """
    ds, _ = read_dicom(path)
    return decode_dataset(ds, path, options or DecodeOptions(), target_size)
