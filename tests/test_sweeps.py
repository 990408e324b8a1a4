"""Hydra multirun sweeps: a 2x2 grid collected into one table, and an Optuna search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, compose


def run(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_two_by_two_multirun_is_collected_into_one_table(tmp_path: Path) -> None:
    proc = run(
        [
            "-m",
            "experiment=tiny",
            f"paths.root_dir={tmp_path}",
            "loss.temperature=0.1,0.2",
            "seed=0,1",
        ]
    )
    sweeps = list((tmp_path / "outputs" / "multirun" / "tiny").iterdir())
    assert len(sweeps) == 1
    sweep = sweeps[0]
    table = pd.read_csv(sweep / "sweep_results.csv")
    assert set(table["job"].astype(str)) == {"0", "1", "2", "3"}
    # the swept `seed` is prefixed: results already have a (probe) seed column
    assert {"loss.temperature", "sweep.seed"} <= set(table.columns)
    combos = table[["loss.temperature", "sweep.seed"]].drop_duplicates().astype(str)
    assert len(combos) == 4
    markdown = (sweep / "sweep_results.md").read_text()
    assert "convirt [0.2, 1]" in markdown or "convirt [0.2, 1.0]" in markdown
    assert "sweep table" in proc.stdout
    # the sweep's label-efficiency curves, one line per method x setting (written only when the
    # table holds probe rows)
    assert (sweep / "sweep_label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    # jobs differing only in `seed` are combined over seeds: one section per temperature
    seeds = (sweep / "seeds.md").read_text()
    assert seeds.count("2 pretraining seeds (0, 1)") == 2
    assert "loss.temperature=0.1" in seeds and "loss.temperature=0.2" in seeds
    claims = pd.read_csv(sweep / "seed_claims.csv")
    assert set(claims["group"]) == {"loss.temperature=0.1", "loss.temperature=0.2"}
    assert claims["seed_sd"].notna().all() and claims["verdict"].notna().all()
    assert "over pretraining seeds" in proc.stdout
    # the four jobs shared one ingestion folder
    assert len(list((tmp_path / "outputs" / "ingest").iterdir())) == 1


@pytest.mark.slow
def test_optuna_searches_temperature_and_learning_rate(tmp_path: Path) -> None:
    run(
        [
            "-m",
            "sweep=optuna_tau_lr",
            "experiment=tiny",
            f"paths.root_dir={tmp_path}",
            "hydra.sweeper.n_trials=2",
        ]
    )
    sweeps = list((tmp_path / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    best = (sweeps[0] / "optimization_results.yaml").read_text()
    assert "best_params" in best and "loss.temperature" in best and "best_value" in best


def test_slurm_launcher_config_composes_with_ddp() -> None:
    """conf/hydra/launcher/slurm_ddp.yaml extends the submitit plugin's SLURM launcher."""
    cfg = compose(
        ["hydra/launcher=slurm_ddp", "trainer=ddp", "hydra.launcher.partition=gpu"],
        return_hydra_config=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu"
    # one task per GPU; trainer=ddp's devices=-1 takes the job's visible GPUs (= gpus_per_node)
    assert launcher.tasks_per_node == launcher.gpus_per_node
    assert cfg.trainer.devices in (-1, launcher.tasks_per_node)
    assert cfg.trainer.strategy == "ddp"


def test_collector_prints_the_chosen_metrics_one_column_per_job(tmp_path: Path) -> None:
    """`python -m pipelines.collect <sweep> --metrics ...` on two finished jobs (no training)."""
    for job, (loss, value) in enumerate([("convirt", 0.61), ("clip", 0.64)]):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n")
        (tmp_path / str(job) / "eval").mkdir()
        rows = [
            (loss, "linear_probe", 0.1, 0, "macro_auroc", value, value - 0.05, value + 0.05),
            (loss, "text_to_image", None, None, "P@10", value / 2, None, None),
        ]
        columns = ["method", "task", "label_fraction", "seed", "metric", "value"]
        frame = pd.DataFrame(rows, columns=[*columns, "ci_low", "ci_high"])
        frame.insert(0, "run", "losses")
        frame.to_csv(tmp_path / str(job) / "eval" / "results.csv", index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.collect", str(tmp_path), "--metrics", "macro_auroc"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert "convirt" in lines[0] and "clip" in lines[0]
    assert len(lines) == 3 and "macro_auroc" in lines[2] and "P@10" not in proc.stdout
    assert "0.610 [0.560, 0.660]" in lines[2] and "0.640 [0.590, 0.690]" in lines[2]
    assert (tmp_path / "sweep_results.csv").exists()
