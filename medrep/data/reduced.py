"""Decoding at the resolution the cache needs: JPEG 2000 resolution levels, JPEG DCT scaling.

A 2000-3000 pixel radiograph cached at 224-512 pixels throws most of a full decode away. Two
codecs can skip that work inside the decoder:

- JPEG 2000 (ISO/IEC 15444-1) stores a wavelet pyramid: discarding the r finest resolution
  levels yields the image at ceil(size / 2**r) without inverse-transforming (or, for lossless
  files, even entropy-decoding) the fine subbands. Pillow's JPEG 2000 reader (OpenJPEG) exposes
  this as `reduce`; pylibjpeg-openjpeg (2.6) has no such option.
- JPEG baseline and extended (ISO/IEC 10918-1) can scale the inverse DCT by 1/2, 1/4 or 1/8;
  Pillow's libjpeg exposes this as `draft`. It handles 8-bit samples only.

This module returns *stored values* at the reduced size, with the dtype and values pydicom's
full decode would give (so the caller's modality LUT, VOI and MONOCHROME1 handling applies
unchanged), or says with a reason code why the caller must decode in full. It never raises for
a file pydicom might still decode: a refused or failed reduced decode is a fallback, not a
rejection.
"""

from __future__ import annotations

import io
import logging
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, Jpeg2KImagePlugin
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_dtype
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit

log = logging.getLogger(__name__)

J2K_SYNTAXES = (JPEG2000Lossless, JPEG2000)
JPEG_SYNTAXES = (JPEGBaseline8Bit, JPEGExtended12Bit)
JPEG_SCALES = (8, 4, 2)  # libjpeg's DCT scaling factors, the largest first

FULL = "full"

# Why a file was decoded in full when a target size was given. The first four are expected
# (the file or codec offers nothing to skip); the last two are logged as warnings, since they
# name a file whose codestream disagrees with its header or a codec that failed.
FALLBACK_REASONS: dict[str, str] = {
    "disabled": "reduced decoding is switched off (DecodeOptions.reduced_decode=False)",
    "not_offered": "the transfer syntax has no reduced decode (native, RLE, JPEG-LS, lossless JPEG)",
    "already_small": "no reduction keeps the longest side at or above the target size",
    "codec_limit": "the codec cannot decode this file reduced (12-bit or signed JPEG, a J2K "
    "codestream that is JP2-wrapped, multi-component or has no decomposition levels)",
    "header_mismatch": "the codestream disagrees with the DICOM header (size, precision, "
    "signedness); pydicom's full decode has the corrections for that",
    "reduced_decode_error": "the reduced decode raised or returned an unexpected size",
}
WARN_REASONS = frozenset({"header_mismatch", "reduced_decode_error"})


@dataclass(frozen=True)
class ReducedPixels:
    """The outcome of a reduced-decode attempt.

    Attributes:
        pixels: stored values [h, w] at the reduced size (pydicom's dtype for the file), or
            None when the caller must decode in full.
        decode_path: `j2k_reduce_<r>` (2**r smaller), `jpeg_draft_<s>` (s times smaller) or
            `full`.
        fallback: a key of `FALLBACK_REASONS` when `pixels` is None, else "".
        detail: what exactly was refused, for the log.
    """

    pixels: np.ndarray | None
    decode_path: str
    fallback: str = ""
    detail: str = ""


def _fallback(reason: str, detail: str = "") -> ReducedPixels:
    if reason not in FALLBACK_REASONS:
        raise ValueError(f"unknown fallback reason {reason!r}; add it to FALLBACK_REASONS")
    return ReducedPixels(None, FULL, reason, detail)


# ---- JPEG 2000 codestream header ------------------------------------------------------------

_SOC, _SIZ, _COD, _COC, _SOT, _SOD, _EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF53, 0xFF90, 0xFF93, 0xFFD9


class J2KHeaderError(ValueError):
    """The codestream's marker segments could not be read."""


