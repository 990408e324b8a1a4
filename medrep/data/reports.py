"""Free-text radiology reports: sections, cleaning and sentences.

Section rules follow the MIMIC-CXR project's section parser (`txt/section_parser.py` in
MIT-LCP/mimic-cxr): a header is an upper-case phrase followed by a colon at the start of a line;
text before the first header is the preamble; header spellings map to canonical names through a
synonym table and then through keyword rules ("any header containing IMPRESSION is the
impression"); empty findings and impression sections are dropped; when a report has neither
findings nor impression, the paragraphs after the first paragraph of its last section stand in.
Where this module departs from that parser it says so (`ReportParser`).

All rules are plain data (`conf/reports/default.yaml` holds the same defaults), because every
hospital writes reports differently.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Header at a line start: upper-case phrase, optional spaces, then a colon that does not start a
# time ("AT 10:30" is not a header).
DEFAULT_HEADER_PATTERN = r"^[ \t]*(?P<header>[A-Z][A-Z0-9 ,&/()\-]{1,60}?)[ \t]*:(?!\d)"

# Canonical section -> header spellings (upper case, no colon). Exact matches come first; the
# spellings are those the MIMIC-CXR parser's table lists (misspellings included) and Open-I's.
DEFAULT_SYNONYMS: dict[str, list[str]] = {
    "findings": [
        "FINDINGS",
        "FINDING",
        "FINDNGS",
        "FINDINS",
        "FINDINDGS",
        "FINDGINGS",
        "FINDNINGS",
        "FINIDNGS",
        "REFERENCE FINDINGS",
        "CHEST, TWO VIEWS",
        "REPORT",
    ],
    "impression": [
        "IMPRESSION",
        "IMPRESSIONS",
        "IMPRESION",
        "IMPRESSON",
        "IMPRRESSION",
        "IMORESSION",
        "IMPRESSOIN",
        "IMPRSSION",
        "IMPERSSION",
        "MPRESSION",
        "IMPESSION",
        "FINDINGS AND IMPRESSION",
        "FINDINGS/IMPRESSION",
        "FINDINGS/ IMPRESSION",
        "CONCLUSION",
        "CONCLUSIONS",
        "SUMMARY",
        "OPINION",
    ],
    "comparison": [
        "COMPARISON",
        "COMPARISONS",
        "COMPARISION",
        "COMPARSION",
        "COMPARRISON",
        "COMPARISIONS",
        "COMPARISON STUDY",
        "COMPARISON EXAM",
        "COMPARISON FILM",
        "REFERENCE EXAM",
        "PRIOR",
        "PRIORS",
    ],
    "indication": [
        "INDICATION",
        "INDICATIONS",
        "IDICATION",
        "CLINICAL INDICATION",
        "REASON FOR EXAM",
        "REASON FOR EXAMINATION",
    ],
    "history": [
        "HISTORY",
        "CLINICAL HISTORY",
        "PATIENT HISTORY",
        "CLINICAL INFORMATION",
        "HX",
        "PFI",
    ],
    "technique": ["TECHNIQUE", "TECHNIQUES", "PROCEDURE"],
    "examination": ["EXAMINATION", "EXAM", "STUDY", "TYPE OF EXAMINATION"],
    "addendum": ["ADDENDUM"],
    "recommendations": ["RECOMMENDATION", "RECOMMENDATIONS", "RECOMMENDATION(S)"],
    "notification": ["NOTIFICATION"],
    "wet_read": ["WET READ", "WETREAD"],
}

# Canonical section -> substrings tried in order when no synonym matches exactly (lower case).
# The first four mirror the MIMIC-CXR parser's "main sections"; the findings phrases are its
# view descriptions ("PA AND LATERAL VIEWS OF THE CHEST:" introduces the findings).
DEFAULT_HEADER_KEYWORDS: dict[str, list[str]] = {
    "impression": ["impression"],
    "history": ["history"],
    "comparison": ["comparison"],
    "addendum": ["addendum"],
    "findings": [
        "findings",
        "chest",
        "portable",
        "pa and lateral",
        "lateral and pa",
        "ap and lateral",
        "lateral and ap",
        "frontal and",
        "two views",
        "frontal view",
        "pa view",
        "ap view",
        "one view",
        "lateral view",
        "bone window",
        "frontal upright",
        "frontal semi-upright",
        "ribs",
        "pa and lat",
    ],
}

# Upper-case labels that structured reports put inside the findings ("LUNGS: Clear."); they stay
# part of the text around them instead of opening a section of their own.
DEFAULT_SUBHEADERS: list[str] = [
    "LUNGS",
    "LUNG",
    "PLEURA",
    "HEART",
    "HEART AND MEDIASTINUM",
    "CARDIOMEDIASTINAL",
    "MEDIASTINUM",
    "HILA",
    "BONES",
    "OSSEOUS STRUCTURES",
    "SOFT TISSUES",
    "LINES AND TUBES",
    "TUBES AND LINES",
    "SUPPORT DEVICES",
    "UPPER ABDOMEN",
]

DEFAULT_SECTIONS: tuple[str, ...] = ("findings", "impression")

# De-identification placeholders: MIMIC-CXR writes `___`, Open-I writes `XXXX`.
PLACEHOLDER_PATTERN = r"_{2,}|\bX{2,}\b"

# Tokens whose period does not end a sentence (lower case, without the final period): titles,
# Latin and English shorthand, and the anatomical abbreviations radiologists write. Single
# letters (initials) never end a sentence either.
DEFAULT_ABBREVIATIONS: frozenset[str] = frozenset(
    {"dr", "mr", "mrs", "ms", "prof", "st", "vs", "approx", "appx", "fig", "nos", "cf"}
    | {"e.g", "i.e", "eg", "ie", "incl", "resp", "q.d", "a.m", "p.m", "pt", "pts", "hx", "dx"}
    | {"lat", "ant", "post", "inf", "sup", "med", "rt", "lt", "bilat", "sm", "lg", "mod"}
)

SHORT_SENTENCE_RULES: tuple[str, ...] = ("merge", "drop", "keep")

# Typographic punctuation that NFKC leaves alone, mapped to the ASCII that the rules expect.
_TYPOGRAPHIC = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u2022": "-",
        "\u00d7": "x",
    }
)
_SPACES = re.compile(r"[^\S\n]+")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# a list number: "1." / "2)" / "(3)" before a word, at the start of the text or after a space
_LIST_NUMBER = re.compile(r"(?:(?<=^)|(?<=\s))\(?(?P<n>\d{1,2})[.)](?:\s+|(?=[A-Z][a-z]))(?=\S)")
# a period glued to the next sentence ("effusion.Heart"): at least two lower-case letters before
_GLUED_SENTENCE = re.compile(r"(?<=[a-z]{2}[.!?])(?=[A-Z][a-z])")
_SENTENCE_END = re.compile(r"([.!?]+[\"')\]]*)\s+")
_ALNUM = re.compile(r"[^\W_]")
_LEADING_PUNCTUATION = re.compile(r"^[,.;:!?\s]+")
_NOT_WORD = re.compile(r"[^\w\s]")


def normalize_unicode(text: str) -> str:
    """NFKC, ASCII punctuation for typographic quotes and dashes, Unix newlines, and no control
    or invisible format characters (zero-width spaces, BOMs) left in the text."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        ch
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
        else " "
        for ch in text
    )


