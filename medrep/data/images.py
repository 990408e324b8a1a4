"""Deterministic image preprocessing for the cache: aspect-preserving resize, padding, quantisation."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Resize, SpatialPad
from monai.utils import convert_to_tensor

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
