"""The paper's claims, judged on the probe's macro AUROC with paired bootstrap intervals.

A claim compares two (method, label fraction) cells, e.g. `convirt@0.1 >= random_init@1.0`;
both sides are averaged over their seeds, and the interval of the difference uses the same test
resamples on both sides (`medrep.evaluation.bootstrap`).
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


def claim_rows(
    run: str,
    claims: Sequence[Claim],
    evaluation: Evaluation,
    boot: BootstrapSettings,
    task: str = "linear_probe",
) -> tuple[list[ResultRow], pd.DataFrame]:
    """Judge claims on the macro AUROC averaged over probe seeds.

    The difference left - right is a point estimate with a paired bootstrap interval (the same
    test resamples on both sides, each side averaged over its seeds). A claim holds when the
    point estimate satisfies its relation; the table says separately whether the interval
    excludes zero. Claims naming a method or fraction that was not evaluated are skipped.

    Returns:
        (rows of task `claim`, a table with one line per claim and its verdict).
    """
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
        difference = left - right
        reps = [evaluation.replicates.get((m, task, f)) for m, f in keys]
        ci: dict[str, float] = {}
        if all(reps):
            diff_rep = np.mean(reps[0], axis=0) - np.mean(reps[1], axis=0)  # type: ignore[arg-type]
            ci = interval(diff_rep, boot)
        holds = difference >= 0 if claim.relation == ">=" else difference > 0
        low, high = ci.get("ci_low", np.nan), ci.get("ci_high", np.nan)
        rows.append(
            ResultRow(
                run,
                claim.left,
                "claim",
                claim.text,
                difference,
                label_fraction=claim.left_fraction,
                ci_low=low,
                ci_high=high,
            )
        )
        table.append(
            {
                "claim": claim.text,
                "left": left,
                "right": right,
                "difference": difference,
                "ci_low": low,
                "ci_high": high,
                "holds": bool(holds),
                "ci_excludes_zero": bool(low > 0 or high < 0),
            }
        )
    return rows, pd.DataFrame(
        table,
        columns=[
            "claim",
            "left",
            "right",
            "difference",
            "ci_low",
            "ci_high",
            "holds",
            "ci_excludes_zero",
        ],
    )
