"""Ingestion throughput against the decode limit and two baselines, measured side by side.

    .venv/bin/python benchmarks/ingest.py [--dicom-dir ../shared/data/dicom] [--repeat 3]

Per file, in one process (the same files, interleaved so machine noise hits all alike):
  decode limit   pydicom.dcmread(f).pixel_array (what decoding alone costs)
  medrep         read_dicom + decode_dataset (modality LUT, VOI, MONOCHROME1) + resize + quantise
  naive          dcmread().pixel_array, min-max scaling, area resize (peers' path, wrong for VOI)
  MONAI          LoadImage(reader="PydicomReader") + Resize (no VOI, no MONOCHROME1)
then whole-pipeline throughput of `run_ingestion` with 1 and 2 processes.
Targets (issue 3): medrep <= 1.2x the decode limit; >= 1.7x faster with 2 processes than 1;
never slower than either baseline. Absolute times are context only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.dicom import DecodeOptions, decode_dataset, read_dicom
from medrep.data.images import quantize, resize_pad
from medrep.data.ingest import IngestConfig, run_ingestion

SIZE = 256


def decode_limit(path: Path) -> None:
    pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the point


def medrep_path(path: Path) -> None:
    ds, _ = read_dicom(path)
    quantize(resize_pad(decode_dataset(ds, path, DecodeOptions()), SIZE))


def naive_path(path: Path) -> None:
    arr = pydicom.dcmread(path).pixel_array.astype(np.float32)
    arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-6)
    F.interpolate(torch.from_numpy(arr)[None, None], size=(SIZE, SIZE), mode="area")


def monai_path(path: Path) -> None:
    from monai.transforms import LoadImage, Resize

    image = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True)(str(path))
    Resize(spatial_size=(SIZE, SIZE))(image)


class RecordsAdapter:
    name = "benchmark"

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def images(self):  # type: ignore[no-untyped-def]
        for i, f in enumerate(self.files):
            yield ImageRecord(
                path=str(f),
                source=f"{i:05d}-{f.name}",
                study_key=f"s{i}",
                patient_id=f"p{i}",
                image_id=f"i{i}",
                view="PA",
            )

    def reports(self):  # type: ignore[no-untyped-def]
        for i in range(len(self.files)):
            yield ReportRecord(f"s{i}", "IMPRESSION: No acute process.", f"r{i}")

    def labels(self) -> None:
        return None


def pipeline_seconds(files: list[Path], workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="medrep-bench-"))
    try:
        cfg = IngestConfig(
            out_dir=str(out),
            secret="bench",
            image_size=SIZE,
            modalities=(),
            views=(),
            workers=workers,
            chunk_size=4,
            progress=False,
        )
        start = time.perf_counter()
        summary = run_ingestion(cfg, RecordsAdapter(files))
        elapsed = time.perf_counter() - start
        assert summary["cached"] == len(files), summary
        return elapsed
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_dir = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
    parser.add_argument("--dicom-dir", type=Path, default=default_dir)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = sorted(
        f for f in args.dicom_dir.glob("*.dcm") if f.name != "RG2_JPLY.dcm"
    )  # the broken one
    if not files:
        raise SystemExit(f"no DICOM files in {args.dicom_dir}")
    paths = {
        "decode limit": decode_limit,
        "medrep": medrep_path,
        "naive": naive_path,
        "MONAI": monai_path,
    }
    for fn in paths.values():  # warm-up: imports, plugin discovery
        fn(files[0])
    times: dict[str, dict[str, float]] = {name: {} for name in paths}
    for _ in range(args.repeat):
        for f in files:
            for name, fn in paths.items():
                start = time.perf_counter()
                fn(f)
                times[name][f.name] = (
                    times[name].get(f.name, 0.0) + (time.perf_counter() - start) / args.repeat
                )

    print(
        f"machine: {os.cpu_count()} cores; torch threads 1; target size {SIZE}; {len(files)} files x {args.repeat}"
    )
    print(f"{'file':52s} {'syntax':38s}" + "".join(f"{n:>13s}" for n in paths) + "   medrep/limit")
    for f in files:
        syntax = pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID.name[:37]
        cells = "".join(f"{1e3 * times[n][f.name]:11.1f}ms" for n in paths)
        print(
            f"{f.name:52s} {syntax:38s}{cells}   {times['medrep'][f.name] / times['decode limit'][f.name]:6.2f}x"
        )
    total = {n: sum(t.values()) for n, t in times.items()}
    print("total per pass" + " " * 77 + "".join(f"{1e3 * total[n]:11.1f}ms" for n in paths))
    ratio = total["medrep"] / total["decode limit"]
    print(
        f"\nmedrep / decode limit = {ratio:.2f}x (target <= 1.20): {'MET' if ratio <= 1.2 else 'MISSED'}"
    )
    for base in ("naive", "MONAI"):
        r = total[base] / total["medrep"]
        print(
            f"{base} / medrep = {r:.2f}x (target >= 1.00, never slower): {'MET' if r >= 1.0 else 'MISSED'}"
        )

    batch = files * max(2, 24 // len(files))
    one = pipeline_seconds(batch, 1)
    two = pipeline_seconds(batch, 2)
    print(
        f"\nrun_ingestion on {len(batch)} files: 1 process {len(batch) / one:.1f} files/s, 2 processes {len(batch) / two:.1f} files/s"
    )
    print(
        f"speed-up with 2 processes = {one / two:.2f}x (target >= 1.70): {'MET' if one / two >= 1.7 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