def normalise_text(text: str) -> str:
    """A text for duplicate detection: lower case, punctuation and extra spaces gone.

    "No acute cardiopulmonary process." and "no acute  cardiopulmonary process" are one text.
    One rule for training (`text_id`, duplicate-aware losses) and evaluation (dedup-aware
    Recall@k in `medrep.evaluation.retrieval`), so both agree on what a duplicate is.
    """
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def text_id(text: str) -> int:
    """A signed 64-bit id of `normalise_text(text)`, the same in every process and every run.

    Duplicates share an id; two different texts do with probability about 2^-64. (Python's
    `hash` of a string is salted per process, so data-parallel ranks would disagree on it.)
    """
    digest = hashlib.blake2b(normalise_text(text).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


@dataclass(frozen=True)
class ParsedReport:
    """A report split into canonical sections (lower-case names) and a preamble.

    Attributes:
        sections: canonical name -> cleaned text (non-empty), in report order.
        preamble: cleaned text before the first header.
        fallback: True when neither findings nor impression existed and the last paragraphs
            were used as the fallback section.
        headers: the canonical names of the report's own headers, in order (before the
            fallback; a header the parser does not know keeps a normalised name of its own).
    """

    sections: dict[str, str]
    preamble: str
    fallback: bool = False
    headers: tuple[str, ...] = ()

    def text(self, names: Sequence[str]) -> str:
        """The chosen sections' text joined in the order given (missing ones skipped)."""
        return " ".join(self.sections[n] for n in names if self.sections.get(n))

    def whole_text(self) -> str:
        """The preamble and every section's text, in report order (headers left out)."""
        return " ".join(t for t in (self.preamble, *self.sections.values()) if t)


@dataclass
class ReportParser:
    """Splits reports into sections and sentences; the rules are data so sites can configure them.

    Departures from the MIMIC-CXR parser, each for a reason: repeated sections are concatenated
    (it keeps the last); `subheaders` stay inside the section around them (it opens a section
    for "LUNGS:" and loses findings of structured reports); a header made only of placeholders
    ("XXXX:" at the start of a wrapped line) is not one; a report without any header and with a
    single paragraph is all fallback text (it yields nothing).

    Args:
        header_pattern: regex with a named group `header`, applied per line (MULTILINE).
        synonyms: canonical section name -> header spellings (upper case, no colon).
        header_keywords: canonical name -> lower-case substrings, tried in order after the
            synonyms; a header matching neither keeps a normalised name of its own.
        subheaders: header spellings that are not section boundaries (upper case, no colon).
        placeholder_pattern: de-identification placeholders to drop (MIMIC `___`, IU `XXXX`).
        fallback_section: where the stand-in paragraphs go ("" turns the fallback off).
        abbreviations: tokens whose trailing period does not end a sentence.
        min_words: sentences with fewer words are short.
        short_sentences: `merge` (into the previous sentence, or the next for the first one),
            `drop`, or `keep`.
    """

    header_pattern: str = DEFAULT_HEADER_PATTERN
    synonyms: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_SYNONYMS))
    header_keywords: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: dict(DEFAULT_HEADER_KEYWORDS)
    )
    subheaders: Sequence[str] = field(default_factory=lambda: list(DEFAULT_SUBHEADERS))
    placeholder_pattern: str = PLACEHOLDER_PATTERN
    fallback_section: str = "impression"
    abbreviations: Iterable[str] = DEFAULT_ABBREVIATIONS
    min_words: int = 2
    short_sentences: str = "merge"

    def __post_init__(self) -> None:
        if self.short_sentences not in SHORT_SENTENCE_RULES:
            raise ValueError(
                f"short_sentences={self.short_sentences!r}: use one of {SHORT_SENTENCE_RULES}"
            )
        if self.min_words < 0:
            raise ValueError(f"min_words={self.min_words}: must be 0 or more")
        self._header_re = re.compile(self.header_pattern, re.MULTILINE)
        if "header" not in self._header_re.groupindex:
            raise ValueError(
                f"header_pattern {self.header_pattern!r} has no named group 'header'; "
                "write it as (?P<header>...)"
            )
        self._placeholder_re = re.compile(self.placeholder_pattern)
        self._canonical = {
            _header_key(spelling): name
            for name, spellings in self.synonyms.items()
            for spelling in spellings
        }
        self._keywords = [
            (name, [w.lower() for w in words]) for name, words in self.header_keywords.items()
        ]
        self._subheaders = frozenset(_header_key(s) for s in self.subheaders)
        self._abbreviations = frozenset(a.lower().rstrip(".") for a in self.abbreviations)

    # ---------------------------------------------------------------------------- sections

    @property
    def section_names(self) -> frozenset[str]:
        """The canonical sections this parser knows (its synonyms' and keywords' names)."""
        return frozenset(self.synonyms) | frozenset(self.header_keywords)

    def canonical(self, header: str) -> str:
        """Canonical name of a header; unknown headers keep a normalised form of their own."""
        key = _header_key(header)
        if key in self._canonical:
            return self._canonical[key]
        lower = key.lower()
        for name, words in self._keywords:
            if any(w in lower for w in words):
                return name
        return re.sub(r"\W+", "_", lower).strip("_") or "unnamed"

    def parse(self, text: str) -> ParsedReport:
        """Split a raw report into cleaned sections. Repeated headers are concatenated in order."""
        text = normalize_unicode(text)
        matches = [
            m
            for m in self._header_re.finditer(text)
            if _header_key(m.group("header")) not in self._subheaders
            # a de-identified word is no section name ("XXXX:" at a wrapped line's start)
            and self._placeholder_re.sub("", m.group("header")).strip()
        ]
        blocks: list[tuple[str, str]] = []  # (canonical name, raw body) in report order
        preamble = text[: matches[0].start()] if matches else text
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            blocks.append((self.canonical(m.group("header")), text[m.end() : end]))

        fallback = ""
        if self.fallback_section and not any(
            name in ("findings", "impression") and self.clean(body) for name, body in blocks
        ):
            # the MIMIC-CXR rule: later paragraphs of the last section (or of a report without
            # headers) are the radiologist's conclusion written without a header
            last = blocks[-1][1] if blocks else text
            paragraphs = [p for p in _PARAGRAPH_BREAK.split(last.strip()) if self.clean(p)]
            if len(paragraphs) > 1:
                fallback = "\n\n".join(paragraphs[1:])
                if blocks:
                    blocks[-1] = (blocks[-1][0], paragraphs[0])
                else:
                    preamble = paragraphs[0]
            elif not blocks and paragraphs:
                fallback, preamble = paragraphs[0], ""

        sections: dict[str, str] = {}
        for name, body in blocks:
            cleaned = self.clean(body)
            if cleaned:
                sections[name] = f"{sections[name]} {cleaned}" if name in sections else cleaned
        cleaned_fallback = self.clean(fallback)
        if cleaned_fallback:
            name = self.fallback_section
            sections[name] = (
                f"{sections[name]} {cleaned_fallback}" if name in sections else cleaned_fallback
            )
        return ParsedReport(
            sections=sections,
            preamble=self.clean(preamble),
            fallback=bool(cleaned_fallback),
            headers=tuple(name for name, _ in blocks),
        )

    # ---------------------------------------------------------------------------- cleaning

    def clean(self, text: str) -> str:
        """One line of prose from a raw section body.

        Normalises unicode, drops placeholders, ends paragraphs and list items as sentences,
        strips list numbers, unwraps lines and collapses spaces. Text without any letter or
        digit cleans to "". Alphabetic words other than placeholders are never removed.
        Cleaning is idempotent: tidying a dropped placeholder's punctuation can put a list
        number after a sentence's end ("No . , 1. No" -> "No. 1. No"), so the steps repeat
        until the text holds.
        """
        cleaned = self._clean_once(text)
        for _ in range(8):
            again = self._clean_once(cleaned)
            if again == cleaned:
                break
            cleaned = again
        return cleaned

    def _clean_once(self, text: str) -> str:
        text = self._placeholder_re.sub(" ", normalize_unicode(text))
        text = _LEADING_PUNCTUATION.sub("", _SPACES.sub(" ", text).strip())
        # a paragraph break ends a sentence even without a period
        paragraphs = _PARAGRAPH_BREAK.split(text)
        text = " ".join([*(_end_sentence(p) for p in paragraphs[:-1]), paragraphs[-1]])
        text = self._strip_list_numbers(text)
        text = text.replace("\n", " ").replace("\t", " ")
        text = _GLUED_SENTENCE.sub(" ", text)
        text = _SPACES.sub(" ", text).strip()
        # a dropped placeholder leaves " ," or ". ." behind
        text = re.sub(r"\s+([,.;:!?])", r"\1", text)
        text = re.sub(r",+(?=[.;:!?])", "", text)
        text = re.sub(r"([.!?])[.,;:]+(?=\s|$)", r"\1", text)
        text = _LEADING_PUNCTUATION.sub("", text)
        return text if _ALNUM.search(text) else ""

    def _strip_list_numbers(self, text: str) -> str:
        """Remove list numbers, ending each item as a sentence.

        A number counts as a list number at the start of the text or after a sentence end,
        as `1.` at a line start, or when it continues the previous list number
        (`1. Cardiomegaly 2. No effusion`). "unchanged since 2. The lungs" keeps its 2, and so
        does a wrapped line that starts with "4. The" after "right rib".
        """
        out: list[str] = []
        start = 0
        previous: int | None = None
        for m in _LIST_NUMBER.finditer(text):
            before = text[: m.start()].rstrip()
            n = int(m.group("n"))
            # (right after a removed list number counts as a start too: "(3) 1. No")
            at_boundary = not text[start : m.start()].strip() or before.endswith(
                (".", "!", "?", ":", ";")
            )
            line_start = text[: m.start()].rstrip(" \t").endswith("\n")
            continues = previous is not None and n == previous + 1
            if not (at_boundary or continues or (n == 1 and line_start)):
                continue
            item = text[start : m.start()]
            out.append(_end_sentence(item) if item.strip() else item)
            start = m.end()
            previous = n
        out.append(text[start:])
        return " ".join(out)

    # ---------------------------------------------------------------------------- sentences

    def split_sentences(self, text: str) -> list[str]:
        """Split prose into sentences, keeping abbreviations, decimals and measurements intact.

        In `merge` and `keep` modes, joining the sentences with single spaces gives back
        `clean(text)` exactly.
        """
        text = self.clean(text)
        if not text:
            return []
        pieces: list[str] = []
        start = 0
        for m in _SENTENCE_END.finditer(text):
            end = m.end(1)
            # a lower-case start does not keep the sentence going: a dropped placeholder
            # ("lateral. XXXX sternotomy") and all-lower-case reports both start sentences so
            if m.group(1) == "." and self._is_abbreviation(text[start:end]):
                continue
            pieces.append(text[start:end])
            start = m.end()
        pieces.append(text[start:])
        return self._apply_short_rule(_attach_wordless([p.strip() for p in pieces if p.strip()]))

    def _is_abbreviation(self, candidate: str) -> bool:
        words = candidate.rsplit(None, 1)
        last = words[-1].rstrip(".").lower() if words else ""
        return last in self._abbreviations or (len(last) == 1 and last.isalpha())

    def _apply_short_rule(self, sentences: list[str]) -> list[str]:
        if self.short_sentences == "keep" or self.min_words <= 1:
            return sentences
        if self.short_sentences == "drop":
            return [s for s in sentences if len(s.split()) >= self.min_words]
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

    def sentences(self, text: str, sections: Sequence[str] = DEFAULT_SECTIONS) -> list[str]:
        """The sentences of the chosen sections of a raw report, in the order of `sections`."""
        parsed = self.parse(text)
        out: list[str] = []
        for name in sections:
            out.extend(self.split_sentences(parsed.sections.get(name, "")))
        return out


def _attach_wordless(pieces: list[str]) -> list[str]:
    """Pieces without a letter or digit ("-.") joined to their neighbour, whatever the rule."""
    out: list[str] = []
    pending = ""
    for piece in pieces:
        if not _ALNUM.search(piece):
            if out:
                out[-1] = f"{out[-1]} {piece}"
            else:
                pending = f"{pending} {piece}".strip()
            continue
        out.append(f"{pending} {piece}".strip() if pending else piece)
        pending = ""
    if pending:
        out.append(pending)
    return out


def _header_key(header: str) -> str:
    return " ".join(header.upper().split())


def _end_sentence(text: str) -> str:
    """`text` ending with sentence punctuation (a period is added when it ends without one)."""
    stripped = text.rstrip()
    if not stripped or not _ALNUM.search(stripped) or stripped[-1] in ".!?:;,":
        return stripped
    return f"{stripped}."
