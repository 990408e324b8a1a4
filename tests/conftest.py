"""Shared fixtures: DICOMs written by the tests, the real-data folder, tiny Hydra configs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real DICOMs and reports); the test skips cleanly when it is absent."""
    if not (SHARED_DATA / "dicom").is_dir():
        pytest.skip("../shared/data is not present (real-data tests run where it is)")
    return SHARED_DATA


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    implicit: bool = False,
    view: str = "PA",
    modality: str = "DX",
    patient_id: str = "PAT0001",
    accession: str = "ACC0001",
    sop_uid: str | None = None,
    frames: int = 1,
    extra: dict[str, object] | None = None,
) -> Path:
    """Write a valid single-sample grayscale DICOM with the given stored pixel values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = (
        CTImageStorage if modality == "CT" else "1.2.840.10008.5.1.4.1.1.1.1"
    )
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.ViewPosition = view
    bits_allocated = 8 if bits_stored <= 8 else 16
    dtype = np.uint8 if bits_allocated == 8 else np.uint16
    arr = np.asarray(pixels).astype(dtype)
    ds.Rows, ds.Columns = arr.shape[-2], arr.shape[-1]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.PixelData = arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def dicom_writer() -> Callable[..., Path]:
    return write_dicom


def compose_config(tmp_path: Path, overrides: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    """The project's config with the tiny experiment, all paths under `tmp_path`."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                "experiment=tiny",
                f"paths.root_dir={tmp_path}",
                f"paths.run_dir={tmp_path / 'run'}",
                *overrides,
            ],
        )


@pytest.fixture
def tiny_cfg(tmp_path: Path):  # type: ignore[no-untyped-def]
    return compose_config(tmp_path)
