"""Collect a sweep: every job's results.csv into one table (CSV, markdown) with the swept values,
and, for jobs that differ only in `seed`, the table and claims over pretraining seeds (seeds.md).

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
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from medrep.evaluation.results import markdown_table
from medrep.evaluation.sweeps import collect_sweep, label_methods, swept_columns

log = logging.getLogger(__name__)


class CollectSweep(Callback):
    """Hydra callback: collect the sweep's results when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            paths = collect_sweep(Path(config.hydra.sweep.dir))
        except FileNotFoundError as exc:  # a sweep of stages that do not evaluate
            log.warning("%s", exc)
            return
        print(f"sweep table: {paths['markdown']}", flush=True)
        if "seeds" in paths:
            print(f"over pretraining seeds: {paths['seeds']}", flush=True)


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
    if not args.metrics:
        print(paths["markdown"].read_text())
        if "seeds" in paths:
            print(paths["seeds"].read_text())
        return
    table = pd.read_csv(paths["csv"])
    # label methods with the swept values only where several jobs share a method name
    shared = table.groupby("method")["job"].nunique().max() > 1
    labelled = label_methods(table, swept_columns(table) if shared else [])
    print(markdown_table(labelled, metrics=args.metrics))


if __name__ == "__main__":
    main()
