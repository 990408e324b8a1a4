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


# a (method, label fraction) cell of the probe table
Cell = tuple[str, float]


def judge_claims(
    claims: Sequence[Claim],
    point: Mapping[Cell, float],
    replicates: Mapping[Cell, np.ndarray],
    level: float,
    margin: float,
) -> pd.DataFrame:
    """The claims table from each cell's point estimate and its (paired) bootstrap replicates.

    The difference left - right is judged on its replicates' one-sided bounds at `level` (module
    docstring); `margin` is the non-inferiority margin of `>=` claims (AUROC points; 0 judges
    `>=` like `>`). A claim naming a cell that is not in `point` is skipped; without replicates
    for both cells its verdict is `no interval`.

    Returns:
        one line per claim: the sides, the difference, its one-sided lower `bound` and `upper`
        bound, the `threshold` and the `verdict` (CLAIM_COLUMNS).
    """
    if margin < 0:
        raise ValueError(f"the non-inferiority margin must be >= 0, got {margin}")
    table = []
    for claim in claims:
        left_cell = (claim.left, claim.left_fraction)
        right_cell = (claim.right, claim.right_fraction)
        if left_cell not in point or right_cell not in point:
            continue
        left, right = point[left_cell], point[right_cell]
        diff = None
        if left_cell in replicates and right_cell in replicates:
            diff = replicates[left_cell] - replicates[right_cell]
        threshold = 0.0 - margin if claim.relation == ">=" else 0.0  # no "-0.0" in the table
        judged, lower, upper = verdict(diff, threshold, level)
        table.append([claim.text, left, right, left - right, lower, upper, threshold, judged])
    return pd.DataFrame(table, columns=CLAIM_COLUMNS)


def probe_cells(
    evaluation: Evaluation, task: str = "linear_probe"
) -> tuple[dict[Cell, float], dict[Cell, np.ndarray]]:
    """Each (method, fraction) cell's macro AUROC and macro replicates, means over probe seeds."""
    macro = pd.DataFrame(
        [
            (r.method, r.label_fraction, r.value)
            for r in evaluation.rows
            if r.task == task and r.metric == "macro_auroc"
        ],
        columns=["method", "fraction", "value"],
    )
    point = {
        (str(m), float(f)): float(v)
        for (m, f), v in macro.groupby(["method", "fraction"])["value"].mean().items()
    }
    replicates = {
        (m, f): np.mean(reps, axis=0)
        for (m, kind, f), reps in evaluation.replicates.items()
        if kind == task and reps
    }
    return point, replicates


def claim_rows(
    run: str,
    claims: Sequence[Claim],
    evaluation: Evaluation,
    boot: BootstrapSettings,
    margin: float,
    task: str = "linear_probe",
) -> tuple[list[ResultRow], pd.DataFrame]:
    """Judge claims on the macro AUROC averaged over probe seeds (`judge_claims`).

    Returns:
        (rows of task `claim` with the two-sided interval, the claims table).
    """
    point, replicates = probe_cells(evaluation, task)
    table = judge_claims(claims, point, replicates, boot.level, margin)
    by_text = {c.text: c for c in claims}
    rows = []
    for line in table.itertuples(index=False):
        claim = by_text[line.claim]
        cells = [(claim.left, claim.left_fraction), (claim.right, claim.right_fraction)]
        ci = {}
        if all(c in replicates for c in cells):
            ci = interval(replicates[cells[0]] - replicates[cells[1]], boot)
        rows.append(
            ResultRow(
                run,
                claim.left,
                "claim",
                claim.text,
                float(line.difference),
                label_fraction=claim.left_fraction,
                ci_low=ci.get("ci_low", np.nan),
                ci_high=ci.get("ci_high", np.nan),
            )
        )
    return rows, table
