"""One recipe over several pretraining seeds: the probe table and the claims judged together.

A single run's intervals cover the test patients and the probe's label draws, not the
pretraining's own randomness. Every evaluation therefore writes its probe cells, each
(method, label fraction)'s macro AUROC and bootstrap replicates (means over probe seeds), to
`eval/cells.npz`. Runs of one recipe that differ only in `seed` and share a test split are
resampled identically (`medrep.evaluation.bootstrap`: the weights depend on the test patients
and the bootstrap seed only), so their replicates pair up, and a two-stage bootstrap combines
them: replicate b draws the pretraining seeds with replacement and averages their replicate b.
The claims over seeds are judged on those replicates, so the between-seed variance widens the
bounds (with S seeds the seed stage's variance is (S - 1) / S of the sample variance, a known
underestimate for few seeds); the table also prints the seed spread (sd, min, max of the per-seed
differences).

`pipelines.collect` writes `seeds.md` for every group of sweep jobs that differ only in `seed`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medrep.evaluation.bootstrap import percentile_interval
from medrep.evaluation.claims import Cell, judge_claims, parse_claims
from medrep.evaluation.results import COLUMNS, claims_markdown, level_text, markdown_table

CELLS_FILE = "cells.npz"
SPREAD_COLUMNS = ["seed_sd", "seed_min", "seed_max"]


@dataclass(frozen=True)
class RunCells:
    """One evaluation's probe cells and how to judge its claims.

    Attributes:
        point: (method, fraction) -> macro AUROC, the mean over probe seeds.
        replicates: (method, fraction) -> [B] macro AUROC replicates, the mean over probe seeds.
        claims: the run's claims, method names resolved (`convirt@0.1 >= raw_pixels@1`).
        level / margin: the bootstrap level and the non-inferiority margin of `>=` claims.
        resampling: an id of the test units and bootstrap settings; runs pair up only when
            their ids are equal.
    """

    point: Mapping[Cell, float]
    replicates: Mapping[Cell, np.ndarray]
    claims: Sequence[str]
    level: float
    margin: float
    resampling: str


def _key(cell: Cell) -> str:
    return json.dumps([cell[0], cell[1]])


def write_cells(path: str | Path, cells: RunCells) -> Path:
    """Write a run's cells (numbers and replicates in one .npz, the rest as JSON inside)."""
    meta = {
        "claims": list(cells.claims),
        "level": cells.level,
        "margin": cells.margin,
        "resampling": cells.resampling,
        "point": [[m, f, v] for (m, f), v in cells.point.items()],
    }
    arrays: dict[str, Any] = {
        f"rep{i}": cells.replicates[c] for i, c in enumerate(cells.replicates)
    }
    keys = [_key(c) for c in cells.replicates]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp.npz")
    arrays.update(meta=np.array(json.dumps(meta)), keys=np.array(keys, dtype=str))
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def read_cells(path: str | Path) -> RunCells:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        replicates = {
            tuple(json.loads(str(k))): data[f"rep{i}"] for i, k in enumerate(data["keys"])
        }
    return RunCells(
        point={(str(m), float(f)): float(v) for m, f, v in meta["point"]},
        replicates={(str(m), float(f)): r for (m, f), r in replicates.items()},
        claims=list(meta["claims"]),
        level=float(meta["level"]),
        margin=float(meta["margin"]),
        resampling=str(meta["resampling"]),
    )


def combine_seeds(
    runs: Sequence[RunCells], seed: int = 0
) -> tuple[dict[Cell, float], dict[Cell, np.ndarray]]:
    """The cells over pretraining seeds: point estimates averaged, replicates two-stage.

    Replicate b draws len(runs) runs with replacement (the same draw for every cell, so
    differences stay paired) and averages their replicate b. Only cells of every run are kept.

    Raises:
        ValueError: fewer than two runs, or runs resampled differently (other test patients or
            bootstrap settings), whose replicates do not pair up.
    """
    if len(runs) < 2:
        raise ValueError(f"combining seeds needs at least two runs, got {len(runs)}")
    ids = {r.resampling for r in runs}
    if len(ids) > 1:
        raise ValueError(
            "the runs were resampled differently (another test split or bootstrap settings): "
            "their replicates do not pair up; evaluate them on one ingestion and eval.bootstrap"
        )
    cells = [c for c in runs[0].point if all(c in r.point for r in runs)]
    point = {c: float(np.mean([r.point[c] for r in runs])) for c in cells}
    with_reps = [c for c in cells if all(c in r.replicates for r in runs)]
    replicates: dict[Cell, np.ndarray] = {}
    if with_reps:
        n_rep = len(runs[0].replicates[with_reps[0]])
        draw = np.random.default_rng(seed).integers(0, len(runs), size=(n_rep, len(runs)))
        for c in with_reps:
            stacked = np.stack([r.replicates[c] for r in runs])  # [S, B]
            replicates[c] = stacked[draw, np.arange(n_rep)[:, None]].mean(axis=1)
    return point, replicates


