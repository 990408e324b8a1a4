"""DICOM encoding: how a display image becomes stored values, and the file's header.

`sample_encoding` draws a vendor-like encoding (bit depth, rescale, window, photometric
interpretation, transfer syntax), `encode_image` applies it, and `build_dataset` writes the
CR or DX header around the pixels, with UIDs derived from the spec's digest and the counters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, generate_uid

from medrep.data.synthetic.nuisance import ImageNuisance
from medrep.data.synthetic.reports import exam_description
from medrep.data.synthetic.spec import MM_PER_UNIT, StudyPlan, choose

_CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
_DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
# A fixed implementation identity, so that the bytes do not depend on the installed pydicom.
_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1.77"
_IMPLEMENTATION_NAME = "MEDREP_SYNTH"
# Fictional vendors.
_MANUFACTURERS = ("ACME IMAGING", "LUMEN RADIOGRAPHY", "NORTHWIND MEDICAL")


@dataclass(frozen=True)
class ImageEncoding:
    """How a display image becomes stored values.

    Display 0..1 maps linearly onto stored values low..high (MONOCHROME2) or high..low
    (MONOCHROME1); the window, in rescaled (modality) units, covers that range up to a small
    jitter, so modality LUT -> window -> [0, 1] -> MONOCHROME1 inversion gives the display
    image back. `window=None` leaves the file without a VOI (a decoder must pick a window).
    """

    # (a record of plain fields: WorldSpec, ImageNuisance, ImageEncoding and AugmentConfig have
    # the same shape of `name: type = value` lines, which `duplicates` pairs; different records)
    modality: str = "DX"
    photometric: str = "MONOCHROME2"
    bits_stored: int = 12
    slope: float = 1.0
    intercept: float = 0.0
    low: int = 0
    high: int = 4095
    window: tuple[float, float] | None = (2048.0, 4096.0)
    implicit_vr: bool = False
    manufacturer: str = _MANUFACTURERS[0]


def sample_encoding(rng: np.random.Generator) -> ImageEncoding:
    bits = int(choose(rng, (8, 10, 12, 14, 16), (0.15, 0.2, 0.3, 0.2, 0.15)))
    top = 2**bits - 1
    slope = float(choose(rng, (1.0, 1.0, 0.5, 2.0)))
    r = rng.random()
    intercept = 0.0 if r < 0.6 else -float(2 ** (bits - 4)) if r < 0.8 else -float(2 ** (bits - 1))
    low = int(round(rng.uniform(0.0, 0.12) * top))
    high = int(round(rng.uniform(0.85, 1.0) * top))
    window: tuple[float, float] | None = None
    if rng.random() < 0.9:
        modality_low, modality_high = slope * low + intercept, slope * high + intercept
        span = modality_high - modality_low
        lo = modality_low + float(rng.uniform(-0.03, 0.03)) * span
        hi = modality_high + float(rng.uniform(-0.03, 0.03)) * span
        window = (round((lo + hi) / 2 + 0.5, 2), round(hi - lo + 1, 2))
    return ImageEncoding(
        modality="DX" if rng.random() < 0.5 else "CR",
        photometric="MONOCHROME1" if rng.random() < 1 / 3 else "MONOCHROME2",
        bits_stored=bits,
        slope=slope,
        intercept=intercept,
        low=low,
        high=high,
        window=window,
        implicit_vr=bool(rng.random() < 0.2),
        manufacturer=choose(rng, _MANUFACTURERS),
    )


def encode_image(image: np.ndarray, enc: ImageEncoding) -> np.ndarray:
    """Display image [0, 1] -> stored values (uint8 for 8 bits stored, else uint16)."""
    span = enc.high - enc.low
    x = np.clip(image, 0, 1).astype(np.float32)  # exact enough for 16 bits (24-bit mantissa)
    stored = enc.low + x * span if enc.photometric == "MONOCHROME2" else enc.high - x * span
    dtype = np.uint8 if enc.bits_stored == 8 else np.uint16
    return np.clip(np.rint(stored), 0, 2**enc.bits_stored - 1).astype(dtype)


def _decimal_string(value: float) -> str:
    """A Decimal String value with at most 16 characters and no float noise."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def image_uids(spec_digest: str, study_idx: int, image_idx: int) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID), deterministic from the spec and the counters."""
    series = generate_uid(entropy_srcs=[spec_digest, "series", str(study_idx), str(image_idx)])
    sop = generate_uid(entropy_srcs=[spec_digest, "sop", str(study_idx), str(image_idx)])
    return str(series), str(sop)


def _file_meta(sop_class: str, sop_uid: str, enc: ImageEncoding) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(_IMPLICIT_LE if enc.implicit_vr else _EXPLICIT_LE)
    meta.ImplementationClassUID = UID(_IMPLEMENTATION_UID)
    meta.ImplementationVersionName = _IMPLEMENTATION_NAME
    return meta


def _set_pixels(ds: Dataset, stored: np.ndarray, enc: ImageEncoding) -> None:
    """Pixel data, the modality LUT (rescale), the VOI window and the presentation LUT."""
    ds.set_pixel_data(stored, enc.photometric, enc.bits_stored, generate_instance_uid=False)
    ds.RescaleIntercept = _decimal_string(enc.intercept)
    ds.RescaleSlope = _decimal_string(enc.slope)
    ds.RescaleType = "US"
    if enc.window is not None:
        ds.WindowCenter = _decimal_string(enc.window[0])
        ds.WindowWidth = _decimal_string(enc.window[1])
        ds.VOILUTFunction = "LINEAR"
    if enc.modality == "DX":
        # DX for presentation states the inversion of MONOCHROME1 again here (PS3.3 C.8.11.6):
        # it is the same inversion, not a second one.
        ds.PresentationLUTShape = "INVERSE" if enc.photometric == "MONOCHROME1" else "IDENTITY"


def build_dataset(
    study: StudyPlan,
    image_idx: int,
    nuisance: ImageNuisance,
    enc: ImageEncoding,
    stored: np.ndarray,
    spec_digest: str,
) -> Dataset:
    """The DICOM dataset of one image: header from the study plan, pixels as `enc` stores them."""
    series_uid, sop_uid = image_uids(spec_digest, study.study_idx, image_idx)
    sop_class = _DX_PRESENTATION_STORAGE if enc.modality == "DX" else _CR_STORAGE
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid, enc)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession
    ds.Modality = enc.modality
    if enc.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = enc.manufacturer
    ds.InstitutionName = study.patient.institution
    ds.ReferringPhysicianName = study.referring
    ds.StudyDescription = exam_description(study)
    ds.SeriesDescription = f"CHEST {nuisance.view}"
    ds.PatientName = study.patient.name
    ds.PatientID = study.patient.patient_id
    ds.PatientBirthDate = study.patient.birth_date
    ds.PatientSex = study.patient.sex
    ds.PatientAge = f"{min(study.age, 999):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = nuisance.view
    ds.PatientOrientation = ["P", "F"] if nuisance.view == "LL" else ["L", "F"]
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ""
    ds.SeriesNumber = image_idx + 1
    ds.InstanceNumber = 1
    spacing = _decimal_string(
        MM_PER_UNIT / (0.5 * max(nuisance.rows, nuisance.cols) * nuisance.scale)
    )
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    _set_pixels(ds, stored, enc)
    return ds
