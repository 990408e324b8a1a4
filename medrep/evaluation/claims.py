"""The paper's claims, judged on the probe's macro AUROC with one-sided paired bootstrap bounds.

A claim compares two (method, label fraction) cells, e.g. `convirt@0.1 >= random_init@1.0`;
both sides are averaged over their seeds, and the difference's replicates use the same test
resamples on both sides (`medrep.evaluation.bootstrap`). The verdict is one-sided at the
bootstrap level: `shown` when the lower bound of left - right lies above the claim's threshold
(0 for `>`, minus the non-inferiority margin for `>=`), `refuted` when the upper bound lies
below it, else `not shown` (and `no interval` without resamples).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.metrics import interval
from medrep.evaluation.results import Evaluation, ResultRow

_CLAIM = re.compile(r"^\s*(\S+)@(\*|[0-9.]+)\s*(>=|>)\s*(\S+)@(\*|[0-9.]+)\s*$")


@dataclass(frozen=True)
class Claim:
    """`left` method's probe at `left_fraction` `relation` (>= or >) `right`'s at its fraction."""

    left: str
    left_fraction: float
    relation: str
    right: str
    right_fraction: float

    @property
    def text(self) -> str:
        return (
            f"{self.left}@{self.left_fraction:g} {self.relation} "
            f"{self.right}@{self.right_fraction:g}"
        )


def parse_claims(
    specs: Sequence[str],
    fractions: Sequence[float],
    aliases: Mapping[str, str] | None = None,
) -> list[Claim]:
    """Claims from strings like `convirt@0.1 >= random_init@1.0`.

    `@*` on both sides expands to one claim per label fraction (`convirt@* > simclr@*`: better
    at every fraction); `aliases` renames methods (e.g. `pretrained` -> the evaluated method).
    """
    names = dict(aliases or {})
    claims = []
    for spec in specs:
        match = _CLAIM.match(spec)
        if not match:
            raise ValueError(
                f"claim {spec!r}: expected 'METHOD@FRACTION >= METHOD@FRACTION' (or '>' and "
                "'@*' on both sides for every fraction)"
            )
        left, lf, relation, right, rf = match.groups()
        left, right = names.get(left, left), names.get(right, right)
        if (lf == "*") != (rf == "*"):
            raise ValueError(f"claim {spec!r}: use '@*' on both sides or on neither")
        pairs = [(f, f) for f in fractions] if lf == "*" else [(float(lf), float(rf))]
        claims += [Claim(left, float(a), relation, right, float(b)) for a, b in pairs]
    return claims


VERDICTS = ("shown", "not shown", "refuted", "no interval")
CLAIM_COLUMNS = ["claim", "left", "right", "difference", "bound", "upper", "threshold", "verdict"]


def verdict(
    replicates: np.ndarray | None, threshold: float, level: float
) -> tuple[str, float, float]:
    """(verdict, one-sided lower bound, one-sided upper bound) of a difference's replicates."""
    if replicates is None or len(replicates) == 0:
        return "no interval", float("nan"), float("nan")
    lower = float(np.quantile(replicates, 1.0 - level))
    upper = float(np.quantile(replicates, level))
    if lower > threshold:
        return "shown", lower, upper
    if upper < threshold:
        return "refuted", lower, upper
    return "not shown", lower, upper


def claim_rows(
    run: str,
    claims: Sequence[Claim],
    evaluation: Evaluation,
    boot: BootstrapSettings,
    margin: float,
    task: str = "linear_probe",
) -> tuple[list[ResultRow], pd.DataFrame]:
    """Judge claims on the macro AUROC averaged over probe seeds.

    The difference left - right is a point estimate with paired bootstrap replicates; its
    one-sided bounds at `boot.level` decide the verdict (module docstring). `margin` is the
    non-inferiority margin of `>=` claims (AUROC points; 0 judges `>=` like `>`). Claims naming
    a method or fraction that was not evaluated are skipped.

    Returns:
        (rows of task `claim` with the two-sided interval, a table with one line per claim: the
        sides, the difference, its one-sided lower `bound` and `upper` bound, the `threshold`
        and the `verdict`).
    """
    if margin < 0:
        raise ValueError(f"the non-inferiority margin must be >= 0, got {margin}")
    macro = pd.DataFrame(
        [
            (r.method, r.label_fraction, r.value)
            for r in evaluation.rows
            if r.task == task and r.metric == "macro_auroc"
        ],
        columns=["method", "fraction", "value"],
    )
    point = macro.groupby(["method", "fraction"])["value"].mean()
    rows, table = [], []
    for claim in claims:
        keys = [(claim.left, claim.left_fraction), (claim.right, claim.right_fraction)]
        if not all(k in point.index for k in keys):
            continue
        left, right = (float(point.loc[k]) for k in keys)
        reps = [evaluation.replicates.get((m, task, f)) for m, f in keys]
        diff_rep = None
        if all(reps):
            diff_rep = np.mean(reps[0], axis=0) - np.mean(reps[1], axis=0)  # type: ignore[arg-type]
        ci = interval(diff_rep, boot) if diff_rep is not None else {}
        threshold = 0.0 - margin if claim.relation == ">=" else 0.0  # no "-0.0" in the table
        judged, lower, upper = verdict(diff_rep, threshold, boot.level)
        rows.append(
            ResultRow(
                run,
                claim.left,
                "claim",
                claim.text,
                left - right,
                label_fraction=claim.left_fraction,
                ci_low=ci.get("ci_low", np.nan),
                ci_high=ci.get("ci_high", np.nan),
            )
        )
        table.append([claim.text, left, right, left - right, lower, upper, threshold, judged])
    return rows, pd.DataFrame(table, columns=CLAIM_COLUMNS)
