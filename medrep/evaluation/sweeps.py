"""A sweep's results in one table: every job's results.csv with the settings it ran with.

A Hydra multirun writes one folder per job, each with `.hydra/overrides.yaml` (the `key=value`
overrides of that job) and, when it evaluated, `eval/results.csv`. This module reads those plain
files; it does not need Hydra.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from medrep.evaluation.plots import label_efficiency_plot
from medrep.evaluation.results import markdown_table
from medrep.evaluation.seeds import cells_from_dir, seed_claims, seeds_markdown

log = logging.getLogger(__name__)

RESULTS = Path("eval") / "results.csv"


def job_overrides(job_dir: Path) -> dict[str, str]:
    """The `key=value` overrides a Hydra job ran with (from its .hydra/overrides.yaml)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    return dict(item.split("=", 1) for item in items if "=" in item)


def label_methods(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`method` suffixed with the swept values (`convirt [0.1, 1e-3]`), for side-by-side tables."""
    labelled = table.copy()
    if columns:
        swept = labelled[list(columns)].fillna("").astype(str).agg(", ".join, axis=1)
        labelled["method"] = labelled["method"] + " [" + swept + "]"
    return labelled


def swept_columns(table: pd.DataFrame) -> list[str]:
    """The swept-setting columns of a collected table (between `job` and `run`)."""
    return list(table.columns[1 : table.columns.get_loc("run")])


# overrides that do not change what a job computes: jobs differing in them still group
RUN_ONLY_KEYS = frozenset({"threads", "rerun", "stages"})


def seed_groups(overrides: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """Jobs that differ only in `seed`: a title naming the other swept values (`key=value`,
    only keys whose value varies across the sweep) -> the jobs, for groups of at least two jobs
    with distinct seeds. RUN_ONLY_KEYS (threads, rerun, stages: e.g. a job re-evaluated by
    hand) do not separate jobs."""
    keys = sorted({k for o in overrides.values() for k in o} - {"seed"} - RUN_ONLY_KEYS)
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    groups: dict[tuple[str, ...], list[str]] = {}
    for job, values in overrides.items():
        if "seed" in values:
            groups.setdefault(tuple(values.get(k, "") for k in keys), []).append(job)
    titles = {}
    for settings, jobs in groups.items():
        if len({overrides[j]["seed"] for j in jobs}) == len(jobs) >= 2:
            named = dict(zip(keys, settings, strict=True))
            title = ", ".join(f"{k}={named[k]}" for k in varying) or "(all jobs)"
            titles[title] = jobs
    return titles


def collect_seeds(
    sweep_dir: Path, overrides: Mapping[str, Mapping[str, str]], table: pd.DataFrame
) -> dict[str, Path]:
    """`seeds.md` and `seed_claims.csv` for every group of jobs differing only in `seed`
    (`medrep.evaluation.seeds`); {} when there is none. A group with a job evaluated before
    `cells.npz` existed is skipped with a warning."""
    texts, claims = [], []
    for title, jobs in seed_groups(overrides).items():
        runs = [cells_from_dir(sweep_dir / j / RESULTS.parent) for j in jobs]
        if any(r is None for r in runs):
            log.warning(
                "seeds of %s not combined: a job has no eval/cells.npz (re-run evaluate)", title
            )
            continue
        frames = {int(overrides[j]["seed"]): table[table["job"] == j] for j in jobs}
        found = [r for r in runs if r is not None]
        texts.append(seeds_markdown(title, frames, found))
        claims.append(seed_claims(found).assign(group=title))
    if not texts:
        return {}
    md_path, csv_path = sweep_dir / "seeds.md", sweep_dir / "seed_claims.csv"
    md_path.write_text(f"# Sweep {sweep_dir.name} over pretraining seeds\n\n" + "\n".join(texts))
    pd.concat(claims, ignore_index=True).to_csv(csv_path, index=False)
    return {"seeds": md_path, "seed_claims": csv_path}


def collect_sweep(sweep_dir: str | Path) -> dict[str, Path]:
    """Write `sweep_results.csv`, `sweep_results.md` and `sweep_label_efficiency.png`.

    Each row of a job's results gets the job number and one column per overridden key whose
    value varies across the sweep, so the table says which setting produced which number. Jobs
    that differ only in `seed` are also combined over seeds (`collect_seeds`: `seeds.md`).

    Raises:
        FileNotFoundError: no job of the sweep wrote results.
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
    for pos, key in enumerate(varying, start=1):
        # a swept key named like a results column (e.g. `seed`) gets a prefix
        column = f"sweep.{key}" if key in table.columns else key
        table.insert(pos, column, table["job"].map(lambda j, k=key: overrides[j].get(k, "")))
    csv_path, md_path = sweep_dir / "sweep_results.csv", sweep_dir / "sweep_results.md"
    table.to_csv(csv_path, index=False)
    # one column (and one plot line) per method x swept setting
    labelled = label_methods(table, swept_columns(table))
    md_path.write_text(
        f"# Sweep {sweep_dir.name}\n\nSwept: {', '.join(varying) or '(nothing varies)'}\n\n"
        + markdown_table(labelled)
    )
    paths = {"csv": csv_path, "markdown": md_path}
    plot = label_efficiency_plot(
        labelled, sweep_dir / "sweep_label_efficiency.png", title=f"sweep {sweep_dir.name}"
    )
    if plot is not None:
        paths["plot"] = plot
    paths.update(collect_seeds(sweep_dir, overrides, table))
    return paths