@dataclass(frozen=True)
class J2KCodestreamInfo:
    """What a reduced decode needs from a JPEG 2000 codestream's headers (ISO/IEC 15444-1 A.5-A.6).

    Attributes:
        width / height: image extent on the reference grid (Xsiz - XOsiz, Ysiz - YOsiz).
        x_offset / y_offset: XOsiz, YOsiz.
        components: Csiz.
        precision / signed: component 0's Ssiz (bit depth, sign).
        subsampling: component 0's (XRsiz, YRsiz).
        levels: the fewest wavelet decomposition levels of component 0 over the main header and
            every tile (a COC for component 0 overrides a COD; a tile's override the main one):
            the deepest reduction every tile can give.
    """

    width: int
    height: int
    x_offset: int
    y_offset: int
    components: int
    precision: int
    signed: bool
    subsampling: tuple[int, int]
    levels: int

    def reduced_size(self, reduce: int) -> tuple[int, int]:
        """(width, height) after discarding `reduce` levels: ISO/IEC 15444-1 B.5, ceil on the grid."""
        power = 1 << reduce
        x1, y1 = self.x_offset + self.width, self.y_offset + self.height
        return (
            -(-x1 // power) - -(-self.x_offset // power),
            -(-y1 // power) - -(-self.y_offset // power),
        )


def parse_j2k_codestream(src: bytes) -> J2KCodestreamInfo:
    """Read SIZ, COD/COC of the main header and of every tile-part header.

    Neither OpenJPEG's Python wrappers nor Pillow report the number of decomposition levels, and
    asking for more reductions than a tile has fails inside the decoder, so the count is read
    here, from the marker segments only (no entropy-coded data is touched).

    Raises:
        J2KHeaderError: not a bare codestream (e.g. JP2-wrapped), or a marker segment is cut.
    """
    try:
        return _parse_j2k(src)
    except (struct.error, IndexError) as exc:
        raise J2KHeaderError(f"truncated marker segment ({exc})") from exc


def _u16(src: bytes, pos: int) -> int:
    return int(struct.unpack_from(">H", src, pos)[0])


def _parse_j2k(src: bytes) -> J2KCodestreamInfo:
    if len(src) < 4 or _u16(src, 0) != _SOC or _u16(src, 2) != _SIZ:
        raise J2KHeaderError("does not start with SOC + SIZ (a JP2 file or not JPEG 2000)")
    # SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz {Ssiz XRsiz YRsiz}
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", src, 8)
    csiz = _u16(src, 40)
    ssiz, xrsiz, yrsiz = src[42], src[43], src[44]
    ccoc_bytes = 1 if csiz < 257 else 2

    def levels_of(marker: int, segment: bytes) -> tuple[str, int] | None:
        # COD: Scod(1) SGcod(4) then SPcod, whose first byte is the number of levels;
        # COC: Ccoc(1|2) Scoc(1) then SPcoc, likewise
        if marker == _COD:
            return "cod", segment[5]
        if marker == _COC:
            component = segment[0] if ccoc_bytes == 1 else _u16(segment, 0)
            if component == 0:
                return "coc", segment[ccoc_bytes + 1]
        return None

    def read_header(pos: int, end_marker: int) -> tuple[int, dict[str, int]]:
        found: dict[str, int] = {}
        while (marker := _u16(src, pos)) != end_marker:
            if marker < 0xFF00 or marker in (_SOT, _SOD, _EOC):
                raise J2KHeaderError(f"unexpected marker {marker:04X} at byte {pos}")
            length = _u16(src, pos + 2)
            hit = levels_of(marker, src[pos + 4 : pos + 2 + length])
            if hit is not None:
                found[hit[0]] = hit[1]
            pos += 2 + length
        return pos, found

    pos, main = read_header(2, _SOT)
    if "cod" not in main:
        raise J2KHeaderError("the main header has no COD marker segment")
    main_levels = main.get("coc", main["cod"])
    tile_levels: dict[int, int] = {}
    while pos + 12 <= len(src) and _u16(src, pos) == _SOT:
        # SOT: Lsot(2)=10 Isot(2) Psot(4) TPsot(1) TNsot(1); Psot counts from the SOT marker
        lsot, isot, psot = struct.unpack_from(">HHI", src, pos + 2)
        _, tile = read_header(pos + 2 + lsot, _SOD)
        value = tile.get("coc", tile.get("cod", main_levels))
        tile_levels[isot] = min(tile_levels.get(isot, value), value)
        if psot == 0:  # the last tile-part runs to EOC
            break
        pos += psot
    if not tile_levels:
        raise J2KHeaderError("no tile-part (SOT) follows the main header")
    return J2KCodestreamInfo(
        width=xsiz - xosiz,
        height=ysiz - yosiz,
        x_offset=xosiz,
        y_offset=yosiz,
        components=csiz,
        precision=(ssiz & 0x7F) + 1,
        signed=bool(ssiz & 0x80),
        subsampling=(xrsiz, yrsiz),
        levels=min(tile_levels.values()),
    )


# ---- choosing the reduction -----------------------------------------------------------------


def j2k_reduction(info: J2KCodestreamInfo, target_size: int) -> int:
    """The most levels to discard while the longest side stays >= `target_size` (0: none)."""
    best = 0
    for reduce in range(1, info.levels + 1):
        if max(info.reduced_size(reduce)) < target_size:
            break
        best = reduce
    return best


def jpeg_scale(width: int, height: int, target_size: int) -> int:
    """The largest libjpeg DCT scale (8, 4, 2) keeping the longest side >= target (1: none)."""
    for scale in JPEG_SCALES:
        if math.ceil(max(width, height) / scale) >= target_size:
            return scale
    return 1


# ---- decoders -------------------------------------------------------------------------------


def _open(frame: bytes, fmt: str) -> ImageFile.ImageFile:
    # the DICOM header's Rows x Columns was already bounded by DecodeOptions.max_pixels;
    # Pillow's own decompression-bomb warning would only repeat that check
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(frame), formats=(fmt,))


def _pillow_reduced_size(size: tuple[int, int], reduce: int) -> tuple[int, int]:
    """The size Pillow's `Jpeg2KImageFile.load` gives a reduced image (rounding half up)."""
    power = 1 << reduce
    adjust = power >> 1
    return int((size[0] + adjust) / power), int((size[1] + adjust) / power)


def decode_j2k_reduced(frame: bytes, info: J2KCodestreamInfo, reduce: int) -> np.ndarray:
    """Decode a JPEG 2000 codestream with `reduce` levels discarded, as stored values.

    Pillow widens N-bit samples to its 8- or 16-bit container (shifted left by container - N,
    signed values offset by 2**(N-1); Pillow's Jpeg2KDecode.c, j2ku_gray_i); the values are
    brought back as pydicom's own Pillow decoder does, so the result equals pydicom's for the
    same codestream: 16-bit samples stay 16-bit, signed stay signed.

    Raises:
        OSError / ValueError: whatever Pillow raises for a codestream it cannot decode;
        RuntimeError: the decoded size is not the standard's reduced size.
    """
    expected = info.reduced_size(reduce)
    image = _open(frame, "JPEG2000")
    if not isinstance(image, Jpeg2KImagePlugin.Jpeg2KImageFile):
        raise RuntimeError(f"Pillow opened the frame as {image.format}, not JPEG 2000")
    if _pillow_reduced_size(image.size, reduce) == expected:
        image.reduce = reduce
        image.load()
    else:
        # Pillow (13.0 and earlier) sizes a reduced image as round(w / 2**r) where the standard
        # gives ceil(w / 2**r) (they differ when 0 < w mod 2**r < 2**(r-1)), and its decoder
        # then refuses the larger tile ("broken data stream"): 1841 columns at r=2 is such a
        # width. Give it the standard's size with the tile arguments its load() would set.
        tile = image.tile[0]
        assert isinstance(tile.args, tuple)
        codec, _, layers, fd, length = tile.args
        image._size = expected
        image.tile = [
            tile._replace(extents=(0, 0, *expected), args=(codec, reduce, layers, fd, length))
        ]
        ImageFile.ImageFile.load(image)
    if image.size != expected:
        raise RuntimeError(f"decoded {image.size}, expected {expected} at reduce={reduce}")
    container = 8 if info.precision <= 8 else 16
    values = np.asarray(image).astype(np.int32)
    if info.signed:
        values -= 1 << (container - 1)
    values >>= container - info.precision  # exact: Pillow's low bits are zero
    dtype = f"{'i' if info.signed else 'u'}{container // 8}"
    return values.astype(dtype)


def decode_jpeg_draft(frame: bytes, scale: int) -> np.ndarray:
    """Decode an 8-bit single-component JPEG with libjpeg's inverse DCT scaled by 1/`scale`.

    Raises:
        OSError / ValueError / SyntaxError: whatever Pillow raises (12-bit data among them);
        RuntimeError: not 8-bit greyscale, or the decoded size is not ceil(size / scale).
    """
    return _draft_load(_open(frame, "JPEG"), scale)


def _draft_load(image: ImageFile.ImageFile, scale: int) -> np.ndarray:
    if image.mode != "L":
        raise RuntimeError(f"JPEG decodes to Pillow mode {image.mode}, not 8-bit greyscale L")
    width, height = image.size
    expected = (-(-width // scale), -(-height // scale))
    # Pillow picks the largest s in (8, 4, 2, 1) with size // requested >= s: asking for
    # floor(size / scale) yields exactly `scale`
    image.draft("L", (max(1, width // scale), max(1, height // scale)))
    image.load()
    if image.size != expected:
        raise RuntimeError(f"decoded {image.size}, expected {expected} at scale 1/{scale}")
    return np.asarray(image)


# ---- the entry point ------------------------------------------------------------------------


def _frame_bytes(ds: Dataset, frame: int, n_frames: int) -> bytes:
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return get_frame(ds.PixelData, frame, extended_offsets=extended, number_of_frames=n_frames)


def decode_reduced(
    ds: Dataset, path: str | Path, target_size: int, frame: int = 0
) -> ReducedPixels:
    """Stored values of one frame at the largest reduction keeping the longest side >= target.

    Call after the caller's own checks (pixel data present, MONOCHROME1/2, size bounds, frame
    index). Anything that stops a reduced decode is a fallback with a reason code; the two that
    point at a file or codec problem are logged as warnings naming the file.
    """
    meta = getattr(ds, "file_meta", None)
    tsuid = getattr(meta, "TransferSyntaxUID", None)
    if tsuid not in J2K_SYNTAXES and tsuid not in JPEG_SYNTAXES:
        return _fallback("not_offered", f"transfer syntax {tsuid}")
    try:
        if tsuid in J2K_SYNTAXES:
            result = _reduced_j2k(ds, target_size, frame)
        else:
            result = _reduced_jpeg(ds, target_size, frame)
    except Exception as exc:  # a header field of an unexpected type, a damaged encapsulation
        result = _fallback("reduced_decode_error", f"{type(exc).__name__}: {exc}")
    if result.fallback in WARN_REASONS:
        log.warning(
            "%s: %s not decoded at reduced resolution (%s: %s); decoding in full",
            Path(path).name,
            getattr(tsuid, "name", tsuid),
            result.fallback,
            result.detail,
        )
    return result


def _header_size(ds: Dataset) -> tuple[int, int]:
    return int(ds.Columns), int(ds.Rows)


def _reduced_j2k(ds: Dataset, target_size: int, frame_index: int) -> ReducedPixels:
    columns, rows = _header_size(ds)
    if -(-max(columns, rows) // 2) < target_size:
        return _fallback("already_small", f"{columns} x {rows} for a {target_size} target")
    frame = _frame_bytes(ds, frame_index, int(ds.get("NumberOfFrames", 1) or 1))
    try:
        info = parse_j2k_codestream(frame)
    except J2KHeaderError as exc:
        return _fallback("codec_limit", f"J2K codestream header: {exc}")
    if info.components != 1:
        return _fallback("codec_limit", f"{info.components} components in the codestream")
    mismatches = [
        f"{field} {header} in the header, {stream} in the codestream"
        for field, header, stream in (
            ("Columns", columns, info.width),
            ("Rows", rows, info.height),
            ("BitsStored", int(ds.get("BitsStored", 0) or 0), info.precision),
            ("PixelRepresentation", int(ds.get("PixelRepresentation", 0)), int(info.signed)),
            ("component subsampling", (1, 1), info.subsampling),
        )
        if header != stream
    ]
    if mismatches:
        return _fallback("header_mismatch", "; ".join(mismatches))
    if info.levels == 0:
        return _fallback("codec_limit", "the codestream has no decomposition levels")
    reduce = j2k_reduction(info, target_size)
    if reduce == 0:
        return _fallback("already_small", f"{info.levels} levels, {target_size} target")
    try:
        pixels = decode_j2k_reduced(frame, info, reduce)
    except Exception as exc:  # Pillow and OpenJPEG raise OSError, ValueError and others
        return _fallback("reduced_decode_error", f"reduce={reduce}: {type(exc).__name__}: {exc}")
    return ReducedPixels(pixels, f"j2k_reduce_{reduce}")


def _reduced_jpeg(ds: Dataset, target_size: int, frame_index: int) -> ReducedPixels:
    columns, rows = _header_size(ds)
    scale = jpeg_scale(columns, rows, target_size)
    if scale == 1:
        return _fallback("already_small", f"{columns} x {rows} for a {target_size} target")
    bits_stored = int(ds.get("BitsStored", 0) or 0)
    if not 0 < bits_stored <= 8:
        return _fallback(
            "codec_limit", f"BitsStored {bits_stored}: Pillow's libjpeg decodes 8-bit JPEG only"
        )
    if int(ds.get("PixelRepresentation", 0)) != 0:
        return _fallback("codec_limit", "PixelRepresentation 1 (signed) JPEG")
    try:
        frame = _frame_bytes(ds, frame_index, int(ds.get("NumberOfFrames", 1) or 1))
        image = _open(frame, "JPEG")
    except Exception as exc:  # a 12-bit SOF that BitsStored hid, or a damaged stream
        return _fallback("reduced_decode_error", f"{type(exc).__name__}: {exc}")
    if image.size != (columns, rows) or image.mode != "L":
        return _fallback(
            "header_mismatch",
            f"Columns x Rows {columns} x {rows}, the JPEG frame is "
            f"{image.size[0]} x {image.size[1]} in Pillow mode {image.mode}",
        )
    try:
        pixels = _draft_load(image, scale)
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError and others
        return _fallback("reduced_decode_error", f"scale 1/{scale}: {type(exc).__name__}: {exc}")
    return ReducedPixels(pixels.astype(pixel_dtype(ds)), f"jpeg_draft_{scale}")
