"""Deterministic image preprocessing for the cache: aspect-preserving resize, padding, quantisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.transforms import Resize, SpatialPad
from monai.utils import convert_to_tensor
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

    Args:
        image: float [H, W] display image in [0, 1].
        size: side of the square output.

    Returns:
        float32 [size, size]; the padding is 0 (black, as a collimated border).
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    chan = torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32))
    resized = Resize(spatial_size=size, size_mode="longest", mode="area")(chan)
    padded = SpatialPad(spatial_size=(size, size), method="symmetric", mode="constant")(resized)
    return np.asarray(convert_to_tensor(padded, track_meta=False).numpy(), dtype=np.float32)[0]


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
