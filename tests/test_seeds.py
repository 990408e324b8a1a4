"""Claims over pretraining seeds: cells written and read back, the two-stage bootstrap, the
seed spread, the grouping of sweep jobs that differ only in `seed`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medrep.evaluation.seeds import (
    RunCells,
    combine_seeds,
    read_cells,
    seed_claims,
    seeds_markdown,
    write_cells,
)
from medrep.evaluation.sweeps import seed_groups

CLAIMS = ["convirt@0.1 >= raw_pixels@1", "convirt@1 > raw_pixels@1"]


def run_cells(difference: float, noise: float, seed: int, resampling: str = "r") -> RunCells:
    """A run whose convirt cells lie `difference` above raw pixels' (0.70), with replicates of
    sd `noise`; raw pixels do not depend on the pretraining seed (identical in every run)."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).normal(0.70, noise, 1000)  # the shared test resamples
    convirt = base + difference + rng.normal(0.0, noise / 4, 1000)
    return RunCells(
        point={
            ("convirt", 0.1): 0.70 + difference,
            ("convirt", 1.0): 0.70 + difference,
            ("raw_pixels", 1.0): 0.70,
        },
        replicates={
            ("convirt", 0.1): convirt,
            ("convirt", 1.0): convirt,
            ("raw_pixels", 1.0): base,
        },
        claims=CLAIMS,
        level=0.95,
        margin=0.0,
        resampling=resampling,
    )


def test_cells_round_trip(tmp_path: Path) -> None:
    cells = run_cells(0.03, 0.02, 0)
    back = read_cells(write_cells(tmp_path / "eval" / "cells.npz", cells))
    assert back.point == cells.point
    assert set(back.replicates) == set(cells.replicates)
    for cell, reps in cells.replicates.items():
        np.testing.assert_array_equal(back.replicates[cell], reps)
    assert (back.claims, back.level, back.margin, back.resampling) == (CLAIMS, 0.95, 0.0, "r")


def test_identical_seeds_combine_into_the_single_run() -> None:
    one = run_cells(0.03, 0.02, 0)
    point, reps = combine_seeds([one, one, one])
    assert point == pytest.approx(one.point)
    for cell in one.replicates:
        np.testing.assert_allclose(reps[cell], one.replicates[cell])


def test_between_seed_variance_widens_the_bounds() -> None:
    # one seed alone shows the claim clearly; the three seeds disagree, so over seeds it is
    # not shown, and the spread says why
    runs = [run_cells(d, 0.01, s) for s, d in enumerate((0.06, 0.0, -0.05))]
    alone = seed_claims([runs[0], runs[0]])
    assert set(alone["verdict"]) == {"shown"}
    table = seed_claims(runs).set_index("claim")
    row = table.loc["convirt@1 > raw_pixels@1"]
    assert row["verdict"] == "not shown"
    assert row["difference"] == pytest.approx(np.mean([0.06, 0.0, -0.05]))
    assert row["bound"] < -0.03 < 0.04 < row["upper"]  # about the worst and best seeds
    assert row["seed_sd"] == pytest.approx(np.std([0.06, 0.0, -0.05], ddof=1))
    assert (row["seed_min"], row["seed_max"]) == pytest.approx((-0.05, 0.06))
    # seeds that agree: shown over seeds too
    agree = seed_claims([run_cells(0.05, 0.01, s) for s in range(3)])
    assert set(agree["verdict"]) == {"shown"}


def test_runs_resampled_differently_are_refused() -> None:
    with pytest.raises(ValueError, match="resampled differently"):
        combine_seeds([run_cells(0.0, 0.01, 0, "a"), run_cells(0.0, 0.01, 1, "b")])
    with pytest.raises(ValueError, match="at least two"):
        combine_seeds([run_cells(0.0, 0.01, 0)])


def test_seeds_report_prints_spread_and_two_stage_interval() -> None:
    runs = [run_cells(d, 0.01, s) for s, d in enumerate((0.06, 0.0, -0.05))]
    frames = {
        s: pd.DataFrame(
            {
                "run": "r",
                "method": ["convirt", "raw_pixels"],
                "task": "linear_probe",
                "label_fraction": 1.0,
                "seed": 0,
                "metric": "macro_auroc",
                "value": [0.70 + d, 0.70],
                "ci_low": np.nan,
                "ci_high": np.nan,
            }
        )
        for s, d in enumerate((0.06, 0.0, -0.05))
    }
    text = seeds_markdown("loss=convirt", frames, runs)
    assert "3 pretraining seeds (0, 1, 2)" in text
    assert "0.703 ± 0.055 [" in text  # mean ± sd over seeds, then the two-stage interval
    assert "| convirt@1 > raw_pixels@1 | 0.703 | 0.700 | +0.003 |" in text
    assert "0.055 [-0.050, +0.060] |" in text  # the seed spread column


def test_seed_groups_join_jobs_that_differ_only_in_seed() -> None:
    overrides = {
        "0": {"loss.temperature": "0.1", "seed": "0"},
        "1": {"loss.temperature": "0.1", "seed": "1"},
        "2": {"loss.temperature": "0.2", "seed": "0"},
        "3": {"loss.temperature": "0.2", "seed": "1"},
        "4": {"loss.temperature": "0.3", "seed": "0"},  # one seed: no group
        "5": {"loss.temperature": "0.4"},  # no seed override
    }
    assert seed_groups(overrides) == {
        "loss.temperature=0.1": ["0", "1"],
        "loss.temperature=0.2": ["2", "3"],
    }
    assert seed_groups({"0": {"seed": "0"}, "1": {"seed": "1"}}) == {"(all jobs)": ["0", "1"]}
    # a job re-evaluated by hand (other threads, rerun=true) still belongs to its group
    rerun = {"0": {"seed": "0", "threads": "1"}, "1": {"seed": "1", "rerun": "true"}}
    assert seed_groups(rerun) == {"(all jobs)": ["0", "1"]}
