"""Fuzzing the DICOM reader: mutated bytes of valid files never crash it or hang it.

Whatever the bytes, `read_dicom` followed by `decode_dataset_image` (what ingestion runs per
file) either returns a finite display image in [0, 1] or raises the reader's own typed
`IngestError` with a reason code (which ingestion ledgers); anything else would end a batch job.
Each example runs under a per-file time limit. The suite runs a bounded number of examples;
`MEDREP_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_dicom.py` runs a longer campaign.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrep.data.dicom import DecodeOptions, decode_dataset_image, read_dicom
from medrep.data.errors import IngestError
from tests.helpers import SHARED_DATA, write_dicom

EXAMPLES = int(os.environ.get("MEDREP_FUZZ_EXAMPLES", "60"))
PER_FILE_SECONDS = 20
# real files in the encodings hospitals send (small enough to decode many times)
REAL = ["SIIM_chest_PA_jpeg_baseline.dcm", "RG3_J2KR.dcm", "RG2_JLSL.dcm", "RG2_JPLL.dcm"]


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def _raise(signum, frame):  # type: ignore[no-untyped-def]
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _mutations() -> st.SearchStrategy:
    edits = st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12
    )
    return st.tuples(
        st.booleans(),  # aim the edits at the header (the first 2 KiB) rather than anywhere
        edits,
        st.one_of(st.none(), st.floats(0, 1)),  # truncate at this share of the length
        st.one_of(st.none(), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64))),
    )


def _mutate(data: bytes, mutation: tuple) -> bytes:
    header, edits, cut, insert = mutation
    out = bytearray(data)
    span = min(len(out), 2048) if header else len(out)
    for where, value in edits:
        out[int(where * span)] = value
    if insert is not None:
        at = int(insert[0] * len(out))
        out[at:at] = insert[1]
    if cut is not None:
        out = out[: int(cut * len(out))]
    return bytes(out)


def _check(path: Path) -> str:
    """Run the per-file ingestion decode; the outcome's name."""
    with time_limit(PER_FILE_SECONDS):
        try:
            ds, _ = read_dicom(path)
            decoded = decode_dataset_image(ds, path, DecodeOptions(), target_size=64)
        except IngestError as err:
            assert err.reason, err
            return err.reason
    image = decoded.image
    assert image.ndim == 2 and image.size > 0
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    return "decoded"


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    root = tmp_path_factory.mktemp("fuzz_seeds")
    rng = np.random.default_rng(0)
    files = [
        write_dicom(root / "a.dcm", rng.integers(0, 4096, (48, 40)), window=(2048.0, 4096.0)),
        write_dicom(
            root / "b.dcm",
            rng.integers(0, 256, (32, 32)),
            bits_stored=8,
            implicit=True,
            photometric="MONOCHROME1",
            slope=2.0,
            intercept=-10.0,
        ),
    ]
    return [p.read_bytes() for p in files]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(which=st.integers(0, 1), mutation=_mutations())
def test_mutated_written_dicoms_decode_or_are_refused_with_a_reason(
    seed_files: list[bytes], tmp_path: Path, which: int, mutation: tuple
) -> None:
    path = tmp_path / "fuzz.dcm"
    path.write_bytes(_mutate(seed_files[which], mutation))
    _check(path)


@pytest.mark.realdata
@pytest.mark.slow
@settings(
    max_examples=max(8, EXAMPLES // 3),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(which=st.sampled_from(REAL), mutation=_mutations())
def test_mutated_real_dicoms_decode_or_are_refused_with_a_reason(
    tmp_path: Path, which: str, mutation: tuple
) -> None:
    source = SHARED_DATA / "dicom" / which
    if not source.exists():
        pytest.skip("../shared/data is not present (real-data tests run where it is)")
    path = tmp_path / "fuzz.dcm"
    path.write_bytes(_mutate(source.read_bytes(), mutation))
    _check(path)
