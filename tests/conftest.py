"""Fixtures: DICOMs written by the tests, the real-data folder, the tiny world ingested once.

The builders behind them are plain functions in tests/helpers.py, which test modules import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, IngestedWorld, compose_config, write_dicom

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real DICOMs and reports); the test skips cleanly when it is absent."""
    if not (SHARED_DATA / "dicom").is_dir():
        pytest.skip("../shared/data is not present (real-data tests run where it is)")
    return SHARED_DATA


@pytest.fixture
def dicom_writer() -> Callable[..., Path]:
    return write_dicom


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> IngestedWorld:
    """The tiny experiment's synthetic world, generated and ingested once for the session.

    Read-only for the tests that take it: a test that trains or evaluates composes its own run
    folder with `tiny_world.overrides()`; a test that ingests or changes data writes its own.
    """
    from pipelines.ingest import run_ingest

    root = tmp_path_factory.mktemp("tiny_world")
    cfg = compose_config(root)
    summary = run_ingest(cfg)
    return IngestedWorld(Path(cfg.paths.data_dir), Path(cfg.paths.ingest_dir), summary)
