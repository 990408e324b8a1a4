"""Opening a run for exploration: finding it, finding its ingestion folder after a move, and the
notebook executed the way a user runs it (kernel in notebooks/, a run made with relative paths,
then the run copied elsewhere, with and without its ingestion folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from medrep.evaluation.explore import find_run, open_run, path_record
from tests.helpers import REPO, execute_notebook


def fake_ingest(folder: Path) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame({"image_key": ["k"], "cache_index": [0]}).to_parquet(folder / "manifest.parquet")
    pd.DataFrame({"study_key": ["s"], "Edema": [1.0]}).to_parquet(folder / "labels.parquet")
    return folder


def fake_run(folder: Path, record: dict | None = None, config: dict | None = None) -> Path:  # type: ignore[type-arg]
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "results.csv").write_text("task,metric,value\n")
    (folder / "run_record.json").write_text(json.dumps(record or {}))
    if config is not None:
        import yaml

        (folder / "resolved_config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_a_moved_run_finds_its_ingestion_folder_by_the_recorded_relative_path(
    tmp_path: Path,
) -> None:
    made = tmp_path / "server" / "outputs"
    record = {"paths": {"ingest_dir": path_record(made / "ingest" / "x", made / "runs" / "r")}}
    moved = tmp_path / "laptop" / "outputs"
    ingest = fake_ingest(moved / "ingest" / "x")
    run = open_run(fake_run(moved / "runs" / "r", record))
    assert run.ingest_dir == ingest.resolve()
    assert list(run.labels.index) == ["s"]


def test_an_old_run_with_a_relative_config_path_is_found_from_its_launch_folder(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    ingest = fake_ingest(site / "outputs" / "ingest" / "x")
    run_dir = fake_run(
        site / "outputs" / "runs" / "demo" / "t",
        config={"paths": {"ingest_dir": "./outputs/ingest/x"}},
    )
    # without a run record's paths: the config's relative path, against the folders above
    assert open_run(run_dir).ingest_dir == ingest.resolve()


def test_a_run_without_its_ingestion_folder_opens_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDREP_INGEST_DIR", raising=False)
    run = open_run(fake_run(tmp_path / "r", {}, {"paths": {"ingest_dir": "/gone/ingest"}}))
    assert run.ingest_dir is None and not run.has_images
    assert run.results is not None
    with pytest.raises(FileNotFoundError, match="MEDREP_INGEST_DIR"):
        run.labels  # noqa: B018
    ingest = fake_ingest(tmp_path / "given")
    assert open_run(run.run_dir, ingest_dir=ingest).ingest_dir == ingest


def test_the_newest_finished_run_of_the_repository_is_found_from_a_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDREP_RUN_DIR", raising=False)
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    with pytest.raises(FileNotFoundError, match="make demo"):
        (repo / "outputs").mkdir()
        find_run(repo / "notebooks")
    older = fake_run(repo / "outputs" / "runs" / "demo" / "a")
    time.sleep(0.02)
    job = fake_run(repo / "outputs" / "multirun" / "demo" / "b" / "3")
    (repo / "outputs" / "runs" / "demo" / "c").mkdir()  # unfinished: no results
    assert find_run(repo / "notebooks") == job
    os.utime(older / "eval" / "results.csv")
    assert find_run(repo / "notebooks") == older
    monkeypatch.setenv("MEDREP_RUN_DIR", str(job))
    assert find_run(repo / "notebooks") == job.resolve()


def figures(outputs: list) -> int:  # type: ignore[type-arg]
    return sum(o.output_type == "display_data" for o in outputs)


def printed(outputs: list) -> str:  # type: ignore[type-arg]
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


@pytest.mark.slow  # the tiny chain once, then three notebook executions
def test_the_notebook_runs_as_a_user_runs_it_and_after_the_run_moved(tmp_path: Path) -> None:
    # a checkout where `make demo`-style relative paths put everything under ./outputs
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pipelines.run", "experiment=tiny"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (repo / "outputs" / "runs" / "tiny").iterdir()
    saved = (run_dir / "resolved_config.yaml").read_text()
    assert f"ingest_dir: {repo / 'outputs'}" in saved  # recorded absolute, not ./outputs

    # 1. kernel in notebooks/, nothing set: the newest run of this checkout
    outputs = execute_notebook(repo / "notebooks", {})
    assert str(run_dir) in printed(outputs) and figures(outputs) >= 4

    # 2. the run and its ingestion folder copied to another machine's folder, the original gone
    elsewhere = tmp_path / "laptop"
    shutil.copytree(repo / "outputs", elsewhere / "outputs", symlinks=True)
    shutil.rmtree(repo / "outputs")
    moved = elsewhere / "outputs" / "runs" / "tiny" / run_dir.name
    outputs = execute_notebook(tmp_path, {"MEDREP_RUN_DIR": str(moved)})
    assert str(elsewhere / "outputs" / "ingest") in printed(outputs) and figures(outputs) >= 4

    # 3. the run folder alone: curves and similarities, and the cells that need images say so
    alone = tmp_path / "alone" / run_dir.name
    shutil.copytree(moved, alone)
    shutil.rmtree(elsewhere / "outputs" / "ingest")
    outputs = execute_notebook(tmp_path, {"MEDREP_RUN_DIR": str(alone)})
    text = printed(outputs)
    assert "ingestion folder: not found" in text and "needs the run's ingestion folder" in text
    assert figures(outputs) >= 2
