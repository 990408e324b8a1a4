"""The view vocabulary: raw view values as exports write them -> PA, AP, LATERAL or unknown.

Exports spell views many ways: DICOM ViewPosition (`PA`, `AP`, `LL`, `RL`), metadata columns
(`AP Supine`, `PA erect`, `Portable AP`, `Lateral`, `LAT`), blanks and junk (`?`, `-`). Ingestion
filters on the canonical view, so that every frontal film is kept by the default `views: [PA,
AP]` whatever its spelling. Matching is case-, space-, hyphen- and underscore-insensitive; a
site adds or overrides spellings with `data.ingest.view_map` (`{"AP LORDOTIC": "AP"}`); a value
that maps to `""` is unknown (kept only with `keep_unknown_view`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PA, AP, LATERAL, UNKNOWN = "PA", "AP", "LATERAL", ""
CANONICAL_VIEWS = (PA, AP, LATERAL)

# whole values (normalised: upper case, single spaces), checked before the word rules below
VIEW_VOCABULARY: dict[str, str] = {
    "PA": PA,
    "PA ERECT": PA,
    "PA UPRIGHT": PA,
    "PA CHEST": PA,
    "POSTERO ANTERIOR": PA,
    "POSTEROANTERIOR": PA,
    "FRONTAL PA": PA,
    "AP": AP,
    "AP SUPINE": AP,
    "AP ERECT": AP,
    "AP UPRIGHT": AP,
    "AP SEMI ERECT": AP,
    "AP SITTING": AP,
    "AP PORTABLE": AP,
    "PORTABLE AP": AP,
    "AP PORT": AP,
    "ANTERO POSTERIOR": AP,
    "ANTEROPOSTERIOR": AP,
    "SUPINE": AP,
    "PORTABLE": AP,
    "LATERAL": LATERAL,
    "LAT": LATERAL,
    "LL": LATERAL,
    "RL": LATERAL,
    "LEFT LATERAL": LATERAL,
    "RIGHT LATERAL": LATERAL,
    "LEFT LATERAL DECUBITUS": UNKNOWN,
    "RIGHT LATERAL DECUBITUS": UNKNOWN,
    "LATERAL LEFT": LATERAL,
    "LATERAL RIGHT": LATERAL,
}
# words that decide a value the vocabulary does not list ("CHEST PA 2 VIEWS", "AP SUPINE PORT")
_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    (LATERAL, frozenset({"LATERAL", "LAT", "LL", "RL"})),
    (PA, frozenset({"PA", "POSTEROANTERIOR"})),
    (AP, frozenset({"AP", "ANTEROPOSTERIOR"})),
)
# patient positions that imply AP only when no view word is there ("PORTABLE LATERAL" is lateral)
_AP_POSITIONS = frozenset({"SUPINE", "PORTABLE", "PORT"})
# a decubitus film is a horizontal-beam frontal, neither PA, AP nor a true lateral: unknown
_NOT_A_VIEW = frozenset({"DECUBITUS", "DECUB", "LLD", "RLD", "OBLIQUE", "LORDOTIC"})


def normalise_view(raw: str) -> str:
    """Upper case, dots removed ("A.P." is AP), hyphens, underscores and slashes as spaces,
    single spaces, stripped."""
    return " ".join(re.sub(r"[-_/]", " ", str(raw).replace(".", "")).upper().split())


def canonical_view(raw: str, view_map: Mapping[str, str] | None = None) -> str:
    """PA, AP, LATERAL, or "" (unknown: blank, junk, or a view no rule names).

    `view_map` (a site's spellings, matched after normalising both sides) wins over the
    vocabulary; a value naming two kinds of view ("AP LAT") is unknown.
    """
    value = normalise_view(raw)
    if not value:
        return UNKNOWN
    site = {normalise_view(k): normalise_view(v) for k, v in (view_map or {}).items()}
    if value in site:
        mapped = site[value]
        if mapped and mapped not in CANONICAL_VIEWS:
            raise ValueError(
                f"data.ingest.view_map maps {raw!r} to {mapped!r}; use one of "
                f"{list(CANONICAL_VIEWS)} or '' (unknown)"
            )
        return mapped
    if value in VIEW_VOCABULARY:
        return VIEW_VOCABULARY[value]
    words = set(value.split())
    if words & _NOT_A_VIEW:
        return UNKNOWN
    named = [view for view, cues in _WORDS if words & cues]
    if not named and words & _AP_POSITIONS:
        return AP
    return named[0] if len(named) == 1 else UNKNOWN
