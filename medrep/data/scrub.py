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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from medrep.data.gazetteer import load_places

# the order rules run in: an e-mail before the digits in it, an address before its town, an
# institution before the town in its name, a title's name before a town of that name
SCRUB_CATEGORIES: tuple[str, ...] = (
    "email",
    "id",
    "phone",
    "date",
    "time",
    "address",
    "institution",
    "name",
    "age",
    "geo",
)

# Titles before a person's name, written as they appear (case matters: "MR." is a title, "MR"
# alone is magnetic resonance, "MS" multiple sclerosis).
DEFAULT_TITLES: tuple[str, ...] = (
    "Dr.",
    "Dr",
    "DR.",
    "DR",
    "Doctor",
    "DOCTOR",
    "Mr.",
    "Mr",
    "MR.",
    "Mrs.",
    "Mrs",
    "MRS.",
    "Ms.",
    "MS.",
    "Ms",
    "Miss",
    "MISS",
    "Prof.",
    "PROF.",
    "Professor",
    "PROFESSOR",
    "Nurse",
    "Dr (Mr)",
    "Dr (Mrs)",
    "Dr (Ms)",
    "Dr.(Ms)",
    "Dr.(Mr)",
    "Dr.(Mrs)",
    "A/Prof",
    "A/Prof.",
    "Assoc. Prof.",
    "Prof",
    "PROF",
    "Smt.",
    "Shri",
    "Sr",
    "Sister",
    "Mx",
    "Mme",
    "MME",
    "Mlle",
    "Mdm",
    "MDM",
    "Sra.",
    "SRA.",
    "Sra",
    "Srta.",
    "Herr",
    "Frau",
    "Dr.med.",
    "Dr. med.",
    "Dra.",
    "Prof. dr.",
    "Col",
    "Lt Col",
    "Maj",
    "Capt",
    "CAPT",
    "Sgt",
    "SGT",
)
# Credentials after a person's name ("Jane Doe, MD").
DEFAULT_CREDENTIALS: tuple[str, ...] = (
    "MD", "M.D.", "DO", "D.O.", "RN", "NP", "PA-C", "PhD", "FRCR", "MBBS", "FRCP", "FRANZCR",
    "FRCPC", "MRCP", "MBChB", "DMRD",
)  # fmt: skip
# Phrases after which a name follows (case-insensitive).
DEFAULT_NAME_CUES: tuple[str, ...] = (
    "signed by",
    "verified by",
    "authorised by",
    "authorized by",
    "seen by",
    "requested by",
    "referred by",
    "patient name",
    "consultant",
    "referrer",
    "referring physician",
    "referring doctor",
    "relayed to",
    "conveyed to",
    "discussed with",
    "verified electronically by",
    "signed electronically by",
    "dictated by",
    "reported by",
    "read by",
    "reviewed by",
    "transcribed by",
    "attending",
    "radiologist",
    "resident",
    "dear",
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
    "unit no",
    "social security number",
    "social security no",
    "social security",
    "ssn",
    "study ref",
    "ref no",
    "reference",
    "ref",
    "fin",
    # national health and insurance numbers (UK NHS, US Medicare and Medicaid, Australian UR
    # and IHI numbers)
    "nhs number",
    "nhs no",
    "nhs",
    "hospital number",
    "hospital no",
    "medicare number",
    "medicare no",
    "medicare",
    "medicaid",
    "insurance number",
    "insurance",
    "policy number",
    "member id",
    "health card",
    "ur number",
    "ur no",
    "ihi",
    "reg no",
    "reg. no",
    "registration number",
    "registration no",
    "ris no",
    "m.r. no",
    "mr no",
    "hosp no",
    "ohip",
    "philsys",
    "philhealth",
    "aadhaar",
    "ppsn",
    "pps no",
    "nric",
    "chi",
    "nin",
    "uhid",
    "ip no",
    "cr no",
    "file no",
    "case no",
    "id no",
    "ur",
    "phn",
    "job no",
    "placer order",
    "filler order",
    "karte no",
    "last-4",
    "last 4",
    "icn",
    "ahv",
)
# Words that introduce a phone, pager or extension number (case-insensitive).
DEFAULT_PHONE_CUES: tuple[str, ...] = (
    "pager",
    "pgr",
    "bleep",
    "mobile",
    "contact number",
    "contact no",
    "blp",
    "local",
    "switchboard",
    "internal",
    "direct dial",
    "dect",
    "cordless",
    "hotline",
    "appointments",
    "front desk",
    "reached on",
    "faxed to",
    "ring",
    "ph",
    "mob",
    "int",
    "bookings",
    "enquiries",
    "reporting room",
    "secretaries on",
    "extn",
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
# units after a number make it a measurement, whatever cue came before ("Local 2000 mL")
_UNIT_AFTER = r"(?i:ml|mg|mcg|g|kg|units?|iu|l|cc|mmol|meq|%|mm|cm|lbs?|bpm|mmhg)\b"
_WEEKDAYS = (
    "monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wed|thurs|thur|thu"
    "|fri|sat|sun"
)
# a month in Roman numerals ("04.II.2019", "23 VII 2024"), and a day of the month in words
_ROMAN_MONTH = "XII|XI|X|IX|VIII|VII|VI|V|IV|III|II|I"
_DAY_WORDS = (
    "(?:twenty-|thirty-)?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)"
    "|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth"
    "|nineteenth|twentieth|thirtieth"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?i:st|nd|rd|th)?"

_DATE_PATTERNS: tuple[str, ...] = (
    # a weekday and the date after it, year included, first so that "MON NOV 9" is one date and
    # not "MON" beside a dated "NOV 9": "Thu 8/3", "Fri, 11/27/15", "Thu 28 Mar", "Wed 20 Sept
    # 2017", "Friday, February 4, 2011", "Sun 11th" (not "Sat 92%": a day alone needs its suffix)
    rf"\b(?=[A-Z])(?i:(?:{_WEEKDAYS})\b\.?,?\s+)"
    rf"(?:(?:0?[1-9]|[12]\d|3[01])[/-](?:0?[1-9]|[12]\d|3[01])(?:[/-](?:\d{{4}}|\d{{2}}))?(?![\d/%])"
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR}\b)?|{_MONTH}\s+{_DAY}\b(?:,?\s+{_YEAR}\b)?"
    rf"|(?:[12]\d|3[01]|0?[1-9])(?i:st|nd|rd|th)\b)",
    # a day of the month alone, in a date's place: "on the 16th,", "the 1st inst." (not "on the
    # 4th rib", "on the 2nd attempt")
    r"(?i:(?<=\bon the ))(?:[12]\d|3[01]|0?[1-9])(?i:st|nd|rd|th)"
    r"(?=\s+(?i:inst)\b|\s*[,;:)]|\.(?!\d)|\s*$)",
    r"(?i:(?<=\bthe ))(?:[12]\d|3[01]|0?[1-9])(?i:st|nd|rd|th)(?=\s+(?i:inst)\b)",
    # first, so that "13 February. 3 March" is not read as "February. 3":
    # 14-MAR-2019, 14-Mar-19
    rf"\b{_DAY}-{_MONTH}-(?:{_YEAR}|\d{{2}})\b",
    # a day and month, with or without a year: "13 February", "28th March", "14th of March
    # 2021" ("1 May represent": the verb, when a lower-case word follows)
    rf"(?<![\d.])\b{_DAY}\s+(?:of\s+)?(?:{_MONTHS_NOT_VERB}|{_MONTHS_NOT_VERB_UPPER})(?:\.(?=\s*\d))?(?![A-Za-z])"
    rf"(?:,?\s+(?:{_YEAR}\b|['’]?\d{{2}}(?!\d|\.\d|\s*(?i:mm|cm|ml|%|x)\b)))?",
    # 03/14/2021, 3-14-21, 2021-03-14, 14.03.2021
    r"(?<![\d./-])\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})(?![\d/-])",
    rf"(?<![\d./-]){_YEAR}[/-]\d{{1,2}}[/-]\d{{1,2}}(?![\d/-])",
    rf"(?<![\d.]){_DAY}\.\d{{1,2}}\.{_YEAR}(?!\d|\.\d)",
    # March 14, 2021 / Mar 14 / 14 March 2021 / March 2021
    # (not "MAY 1.0 cm": a day is no decimal)
    rf"\b{_MONTH}\s+{_DAY}(?!\.\d)(?:,?\s+{_YEAR})?\b",
    rf"\b{_DAY}\s+{_MONTH},?\s+{_YEAR}\b",
    rf"\b{_MONTH},?\s+{_YEAR}\b",
    # "09SEP2001", "14MAR19": compact, "September of 2010": a month of a year, "14.11.01"
    rf"\b{_DAY}{_MONTH}(?:{_YEAR}|\d{{2}})\b",
    rf"\b{_MONTH}\s+(?i:of)\s+{_YEAR}\b",
    r"(?<![\d.])\d{1,2}\.\d{1,2}\.\d{2}(?!\d|\.\d)",
    # "02/1998", "10/2010": a month and a year
    rf"(?<![\d./-])(?:0?[1-9]|1[0-2])[/.-]{_YEAR}(?![\d/-]|\.\d)",
    # "2005.01.28", "Dec-22", "OCT-21-2008", "26/DEC/2013", "APR '03"
    rf"(?<![\d.]){_YEAR}\.\d{{1,2}}\.\d{{1,2}}(?!\d|\.\d)",
    rf"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)"
    rf"-(?:{_DAY}-)?(?:{_YEAR}|\d{{2}})\b",
    rf"\b{_DAY}/{_MONTH}/(?:{_YEAR}|\d{{2}})\b",
    rf"\b{_MONTH}\s+['’]\d{{2}}\b",
    # "23 VII 2024", "04.II.2019", "X/2003": a Roman month between a day and a year, or before
    # a year (not "grade II", "Bosniak IIF")
    rf"\b{_DAY}\.(?:{_ROMAN_MONTH})\.{_YEAR}\b",
    rf"\b{_DAY} (?:XII|XI|IX|VIII|VII|VI|IV|III|II) {_YEAR}\b",
    rf"(?<![\w/])(?:{_ROMAN_MONTH})/{_YEAR}\b",
    # "Nov/2021", "1999-Aug-08", "12 Jun. '00", "2004-02" (a year and a month)
    rf"\b{_MONTH}/{_YEAR}\b",
    rf"\b{_YEAR}-{_MONTH}-{_DAY}\b",
    rf"\b{_DAY}\s+{_MONTH}\s*['’]\d{{2}}\b",
    rf"(?i:(?<=\bof )|(?<=\bin )|(?<=\bsince )|(?<=\bfrom )|(?<=\bdated )|(?<=\buntil )"
    rf"|(?<=\bchemotherapy )|(?<=\bsurgery ))"
    rf"{_YEAR}-(?:0[1-9]|1[0-2])(?![\d/-]|\.\d)",
    # "the fourth of July", "February the fifteenth" (a day in words)
    rf"(?i:\b(?:{_DAY_WORDS})\s+of\s+)(?:{_MONTHS_NOT_VERB}|{_MONTHS_NOT_VERB_UPPER})\b",
    rf"\b(?:{_MONTHS_NOT_VERB}|{_MONTHS_NOT_VERB_UPPER})\s+(?i:the\s+(?:{_DAY_WORDS}))\b",
    # a Japanese era date ("H25.09.23": Meiji, Taisho, Showa, Heisei, Reiwa) and a Taiwanese
    # (ROC) year of 100-119 ("107/09/10")
    r"\b[MTSHR]\d{1,2}\.\d{1,2}\.\d{1,2}\b",
    r"(?<![\d/])1[01]\d/\d{1,2}/\d{1,2}(?![\d/])",
    # "on 3/14", "dated 3/14", "date: 3/14": a month and day without a year, after a cue (a
    # bare "2/3" is a fraction)
    r"(?i:(?<=\bon )|(?<=\bdated )|(?<=\bdate: )|(?<=\bdate )|(?<=\bsince )|(?<=\bexam: )"
    r"|(?<=\bcompared with )|(?<=\bcompared to )|(?<=\bstudy of )|(?<=\bfilm of )"
    r"|(?<=\bexam of )|(?<=\bprior )|(?<=\bfrom )|(?<=\bperformed )|(?<=\bfilm )"
    r"|(?<=\bauthorised )|(?<=\bauthorized )|(?<=\bverified )|(?<=\bsigned )|(?<=\bof ))"
    r"\d{1,2}/\d{1,2}(?![\d/])",
)
# the kinds of street an address names (no "Ct" or "Pl": "3 Prior Ct Findings" is a title-case
# report); the time rules need them too ("at 2259 Clover Way" is no time)
_STREET_TYPES = (
    "Street|St\\.?|Road|Rd\\.?|Avenue|Ave\\.?|Lane|Ln\\.?|Drive|Dr\\.?|Boulevard|Blvd\\.?|Court"
    "|Terrace|Crescent|Square|Highway|Parkway|Close|Grove|Gardens|Mews|Row|Walk|Parade|Place"
    "|Circle|Trail|Pike|Way"
)
_TIME_PATTERNS: tuple[str, ...] = (
    # "6:30 in the morning" (first: the clock rule below would leave its period words)
    r"(?<![\d:.])(?:1[0-2]|0?[1-9])[:.][0-5]\d\s+(?i:in\s+the\s+(?:morning|afternoon|evening)|at\s+night)\b",
    # ("02:44:" at a line's head: a colon after the time is punctuation)
    r"(?<![\d:.])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s*(?:[AaPp]\.[Mm]\.|[AaPp][Mm]\b))?"
    r"(?!\d|:\d)",
    r"(?<![\d.])(?:1[0-2]|0?[1-9])\s*(?:[AaPp]\.[Mm]\.|[AaPp][Mm]\b)",
    r"(?<![\d.])(?:[01]\d|2[0-3])[0-5]\d\s*(?i:hours|hrs|h)\b",
    # "2.47 am", "9.30am", "at 14.39", "at 1734" (not a measurement, not a year)
    r"(?<![\d.])(?:1[0-2]|0?[1-9])\.[0-5]\d\s*(?:[AaPp]\.[Mm]\.|[AaPp][Mm]\b)",
    # (a full stop after it ends the sentence: "at 22.40. Small")
    r"(?i:(?<=\bat ))(?:[01]?\d|2[0-3])\.[0-5]\d(?!\d|\.\d)(?!\s*(?i:cm|mm|m|kg|ml|l|%)\b)",
    r"(?i:(?<=\bat )|(?<=\bacquired: )|(?<=\bacquired )|(?<=\btime: )|(?<=\btimed ))"
    r"(?!(?:19|20)\d\d)(?:[01]\d|2[0-3])[0-5]\d(?!\d|\.\d)(?!\s*(?i:cm|mm|ml|hu)\b)"
    # (not a house number: "at 2259 Clover Way")
    rf"(?![ \t]+(?:[A-Z][\w'’\-]*[ \t]+){{1,3}}(?:{_STREET_TYPES}|{_STREET_TYPES.upper()})\b)",
    r"(?<![\d.])(?:[01]?\d|2[0-3])[hH][0-5]\d\b",
    # "14u30" (Dutch), "kl. 20.48" (Scandinavian), "at 09h", "2000Z", "6:30 in the morning"
    r"(?<![\d.])(?:[01]?\d|2[0-3])[uU][0-5]\d\b",
    r"(?i:(?<=\bkl\. )|(?<=\bkl ))(?:[01]?\d|2[0-3])[.:][0-5]\d\b",
    r"(?i:(?<=\bat )|(?<=\bsent ))(?:[01]\d|2[0-3])[hH]\b",
    r"(?<![\d.])(?:[01]\d|2[0-3])[0-5]\dZ\b",
)
_PHONE_PATTERNS: tuple[str, ...] = (
    # "203/618-1410" (before the national pattern takes its last seven digits)
    r"(?<![\d./-])\d{3}/\d{3}-\d{4}(?!\d|\.\d)",
    # international: "+44 20 7946 0958", "+33 (0)1 42 68 53 00", "+1-617-555-0100": a country
    # code, then groups each after a space or hyphen, 8 digits at least ("+120 HU", "+1.25 cm"
    # and "+12.5 degrees" are measurements)
    r"(?<![\w+])\+\d{1,3}(?=(?:\D{0,3}\d){7})(?:[\s-](?:\(\d{1,4}\)\s?)?\d{1,5}){2,6}(?!\d|\.\d)",
    r"(?<![\d.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d|\.\d)",
    # national numbers with a trunk 0, 9 to 11 digits in groups: "(08) 8506 2897", "0161 147
    # 2542", "07700 136835", "080-2141 2089", "(0)51 522 2318" (before "555-1234" takes a part)
    r"(?<![\w.+/-])(?=(?:\D{0,3}\d){9,11}(?!\s?\d))(?!\d{1,2}[/-]\d{1,2}[/-]\d{2,4}\b)"
    r"(?:\(0\d{1,4}\)|\(0\)\s?\d{1,4}|0\d{1,4})(?:[\s-]?\d{2,6}){1,3}(?!\d|\.\d)",
    r"(?<![\d.\-])\d{3}-\d{4}(?!\d|\.\d)",
    # "(31) 95212-3094": a two-digit area code in brackets
    r"(?<![\w)])\(\d{2}\)\s?\d{4,5}-\d{4}(?!\d|\.\d)",
)
_EMAIL_PATTERNS: tuple[str, ...] = (r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",)
# a US social security number: no measurement or clinical code has this shape
_SSN_PATTERN = r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"
# Addresses, "221B Baker Street", "Flat 3, 12 Oak Rd., Springfield, IL 62704", "2/53 Meadowbank
# Road, Bendigo VIC 3550": a flat, a number, capitalised words, a street type (`_STREET_TYPES`),
# and after a comma the town, a state and a postcode
# a word of a street's or town's name: capitalised, not a word that ends the address ("with",
# "and" in an all-capitals note)
_ADDRESS_WORD = (
    r"(?!(?i:with|and|for|from|to|on|in|at|the|was|is|who|since|until)\b)"
    r"[A-ZÀ-Þ][A-Za-zÀ-ÿ'’\-]*\.?"
)
_POSTCODE = r"(?:\d{4,5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?[ \t]*\d[A-Z]{2})"
_ADDRESS_PATTERNS: tuple[str, ...] = (
    r"(?:\b(?i:flat|apt\.?|apartment|unit|suite)[ \t]+\d+[A-Za-z]?,?[ \t]+)?"
    rf"\b\d{{1,5}}[A-Za-z]?(?:/\d{{1,5}})?[ \t]+(?:{_ADDRESS_WORD}[ \t]+){{1,3}}"
    rf"(?:{_STREET_TYPES}|{_STREET_TYPES.upper()})(?![A-Za-z])"
    rf"(?:,[ \t]*{_ADDRESS_WORD}(?:[ \t-]{_ADDRESS_WORD}){{0,2}}(?=[\s,.;:]|$))?"
    rf"(?:,?[ \t]+[A-Z]{{2,3}}\b(?=[ \t]+{_POSTCODE}|[\s,.;:]|$))?(?:,?[ \t]+{_POSTCODE}\b)?",
)
# an address after a phrase that introduces one, to the end of its clause ("Lives alone at PO
# Box 925, Warrnambool VIC 3435; found...", "Res. address: Lot 864, Jalan Tun Razak, 70464
# Seremban, Negeri Sembilan Modality: CR"): any layout, as long as it holds a digit
_ADDRESS_CUES = (
    r"lives(?:\s+alone|\s+with\s+(?:his|her|their|a)?\s*\w+)?\s+at|resides\s+at|residing\s+at"
    r"|living\s+at|res\.?\s+address|residential\s+address|home\s+address|postal\s+address|postal"
    r"|address|addr\.|facility\s+at|care\s+of|c/o|gp\s+surgery,|residence\s*:|mailed\s+to"
    r"|collapsed\s+outside"
)
# where the clause ends: a semicolon, a line, two spaces, a bar, a sentence's full stop (not an
# abbreviation's: "St.", "Co. Kerry"), or the next "Label:" of a header
_ADDRESS_END = (
    r"\s*(?:;|\n|\s\s|\||\s/\s)|(?<!\b[A-Z])(?<!\bSt)(?<!\bRd)(?<!\bNo)(?<!\bCo)(?<!\bDr)(?<!\bMt)(?<!\bAve)"
    r"(?<!\bApt)(?<!\bBlk)(?<!\bHwy)(?<!\bBrgy)(?<!\bCres)(?<!\bH\.No)\.(?:\s+[A-Z][a-z]|\s*$)"
    r"|\s+(?:[A-Z]{2,}|[A-Z][a-z]+(?:\s[a-z.]+){0,2}):\s|\s+(?i:with|who|since|until|for|found)\b|$"
)
# the clause holds a digit (a house number, a box, a postcode): "lives at home" is no address
_CLAUSE_CHAR = rf"(?:(?!{_ADDRESS_END})[^;\n|])"


def _address_after_cue(replacement: str) -> str:
    """The clause after an address cue, which must hold a digit or an identifier the rules before
    replaced ("1-9-20 Kitasenzoku, Ota-ku, Tokyo 145-0042" after its date and id are gone)."""
    digit = rf"(?:\d|{re.escape(replacement)})"
    return (
        rf"(?i:\b(?:{_ADDRESS_CUES}))\s*[:\-]?\s*"
        rf"(?P<v>{_CLAUSE_CHAR}{{0,60}}?{digit}{_CLAUSE_CHAR}{{0,120}}?)(?={_ADDRESS_END})"
    )


# ages over 89 in words ("ninety-two-year-old", "one hundred and one years old")
_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_AGE_WORDS_AFTER_CUE = (
    rf"(?i:\b(?:aged|age)\s*:?\s*(?P<w>(?:ninety|one\s+hundred|a\s+hundred)(?:[\s-]+(?:and\s+)?"
    rf"(?:{_UNITS}|ten|eleven|twelve))?)\b)"
)
_AGE_WORDS = (
    rf"(?i:\b(?P<w>(?:ninety|one\s+hundred|a\s+hundred)(?:[\s-]+(?:and\s+)?(?:{_UNITS}|ten|"
    r"eleven|twelve))?)(?=\s*-?\s*(?:years?|yrs?)\b))"
)
# ages: "92-year-old", "92 year old", "92 yo", "92 y/o", "age 92", "aged 92", "92F", "92 M"
_AGE_PATTERNS: tuple[str, ...] = (
    _AGE_WORDS,
    _AGE_WORDS_AFTER_CUE,
    r"\b(?P<n>\d{2,3})(?=\s*-?\s*(?i:years?|yrs?)\b)",
    r"\b(?P<n>\d{2,3})(?=\s*(?i:y/o|y\.o\.?|yo|yof|yom)\b)",
    # (not the HIPAA band "AGE 90+")
    r"(?i:\b(?:age|aged|aet\.?)\s*:?\s*)(?P<n>\d{2,3})(?=[yY]?\b)(?!\+)",
    rf"(?i:\b(?:male|female),\s*)(?P<n>\d{{2,3}})\b(?!\s*{_UNIT_AFTER})",
    r"\b(?P<n>\d{2,3})(?=\s?[MF]\b)",
    r"\b(?P<n>\d{2,3})(?=\s?/\s?[MF]\b)",
    # "98y", "100y M", "F/98"
    r"\b(?P<n>\d{2,3})(?=\s?y\b)",
    # "(92 Y)", "79Y/F", "/ 093Y", "F/090Y" (not "90Y radioembolisation": yttrium-90)
    r"\b(?P<n>\d{2,3})(?=\s?Y(?:\)|\s?/?\s?[MF]\b))",
    r"(?<=/)\s?(?P<n>\d{2,3})(?=Y\b)",
    r"(?<=\b[MF]/)(?P<n>\d{2,3})\b",
)
# a relative named in a history: "from her son, Balogun, Karim", "NOK (daughter): Jane Doe"
_RELATION_CUE = (
    r"(?i:\b(?:(?:her|his|their|the patient's)\s+(?:son|daughter|wife|husband|brother|sister"
    r"|mother|father|partner|carer|guardian)|next of kin|nok)(?:\s*\([a-z ]+\))?)\s*[,:]\s+"
)
# cues after which a name follows only with a colon ("cc: Dr Smith", "Ref: Jones"; not "800 cc
# of fluid", "ref range")
LABEL_NAME_CUES: tuple[str, ...] = ("cc", "c.c.", "ref", "cons", "name", "copy to")
# header labels whose value is a person's name only when written as one and ending the field
HEADER_NAME_CUES: tuple[str, ...] = (
    "patient", "pt", "pt.", "patient's name", "name of patient", "from", "req phys",
    "technologist", "senior physician", "attending of record", "final read",
    "ordering physician", "requesting physician", "reading physician",
)  # fmt: skip
# where a header field's value ends
_FIELD_END = (
    r"(?=[ \t]*(?:$|\n|\r|[ \t]{2}|\||/|<|,?[ \t]+[A-Z][A-Za-z.]*(?:[ \t][A-Za-z.]+){0,2}:))"
)
# words after a name cue ("cc:", "Ref:", "Consultant") that are not names
_NOT_NAMES = (
    r"(?i:gp|ward|not|the|duty|radiologist|consultant|team|department|secure|assoc|mrs|mr|ms|dr"
    r"|practice|clinic|hospital|registrar|patient|file|records|mci|ph|reg|sra|sr|time|unknown|none"
    r"|n/a|no|yes|see|nil|same|above|below|referring|on-call|on|seen|emergency|respiratory|chest"
    r"|physician|medical|surgical|cardiology|oncology|orthopaedic|orthopedic|team|pa|ap|cxr|ct|xr"
    r"|lateral|frontal|report|reporting|x-ray|registrar|resident|nurse|staff|duty|ed|icu|a&e"
    r"|colleague|colleagues|sir|madam|all|radiology|imaging|ward|records|medical|room|pod|bay|bed"
    r"|ordering|tumour|tumor|board|mdt)\b"
)
# a signature's role after a name ("... Consultant Radiologist")
_ROLES = (
    "(?i:consultant|specialist|registrar|resident|fellow|attending)\\s+(?i:radiologist|physician)"
    "|(?i:radiologist|reporting radiographer|radiographer|sonographer)"
)
# (not "XXXX": the placeholder of a set de-identified before it reached us)
_LETTERS = r"(?:[^\W\d_]|['’\-])"
_NAME_TOKEN = rf"(?!X{{2,}}\b)[A-ZÀ-Þ]{_LETTERS}+"
_INITIAL = r"[A-ZÀ-ÞĀ-ſ]"
# words that follow a name in a sentence ("DR. SMITH Was informed")
_AFTER_NAME = (
    r"(?i:was|is|were|are|and|at|on|in|to|for|by|with|from|who|has|had|the|of|aware|informed"
    r"|notified|paged|called|contacted|regarding|re|please|thank|thanks|see|report|reported)\b"
)
# words that begin a clinical note rather than a name after "Patient:" ("Known COPD", "Mild CHF")
_CLINICAL_LEAD = (
    r"(?i:known|mild|moderate|severe|new|chronic|acute|recent|suspected|query|possible|probable"
    r"|previous|prior|history|post|status|male|female|normal|stable|increasing|worsening|ongoing"
    r"|persistent|fever|cough|chest|left|right|bilateral|elderly|young|adult|child|infant"
    r"|smoker|hx|ex|non|no|on|for|with|has|had|is|was|admitted|presents|presented)\b"
)
# a word in capitals ("O'DONOGHUE", "OKONJO-IWEALA") and one in title case ("Geneviève")
_CAPS_WORD = r"(?!X{2,}\b)[A-ZÀ-ÞĀ-ſ][A-ZÀ-ÞĀ-ſ'’\-]+(?![^\W\d_])"
_TITLE_WORD = r"[A-ZÀ-ÞĀ-ſ][a-zß-ÿā-ž'’\-]+(?![^\W\d_])"
# "van der Berg", "de la Cruz", "bin Laden": particles inside a name
_NAME_PARTICLES = r"(?:(?i:van|von|der|den|de|del|della|di|da|du|la|le|bin|ibn|al|el|ter|ten)\s+)"
# in an all-capitals note a name's further words are capitals too: up to two, stopping at the
# words that follow a name in a report ("DR. SMITH WAS NOTIFIED", "PROF. MEI KHAN AWARE")
_CAPS_NAME_STOP = (
    "WAS|WERE|IS|ARE|AT|ON|IN|AND|FOR|BY|TO|OF|VIA|WITH|FROM|THE|RE|REGARDING|AWARE|INFORMED"
    "|NOTIFIED|PAGED|CALLED|CONTACTED|DISCUSSED|REQUESTED|REVIEWED|AGREES|AGREED|CONFIRMED"
    "|NOTED|REPORTED|ON-CALL|MD|DO|RN|NP|PHD|FRCR|FRCP|MBBS|FRANZCR|FRCPC|MRCP|DMRD|PA-C"
    "|BEEPER|BLEEP|PAGER|PGR|EXT|PHONE|TEL|CALL|RING|NUMBER|NO|UNKNOWN|NOT|NONE|N/A|E-MAIL|EMAIL"
    "|FAX|ADDRESS|TEAM|OFFICE|DEPARTMENT|CT|MRI|ICU|CXR|HDU|PACS|ECG|ETT|NGT|PICC|GP|CHEST|X-RAY"
    "|RADIOLOGIST|RADIOGRAPHER|REPORT|REPORTING|CONSULTANT|REGISTRAR|PA|AP|LATERAL|PORTABLE"
)
# further name tokens: initials or capitalised words with a lower-case second letter, so that an
# all-capitals sentence after "DR. SMITH" is not swallowed
_NAME_MORE = (
    rf"(?:[ \t]+{_NAME_PARTICLES}{{0,2}}(?:[A-Z]\.|(?!I\s+[a-z])[A-Z](?=\s)|[A-ZÀ-Þ][a-zà-ÿ]{_LETTERS}*"
    rf"|(?!(?:{_CAPS_NAME_STOP})\b)[A-ZÀ-ÞĀ-ſ](?:[A-ZÀ-ÞĀ-ſ]|['’\-](?=[A-ZÀ-ÞĀ-ſ])){{2,}}"
    rf"(?![^\W\d_]))){{0,2}}"
)
_CAPS_NAME_MORE = (
    r"(?:[ \t]+(?:[A-Z]\.|(?!I\s+[a-z])[A-Z](?=\s)"
    rf"|(?!(?:{_CAPS_NAME_STOP})\b)[A-ZÀ-ÞĀ-ſ][A-ZÀ-ÞĀ-ſ'’\-]+)){{0,2}}"
)


# Institutions: capitalised words ending in a kind of institution ("St Mary's Hospital",
# "Massachusetts General Hospital", "Mayo Clinic"), with "of <place>" after ("Royal Infirmary of
# Edinburgh"), or a kind first ("Hospital Universitario La Paz", "Klinikum Rechts der Isar")
_INSTITUTION_HEADS = (
    "Hospitals?|Medical Cent(?:er|re)|Health(?:care)? Cent(?:er|re)|Cent(?:er|re)|Health System"
    "|Healthcare"
    "|Clinic|Infirmary|Sanatorium|Hospice|Nursing Home|Care Home|Medical College|Medical School"
    "|Cancer Cent(?:er|re)|Heart Cent(?:er|re)|Institute|Polyclinic|Medical City|Medical Complex"
    "|Health Care Campus|UMC"
)
_INSTITUTION_FIRST = (
    "Hospital|Hôpital|Hopital|Clínica|Clinica|Klinikum|Universitätsklinikum"
    "|Universitaetsklinikum|Ospedale|Policlinico|Centre Hospitalier|Centro Hospitalar|Spital"
    "|Kantonsspital|Ziekenhuis"
)
# words that make "<word> Hospital" a kind of place rather than a named one ("the Outside
# Hospital", "Chest Clinic")
GENERIC_INSTITUTION_WORDS: frozenset[str] = frozenset(
    {
        "outside", "other", "local", "referring", "this", "our", "same", "another", "previous",
        "prior", "community", "district", "general", "regional", "county", "university",
        "teaching", "private", "state", "city", "military", "mental", "psychiatric", "day",
        "chest", "fracture", "outpatient", "emergency", "radiology", "cardiology",
        "respiratory", "tb", "walk-in", "the", "a", "an", "his", "her", "their", "at", "from",
        "to", "in", "of", "and", "transferred", "admitted", "seen", "referred", "per", "no",
        "number", "transfer", "transfers", "stay", "course", "admission", "admissions",
        "discharge", "record", "records", "notes", "ward", "policy", "bed", "staff", "acquired",
        "visit", "ct", "mri", "xr", "cxr", "x-ray", "imaging", "inter", "inter-hospital",
    }
)  # fmt: skip
# the words that say what kind of institution a name is (not part of what identifies it)
_INSTITUTION_KIND_WORDS: frozenset[str] = frozenset(
    {
        "hospital", "hospitals", "medical", "center", "centre", "health", "healthcare", "system",
        "clinic", "infirmary", "sanatorium", "hospice", "nursing", "home", "care", "college",
        "school", "cancer", "heart", "institute", "polyclinic", "hôpital", "hopital", "clínica",
        "clinica", "klinikum", "universitätsklinikum", "universitaetsklinikum", "ospedale",
        "policlinico", "hospitalier", "hospitalar", "centro", "spital", "kantonsspital",
        "ziekenhuis", "of", "the", "de", "la", "del", "di", "du", "and", "&", "sciences",
    }
)  # fmt: skip
# a capitalised word (or "St."), and the particles inside place and institution names
_CAP_WORD = (
    r"\b(?!(?i:at|in|from|to|with|for|by|is|was|were|are|per|via|seen|since|after|before)\b)"
    r"(?:St\.|[A-Z]\.|[A-Z](?![\w'’\-]*\d)[\w'’\-]*)"
)
_PARTICLE = (
    r"(?:of|the|de|da|do|dos|das|del|della|di|du|la|le|les|el|al|upon|on|am|an|der|den|y|and|&)"
)
# (on one line, at most six words: a run across lines or a whole all-capitals report would take
# a credential or a heading into a name, and its matching time grows with the square of its length)
_CAP_RUN = rf"{_CAP_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+){{0,2}}{_CAP_WORD}){{0,5}}"
_INSTITUTION_PATTERNS: tuple[str, ...] = (
    rf"(?P<v>{_CAP_RUN}\s+(?:{_INSTITUTION_HEADS}|HOSPITALS?|MEDICAL CENT(?:ER|RE)|CLINIC"
    rf"|INFIRMARY|INSTITUTE|CENT(?:ER|RE))(?![\w'’])"
    rf"(?:\s+(?i:of)\s+(?:(?i:the)\s+)?{_CAP_WORD}(?:\s+{_CAP_WORD}){{0,2}})?)",
    rf"(?P<v>\b(?:{_INSTITUTION_FIRST}|{_INSTITUTION_FIRST.upper()})(?:\s+(?:{_PARTICLE}\s+)*{_CAP_WORD}){{1,4}})",
    r"\b(?P<v>Charit[ée]|Karolinska|Pitié-Salpêtrière|Salp[êe]tri[èe]re)\b",
    # "Inselspital", "Universitätsspital Zürich", "Rigshospitalet": a hospital in one word
    r"\b(?P<v>[A-Z][a-zäöüå]+(?:spital|sjukhuset|hospitalet|ziekenhuis|klinikum)\b)",
)
# Places: the gazetteer's names (medrep.data.gazetteer) where the context makes them places, and
# any capitalised words after a phrase that introduces a place
DEFAULT_GEO_CUES: tuple[str, ...] = (
    "returned from", "returning from", "travelled to", "traveled to", "travel to",
    "travel history to", "trip to", "holiday in", "vacation in", "visiting from", "visited",
    "lives in", "living in", "resident of", "resides in", "native of", "born in", "moved from",
    "moved to", "immigrated from", "emigrated from", "relocated from", "flew in from",
    "transferred from", "arrived from", "came from", "deployed to", "works in", "from rural",
    "worked in", "working in", "back from", "travelled from", "traveled from", "originally from",
)  # fmt: skip
# words before a town's name that make it a place (a lower-case word or a comma is enough in
# mixed-case text; an all-capitals note needs one of these)
_PLACE_PREPOSITIONS = frozenset({"in", "from", "to", "at", "near", "of", "visiting", "via"})
# words after a capitalised word that make it an eponym or a device, not a place ("Hampton
# hump", "Poland syndrome", "Foley catheter", "Golden S sign")
MEDICAL_HEAD_WORDS: frozenset[str] = frozenset(
    {
        "sign", "signs", "syndrome", "disease", "hump", "line", "lines", "tube", "catheter",
        "valve", "hernia", "tumor", "tumour", "view", "views", "position", "classification",
        "criteria", "score", "society", "procedure", "operation", "shunt", "filter", "drain",
        "stent", "pump", "device", "lead", "leads", "wire", "clip", "clips", "port", "needle",
        "balloon", "system", "s", "type", "grade", "stage", "pattern", "technique", "method",
        "cancer", "carcinoma", "polyp", "polyps", "resection", "mass", "lesion", "wall",
        "profusion",
        "segment",
        "segments",
        "day",
        "level",
        "lobe",
        "zone",
        "chest",
        "definition",
        "category",
        "guidelines",
        "guideline",
        "staging",
        "rule",
        "rules",
    }
)  # fmt: skip
# town names that are also clinical or report words ("Normal heart size", "Clear lungs")
CLINICAL_PLACE_WORDS: frozenset[str] = frozenset(
    {
        "Normal", "Clear", "Mobile", "Marked", "Lead", "Split", "Apex", "Central", "Base",
        "Grade", "Union", "Independence", "Liberty", "Mercy", "Hope", "Faith", "Mild", "Stable",
        "Reading", "Bath", "Nice", "Orange", "Golden", "Opportunity", "Progress", "Mission",
        "Bend", "Spring", "Springs", "Vista", "Temple", "Deal", "Sale", "Wells", "Mount",
        "Colon", "Ilo", "Date", "Time", "Superior", "Same", "Male", "Female", "Bay", "Lower",
        "Upper", "Middle", "Anterior", "Posterior", "Lateral", "Medial", "Distal", "Proximal",
    }
)  # fmt: skip
# "March", "Mayo"... the months and days are towns somewhere
_CALENDAR_WORDS = frozenset(
    re.findall(
        r"[A-Z][a-z]+",
        "January February March April May June July August September "
        "October November December Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    )
)


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
        geo_cues: phrases after which capitalised words are a place (case-insensitive).
        extra_places: a site's own towns and districts, beside the shipped gazetteer.
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
    geo_cues: Sequence[str] = DEFAULT_GEO_CUES
    extra_places: Sequence[str] = ()
    min_id_digits: int = 7
    max_age: int = 89
    _rules: list[tuple[str, Finder]] = field(init=False, repr=False, compare=False)
    _places: dict[str, str] = field(init=False, repr=False, compare=False)
    _large_places: frozenset[str] = field(init=False, repr=False, compare=False)
    _credential_words: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # tuples: a scrubber built from a config's lists equals one built from the defaults
        for name in (
            "categories", "titles", "credentials", "name_cues", "id_cues", "phone_cues",
            "geo_cues", "extra_places",
        ):  # fmt: skip
            setattr(self, name, tuple(getattr(self, name)))
        unknown = set(self.categories) - set(SCRUB_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown scrub categories {sorted(unknown)}; use {SCRUB_CATEGORIES}")
        if self.min_id_digits < 4:
            raise ValueError(f"min_id_digits={self.min_id_digits}: below 4 it eats measurements")
        # "Jane Doe, MD Massachusetts General Hospital": the credential is not the hospital's
        self._credential_words = frozenset(c.lower().strip(".,") for c in self.credentials)
        self._places = {}
        self._large_places = frozenset()
        if "geo" in self.categories:
            shipped = load_places()
            names = [*shipped, *self.extra_places]
            # lower case -> the spelling the list gives, to accept an all-capitals "LAGOS"
            self._places = {n.lower(): n for n in names if n.strip()}
            self._large_places = frozenset(
                n.lower() for n, kind in shipped.items() if kind in ("country", "state", "region")
            )
        # the fields of HL7 segments first, each as what its position says it holds (an HL7
        # time stamp is a date, not the run of digits the id rule would take)
        self._rules = [
            (c, _hl7_finder(c))
            for c in SCRUB_CATEGORIES
            if c in self.categories and c in _HL7_CATEGORIES
        ]
        self._rules += [
            (c, finder)
            for c in SCRUB_CATEGORIES
            if c in self.categories
            for finder in self._compile(c)
        ]

    # one list of finders per category: the branches look alike and hold different patterns
    def _compile(self, category: str) -> list[Finder]:
        if category == "geo":
            cues = _alternation(self.geo_cues)
            after_cue = re.compile(
                rf"(?i:\b(?:{cues}))\s+(?:(?i:the|rural|northern|southern|eastern|western|central)\s+)?"
                r"(?!(?i:an?|the|outside|another|home|work|hospital|icu|ed|er|or|a&e|theatre|ward"
                r"|clinic|abroad|overseas|nursing|rehab|there|here)\b)"
                r"(?P<v>[A-Z][a-z][\w'’\-]*(?:\s+[A-Z][a-z][\w'’\-]*){0,2}"
                r"|[A-ZÀ-Þ][A-ZÀ-Þ'’\-]+(?=[\s,.;:)]|$))"
            )
            resident = re.compile(
                r"(?<![\w-])(?!(?i:local|care|home|nursing|permanent|former|rural|urban|village|town"
                r"|city|long-term|hostel|facility|the|a|an)\b)"
                r"(?P<v>[A-Z][a-z][\w'’\-]*(?:\s+[A-Z][a-z][\w'’\-]*)?)\s+(?i:resident|native)\b"
            )
            # in capitals: "ZANZIBAR RESIDENT"
            resident_caps = re.compile(
                r"(?<![\w-])(?!(?:LOCAL|CARE|HOME|NURSING|PERMANENT|FORMER|RURAL|URBAN|VILLAGE|TOWN"
                r"|CITY|LONG-TERM|HOSTEL|FACILITY|THE|A|AN|ICU|WARD|SURGICAL|MEDICAL|RADIOLOGY"
                r"|ORTHOPAEDIC|ORTHOPEDIC|PAEDIATRIC|PEDIATRIC|SURGERY|MEDICINE|ON-CALL|DUTY)\b)"
                r"(?P<v>[A-Z][A-Z'’\-]{2,}(?:\s+[A-Z][A-Z'’\-]{2,})?)\s+(?:RESIDENT|NATIVE)\b"
            )
            return [
                self._find_places,
                _regex_finder(after_cue, "geo", self.max_age),
                _regex_finder(resident, "geo", self.max_age),
                _regex_finder(resident_caps, "geo", self.max_age),
            ]
        if category == "institution":
            return [
                self._institution_finder(re.compile(p), head_first=k == 1)
                for k, p in enumerate(_INSTITUTION_PATTERNS)
            ]
        return [_regex_finder(p, category, self.max_age) for p in self._patterns(category)]

    def _patterns(self, category: str) -> list[re.Pattern[str]]:
        if category == "email":
            return [re.compile(p) for p in _EMAIL_PATTERNS]
        if category == "address":
            return [
                re.compile(_address_after_cue(self.replacement)),
                *(re.compile(p) for p in _ADDRESS_PATTERNS),
            ]
        if category == "id":
            cues = _alternation(self.id_cues)
            return [
                re.compile(_SSN_PATTERN),
                # the value after a cue must hold a digit: "accession: A12345", "MRN 0012345"
                re.compile(
                    rf"(?i:\b(?:{cues}))(?:(?<=[#.])|(?![A-Za-z]))\s*(?i:[:#]|no\.?|number)?\s*[:#.]?\s*"
                    r"(?=[A-Za-z]{0,4}[-/]?\d[\w-]{2})(?!\d+\.\d)"
                    # ("4373/19", "3021 96628 7", "4852-771-152 XC": a version code after it)
                    r"(?P<v>[A-Za-z]{0,4}[-/]?\d(?:[\w-]|/(?=\d)|\s(?=\d{1,5}\b(?![/.\-]\d)))*(?<=\w)"
                    r"(?:[ \t](?!(?:CT|MR|US|XR|CR|DX|PA|AP|NM|PT|RF|MG)\b)[A-Z]{2}\b(?![ \t]+[A-Za-z]))?)"
                    rf"(?!\s*{_UNIT_AFTER})"
                ),
                # (its letters too: before the digits alone take "XR-4148400"'s number)
                re.compile(r"\b[A-Z]{1,3}-?\d{6,}\b"),
                # "RA96-0470286", "ORD-8384-281905", "HN-2785-9553-D": letters, then groups of
                # digits with five digits at least ("ICD-10", "C5-6" stay); "2018XR775259"
                re.compile(
                    r"(?<![\w-])(?!(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)-)"
                    r"(?=[A-Z]{1,4}(?:-?\d){7})[A-Z]{1,4}\d{0,4}(?:-\d{2,}){1,3}(?:-[A-Z])?\b"
                ),
                re.compile(r"\b\d{2,4}[A-Z]{1,3}\d{5,}\b"),
                # no measurement has seven digits ("881852905-B", "2286662384V671048": with a
                # check letter or a second part)
                re.compile(
                    # (not a SNOMED CT concept: "SNOMED CT 233604007")
                    r"(?<!SNOMED CT )(?<!SNOMED )(?<!SCTID )"
                    rf"(?<![\w.])\d{{{self.min_id_digits},}}(?:-\d{{1,3}}|-[A-Z]\b|[A-Z]\d+)?"
                    r"(?!\d|\.\d)"
                ),
                # "756.3204.6739.90": groups of digits between full stops, ten digits at least
                re.compile(r"(?<![\d.])\d{3,4}(?:\.\d{4}){2}(?:\.\d{2})?(?![\d.])"),
                # a VistA case number: "(Case 7758 COMPLETE)"
                re.compile(r"(?<=\()(?i:case)\s+(?P<v>\d{2,})\b"),
            ]
        if category == "phone":
            cues = _alternation(self.phone_cues)
            return [
                re.compile(
                    rf"(?i:\b(?:{cues})\b\.?)\s*(?:#|no\.?|number)?\s*:?\s*"
                    r"(?P<v>\d(?:[\d-]|\s(?=\d{1,6}\b(?![/.\-]\d))){2,}\d)(?!\d|\.\d)"
                    rf"(?!\s*{_UNIT_AFTER})"
                ),
                # an extension: "x2311"
                re.compile(r"(?<![\w.])[xX]\d{4,5}\b"),
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
            # "SHAH, Ingrid", "O'BRIEN, LEILA", "McCarthy, Yael": a surname, a comma, a given name
            surname_first = (
                rf"(?!X{{2,}}\b)[A-ZÀ-ÞĀ-ſ]{_LETTERS}+,[ \t]*(?!(?:{_CAPS_NAME_STOP})\b)"
                rf"[A-ZÀ-ÞĀ-ſ]{_LETTERS}+(?![^\W\d_])(?:[ \t]{_INITIAL}\b\.?)?"
            )
            # "STEYN P.E.", "NÍ BHRIAIN W.D.": a surname in capitals, then two or three initials
            # (one would take "FIONA T." of "DR. FIONA T. WANG")
            surname_initials = (
                rf"(?!X{{2,}}\b)(?!(?:{_CAPS_NAME_STOP})\b){_CAPS_WORD}(?:[ \t]+{_CAPS_WORD})?"
                rf"[ \t]+(?:{_INITIAL}\.){{2,3}}(?![^\W\d_])"
            )
            # "YAMADA Kazuhiro", "MAK Chi Keung": a surname in capitals, then the given names
            surname_given = (
                rf"(?!(?:{_CAPS_NAME_STOP})\b){_CAPS_WORD}"
                rf"(?:[ \t]+(?!{_AFTER_NAME}){_TITLE_WORD}){{1,2}}"
            )
            name = (
                rf"(?:{_INITIAL}\.\s*){{0,2}}{_NAME_PARTICLES}{{0,2}}"
                rf"(?!(?:{_CAPS_NAME_STOP})\b|{_NOT_NAMES})"
                rf"(?:{surname_first}|{surname_initials}|{surname_given}"
                rf"|(?!X{{2,}}\b)[A-ZÀ-ÞĀ-ſ][A-ZÀ-ÞĀ-ſ'’\-]+"
                rf"{_CAPS_NAME_MORE}(?![^\W\d_])"
                rf"|{_NAME_TOKEN}{_NAME_MORE})"
            )
            return [
                # "Dr. Smith", "Dr.Smith", "Mrs J. Doe": the title stays, the name goes
                re.compile(rf"(?<![A-Za-z])(?:{titles})(?:(?<=\.)\s*|\s+)(?P<v>{name})"),
                # "Jane Doe, MD", "R. Shah (DMRD)", "Soo-ah MCALLISTER Consultant Radiologist"
                re.compile(
                    rf"(?<![\w.])(?P<v>(?:(?:{_INITIAL}\.\s*){{1,3}}|(?!{_NOT_NAMES}){_NAME_TOKEN}\s+)"
                    rf"(?:[A-Z]\.?\s+)?{_NAME_PARTICLES}{{0,2}}(?!{_NOT_NAMES}){_NAME_TOKEN}"
                    rf"|(?!{_NOT_NAMES}){surname_initials})"
                    rf",?\s+\(?(?:{credentials}|{_ROLES})(?![A-Za-z])"
                ),
                # "Electronically signed by: Jane Doe", "Attending radiologist: Doe" (a title
                # after the cue is left to the first rule)
                re.compile(
                    rf"(?i:\b(?:{cues})(?:\s+(?:{cues}))*)(?![A-Za-z])\s*:?\s*"
                    rf"(?!(?:{titles})(?![A-Za-z]))(?P<v>{name})"
                ),
                re.compile(
                    rf"(?i:\b(?:{_alternation(LABEL_NAME_CUES)}))\s*:\s*"
                    rf"(?!(?:{titles})(?![A-Za-z]))(?P<v>{name})"
                ),
                re.compile(rf"{_RELATION_CUE}(?!(?:{titles})(?![A-Za-z]))(?P<v>{name})"),
                # "PATIENT: YOON Guadalupe", "From: Ho, Suet Ying <...>": after a header label,
                # two or three words written as a name is (one in capitals, surname first, or
                # initials), ending the field (not "Patient: Intubated, Sedated.")
                re.compile(
                    rf"(?i:\b(?:{_alternation(HEADER_NAME_CUES)}))\s*:\s*(?:(?:{titles})\s+)?"
                    rf"(?P<v>(?!{_CLINICAL_LEAD}){surname_first}|{surname_initials}"
                    rf"|(?!(?:{_CAPS_NAME_STOP})\b){_CAPS_WORD}[ \t]+(?!{_CLINICAL_LEAD}){_TITLE_WORD}"
                    rf"|(?!{_CLINICAL_LEAD}){_TITLE_WORD}(?:[ \t]+{_TITLE_WORD})?[ \t]+"
                    rf"(?!(?:{_CAPS_NAME_STOP})\b){_CAPS_WORD}"
                    rf"|(?!{_CLINICAL_LEAD}){_TITLE_WORD}(?:[ \t]+{_TITLE_WORD}){{1,2}})"
                    rf"{_FIELD_END}"
                ),
            ]
        # age
        return [re.compile(p) for p in _AGE_PATTERNS]

    def _institution_finder(self, pattern: re.Pattern[str], head_first: bool) -> Finder:
        def find(text: str) -> Iterator[tuple[int, int]]:
            for m in pattern.finditer(text):
                start, end = m.span("v")
                # leading words such as "The" or "Transferred" are not part of the name, and a
                # name of only such words and kinds ("Outside Hospital") is a kind, not a name
                words = list(re.finditer(r"[^\s]+", text[start:end]))
                lowered = [w.group().lower().strip(".,") for w in words]
                skip = (
                    GENERIC_INSTITUTION_WORDS
                    | self._credential_words
                    | (frozenset() if head_first else _INSTITUTION_KIND_WORDS)
                )
                first = next((k for k, w in enumerate(lowered) if w not in skip), None)
                if first is None:
                    continue
                naming = [
                    w
                    for w in lowered[first:]
                    if w not in GENERIC_INSTITUTION_WORDS and w not in _INSTITUTION_KIND_WORDS
                ]
                if naming or len(words) == 1:
                    yield start + words[first].start(), self._town_after(text, end)

        return find

    def _town_after(self, text: str, end: int) -> int:
        """The end of an institution's name with the town written after it ("National Hospital
        Abuja", "CONNOLLY HOSPITAL BLANCHARDSTOWN") or "Complex"."""
        after = _NEXT_WORD.match(text, end)
        if after is None:
            return end
        word = after.group(1)
        canonical = self._places.get(word.lower())
        town = canonical is not None and (word == canonical or word.isupper())
        if town and canonical not in CLINICAL_PLACE_WORDS and canonical not in _CALENDAR_WORDS:
            return after.end()
        return after.end() if word.lower() == "complex" else end

    def _find_places(self, text: str) -> Iterator[tuple[int, int]]:
        """Gazetteer names where the case and the words around them say they are places."""
        all_caps = _mostly_capitals(text)
        run = _CAPS_RUN if all_caps else _TITLE_RUN
        for m in run.finditer(text):
            words = list(_RUN_WORD.finditer(m.group()))
            i = 0
            while i < len(words):
                for j in range(min(len(words), i + 5), i, -1):
                    start, end = m.start() + words[i].start(), m.start() + words[j - 1].end()
                    if self._is_place(text, start, end, all_caps):
                        yield start, end
                        i = j
                        break
                else:
                    i += 1

    def _is_place(self, text: str, start: int, end: int, all_caps: bool) -> bool:
        written = " ".join(text[start:end].split())
        canonical = self._places.get(written.lower())
        if canonical is None:
            return False
        before = _WORD_BEFORE.search(text[max(0, start - 60) : start])
        # in mixed-case text, a country or region in capitals after a comma: "Davao,
        # PHILIPPINES" (not a town: "DKA, ALONG W/ CHANGE", Along being a town in India)
        after_comma = before is not None and before.group(1)[-1] == ","
        large = written.lower() in self._large_places
        if written != canonical and not (
            written.isupper() and (all_caps or (after_comma and large))
        ):
            return False
        if canonical in CLINICAL_PLACE_WORDS or canonical in _CALENDAR_WORDS:
            return False
        # (windows around the name: slicing the whole text per candidate is quadratic)
        after = _WORD_AFTER.match(text[end : end + 40])
        if after and after.group(1).lower() in MEDICAL_HEAD_WORDS:
            return False
        if before is None:
            return False
        prev = before.group(1)
        if prev[-1] in ",(/-–":
            return True
        if prev.lower().strip(".") in _PLACE_PREPOSITIONS:
            return True
        # in mixed-case text a lower-case word before it: "lives near Bristol", "rural Kenya"
        # (not after a sentence's end: "...and cough. Holiday in Spain")
        return not all_caps and prev[0].islower() and prev[-1] not in ".!?:;"

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """The identifier spans of `text` as (start, end, category), in `text`'s offsets."""
        return self._run(text)[1]

    def scrub(self, text: str) -> ScrubResult:
        """`text` with identifiers replaced, and the count of replaced spans per category."""
        counts = {c: 0 for c in self.categories}
        if not self.enabled or not text:
            return ScrubResult(text, counts)
        scrubbed, found = self._run(text)
        for _, _, category in found:
            counts[category] += 1
        return ScrubResult(scrubbed, counts)

    def _run(self, text: str) -> tuple[str, list[tuple[int, int, str]]]:
        # Each rule sees the text the rules before it left (their spans already placeholders),
        # and each replaced span is also kept in the original text's offsets: `replaced` holds
        # (original start, original end, start in the current text) in order.
        if not self.enabled or not text:
            return text, []
        replaced: list[tuple[int, int, int, str]] = []
        current = text
        width = len(self.replacement)
        for category, finder in self._rules:
            pieces: list[str] = []
            found: list[tuple[int, int, int, str]] = []
            last = 0
            for start, end in finder(current):
                if start < last:
                    continue
                pieces += [current[last:start], self.replacement]
                last = end
                orig = (
                    _to_original(replaced, start, width),
                    _to_original(replaced, end, width, True),
                )
                found.append((*orig, -1, category))
            if not found:
                continue
            pieces.append(current[last:])
            current = "".join(pieces)
            # a new span that holds earlier placeholders replaces them
            kept = [r for r in replaced if not any(f[0] <= r[0] and r[1] <= f[1] for f in found)]
            replaced = _reindex(sorted(kept + found), width)
        return current, [(s, e, c) for s, e, _, c in replaced]


Finder = Callable[[str], Iterator[tuple[int, int]]]
# capitalised runs in mixed-case text ("New York", "Rio de Janeiro", "Stoke-on-Trent") and runs
# of capitals in an all-capitals note
_TITLE_RUN = re.compile(
    rf"[A-ZÀ-Þ][\w'’\-]*(?:[ \t]+(?:{_PARTICLE}[ \t]+){{0,2}}[A-ZÀ-Þ][\w'’\-]*){{0,7}}"
)
_CAPS_RUN = re.compile(r"[A-ZÀ-Þ][A-ZÀ-Þ'’\-]*(?:[ \t]+[A-ZÀ-Þ][A-ZÀ-Þ'’\-]*){0,7}")
_WORD_AFTER = re.compile(r"\s*([A-Za-z]+)")
_NEXT_WORD = re.compile(r"[ \t]+([A-ZÀ-ÞĀ-ſ][\w'’\-]*)(?![\w'’\-])")
_WORD_BEFORE = re.compile(r"(\S+)\s*$")
_RUN_WORD = re.compile(r"[^\s]+")


def _mostly_capitals(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) > 0.8 * len(letters)


# HL7 v2 messages pasted into a report (one segment a line, "PID|1||..."): the fields that hold
# identifiers, by segment and field number (HL7 v2.5 chapters 2, 3, 4 and 7), and what they
# hold; "xcn" is a person as id^family^given^middle (the id an id, the rest a name). MSH counts
# its field separator as field 1, so its n-th field is the (n-1)-th after the segment name.
_HL7_FIELDS: dict[str, dict[int, str]] = {
    "MSH": {7: "date", 10: "id"},
    "EVN": {2: "date", 6: "date"},
    "PID": {
        2: "id", 3: "id", 4: "id", 5: "name", 6: "name", 7: "date", 9: "name", 11: "address",
        13: "phone", 14: "phone", 18: "id", 19: "id", 20: "id", 21: "id", 29: "date",
    },
    "NK1": {2: "name", 4: "address", 5: "phone", 6: "phone"},
    "PV1": {7: "xcn", 8: "xcn", 9: "xcn", 17: "xcn", 19: "id", 44: "date", 45: "date"},
    "ORC": {2: "id", 3: "id", 9: "date", 10: "xcn", 11: "xcn", 12: "xcn"},
    "OBR": {
        2: "id", 3: "id", 6: "date", 7: "date", 8: "date", 14: "date", 16: "xcn", 22: "date",
        28: "xcn", 32: "xcn", 33: "xcn", 34: "xcn", 35: "xcn", 36: "date",
    },
    "OBX": {14: "date", 16: "xcn", 19: "date"},
}  # fmt: skip
_HL7_CATEGORIES = frozenset({"id", "phone", "date", "address", "name"})
# (a segment ends at a carriage return, HL7's own separator, or a line feed)
_HL7_SEGMENT = re.compile(rf"(?<![^\r\n])(?:{'|'.join(_HL7_FIELDS)})\|[^\r\n]*")


def _hl7_spans(kind: str, value: str) -> list[tuple[str, int, int]]:
    """(category, start, end) within one repetition of an HL7 field of `kind`."""
    components = value.split("^")
    if kind == "xcn":
        # id^family^given^middle; an NDL (OBR-32..35) writes the person as id&family&given
        first = components[0].split("&")
        spans = [("id", 0, len(first[0]))]
        if len(first) > 1:
            spans.append(("name", len(first[0]) + 1, len(components[0])))
        rest = "^".join(components[1:4])
        if rest.strip("^") and len(first) == 1:
            spans.append(("name", len(components[0]) + 1, len(components[0]) + 1 + len(rest)))
        return spans
    if kind == "id":
        return [("id", 0, len(components[0]))]
    return [(kind, 0, len(value))]


def _hl7_finder(category: str) -> Finder:
    """The spans of `category` in the identifier fields of HL7 v2 segments."""

    def find(text: str) -> Iterator[tuple[int, int]]:
        for m in _HL7_SEGMENT.finditer(text):
            segment = m.group()
            name = segment[:3]
            fields = _HL7_FIELDS[name]
            offset = m.start()
            starts = [0, *(i + 1 for i, c in enumerate(segment) if c == "|")]
            for k, start in enumerate(starts[1:], start=1):
                number = k + 1 if name == "MSH" else k
                kind = fields.get(number)
                if kind is None:
                    continue
                end = segment.find("|", start)
                value = segment[start : len(segment) if end < 0 else end]
                # every repetition of the field ("~"), each at its own offset
                at = offset + start
                for repetition in value.split("~"):
                    for span_kind, a, b in _hl7_spans(kind, repetition):
                        if span_kind == category and re.search(r"[^\W_]", repetition[a:b]):
                            yield at + a, at + b
                    at += len(repetition) + 1

    return find


def _regex_finder(pattern: re.Pattern[str], category: str, max_age: int) -> Finder:
    group = next((g for g in ("v", "n", "w") if g in pattern.groupindex), 0)

    def find(text: str) -> Iterator[tuple[int, int]]:
        for m in pattern.finditer(text):
            start, end = m.span(group)
            if start < 0:
                continue
            # an age in digits is an identifier over max_age; one in words is matched only from
            # ninety on
            if category == "age" and group == "n" and int(m.group(group)) <= max_age:
                continue
            if category == "age" and group == "w" and max_age >= 90:
                continue
            yield start, end

    return find


def _to_original(
    replaced: list[tuple[int, int, int, str]], position: int, width: int, at_end: bool = False
) -> int:
    """An offset of the current text in the original's (inside a placeholder: its edge)."""
    shift = 0
    for orig_start, orig_end, cur_start, _ in replaced:
        if position <= cur_start:
            break
        if position < cur_start + width:
            return orig_end if at_end else orig_start
        shift += (orig_end - orig_start) - width
    return position + shift


def _reindex(
    replaced: list[tuple[int, int, int, str]], width: int
) -> list[tuple[int, int, int, str]]:
    """Each replaced span's start in the current text, from the original offsets."""
    out, shift = [], 0
    for orig_start, orig_end, _, category in replaced:
        out.append((orig_start, orig_end, orig_start - shift, category))
        shift += (orig_end - orig_start) - width
    return out


def _alternation(words: Sequence[str]) -> str:
    """A regex alternation of literal phrases, longest first, spaces matching any whitespace."""
    ordered = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
    return "|".join(r"\s+".join(re.escape(part) for part in w.split()) for w in ordered)
