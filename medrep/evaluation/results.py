"""The tidy results table: one row per (run, method, task, label fraction, seed, metric)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "run",
    "method",
    "task",
    "label_fraction",
    "seed",
    "metric",
    "value",
    "ci_low",
    "ci_high",
]


@dataclass(frozen=True)
class ResultRow:
    run: str
    method: str
    task: str
    metric: str
    value: float
    label_fraction: float = float("nan")
    seed: int = -1
    ci_low: float = float("nan")
    ci_high: float = float("nan")


def results_frame(rows: Iterable[ResultRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds for every (method, task, metric, fraction)."""
    keys = ["task", "metric", "label_fraction", "method"]
    grouped = results.groupby(keys, dropna=False)["value"]
    table = grouped.agg(["mean", "std", "count"]).reset_index()
    return table.rename(columns={"count": "n_seeds"})


def markdown_table(results: pd.DataFrame, metrics: Sequence[str] | None = None) -> str:
    """A compact markdown summary: one line per task/metric/fraction, one column per method.

    Cells are the mean over seeds, with the standard deviation where there are several seeds.
    `metrics` keeps only those metrics, in the table's order.
    """
    if metrics is not None:
        results = results[results["metric"].isin(metrics)]
    summary = summary_table(results)
    summary["cell"] = [
        f"{m:.3f}" if np.isnan(s) or n < 2 else f"{m:.3f} ± {s:.3f}"
        for m, s, n in zip(summary["mean"], summary["std"], summary["n_seeds"], strict=True)
    ]
    summary["fraction"] = [("" if np.isnan(f) else f"{f:g}") for f in summary["label_fraction"]]
    wide = summary.pivot_table(
        index=["task", "metric", "fraction"],
        columns="method",
        values="cell",
        aggfunc="first",
        sort=False,
    )
    wide = wide.reset_index()
    header = "| " + " | ".join(str(c) for c in wide.columns) + " |"
    rule = "|" + "|".join("---" for _ in wide.columns) + "|"
    lines = [header, rule]
    for _, row in wide.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows: Iterable[ResultRow], out_dir: str | Path) -> tuple[Path, Path]:
    """Write results.csv (every row) and results.md (summary) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_frame(rows)
    csv_path, md_path = out / "results.csv", out / "results.md"
    frame.to_csv(csv_path, index=False)
    md_path.write_text(markdown_table(frame))
    return csv_path, md_path
