"""Open a finished run for exploration, wherever it was made and wherever it has moved.

A run folder holds its embeddings, results and config; the images it shows come from its
ingestion folder, found from what the run recorded: the absolute path, then the same path
relative to the run folder (a run copied together with its ingestion folder), then, for runs
recorded before both were kept, the config's path relative to the folder the command started
in (Hydra's `runtime.cwd`) or to any folder above the run. Without an ingestion folder the run
still opens: its results and embeddings are there, its labels and images are not.

    from medrep.evaluation.explore import find_run, open_run
    run = open_run(find_run())          # MEDREP_RUN_DIR, or the newest run under outputs/
    run.results; run.embeddings("convirt", "test"); run.labels; run.image(key)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medrep.data.cache import ImageCache
from medrep.evaluation.embeddings import load_embeddings

RUN_DIR_ENV = "MEDREP_RUN_DIR"
INGEST_DIR_ENV = "MEDREP_INGEST_DIR"
RECORD_NAME = "run_record.json"


def find_run(start: str | Path | None = None) -> Path:
    """The run to explore: `MEDREP_RUN_DIR`, else the newest finished run (one with
    `eval/results.csv`; sweep jobs included) under the `outputs/` of the repository that holds
    `start` (default: the working directory, e.g. `notebooks/` where Jupyter starts a kernel)."""
    if os.environ.get(RUN_DIR_ENV):
        run = Path(os.environ[RUN_DIR_ENV]).expanduser()
        if not run.is_dir():
            raise FileNotFoundError(f"{RUN_DIR_ENV}={run} is not a folder")
        return run.resolve()
    here = Path(start or Path.cwd()).resolve()
    configured = os.environ.get("MEDREP_OUTPUT_DIR")  # conf/paths/default.yaml's variable
    places = [(Path(configured).expanduser(), True)] if configured else []
    places += [
        (folder / "outputs", (folder / "pyproject.toml").exists())
        for folder in (here, *here.parents)
    ]
    for outputs, is_repository in places:
        if outputs.is_dir() and is_repository:
            finished = [
                *outputs.glob("runs/*/*/eval/results.csv"),
                *outputs.glob("multirun/*/*/*/eval/results.csv"),
            ]
            if finished:
                return max(finished, key=lambda p: p.stat().st_mtime).parents[1]
            raise FileNotFoundError(
                f"no finished run under {outputs}: run `make demo`, or set {RUN_DIR_ENV} to a "
                "run folder (a sweep job's folder works too)"
            )
    raise FileNotFoundError(
        f"no repository outputs/ above {here}: set {RUN_DIR_ENV} to a run folder"
    )


@dataclass
class ExploredRun:
    """A run folder's results, embeddings and config, and its ingestion's tables and images.

    Attributes:
        run_dir: the run folder.
        config: the run's saved config (plain values).
        record: the run record (stages, outputs, recorded paths).
        ingest_dir: the ingestion folder, None when it cannot be found.
    """

    run_dir: Path
    config: dict[str, Any]
    record: dict[str, Any]
    ingest_dir: Path | None
    _cache: ImageCache | None = field(default=None, repr=False)

    @property
    def results(self) -> pd.DataFrame | None:
        path = self.run_dir / "eval" / "results.csv"
        return pd.read_csv(path) if path.exists() else None

    @property
    def methods(self) -> list[str]:
        """Methods with exported embeddings (the pretrained one and the baselines)."""
        folder = self.run_dir / "embeddings"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "test.npz").exists())

    def embeddings(self, method: str, split: str) -> dict[str, np.ndarray]:
        """`embeddings/<method>/<split>.npz` (split: train, val, test, queries, prompts)."""
        path = self.run_dir / "embeddings" / method / f"{split}.npz"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such embeddings; methods: {self.methods}")
        return load_embeddings(path)

    def _ingest_file(self, name: str) -> Path:
        if self.ingest_dir is None:
            raise FileNotFoundError(
                f"the ingestion folder of {self.run_dir} was not found (recorded: "
                f"{recorded_ingest_dir(self.record, self.config)}); copy it beside the run as "
                f"it was, or set {INGEST_DIR_ENV}"
            )
        return self.ingest_dir / name

    @cached_property
    def labels(self) -> pd.DataFrame:
        """The evaluation labels by pseudonymous `study_key`."""
        return pd.read_parquet(self._ingest_file("labels.parquet")).set_index("study_key")

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return pd.read_parquet(self._ingest_file("manifest.parquet")).set_index("image_key")

    @property
    def has_images(self) -> bool:
        return self.ingest_dir is not None and (self.ingest_dir / "cache").is_dir()

    def image(self, image_key: str) -> np.ndarray:
        """A cached image, float32 [H, W] in [0, 1], by its pseudonymous key."""
        if self._cache is None:
            self._cache = ImageCache(
                self._ingest_file("cache"),
                manifest_sha256=self.record.get("input_manifest_sha256"),
            )
        return self._cache.image(int(self.manifest.loc[image_key, "cache_index"]))


def open_run(path: str | Path, ingest_dir: str | Path | None = None) -> ExploredRun:
    """Open a run folder (see the module docstring for how its ingestion folder is found);
    `ingest_dir` (or `MEDREP_INGEST_DIR`) names the ingestion folder outright."""
    run_dir = Path(path).expanduser().resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run folder")
    record_path = run_dir / RECORD_NAME
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    config = _saved_config(run_dir)
    chosen = ingest_dir or os.environ.get(INGEST_DIR_ENV)
    found = Path(chosen).expanduser() if chosen else locate_ingest_dir(run_dir, record, config)
    return ExploredRun(run_dir, config, record, found if found and found.is_dir() else None)


def _saved_config(run_dir: Path) -> dict[str, Any]:
    for path in (run_dir / "resolved_config.yaml", run_dir / "pretrain" / "config.yaml"):
        if path.exists():
            return yaml.safe_load(path.read_text()) or {}
    return {}


def recorded_ingest_dir(record: dict[str, Any], config: dict[str, Any]) -> str:
    recorded = (record.get("paths") or {}).get("ingest_dir") or {}
    return str(recorded.get("absolute") or (config.get("paths") or {}).get("ingest_dir"))


def locate_ingest_dir(run_dir: Path, record: dict[str, Any], config: dict[str, Any]) -> Path | None:
    """The ingestion folder: recorded absolute path, recorded path relative to the run, then
    the config's path against the launch folder or any folder above the run."""
    recorded = (record.get("paths") or {}).get("ingest_dir") or {}
    candidates: list[Path] = []
    if recorded.get("absolute"):
        candidates.append(Path(recorded["absolute"]))
    if recorded.get("relative_to_run"):
        candidates.append(run_dir / recorded["relative_to_run"])
    configured = (config.get("paths") or {}).get("ingest_dir")
    if configured:
        configured_path = Path(configured)
        if configured_path.is_absolute():
            candidates.append(configured_path)
        else:
            launch = _launch_dir(run_dir)
            if launch is not None:
                candidates.append(launch / configured_path)
            candidates += [folder / configured_path for folder in run_dir.parents]
    wanted = record.get("input_manifest_sha256")
    for candidate in candidates:
        if (candidate / "manifest.parquet").exists() and _same_manifest(candidate, wanted):
            return candidate.resolve()
    return None


def _same_manifest(ingest_dir: Path, wanted: str | None) -> bool:
    """Whether the folder still holds the manifest the run used (a shared ingestion folder is
    rebuilt in place when its inputs change): unknown counts as the same."""
    summary = ingest_dir / "ingest_summary.json"
    if not wanted or not summary.exists():
        return True
    try:
        return json.loads(summary.read_text()).get("manifest_sha256") in (None, wanted)
    except (OSError, ValueError):
        return False


def _launch_dir(run_dir: Path) -> Path | None:
    """The folder the run's command started in (Hydra's runtime.cwd), when recorded."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.exists():
        return None
    try:
        saved = yaml.safe_load(hydra_file.read_text()) or {}
    except yaml.YAMLError:
        return None
    cwd = ((saved.get("hydra") or {}).get("runtime") or {}).get("cwd")
    return Path(cwd) if cwd else None


def path_record(value: str | Path, run_dir: str | Path) -> dict[str, str]:
    """A path as a run records it: absolute, and relative to the run folder."""
    absolute = os.path.abspath(value)
    return {
        "absolute": absolute,
        "relative_to_run": os.path.relpath(absolute, os.path.abspath(run_dir)),
    }
