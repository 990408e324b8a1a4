"""Deterministic image preprocessing for the cache: aspect-preserving resize, padding, quantisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from medrep.data.containment import is_regular_file
from medrep.data.errors import IngestError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
# the first bytes of the image formats we read
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")
# a 16-bit greyscale export whose values stay under this holds a detector's raw values (10 to 15
# bits), windowed by these percentiles (DecodeOptions.percentile_window's default)
_TOP_BIT = 2**15
_RAW_PERCENTILES = (0.5, 99.5)


def sniff_kind(path: str | Path) -> str:
    """What a file is by its extension (any case), else by its first bytes: "dicom", "image"
    or "" (neither). A file named `.dcm`/`.png`... is taken at its word (the decoder refuses a
    liar with a reason code); a file without a known extension is DICOM when it has the `DICM`
    prefix at byte 128 or starts like a bare dataset (a group 0002 or 0008 element, little
    endian), an image when it starts with a PNG, JPEG, TIFF or BMP signature."""
    suffix = Path(path).suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if not is_regular_file(str(path)):
        return ""  # a FIFO or device would block the read below
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return "dicom"  # let the reader say what is wrong with it (unreadable)
    if head[128:132] == b"DICM" or head[:2] in (b"\x02\x00", b"\x08\x00"):
        return "dicom"
    if head.startswith(IMAGE_SIGNATURES):
        return "image"
    return ""


def load_image_file(path: str | Path, max_pixels: int = 10000 * 10000) -> np.ndarray:
    """`read_image_file`'s display image."""
    return read_image_file(path, max_pixels)[0]


def read_image_file(path: str | Path, max_pixels: int = 10000 * 10000) -> tuple[np.ndarray, str]:
    """Read a PNG/JPEG/TIFF radiograph export as a float32 [H, W] display image in [0, 1], and
    the window that made it (`export`, or `percentile` for raw 16-bit values).

    Exports are already display images (windowed, inverted as needed), so values are scaled by
    their type's range, not by the image's own min and max. RGB is converted to luma (ITU-R
    601), transparent pixels of RGBA/LA count as black, 16-bit greyscale keeps its depth.

    A 16-bit greyscale image whose values leave its top bit unused (a 10-, 12- or 14-bit
    detector's raw values in a 16-bit PNG, which scaling by 65535 would cache nearly black) is
    windowed by its own 0.5-99.5 percentiles, as a DICOM without a window is.

    Raises:
        IngestError: `not_image` when the file cannot be read as an image, `bad_dimensions`
            when it is larger than `max_pixels` (checked before decoding the pixels, also when
            the header claims a size Pillow calls a decompression bomb), `truncated_image` when
            the data ends early (including a JPEG whose missing blocks the decoder filled with
            grey), `non_finite` for NaN or infinite values in a float image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise IngestError(
                    "bad_dimensions", path, f"{width} x {height} outside 1..{max_pixels} pixels"
                )
            img.load()
            if img.format == "JPEG":
                _check_jpeg_complete(img, path)
            return _to_unit_gray(img, path)
    except IngestError:
        raise
    except Image.DecompressionBombError as exc:
        raise IngestError("bad_dimensions", path, f"over Pillow's size limit ({exc})") from exc
    except OSError as exc:
        if "truncated" in str(exc):
            raise IngestError("truncated_image", path, f"the data ends early ({exc})") from exc
        raise IngestError(
            "not_image", path, f"could not be read as an image ({type(exc).__name__}: {exc})"
        ) from exc
    except (UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        raise IngestError(
            "not_image", path, f"could not be read as an image ({type(exc).__name__}: {exc})"
        ) from exc


def _check_jpeg_complete(img: Image.Image, path: Path) -> None:
    """A JPEG whose scan was cut off but still ends in an EOI marker decodes without an error:
    libjpeg fills the missing blocks with mid-grey (every sample 128). Its last block row
    entirely 128 in every channel is that fill; a radiograph's own border is black or noisy."""
    arr = np.asarray(img)
    tail = arr[-min(8, arr.shape[0]) :]  # one block row (8 rows, the smallest MCU)
    if tail.size and bool(np.all(tail == 128)):
        raise IngestError(
            "truncated_image",
            path,
            f"the last {tail.shape[0]} rows are the decoder's grey fill: the scan was cut off",
        )


def _to_unit_gray(img: Image.Image, path: Path) -> tuple[np.ndarray, str]:
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img, mode = Image.alpha_composite(black, rgba).convert("L"), "L"
    if mode in ("1", "P", "RGB", "CMYK", "YCbCr", "HSV", "LAB"):
        img, mode = img.convert("L"), "L"
    arr = np.asarray(img)
    if mode == "L":
        return arr.astype(np.float32) / np.float32(255.0), "export"
    if mode.startswith("I;16") or (
        mode == "I" and arr.size and int(arr.min()) >= 0 and int(arr.max()) <= 65535
    ):
        values = arr.astype(np.float32)
        if arr.size and int(arr.max()) < _TOP_BIT:
            low, high = np.percentile(values, _RAW_PERCENTILES)
            if high > low:
                return np.clip((values - low) / (high - low), 0.0, 1.0), "percentile"
        return values / np.float32(65535.0), "export"
    if mode == "F":
        values = arr.astype(np.float32)
        if not np.isfinite(values).all():
            raise IngestError(
                "non_finite", path, f"{int((~np.isfinite(values)).sum())} NaN or infinite values"
            )
        return np.clip(values, 0.0, 1.0), "export"
    raise IngestError("not_image", path, f"unsupported image mode {mode}")


QUANT_DTYPES: dict[str, type[np.unsignedinteger]] = {"uint8": np.uint8, "uint16": np.uint16}


def resize_pad(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longest side is `size` (area interpolation), then centre-pad to square.

    This is MONAI's `Resize(size_mode="longest", mode="area")` followed by a symmetric
    `SpatialPad`, called as the torch operations underneath: MONAI's MetaTensor bookkeeping
    doubled the cost of this step on 1-4 Mpixel radiographs (2.5 vs 1.0 ms at 1024 px,
    6.0 vs 3.0 ms at 1955 x 1841, measured with benchmarks/ingest.py's files), and the output
    is identical (tested against MONAI).

    Args:
        image: float [H, W] display image in [0, 1].
        size: side of the square output.

    Returns:
        float32 [size, size]; the padding is 0 (black, as a collimated border).
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    h, w = image.shape
    scale = size / max(h, w)
    # MONAI's rounding for size_mode="longest": the longest side is exactly `size`
    new_h, new_w = (size, max(1, round(w * scale))) if h >= w else (max(1, round(h * scale)), size)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if (new_h, new_w) != (h, w):
        tensor = F.interpolate(tensor, size=(new_h, new_w), mode="area")
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out = F.pad(tensor, (left, size - new_w - left, top, size - new_h - top))
    return out[0, 0].numpy()


def quantize(image: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """[0, 1] float -> the cache's integer type, rounding to nearest."""
    if dtype not in QUANT_DTYPES:
        raise ValueError(f"cache dtype must be one of {sorted(QUANT_DTYPES)}, got {dtype!r}")
    np_dtype = QUANT_DTYPES[dtype]
    top = float(np.iinfo(np_dtype).max)
    return np.rint(np.clip(image, 0.0, 1.0) * top).astype(np_dtype)


def dequantize(image: np.ndarray) -> np.ndarray:
    """The cache's integer type -> float32 in [0, 1]."""
    top = float(np.iinfo(image.dtype).max)
    return image.astype(np.float32) / np.float32(top)
