"""Collect a sweep: every job's results.csv into one table (CSV, markdown) with the swept values.

    python -m pipelines.collect outputs/multirun/demo/<stamp>
    python -m pipelines.collect outputs/multirun/demo/<stamp> --metrics macro_auroc P@10

Runs by itself at the end of every `-m` multirun (a Hydra callback in conf/hydra/default.yaml).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from medrep.evaluation.plots import label_efficiency_plot
from medrep.evaluation.results import markdown_table

log = logging.getLogger(__name__)

RESULTS = Path("eval") / "results.csv"


def job_overrides(job_dir: Path) -> dict[str, str]:
    """The `key=value` overrides a Hydra job ran with (from its .hydra/overrides.yaml)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    return dict(item.split("=", 1) for item in items if "=" in item)


def collect_sweep(sweep_dir: str | Path) -> dict[str, Path]:
    """Write `sweep_results.csv`, `sweep_results.md` and `sweep_label_efficiency.png`.

    Each row of a job's results gets the job number and one column per overridden key whose
    value varies across the sweep, so the table says which setting produced which number.
    """
    sweep_dir = Path(sweep_dir)
    frames, overrides = [], {}
    for results in sorted(sweep_dir.glob(f"*/{RESULTS}")):
        job_dir = results.parents[1]
        frame = pd.read_csv(results)
        frame.insert(0, "job", job_dir.name)
        frames.append(frame)
        overrides[job_dir.name] = job_overrides(job_dir)
    if not frames:
        raise FileNotFoundError(f"no {RESULTS} under {sweep_dir}: did the sweep's jobs finish?")
    table = pd.concat(frames, ignore_index=True)
    keys = sorted({k for o in overrides.values() for k in o})
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    columns = []
    for pos, key in enumerate(varying, start=1):
        # a swept key named like a results column (e.g. `seed`) gets a prefix
        column = f"sweep.{key}" if key in table.columns else key
        table.insert(pos, column, table["job"].map(lambda j, k=key: overrides[j].get(k, "")))
        columns.append(column)
    csv_path, md_path = sweep_dir / "sweep_results.csv", sweep_dir / "sweep_results.md"
    table.to_csv(csv_path, index=False)
    # one column per method x swept setting, so the markdown compares them side by side
    labelled = table.copy()
    if varying:
        labelled["method"] = (
            labelled["method"] + " [" + labelled[columns].astype(str).agg(", ".join, axis=1) + "]"
        )
    md_path.write_text(
        f"# Sweep {sweep_dir.name}\n\nSwept: {', '.join(varying) or '(nothing varies)'}\n\n"
        + markdown_table(labelled)
    )
    paths = {"csv": csv_path, "markdown": md_path}
    # one line per method x swept setting: the sweep's label-efficiency curves on one plot
    plot = label_efficiency_plot(
        labelled, sweep_dir / "sweep_label_efficiency.png", title=f"sweep {sweep_dir.name}"
    )
    if plot is not None:
        paths["plot"] = plot
    return paths


class CollectSweep(Callback):
    """Hydra callback: collect the sweep's results when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = collect_sweep(sweep_dir)
        except FileNotFoundError as exc:  # a sweep of stages that do not evaluate
            log.warning("%s", exc)
            return
        print(f"sweep table: {paths['markdown']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--metrics",
        nargs="+",
        help="print only these metrics (e.g. macro_auroc P@10 t2i_R@10), one column per job",
    )
    args = parser.parse_args()
    paths = collect_sweep(args.sweep_dir)
    if args.metrics:
        table = pd.read_csv(paths["csv"])
        swept = list(table.columns[1 : table.columns.get_loc("run")])
        # label methods with the swept values only where several jobs share a method name
        if swept and table.groupby("method")["job"].nunique().max() > 1:
            table["method"] = (
                table["method"]
                + " ["
                + table[swept].fillna("").astype(str).agg(", ".join, axis=1)
                + "]"
            )
        print(markdown_table(table, metrics=args.metrics))
    else:
        print(paths["markdown"].read_text())


if __name__ == "__main__":
    main()
