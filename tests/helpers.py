"""Builders the test modules share: paths, DICOM writers and encoders, Hydra configs, a fake
adapter, the loss family. Plain functions and classes; fixtures and hooks live in conftest.py."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.common import AdapterProblem
from medrep.models.losses import (
    CLIPLoss,
    ContrastiveLoss,
    ConVIRTDedupLoss,
    ConVIRTLoss,
    ConVIRTSoftLoss,
    DCLLoss,
    SigLIPLoss,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# --- Hydra configs ------------------------------------------------------------------------------


def compose(
    overrides: Sequence[str] = (),
    *,
    config_name: str = "config",
    return_hydra_config: bool = False,
) -> DictConfig:
    """The project's config (conf/) as Hydra composes it, outside any run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(
            config_name=config_name,
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )


def compose_config(
    tmp_path: Path,
    overrides: Sequence[str] = (),
    *,
    experiment: str | None = "tiny",
    config_name: str = "config",
) -> DictConfig:
    """The project's config with every path under `tmp_path`: the tiny experiment unless
    `experiment` names another (None: the demo's own sizes)."""
    chosen = [f"experiment={experiment}"] if experiment else []
    paths = [f"paths.root_dir={tmp_path}", f"paths.run_dir={tmp_path / 'run'}"]
    return compose([*chosen, *paths, *overrides], config_name=config_name)


@dataclass(frozen=True)
class IngestedWorld:
    """A synthetic world and its ingestion folder, written once and then only read."""

    data_dir: Path
    ingest_dir: Path
    summary: dict[str, Any]

    def overrides(self) -> list[str]:
        """Config overrides that point a run of the same data settings at this world."""
        return [f"paths.data_dir={self.data_dir}", f"paths.ingest_dir={self.ingest_dir}"]


# --- DICOM files --------------------------------------------------------------------------------


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


def encode_as(src: Path, dst: Path, syntax: str) -> Path:
    """Re-encode a 16-bit (or 8-bit for JPEG baseline) test DICOM in another transfer syntax."""
    import pydicom
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import (
        JPEG2000,
        ExplicitVRBigEndian,
        JPEG2000Lossless,
        JPEGBaseline8Bit,
        JPEGLSLossless,
        RLELossless,
    )

    ds = pydicom.dcmread(src)
    if syntax == "big_endian":
        pixels = ds.pixel_array  # read before the transfer syntax changes under it
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        ds.PixelData = pixels.byteswap().tobytes()
        dcmwrite(dst, ds, little_endian=False, implicit_vr=False, force_encoding=True)
        return dst
    if syntax == "jpeg_baseline":
        buf = io.BytesIO()
        Image.fromarray(ds.pixel_array.astype(np.uint8)).save(buf, format="JPEG", quality=95)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.save_as(dst)
        return dst
    uid = {
        "rle": RLELossless,
        "j2k_lossless": JPEG2000Lossless,
        "jpegls": JPEGLSLossless,
        "j2k_lossy": JPEG2000,
    }[syntax]
    ds.compress(uid, **({"j2k_cr": [10]} if syntax == "j2k_lossy" else {}))
    ds.save_as(dst)
    return dst


def lung_and_mediastinum(image: np.ndarray) -> tuple[float, float]:
    """Mean of both lung fields and of the central column, in the middle third of the height."""
    h, w = image.shape
    band = image[h // 3 : 2 * h // 3]
    lungs = np.concatenate(
        [band[:, int(w * 0.2) : int(w * 0.35)], band[:, int(w * 0.65) : int(w * 0.8)]], axis=1
    )
    centre = band[:, int(w * 0.46) : int(w * 0.54)]
    return float(lungs.mean()), float(centre.mean())


# --- a dataset adapter over explicit records ----------------------------------------------------


@dataclass
class ListAdapter:
    """A `DatasetAdapter` over explicit records (e.g. PNG exports keyed by a CSV, like
    MIMIC-CXR-JPG, or a corpus of bad files), with no labels and no problems of its own."""

    image_records: list[ImageRecord]
    report_records: list[ReportRecord]
    name: str = "list"
    problems: list[AdapterProblem] = field(default_factory=list)

    def images(self) -> Iterator[ImageRecord]:
        return iter(self.image_records)

    def reports(self) -> Iterator[ReportRecord]:
        return iter(self.report_records)

    def labels(self) -> None:
        return None


def tiny_chain(tmp_path: Path, *overrides: str) -> list[str]:
    """`python -m pipelines.run` on the tiny experiment, every path under `tmp_path`."""
    import sys

    return [
        sys.executable,
        "-m",
        "pipelines.run",
        "experiment=tiny",
        f"paths.root_dir={tmp_path}",
        *overrides,
    ]


# --- the notebook ---------------------------------------------------------------------------------


def execute_notebook(kernel_dir: Path, env: dict[str, str]) -> list:  # type: ignore[type-arg]
    """Execute notebooks/embedding_explorer.ipynb (the stored copy, which must have no outputs)
    with its kernel in `kernel_dir` and `env` set (MEDREP_RUN_DIR/MEDREP_INGEST_DIR unset unless
    given); its outputs, after checking none is an error."""
    import os

    import nbformat
    from nbclient import NotebookClient

    stored = nbformat.read(REPO / "notebooks" / "embedding_explorer.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code"), (
        "stored with outputs"
    )
    saved = {k: os.environ.get(k) for k in (*env, "MEDREP_RUN_DIR", "MEDREP_INGEST_DIR")}
    os.environ.pop("MEDREP_RUN_DIR", None)
    os.environ.pop("MEDREP_INGEST_DIR", None)
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend emits the figures
    try:
        NotebookClient(
            stored,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(kernel_dir)}},
        ).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    outputs = [o for c in stored.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], [
        o for o in outputs if o.output_type == "error"
    ]
    return outputs


# --- the loss family ----------------------------------------------------------------------------

# every contrastive loss of medrep.models.losses at the settings the tests use, by method name
LOSS_FAMILY: dict[str, Callable[[], ContrastiveLoss]] = {
    "convirt": lambda: ConVIRTLoss(0.1, 0.75),
    "clip": lambda: CLIPLoss(0.07),
    "dcl": lambda: DCLLoss(0.1, 0.75),
    "siglip": lambda: SigLIPLoss(10.0, -10.0),
    "convirt_dedup_mask": lambda: ConVIRTDedupLoss(0.1, 0.75, "mask"),
    "convirt_dedup_positive": lambda: ConVIRTDedupLoss(0.1, 0.75, "positive"),
    "convirt_soft": lambda: ConVIRTSoftLoss(0.1, 0.75, soft_weight=0.5, text_temperature=0.2),
}
