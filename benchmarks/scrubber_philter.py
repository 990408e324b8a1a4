"""medrep's scrubber beside philter-lite (the rules of Philter, npj Digital Medicine 2020) on the
labelled PHI set of `medrep.data.phi_corpus`, scored the same way (`medrep.data.phi_eval`).

philter-lite is not a dependency of medrep (it pulls nltk, whose part-of-speech tagger needs a
data download that an offline site does not have), so this runs under a separate environment:

    python3 -m venv /tmp/plvenv && /tmp/plvenv/bin/pip install philter-lite==0.6.0
    PYTHONPATH=. /tmp/plvenv/bin/python -m benchmarks.scrubber_philter --split holdout

Philter's configuration `philter_delta.toml` has one part-of-speech filter, which marks the
numbers (`CD`) that no earlier filter claimed as safe. Without nltk's tagger data, tokens are
tagged here `CD` when they are numbers and `NN` otherwise, which keeps that filter's effect;
every other filter (its regular expressions, name and word sets, context rules) runs as
shipped. A character counts as removed when Philter's asterisk output replaced it.
"""

from __future__ import annotations

import argparse
import importlib.resources
import re
from collections.abc import Sequence

from medrep.data.phi_corpus import generate_phi_notes
from medrep.data.phi_eval import score, scores_table
from medrep.data.scrub import Scrubber

_NUMBER = re.compile(r"[\d.,/:-]+")


def philter_predictor(config: str | None = None):  # type: ignore[no-untyped-def]
    import philter_lite
    import philter_lite.philter as philter_module

    path = config or str(importlib.resources.files("philter_lite") / "configs/philter_delta.toml")
    filters = philter_lite.load_filters(path)
    philter_module._get_pos = lambda text: [  # no nltk tagger data offline (docstring)
        (w, "CD" if _NUMBER.fullmatch(w) else "NN") for w in philter_module._get_clean(text)
    ]

    def predict(text: str) -> list[tuple[int, int, str]]:
        include_map, _, _ = philter_lite.detect_phi(text, patterns=filters)
        out = philter_lite.transform_text_asterisk(text, include_map)
        if len(out) != len(text):
            raise RuntimeError("philter-lite changed the text's length; cannot align")
        spans, start = [], None
        for i, (a, b) in enumerate(zip(text, out, strict=True)):
            removed = b == "*" and a != "*"
            if removed and start is None:
                start = i
            elif not removed and start is not None:
                spans.append((start, i, "philter"))
                start = None
        if start is not None:
            spans.append((start, len(text), "philter"))
        return spans

    return predict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="holdout")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    notes = generate_phi_notes(args.n, args.seed, args.split)
    print(scores_table(score(notes, Scrubber().spans), f"medrep Scrubber, {args.split}"))
    print()
    print(scores_table(score(notes, philter_predictor()), f"philter-lite 0.6.0, {args.split}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
