"""Free-text radiology reports: sections, cleaning, sentences, and ConVIRT's sentence sampling.

Section rules follow the MIMIC-CXR project's section parser: a header is an upper-case phrase
followed by a colon at the start of a line; text before the first header is the preamble;
header synonyms map to canonical names; when a report has neither findings nor impression, its
last paragraph stands in for the impression.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_HEADER_PATTERN = r"^[ \t]*(?P<header>[A-Z][A-Z0-9 ,&/()\-]{1,60}?)[ \t]*:"

# Canonical section -> header spellings seen in MIMIC-CXR and Open-I (upper case, no colon).
DEFAULT_SYNONYMS: dict[str, list[str]] = {
    "findings": [
        "FINDINGS",
        "FINDING",
        "FINDNGS",
        "FINDINGS AND IMPRESSION",
        "REPORT",
        "PA AND LATERAL VIEWS OF THE CHEST",
        "FRONTAL AND LATERAL VIEWS OF THE CHEST",
    ],
    "impression": [
        "IMPRESSION",
        "IMPRESSIONS",
        "IMPRESION",
        "CONCLUSION",
        "CONCLUSIONS",
        "SUMMARY",
        "OPINION",
    ],
    "comparison": ["COMPARISON", "COMPARISONS", "COMPARISON STUDY", "PRIOR", "PRIORS"],
    "indication": [
        "INDICATION",
        "INDICATIONS",
        "CLINICAL INDICATION",
        "REASON FOR EXAM",
        "REASON FOR EXAMINATION",
        "CLINICAL INFORMATION",
    ],
    "history": ["HISTORY", "CLINICAL HISTORY", "HX"],
    "technique": ["TECHNIQUE", "TECHNIQUES", "PROCEDURE"],
    "examination": ["EXAMINATION", "EXAM", "STUDY", "TYPE OF EXAMINATION"],
    "addendum": ["ADDENDUM"],
    "recommendation": ["RECOMMENDATION", "RECOMMENDATIONS", "RECOMMENDATION(S)"],
    "notification": ["NOTIFICATION"],
    "wet_read": ["WET READ"],
}

PLACEHOLDER_PATTERN = r"_{2,}|\bX{2,}\b"

# Abbreviations whose period does not end a sentence (lower case, without the period).
DEFAULT_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "vs", "approx", "appt", "apt", "dept", "est", "fig", "nos", "st"}
    | {"e.g", "i.e", "etc", "cf", "al", "incl", "resp", "q.d"}
)

_LIST_NUMBER = re.compile(r"(?:(?<=^)|(?<=\s))(?:\(?\d{1,2}[.)])\s+(?=[A-Za-z])")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_SENTENCE_END = re.compile(r"([.!?])\s+")


@dataclass(frozen=True)
class ParsedReport:
    """A report split into canonical sections (lower-case names) and a preamble."""

    sections: dict[str, str]
    preamble: str

    def text(self, names: Sequence[str]) -> str:
        """The chosen sections' text joined in the order given (missing ones skipped)."""
        return " ".join(self.sections[n] for n in names if self.sections.get(n))


