"""The scrubber's recall and precision per category on the labelled PHI set (`phi_corpus`).

    python -m medrep.data.phi_eval --split test --n 600 --seed 0

Scoring, with the spans of `medrep.data.phi_corpus` as the truth:
- **recall** of a category: the share of its identifiers whose every letter and digit lies in a
  replaced span (of any category: what matters is that it is gone; a partly removed date or
  name counts as missed);
- **precision** of a predicted category: the share of its replaced spans that overlap an
  identifier (of any category);
- **clinical characters removed**: the share of the letters and digits outside every identifier
  that a replaced span removed (how much clinical text is lost).

The rules were written and adjusted on the "dev" split; "test" has its own templates and
vocabularies (`phi_corpus`'s docstring), so its figures are the ones to report.
`predict` may be any function from text to (start, end, category) spans, which is how other
scrubbers are compared (docs/reports.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medrep.data.phi_corpus import PHI_CATEGORIES, SPLITS, PhiNote, generate_phi_notes
from medrep.data.scrub import Scrubber

Predict = Callable[[str], Sequence[tuple[int, int, str]]]


@dataclass(frozen=True)
class PhiScores:
    """Counts behind the recall and precision figures."""

    found: dict[str, int]  # identifiers wholly removed, per true category
    total: dict[str, int]  # identifiers, per true category
    correct: dict[str, int]  # replaced spans overlapping an identifier, per predicted category
    predicted: dict[str, int]  # replaced spans, per predicted category
    clinical_removed: int  # letters and digits outside identifiers that were removed
    clinical_total: int

    def recall(self, category: str) -> float:
        return self.found.get(category, 0) / max(1, self.total.get(category, 0))

    def precision(self, category: str) -> float:
        return self.correct.get(category, 0) / max(1, self.predicted.get(category, 0))

    @property
    def overall_recall(self) -> float:
        return sum(self.found.values()) / max(1, sum(self.total.values()))

    @property
    def overall_precision(self) -> float:
        return sum(self.correct.values()) / max(1, sum(self.predicted.values()))


def score(notes: Sequence[PhiNote], predict: Predict) -> PhiScores:
    found: dict[str, int] = {}
    total: dict[str, int] = {}
    correct: dict[str, int] = {}
    predicted: dict[str, int] = {}
    clinical_removed = clinical_total = 0
    for note in notes:
        spans = list(predict(note.text))
        removed = [False] * len(note.text)
        for start, end, _ in spans:
            removed[start:end] = [True] * (end - start)
        inside = [False] * len(note.text)
        for gold in note.spans:
            inside[gold.start : gold.end] = [True] * (gold.end - gold.start)
            chars = [i for i in range(gold.start, gold.end) if note.text[i].isalnum()]
            total[gold.category] = total.get(gold.category, 0) + 1
            if all(removed[i] for i in chars):
                found[gold.category] = found.get(gold.category, 0) + 1
        for start, end, category in spans:
            predicted[category] = predicted.get(category, 0) + 1
            if any(inside[start:end]):
                correct[category] = correct.get(category, 0) + 1
        for i, c in enumerate(note.text):
            if c.isalnum() and not inside[i]:
                clinical_total += 1
                clinical_removed += removed[i]
    return PhiScores(found, total, correct, predicted, clinical_removed, clinical_total)


def scores_table(scores: PhiScores, name: str) -> str:
    """Recall per true category and precision per predicted category, as markdown rows."""
    lines = [
        f"| {name}: category | identifiers | recall | replaced spans | precision |",
        "|---|---|---|---|---|",
    ]
    for category in (*PHI_CATEGORIES, *sorted(set(scores.predicted) - set(PHI_CATEGORIES))):
        n, k = scores.total.get(category, 0), scores.predicted.get(category, 0)
        recall = f"{scores.recall(category):.3f}" if n else "-"
        precision = f"{scores.precision(category):.3f}" if k else "-"
        lines.append(f"| {category} | {n} | {recall} | {k} | {precision} |")
    lines.append(
        f"| all | {sum(scores.total.values())} | {scores.overall_recall:.3f} | "
        f"{sum(scores.predicted.values())} | {scores.overall_precision:.3f} |"
    )
    share = scores.clinical_removed / max(1, scores.clinical_total)
    lines.append(
        f"\nclinical letters and digits removed: {scores.clinical_removed} of "
        f"{scores.clinical_total} ({share:.2%})"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, default="holdout")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--misses", type=int, default=0, help="print this many misses")
    args = parser.parse_args(argv)
    notes = generate_phi_notes(args.n, args.seed, args.split)
    scrubber = Scrubber()
    scores = score(notes, scrubber.spans)
    print(scores_table(scores, f"medrep Scrubber, {args.split} split"))
    shown = 0
    for note in notes:
        if shown >= args.misses:
            break
        spans = scrubber.spans(note.text)
        for gold in note.spans:
            chars = [i for i in range(gold.start, gold.end) if note.text[i].isalnum()]
            if not all(any(s <= i < e for s, e, _ in spans) for i in chars):
                context = note.text[max(0, gold.start - 40) : gold.end + 20].replace("\n", " ")
                print(f"MISS {gold.category}: {note.text[gold.start : gold.end]!r} in {context!r}")
                shown += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
