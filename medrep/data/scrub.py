"""Text de-identification: identifiers that survive in hospital reports become placeholders.

`Scrubber.scrub(text)` replaces names after titles or before credentials, dates, times, phone
and pager numbers, record and accession numbers, and ages over 89 with a placeholder (`___`, the
placeholder MIMIC-CXR uses, which `ReportParser.clean` then drops). It returns the scrubbed
text and how many spans of each category it replaced, never the replaced text, so the counts can
go into logs and summaries.

The rules are anchored on what makes a span an identifier (a title, a keyword such as "MRN",
the shape of a date or a phone number) rather than on lists of names, so clinical prose passes
unchanged: "No pleural effusion", "5.2 x 3.1 mm", "T7 vertebra", "2.8 cm above the carina",
"C5-6", "14F catheter", "at 90 degrees". It is a safety net for reports that a hospital has
already de-identified, not a certified de-identification tool.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

SCRUB_CATEGORIES: tuple[str, ...] = (
    "email",
    "id",
    "phone",
    "date",
    "time",
    "address",
    "name",
    "age",
)

# Titles before a person's name, written as they appear (case matters: "MR." is a title, "MR"
# alone is magnetic resonance, "MS" multiple sclerosis).
DEFAULT_TITLES: tuple[str, ...] = (
    "Dr.",
    "Dr",
    "DR.",
    "Doctor",
    "DOCTOR",
    "Mr.",
    "Mr",
    "MR.",
    "Mrs.",
    "Mrs",
    "MRS.",
    "Ms.",
    "Ms",
    "Miss",
    "Prof.",
    "Professor",
    "Nurse",
)
# Credentials after a person's name ("Jane Doe, MD").
DEFAULT_CREDENTIALS: tuple[str, ...] = ("MD", "M.D.", "DO", "D.O.", "RN", "NP", "PA-C", "PhD")
# Phrases after which a name follows (case-insensitive).
DEFAULT_NAME_CUES: tuple[str, ...] = (
    "signed by",
    "dictated by",
    "reported by",
    "read by",
    "reviewed by",
    "transcribed by",
    "attending",
    "radiologist",
    "resident",
)
# Words that introduce a record, accession or visit number (case-insensitive).
DEFAULT_ID_CUES: tuple[str, ...] = (
    "mrn",
    "mr#",
    "mr #",
    "medical record number",
    "medical record no",
    "medical record",
    "record number",
    "accession number",
    "accession no",
    "accession",
    "acc #",
    "acc#",
    "acc no",
    "patient id",
    "pt id",
    "study id",
    "exam number",
    "order number",
    "visit number",
    "encounter number",
    "unit number",
    "fin",
)
# Words that introduce a phone, pager or extension number (case-insensitive).
DEFAULT_PHONE_CUES: tuple[str, ...] = (
    "pager",
    "paged",
    "page",
    "beeper",
    "ext",
    "extension",
    "phone",
    "telephone",
    "tel",
    "cell",
    "fax",
    "call",
)

_MONTHS = (
    "Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    "|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
)
_MONTH = rf"(?:{_MONTHS}|{_MONTHS.upper()})\.?"
# "May" not followed by a lower-case word (then it is the verb: "1 May represent")
_MONTHS_NOT_VERB = _MONTHS.replace("May", r"May(?!\s+[a-z])")
# and in an all-capitals report ("2 MAY REPRESENT ATELECTASIS")
_MONTHS_NOT_VERB_UPPER = _MONTHS.upper().replace("MAY", r"MAY(?!\s+[A-Z])")
_YEAR = r"(?:19|20)\d{2}"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"

_DATE_PATTERNS: tuple[str, ...] = (
    # first, so that "13 February. 3 March" is not read as "February. 3":
    # 14-MAR-2019, 14-Mar-19
    rf"\b{_DAY}-{_MONTH}-(?:{_YEAR}|\d{{2}})\b",
    # a day and month, with or without a year: "13 February", "28th March", "14th of March
    # 2021" ("1 May represent": the verb, when a lower-case word follows)
    rf"(?<![\d.])\b{_DAY}\s+(?:of\s+)?(?:{_MONTHS_NOT_VERB}|{_MONTHS_NOT_VERB_UPPER})(?![A-Za-z])"
    rf"(?:,?\s+{_YEAR}\b)?",
    # 03/14/2021, 3-14-21, 2021-03-14, 14.03.2021
    r"(?<![\d./-])\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})(?![\d/-])",
    rf"(?<![\d./-]){_YEAR}[/-]\d{{1,2}}[/-]\d{{1,2}}(?![\d/-])",
    rf"(?<![\d.]){_DAY}\.\d{{1,2}}\.{_YEAR}(?!\d|\.\d)",
    # March 14, 2021 / Mar 14 / 14 March 2021 / March 2021
    # (not "MAY 1.0 cm": a day is no decimal)
    rf"\b{_MONTH}\s+{_DAY}(?!\.\d)(?:,?\s+{_YEAR})?\b",
    rf"\b{_DAY}\s+{_MONTH},?\s+{_YEAR}\b",
    rf"\b{_MONTH},?\s+{_YEAR}\b",
    # "on 3/14", "dated 3/14": a month and day without a year
    r"(?<=\bon )\d{1,2}/\d{1,2}(?![\d/])",
    r"(?<=\bdated )\d{1,2}/\d{1,2}(?![\d/])",
)
_TIME_PATTERNS: tuple[str, ...] = (
    r"(?<![\d:.])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s*(?:[AaPp]\.[Mm]\.|[AaPp][Mm]\b))?"
    r"(?![\d:])",
    r"(?<![\d.])(?:1[0-2]|0?[1-9])\s*(?:[AaPp]\.[Mm]\.|[AaPp][Mm]\b)",
    r"(?<![\d.])(?:[01]\d|2[0-3])[0-5]\d\s*(?:hours|hrs|h)\b",
)
_PHONE_PATTERNS: tuple[str, ...] = (
    r"(?<![\d.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d|\.\d)",
    r"(?<![\d.\-])\d{3}-\d{4}(?!\d|\.\d)",
    # international: "+44 20 7946 0958", "+33 (0)1 42 68 53 00", "+1-617-555-0100": a country
    # code, then groups each after a space or hyphen, 8 digits at least ("+120 HU", "+1.25 cm"
    # and "+12.5 degrees" are measurements)
    r"(?<![\w+])\+\d{1,3}(?=(?:\D{0,3}\d){7})(?:[\s-](?:\(\d{1,4}\)\s?)?\d{1,4}){2,6}(?![\d.])",
)
_EMAIL_PATTERNS: tuple[str, ...] = (r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",)
# a US social security number: no measurement or clinical code has this shape
_SSN_PATTERN = r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"
# "221B Baker Street", "12 Oak Rd., Springfield": a number, capitalised words, a street type,
# and the town after a comma
# (no "Ct", "Pl", "Way", "Close": "3 Prior Ct Findings" is a title-case report)
_STREET_TYPES = (
    "Street|St\\.?|Road|Rd\\.?|Avenue|Ave\\.?|Lane|Ln\\.?|Drive|Boulevard|Blvd\\.?|Court"
    "|Terrace|Crescent|Square|Highway|Parkway"
)
_ADDRESS_PATTERNS: tuple[str, ...] = (
    rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Z][a-z]+\s+){{1,3}}(?:{_STREET_TYPES})(?![A-Za-z])"
    r"(?:,\s*[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)?",
)
# ages over 89 in words ("ninety-two-year-old", "one hundred and one years old")
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_AGE_WORDS = (
    rf"(?i:\b(?P<w>(?:ninety|one\s+hundred|a\s+hundred)(?:[\s-]+(?:and\s+)?(?:{_UNITS}|ten|"
    r"eleven|twelve))?)(?=\s*-?\s*(?:years?|yrs?)\b))"
)
# ages: "92-year-old", "92 year old", "92 yo", "92 y/o", "age 92", "aged 92", "92F", "92 M"
_AGE_PATTERNS: tuple[str, ...] = (
    _AGE_WORDS,
    r"\b(?P<n>\d{2,3})(?=\s*-?\s*(?:years?|yrs?)\b(?:\s*-?\s*old)?)",
    r"\b(?P<n>\d{2,3})(?=\s*(?:y/o|y\.o\.?|yo|yof|yom)\b)",
    r"(?i:\b(?:age|aged)\s*:?\s*)(?P<n>\d{2,3})\b",
    r"\b(?P<n>\d{2,3})(?=\s?[MF]\b)",
)
_NAME_TOKEN = r"[A-Z][A-Za-z'\-]+"
# further name tokens: initials or capitalised words with a lower-case second letter, so that an
# all-capitals sentence after "DR. SMITH" is not swallowed
_NAME_MORE = r"(?:\s+(?:[A-Z]\.|[A-Z](?=\s)|[A-Z][a-z][A-Za-z'\-]*)){0,2}"


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed text and the number of replaced spans per category (never the spans)."""

    text: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Scrubber:
    """Replaces identifiers in report text with a placeholder.

    Args:
        enabled: False returns every text unchanged (zero counts).
        categories: which of `SCRUB_CATEGORIES` to scrub.
        replacement: what replaces each span (`___` is dropped by `ReportParser.clean`).
        titles: literal titles before names (case-sensitive).
        credentials: literal credentials after names.
        name_cues: phrases after which a name follows (case-insensitive).
        id_cues: words that introduce record or accession numbers (case-insensitive).
        phone_cues: words that introduce phone, pager or extension numbers (case-insensitive).
        min_id_digits: a bare run of at least this many digits is an identifier.
        max_age: ages above this are identifiers (HIPAA Safe Harbor: over 89).
    """

    enabled: bool = True
    categories: Sequence[str] = SCRUB_CATEGORIES
    replacement: str = "___"
    titles: Sequence[str] = DEFAULT_TITLES
    credentials: Sequence[str] = DEFAULT_CREDENTIALS
    name_cues: Sequence[str] = DEFAULT_NAME_CUES
    id_cues: Sequence[str] = DEFAULT_ID_CUES
    phone_cues: Sequence[str] = DEFAULT_PHONE_CUES
    min_id_digits: int = 7
    max_age: int = 89
    _rules: list[tuple[str, re.Pattern[str]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # tuples: a scrubber built from a config's lists equals one built from the defaults
        for name in ("categories", "titles", "credentials", "name_cues", "id_cues", "phone_cues"):
            setattr(self, name, tuple(getattr(self, name)))
        unknown = set(self.categories) - set(SCRUB_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown scrub categories {sorted(unknown)}; use {SCRUB_CATEGORIES}")
        if self.min_id_digits < 4:
            raise ValueError(f"min_id_digits={self.min_id_digits}: below 4 it eats measurements")
        self._rules = [
            (c, p) for c in SCRUB_CATEGORIES if c in self.categories for p in self._compile(c)
        ]

    # one list of patterns per category: the branches look alike and hold different patterns
    def _compile(self, category: str) -> list[re.Pattern[str]]:
        if category == "email":
            return [re.compile(p) for p in _EMAIL_PATTERNS]
        if category == "address":
            return [re.compile(p) for p in _ADDRESS_PATTERNS]
        if category == "id":
            cues = _alternation(self.id_cues)
            return [
                re.compile(_SSN_PATTERN),
                # the value after a cue must hold a digit: "accession: A12345", "MRN 0012345"
                re.compile(
                    rf"(?i:\b(?:{cues}))(?![A-Za-z])\s*(?:[:#]|no\.?|number)?\s*[:#]?\s*"
                    r"(?P<v>[A-Za-z]{0,4}\d[\w-]{2,})"
                ),
                # no measurement has seven digits
                re.compile(rf"(?<![\d.])\d{{{self.min_id_digits},}}(?!\d|\.\d)"),
                re.compile(r"\b[A-Z]{1,3}\d{6,}\b"),
            ]
        if category == "phone":
            cues = _alternation(self.phone_cues)
            return [
                re.compile(
                    rf"(?i:\b(?:{cues})\b\.?)\s*(?:#|no\.?|number)?\s*:?\s*"
                    r"(?P<v>\d[\d-]{2,}\d)(?!\d|\.\d)"
                ),
                *(re.compile(p) for p in _PHONE_PATTERNS),
            ]
        if category == "date":
            return [re.compile(p) for p in _DATE_PATTERNS]
        if category == "time":
            return [re.compile(p) for p in _TIME_PATTERNS]
        if category == "name":
            titles = "|".join(re.escape(t) for t in sorted(self.titles, key=len, reverse=True))
            credentials = "|".join(
                re.escape(c) for c in sorted(self.credentials, key=len, reverse=True)
            )
            cues = _alternation(self.name_cues)
            name = rf"(?:[A-Z]\.\s*){{0,2}}{_NAME_TOKEN}{_NAME_MORE}"
            return [
                # "Dr. Smith", "Dr.Smith", "Mrs J. Doe": the title stays, the name goes
                re.compile(rf"(?<![A-Za-z])(?:{titles})(?:(?<=\.)\s*|\s+)(?P<v>{name})"),
                # "Jane Doe, MD"
                re.compile(
                    rf"\b(?P<v>[A-Z][a-z][A-Za-z'\-]*(?:\s+[A-Z]\.?)?\s+[A-Z][a-z][A-Za-z'\-]*)"
                    rf",?\s+(?:{credentials})(?![A-Za-z])"
                ),
                # "Electronically signed by: Jane Doe", "Attending radiologist: Doe" (a title
                # after the cue is left to the first rule)
                re.compile(
                    rf"(?i:\b(?:{cues})(?:\s+(?:{cues}))*)(?![A-Za-z])\s*:?\s*"
                    rf"(?!(?:{titles})(?![A-Za-z]))(?P<v>{name})"
                ),
            ]
        # age
        return [re.compile(p) for p in _AGE_PATTERNS]

    def scrub(self, text: str) -> ScrubResult:
        """`text` with identifiers replaced, and the count of replaced spans per category."""
        counts = {c: 0 for c in self.categories}
        if not self.enabled or not text:
            return ScrubResult(text, counts)
        for category, pattern in self._rules:
            text, n = self._replace(pattern, text, category)
            counts[category] += n
        return ScrubResult(text, counts)

    def _replace(self, pattern: re.Pattern[str], text: str, category: str) -> tuple[str, int]:
        out: list[str] = []
        last = 0
        n = 0
        group = next((g for g in ("v", "n", "w") if g in pattern.groupindex), 0)
        for m in pattern.finditer(text):
            start, end = m.span(group)
            if start < 0:
                continue
            # an age in digits is an identifier over max_age; one in words is matched only from
            # ninety on
            if category == "age" and group == "n" and int(m.group(group)) <= self.max_age:
                continue
            if category == "age" and group == "w" and self.max_age >= 90:
                continue
            out.append(text[last:start])
            out.append(self.replacement)
            last = end
            n += 1
        out.append(text[last:])
        return "".join(out), n


def _alternation(words: Sequence[str]) -> str:
    """A regex alternation of literal phrases, longest first, spaces matching any whitespace."""
    ordered = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
    return "|".join(r"\s+".join(re.escape(part) for part in w.split()) for w in ordered)