@dataclass
class ReportParser:
    """Splits reports into sections and sentences; rules are data so sites can configure them.

    Args:
        header_pattern: regex with a named group `header`, applied per line (MULTILINE).
        synonyms: canonical section name -> header spellings (upper case, no colon).
        placeholder_pattern: de-identification placeholders to drop (MIMIC `___`, IU `XXXX`).
        min_words: sentences with fewer words are merged into the previous sentence.
        abbreviations: tokens whose trailing period does not end a sentence.
    """

    header_pattern: str = DEFAULT_HEADER_PATTERN
    synonyms: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_SYNONYMS))
    placeholder_pattern: str = PLACEHOLDER_PATTERN
    min_words: int = 2
    abbreviations: Iterable[str] = DEFAULT_ABBREVIATIONS

    def __post_init__(self) -> None:
        self._header_re = re.compile(self.header_pattern, re.MULTILINE)
        self._placeholder_re = re.compile(self.placeholder_pattern)
        self._canonical = {
            spelling.upper(): name
            for name, spellings in self.synonyms.items()
            for spelling in spellings
        }
        self._abbreviations = frozenset(a.lower().rstrip(".") for a in self.abbreviations)

    def canonical(self, header: str) -> str:
        """Canonical name of a header; unknown headers keep a normalised form of their own."""
        key = _SPACES.sub(" ", header.strip().upper())
        return self._canonical.get(key, key.lower().replace(" ", "_"))

    def parse(self, text: str) -> ParsedReport:
        """Split a raw report into sections. Repeated headers are concatenated in order."""
        text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
        matches = list(self._header_re.finditer(text))
        preamble = text[: matches[0].start()] if matches else text
        sections: dict[str, str] = {}
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            body = self.clean(text[m.end() : end])
            name = self.canonical(m.group("header"))
            if body:
                sections[name] = f"{sections[name]} {body}" if name in sections else body
        if "findings" not in sections and "impression" not in sections:
            paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if self.clean(p)]
            if paragraphs:
                last = paragraphs[-1]
                last = self._header_re.sub("", last, count=1)
                if self.clean(last):
                    sections["impression"] = self.clean(last)
        return ParsedReport(sections=sections, preamble=self.clean(preamble))

    def clean(self, text: str) -> str:
        """Normalise unicode, drop placeholders and list numbers, unwrap lines, collapse spaces."""
        text = unicodedata.normalize("NFKC", text)
        text = self._placeholder_re.sub(" ", text)
        items = [i.strip() for i in _LIST_NUMBER.split(text)]
        # a list number starts a new item: end the previous one as a sentence
        items = [
            i if k == len(items) - 1 or i[-1:] in ".!?:;" else f"{i}."
            for k, i in enumerate(items)
            if i
        ]
        text = " ".join(items).replace("\n", " ")
        text = _SPACES.sub(" ", text).strip()
        # placeholders removed mid-phrase can leave " ," or " ." behind
        return re.sub(r"\s+([,.;:])", r"\1", text)

    def split_sentences(self, text: str) -> list[str]:
        """Split cleaned prose into sentences, keeping abbreviations and decimals intact."""
        text = self.clean(text)
        if not text:
            return []
        pieces: list[str] = []
        start = 0
        for m in _SENTENCE_END.finditer(text):
            end = m.end(1)
            candidate = text[start:end]
            if m.group(1) == "." and self._is_abbreviation(candidate):
                continue
            nxt = text[m.end() : m.end() + 1]
            if nxt and (nxt.islower() or nxt.isdigit()) and m.group(1) == ".":
                # "approx. 5 mm", "e.g. effusion": a lower-case or digit start continues the sentence
                continue
            pieces.append(candidate.strip())
            start = m.end()
        tail = text[start:].strip()
        if tail:
            pieces.append(tail)
        return self._merge_short(pieces)

    def _is_abbreviation(self, candidate: str) -> bool:
        last = candidate.rsplit(None, 1)[-1].rstrip(".").lower()
        return last in self._abbreviations or (len(last) == 1 and last.isalpha())

    def _merge_short(self, sentences: list[str]) -> list[str]:
        merged: list[str] = []
        for s in sentences:
            if merged and len(s.split()) < self.min_words:
                merged[-1] = f"{merged[-1]} {s}"
            else:
                merged.append(s)
        if len(merged) > 1 and len(merged[0].split()) < self.min_words:
            merged[1] = f"{merged[0]} {merged[1]}"
            merged.pop(0)
        return merged

    def sentences(
        self, text: str, sections: Sequence[str] = ("findings", "impression")
    ) -> list[str]:
        """The sentences of the chosen sections of a raw report, in report order."""
        parsed = self.parse(text)
        out: list[str] = []
        for name in sections:
            out.extend(self.split_sentences(parsed.sections.get(name, "")))
        return out
