"""The tidy results table: one row per (run, method, task, label fraction, seed, metric).

`value` is the point estimate on the test split; `ci_low`/`ci_high` its bootstrap interval
over test patients (NaN for counts and chance levels). An `Evaluation` carries the rows with
the bootstrap replicates that the paired claims need; the tables are written from the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
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


RowFactory = Callable[..., ResultRow]
# (method, task, label fraction) -> per-seed macro AUROC replicates, each [B]
ReplicateStore = dict[tuple[str, str, float], list[np.ndarray]]


@dataclass
class Evaluation:
    """Result rows plus the bootstrap replicates of the macro AUROCs (for paired claims)."""

    rows: list[ResultRow] = field(default_factory=list)
    replicates: ReplicateStore = field(default_factory=dict)

    def extend(self, other: Evaluation) -> None:
        self.rows.extend(other.rows)
        for key, values in other.replicates.items():
            self.replicates.setdefault(key, []).extend(values)


def results_frame(rows: Iterable[ResultRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds for every (method, task, metric, fraction).

    `ci_low`/`ci_high` are the means of the per-seed interval bounds: the typical interval of one
    probe (test-set uncertainty), beside the seed spread (training-subset uncertainty).
    """
    keys = ["task", "metric", "label_fraction", "method"]
    grouped = results.groupby(keys, dropna=False, sort=True)
    table = grouped["value"].agg(["mean", "std", "count"])
    table["ci_low"] = grouped["ci_low"].mean()
    table["ci_high"] = grouped["ci_high"].mean()
    return table.reset_index().rename(columns={"count": "n_seeds"})


def format_cell(mean: float, std: float, n: int, low: float = np.nan, high: float = np.nan) -> str:
    """`mean ± sd [low, high]`, leaving out what is undefined."""
    cell = f"{mean:.3f}" if np.isnan(std) or n < 2 else f"{mean:.3f} ± {std:.3f}"
    if not (np.isnan(low) or np.isnan(high)):
        cell += f" [{low:.3f}, {high:.3f}]"
    return cell


def markdown_table(results: pd.DataFrame, metrics: Sequence[str] | None = None) -> str:
    """A compact markdown summary: one line per task/metric/fraction, one column per method.

    Cells are the mean over seeds, with the standard deviation where there are several seeds
    and the (mean per-seed) bootstrap interval in brackets where there is one. `metrics`
    keeps only those metrics, in the table's order.
    """
    if metrics is not None:
        results = results[results["metric"].isin(metrics)]
    summary = summary_table(results)
    summary["cell"] = [
        format_cell(m, s, n, lo, hi)
        for m, s, n, lo, hi in zip(
            summary["mean"],
            summary["std"],
            summary["n_seeds"],
            summary["ci_low"],
            summary["ci_high"],
            strict=True,
        )
    ]
    summary["fraction"] = [("" if np.isnan(f) else f"{f:g}") for f in summary["label_fraction"]]
    methods = list(dict.fromkeys(results["method"]))
    wide = summary.pivot_table(
        index=["task", "metric", "fraction"],
        columns="method",
        values="cell",
        aggfunc="first",
        sort=False,
    )
    wide = wide[[m for m in methods if m in wide.columns]].reset_index()
    # label fractions in numeric order (0.01, 0.1, 1), not as strings
    fraction = pd.to_numeric(wide["fraction"].replace("", np.nan))
    wide = wide.assign(_f=fraction).sort_values(["task", "metric", "_f"], kind="stable")
    wide = wide.drop(columns="_f")
    header = "| " + " | ".join(str(c) for c in wide.columns) + " |"
    rule = "|" + "|".join("---" for _ in wide.columns) + "|"
    lines = [header, rule]
    for _, row in wide.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in row.tolist()) + " |")
    return "\n".join(lines) + "\n"


DRAW_METRICS = ("train_patients", "patient_fraction", "labels_unscored")


def draws_markdown(results: pd.DataFrame, n_labels: int) -> str:
    """What the label fractions really were: per task and nominal fraction, the patients drawn,
    the share of the training split's patients that is, and how many (label, draw) pairs could
    not be scored (e.g. one class in the sample). Draws are the same for every method; "" when
    no row says.
    """
    draws = results[results["metric"].isin(DRAW_METRICS)]
    if draws.empty:
        return ""
    # one value per (task, fraction, seed, metric): every method draws the same patients
    wide = draws.pivot_table(
        index=["task", "label_fraction", "seed"], columns="metric", values="value", aggfunc="max"
    ).reset_index()
    lines = [
        "| task | fraction | patients drawn | patient fraction | labels not scored |",
        "|---|---|---|---|---|",
    ]
    for (task, fraction), group in wide.groupby(["task", "label_fraction"], sort=True):
        patients = group["train_patients"]
        span = (
            f"{patients.min():.0f}"
            if patients.nunique() == 1
            else (f"{patients.min():.0f}-{patients.max():.0f}")
        )
        unscored = int(group["labels_unscored"].sum())
        lines.append(
            f"| {task} | {fraction:g} | {span} | {group['patient_fraction'].mean():.3f} | "
            f"{unscored} of {n_labels * len(group)} (label, draw) pairs |"
        )
    return "\n".join(lines) + "\n"


def level_text(level: float) -> str:
    """`0.95` -> `95%`."""
    return f"{100 * level:g}%"


def claims_markdown(claims: pd.DataFrame, level: float) -> str:
    """The claims table: both sides, the difference, its one-sided bound, the verdict (and,
    for claims over pretraining seeds, the seed spread of the difference)."""
    spread = "seed_sd" in claims.columns
    lines = [
        f"| claim | left | right | difference | one-sided {level_text(level)} bounds "
        f"| threshold | verdict |{' seed spread: sd [min, max] |' if spread else ''}",
        "|---|---|---|---|---|---|---|" + ("---|" if spread else ""),
    ]
    for c in claims.itertuples(index=False):
        line = (
            f"| {c.claim} | {c.left:.3f} | {c.right:.3f} | {c.difference:+.3f} | "
            f"[{c.bound:+.3f}, {c.upper:+.3f}] | {c.threshold:+.3f} | {c.verdict} |"
        )
        if spread:
            line += f" {c.seed_sd:.3f} [{c.seed_min:+.3f}, {c.seed_max:+.3f}] |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_results(
    rows: Iterable[ResultRow],
    out_dir: str | Path,
    claims: pd.DataFrame | None,
    level: float,
    n_labels: int,
) -> tuple[Path, Path]:
    """Write results.csv (every row) and results.md (summary, the draws, the claims) into
    `out_dir`.

    `level` is the bootstrap intervals' coverage, which the claims table's header names;
    `n_labels` the number of evaluated labels (the draws table counts unscored pairs of them).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_frame(rows)
    csv_path, md_path = out / "results.csv", out / "results.md"
    frame.to_csv(csv_path, index=False)
    text = markdown_table(frame)
    draws = draws_markdown(frame, n_labels)
    if draws:
        text += "\n## Label fractions as drawn (by patient, the same for every method)\n\n" + draws
    if claims is not None and len(claims):
        claims.to_csv(out / "claims.csv", index=False)
        text += "\n## Claims (linear probe, macro AUROC, mean over seeds)\n\n"
        text += claims_markdown(claims, level)
    else:
        (out / "claims.csv").unlink(missing_ok=True)  # never a stale table from an earlier run
    md_path.write_text(text)
    return csv_path, md_path