def seed_claims(runs: Sequence[RunCells], seed: int = 0) -> pd.DataFrame:
    """The first run's claims judged over all runs (`combine_seeds`), with the seed spread:
    sd, min and max over runs of each claim's per-run difference."""
    point, replicates = combine_seeds(runs, seed)
    first = runs[0]
    fractions = sorted({f for _, f in point})
    claims = parse_claims(first.claims, fractions)
    table = judge_claims(claims, point, replicates, first.level, first.margin)
    spread = []
    for claim in claims:
        if claim.text not in set(table["claim"]):
            continue
        left, right = (claim.left, claim.left_fraction), (claim.right, claim.right_fraction)
        diffs = np.array([r.point[left] - r.point[right] for r in runs])
        spread.append([np.std(diffs, ddof=1), diffs.min(), diffs.max()])
    return pd.concat([table, pd.DataFrame(spread, columns=SPREAD_COLUMNS)], axis=1)


def seed_results(
    frames: Mapping[int, pd.DataFrame], runs: Sequence[RunCells], seed: int = 0
) -> pd.DataFrame:
    """One row per pretraining seed and (method, task, fraction, metric): the run's mean over
    probe seeds, in the results columns with `seed` the pretraining seed. Probe macro AUROC
    rows carry the two-stage interval over seeds (`combine_seeds`); the others none.

    Args:
        frames: pretraining seed -> that run's results.csv.
        runs: the same runs' cells, in the order of `frames`.
    """
    level = runs[0].level
    _, replicates = combine_seeds(runs, seed)
    out = []
    for pretrain_seed, frame in frames.items():
        rows = frame[frame["task"] != "claim"]
        means = (
            rows.groupby(["run", "method", "task", "label_fraction", "metric"], dropna=False)[
                "value"
            ]
            .mean()
            .reset_index()
        )
        means["seed"] = pretrain_seed
        out.append(means)
    table = pd.concat(out, ignore_index=True)
    table["ci_low"], table["ci_high"] = np.nan, np.nan
    for (method, fraction), reps in replicates.items():
        low, high = percentile_interval(reps, level)
        at = (
            (table["method"] == method)
            & (table["task"] == "linear_probe")
            & (table["metric"] == "macro_auroc")
            & np.isclose(table["label_fraction"], fraction)
        )
        table.loc[at, ["ci_low", "ci_high"]] = [low, high]
    return table[COLUMNS]


def seeds_markdown(
    title: str, frames: Mapping[int, pd.DataFrame], runs: Sequence[RunCells], seed: int = 0
) -> str:
    """The seeds report: every metric as mean ± sd over pretraining seeds (probe macro AUROC
    with its two-stage interval), then the claims over seeds with their spread."""
    level = runs[0].level
    table = seed_results(frames, runs, seed)
    claims = seed_claims(runs, seed)
    seeds = ", ".join(str(s) for s in frames)
    text = (
        f"## {title}: {len(frames)} pretraining seeds ({seeds})\n\n"
        "Cells: mean ± sd over pretraining seeds of each run's mean over probe seeds; probe "
        f"macro AUROC with the {level_text(level)} two-stage bootstrap interval (test patients "
        "and pretraining seeds resampled).\n\n"
    )
    text += markdown_table(table)
    if len(claims):
        text += "\n### Claims over seeds (linear probe, macro AUROC)\n\n"
        text += claims_markdown(claims, level)
    return text


def cells_from_dir(eval_dir: str | Path) -> RunCells | None:
    """A run's cells, or None when its evaluation predates `cells.npz` (re-run evaluate)."""
    path = Path(eval_dir) / CELLS_FILE
    return read_cells(path) if path.exists() else None
