"""Deterministic image preprocessing for the cache: aspect-preserving resize, padding, quantisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from medrep.data.errors import IngestError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def load_image_file(path: str | Path, max_pixels: int = 10000 * 10000) -> np.ndarray:
    """Read a PNG/JPEG/TIFF radiograph export as a float32 [H, W] display image in [0, 1].

    Exports are already display images (windowed, inverted as needed), so values are scaled by
    their type's range, not by the image's own min and max. RGB is converted to luma (ITU-R
    601), transparent pixels of RGBA/LA count as black, 16-bit greyscale keeps its depth.

    Raises:
        IngestError: `not_image` when the file cannot be read as an image, `bad_dimensions`
            when it is larger than `max_pixels` (checked before decoding the pixels).
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise IngestError(
                    "bad_dimensions", path, f"{width} x {height} outside 1..{max_pixels} pixels"
                )
            return _to_unit_gray(img)
    except IngestError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise IngestError(
            "not_image", path, f"could not be read as an image ({type(exc).__name__}: {exc})"
        ) from exc


def _to_unit_gray(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img, mode = Image.alpha_composite(black, rgba).convert("L"), "L"
    if mode in ("1", "P", "RGB", "CMYK", "YCbCr", "HSV", "LAB"):
        img, mode = img.convert("L"), "L"
    arr = np.asarray(img)
    if mode == "L":
        return arr.astype(np.float32) / np.float32(255.0)
    if mode.startswith("I;16") or (
        mode == "I" and arr.size and int(arr.min()) >= 0 and int(arr.max()) <= 65535
    ):
        return arr.astype(np.float32) / np.float32(65535.0)
    if mode == "F":
        return np.clip(arr.astype(np.float32), 0.0, 1.0)
    raise IngestError(
        "not_image", str(getattr(img, "filename", "")), f"unsupported image mode {mode}"
    )


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
