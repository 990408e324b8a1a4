"""The labelled PHI set is sound, the scorer counts what it says, and the scrubber's measured
recall and precision (docs/reports.md) do not regress."""

from __future__ import annotations

import pytest

from medrep.data.phi_corpus import (
    PHI_CATEGORIES,
    SPLITS,
    PhiNote,
    PhiSpan,
    corpus_stats,
    generate_phi_notes,
    split_vocabulary,
)
from medrep.data.phi_eval import score
from medrep.data.scrub import Scrubber


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[PhiNote]]:
    return {split: generate_phi_notes(600, 0, split) for split in SPLITS}


def test_spans_are_exact_sorted_and_disjoint(corpus: dict[str, list[PhiNote]]) -> None:
    for notes in corpus.values():
        for note in notes:
            ends = [-1]
            for span in note.spans:
                assert span.category in PHI_CATEGORIES
                assert span.start >= ends[-1] and span.end > span.start
                text = note.text[span.start : span.end]
                assert text == text.strip() and text
                ends.append(span.end)


def test_every_split_is_large_and_covers_every_category(
    corpus: dict[str, list[PhiNote]],
) -> None:
    for split, notes in corpus.items():
        stats = corpus_stats(notes)
        assert sum(stats.values()) >= 1000, split
        assert all(stats[c] >= (30 if c == "time" else 60) for c in PHI_CATEGORIES), stats


def test_splits_share_no_proper_noun_and_generation_is_deterministic(
    corpus: dict[str, list[PhiNote]],
) -> None:
    tokens = {split: split_vocabulary(split).proper_noun_tokens() for split in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not tokens[a] & tokens[b], (a, b, sorted(tokens[a] & tokens[b])[:5])
    assert generate_phi_notes(600, 0, "holdout") == corpus["holdout"]
    assert [n.text for n in generate_phi_notes(5, 1, "dev")] != [n.text for n in corpus["dev"][:5]]


def test_the_scorer_counts_whole_identifiers_and_overlapping_spans() -> None:
    text = "Seen by Dr. Jane Roe on 13 March. Lungs clear."
    note = PhiNote(
        text,
        (PhiSpan(12, 20, "name"), PhiSpan(24, 32, "date")),
        "hand",
    )
    # the name wholly removed, the date half removed, one span on clinical text
    scores = score([note], lambda _: [(12, 20, "name"), (24, 26, "date"), (34, 39, "geo")])
    assert scores.recall("name") == 1.0 and scores.recall("date") == 0.0
    assert scores.precision("name") == 1.0 and scores.precision("date") == 1.0
    assert scores.precision("geo") == 0.0
    assert scores.clinical_removed == 5  # "Lungs"


@pytest.mark.slow
def test_measured_recall_and_precision_hold(corpus: dict[str, list[PhiNote]]) -> None:
    """Floors a little under the figures of docs/reports.md (600 notes, seed 0), so a rule
    change that loses identifiers or eats clinical text fails here. Every split here has had the
    rules fixed on it (holdout2 after its one held-out score, 0.570 / 0.908); a new held-out
    figure needs notes the rules have not met."""
    scrubber = Scrubber()
    floors = {
        "dev": (0.99, 0.99),
        "test": (0.99, 0.99),
        "holdout": (0.98, 0.99),
        "holdout2": (0.92, 0.98),
    }
    for split, (recall, precision) in floors.items():
        scores = score(corpus[split], scrubber.spans)
        assert scores.overall_recall >= recall, (split, scores.overall_recall)
        assert scores.overall_precision >= precision, (split, scores.overall_precision)
        assert scores.clinical_removed / scores.clinical_total < 0.005, split
