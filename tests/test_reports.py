"""Report sections, cleaning and sentence splitting."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrep.data.reports import (
    DEFAULT_SECTIONS,
    ReportParser,
    normalize_unicode,
)
from medrep.data.synthetic import WorldSpec, generate_world, plan_world, report_rng, write_report
from tests.helpers import compose_config

WORD = re.compile(r"[^\W\d_]+")
WORD_OR_DIGIT = re.compile(r"[^\W_]")

MIMIC_STYLE = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___-year-old man with shortness of breath, evaluate for pneumonia.

 COMPARISON:  ___

 FINDINGS:

 The lungs are clear without focal consolidation.  No pleural effusion or
 pneumothorax is seen.  There is a 1.5 cm nodule, approx. 5.2 x 3.1 mm vs. the
 prior study.

 IMPRESSION:

 1. Mild cardiomegaly
 2. No acute cardiopulmonary process.
"""


def test_sections_are_found_and_canonicalised() -> None:
    parsed = ReportParser().parse(MIMIC_STYLE)
    # COMPARISON held only a placeholder: an empty section is dropped
    assert set(parsed.sections) == {"examination", "indication", "findings", "impression"}
    assert parsed.preamble == "FINAL REPORT"
    assert parsed.sections["indication"].startswith("-year-old man")
    assert "___" not in parsed.sections["indication"]
    assert "\n" not in parsed.sections["findings"] and "  " not in parsed.sections["findings"]


def test_synonyms_map_to_canonical_names() -> None:
    parsed = ReportParser().parse(
        "CLINICAL HISTORY: cough.\nIMPRESSIONS: No effusion.\nFINDNGS: Heart normal."
    )
    assert parsed.sections == {
        "history": "cough.",
        "impression": "No effusion.",
        "findings": "Heart normal.",
    }


def test_last_paragraph_stands_in_when_no_findings_or_impression() -> None:
    parsed = ReportParser().parse("Chest radiograph.\n\nLungs are clear. No effusion.")
    assert parsed.sections["impression"] == "Lungs are clear. No effusion."


def test_sentences_survive_radiology_prose() -> None:
    sentences = ReportParser().sentences(MIMIC_STYLE)
    assert sentences == [
        "The lungs are clear without focal consolidation.",
        "No pleural effusion or pneumothorax is seen.",
        "There is a 1.5 cm nodule, approx. 5.2 x 3.1 mm vs. the prior study.",
        "Mild cardiomegaly.",
        "No acute cardiopulmonary process.",
    ]


def test_placeholders_are_dropped_without_breaking_sentences() -> None:
    parser = ReportParser()
    assert parser.split_sentences("Compared to XXXX, no change. Dr. ___ was notified.") == [
        "Compared to, no change.",
        "Dr. was notified.",
    ]


def test_short_fragments_merge_and_missing_final_period_is_kept() -> None:
    parser = ReportParser(min_words=2)
    assert parser.split_sentences("Heart size normal. Stable. No effusion") == [
        "Heart size normal. Stable.",
        "No effusion",
    ]


def test_section_choice_is_configurable() -> None:
    parser = ReportParser()
    only_impression = parser.sentences(MIMIC_STYLE, sections=("impression",))
    assert only_impression == ["Mild cardiomegaly.", "No acute cardiopulmonary process."]


# ---- section rules ----------------------------------------------------------------------------


def test_keyword_rules_and_unknown_headers() -> None:
    parser = ReportParser()
    report = (
        "PA AND LATERAL VIEWS OF THE CHEST:  Heart size is normal.\n"
        "PROVISIONAL FINDINGS IMPRESSION (PFI):  No pneumonia.\n"
        "NOTE:  Discussed with the team.\n"
    )
    parsed = parser.parse(report)
    assert parsed.sections == {
        "findings": "Heart size is normal.",
        "impression": "No pneumonia.",
        "note": "Discussed with the team.",
    }
    assert parser.canonical("  clinical   history ") == "history"
    assert parser.canonical("CHEST, PA LATERAL") == "findings"


def test_subheaders_times_and_placeholders_do_not_open_sections() -> None:
    report = (
        "FINDINGS:\n"
        " LUNGS: Clear.\n"
        " HEART: Normal size.\n"
        " AT 10:30 the findings were discussed.\n"
        " XXXX: stable.\n"
        "IMPRESSION: No acute process."
    )
    parsed = ReportParser().parse(report)
    assert set(parsed.sections) == {"findings", "impression"}
    assert parsed.sections["findings"] == (
        "LUNGS: Clear. HEART: Normal size. AT 10:30 the findings were discussed. stable."
    )
    # without the subheader rule, LUNGS opens a section of its own (the MIMIC-CXR behaviour)
    assert "lungs" in ReportParser(subheaders=[]).parse(report).sections


def test_fallback_follows_the_mimic_rule() -> None:
    parser = ReportParser()
    # the last section has several paragraphs: the later ones stand in for the impression
    parsed = parser.parse("INDICATION: Cough.\n\nLungs are clear.\n\nNo effusion.")
    assert parsed.sections == {
        "indication": "Cough.",
        "impression": "Lungs are clear. No effusion.",
    }
    assert parsed.fallback
    # a single-paragraph last section is not a conclusion (IU reports without findings)
    parsed = parser.parse("COMPARISON: None.\n\nINDICATION: Positive TB test")
    assert parsed.sections == {"comparison": "None.", "indication": "Positive TB test"}
    assert not parsed.fallback
    # a report without any header is all content
    assert parser.parse("Lungs are clear.").sections == {"impression": "Lungs are clear."}
    # an impression present means no fallback; an empty findings section is dropped
    parsed = parser.parse("FINDINGS:\n\nIMPRESSION: Normal.\n\nSigned.")
    assert parsed.sections == {"impression": "Normal. Signed."} and not parsed.fallback
    assert ReportParser(fallback_section="").parse("A.\n\nB c.").sections == {}
    assert ReportParser(fallback_section="findings").parse("A.\n\nB c.").sections == {
        "findings": "B c."
    }


def test_header_rules_are_configurable() -> None:
    parser = ReportParser(
        header_pattern=r"^(?P<header>[A-Z][a-z]+):",
        synonyms={"findings": ["BEFUND"], "impression": ["BEURTEILUNG"]},
        header_keywords={},
    )
    parsed = parser.parse("Befund: Herz normal gross.\nBeurteilung: Kein Erguss.")
    assert parsed.sections == {"findings": "Herz normal gross.", "impression": "Kein Erguss."}
    with pytest.raises(ValueError, match="named group 'header'"):
        ReportParser(header_pattern=r"^([A-Z]+):")
    with pytest.raises(ValueError, match="short_sentences"):
        ReportParser(short_sentences="squash")


def test_repeated_sections_are_concatenated() -> None:
    parsed = ReportParser().parse("FINDINGS: Heart normal.\nFINDINGS: Lungs clear.")
    assert parsed.sections["findings"] == "Heart normal. Lungs clear."
    assert parsed.text(["impression", "findings"]) == "Heart normal. Lungs clear."


# ---- cleaning ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("No\u00a0pleural\u200b effusion \u2013 stable\u2026", "No pleural effusion - stable."),
        ("\u201cPatchy\u201d opacity, 5 \u00d7 3 mm", '"Patchy" opacity, 5 x 3 mm'),
        ("\uff2e\uff4f effusion", "No effusion"),  # full-width letters (NFKC)
        ("Heart\r\nsize normal.\rLungs clear", "Heart size normal. Lungs clear"),
        ("Compared to ___ , no change. XXXX. Lungs clear.", "Compared to, no change. Lungs clear."),
        ("XXXX XXXX", ""),
        ("1. Cardiomegaly 2. No effusion 3. Stable", "Cardiomegaly. No effusion. Stable"),
        ("(1) Cardiomegaly (2) Effusion", "Cardiomegaly. Effusion"),
        ("Heart normal.\n2. Lungs clear", "Heart normal. Lungs clear"),
        ("unchanged since 2. The lungs are clear.", "unchanged since 2. The lungs are clear."),
        (
            "fracture of the right rib\n 4. The pleura is normal.",
            "fracture of the right rib 4. The pleura is normal.",
        ),
        ("1.Lucency in the apex. 2.No effusion.", "Lucency in the apex. No effusion."),
        ("effusion.Heart size is normal.", "effusion. Heart size is normal."),
        ("Lungs clear\n\nNo effusion", "Lungs clear. No effusion"),
        ("Lungs clear\n\n \n", "Lungs clear"),  # trailing blank lines end nothing
        ("measures 1.5 cm, 5.2 x 3.1 mm", "measures 1.5 cm, 5.2 x 3.1 mm"),
    ],
)
def test_clean(raw: str, clean: str) -> None:
    assert ReportParser().clean(raw) == clean


# ---- sentences --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Discussed with Dr. Smith. Lungs clear.", ["Discussed with Dr. Smith.", "Lungs clear."]),
        (
            "Opacity, atelectasis vs. Pneumonia. No effusion.",
            ["Opacity, atelectasis vs. Pneumonia.", "No effusion."],
        ),
        ("Nodule approx. 5 mm. Stable size.", ["Nodule approx. 5 mm.", "Stable size."]),
        (
            "Tip is 2.8 cm above the carina. A 5.2 x 3.1 mm nodule.",
            ["Tip is 2.8 cm above the carina.", "A 5.2 x 3.1 mm nodule."],
        ),
        (
            "The lungs are\n clear. No pleural\n effusion is seen",
            ["The lungs are clear.", "No pleural effusion is seen"],
        ),
        (
            "IMPRESSION ITEMS\n1. Mild cardiomegaly\n2. No acute process",
            ["IMPRESSION ITEMS.", "Mild cardiomegaly.", "No acute process"],
        ),
        (
            "Is there an effusion? Not seen. Pneumothorax is present! Chest tube advised.",
            [
                "Is there an effusion?",
                "Not seen.",
                "Pneumothorax is present!",
                "Chest tube advised.",
            ],
        ),
        ("lateral view. sternotomy wires intact.", ["lateral view.", "sternotomy wires intact."]),
        (
            "The T7 vertebra is intact (see prior.) Heart normal.",
            ["The T7 vertebra is intact (see prior.)", "Heart normal."],
        ),
        ("", []),
        ("  ...  ", []),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert ReportParser().split_sentences(text) == sentences


def test_short_sentence_rules() -> None:
    text = "Stable. Heart size normal. Stable. No effusion seen."
    assert ReportParser(short_sentences="merge").split_sentences(text) == [
        "Stable. Heart size normal. Stable.",
        "No effusion seen.",
    ]
    assert ReportParser(short_sentences="drop").split_sentences(text) == [
        "Heart size normal.",
        "No effusion seen.",
    ]
    assert ReportParser(short_sentences="keep").split_sentences(text) == [
        "Stable.",
        "Heart size normal.",
        "Stable.",
        "No effusion seen.",
    ]
    assert ReportParser(min_words=4, short_sentences="drop").split_sentences(text) == []
    # a lone short sentence stays in merge mode (it has nothing to merge into)
    assert ReportParser().split_sentences("Cardiomegaly.") == ["Cardiomegaly."]


# ---- properties ---------------------------------------------------------------------------------

CLINICAL_WORDS = [
    "No",
    "pleural",
    "effusion",
    "pneumothorax",
    "consolidation",
    "cardiomegaly",
    "heart",
    "size",
    "normal",
    "lungs",
    "clear",
    "mild",
    "moderate",
    "severe",
    "left",
    "right",
    "lower",
    "upper",
    "lobe",
    "opacity",
    "atelectasis",
    "nodule",
    "edema",
    "stable",
    "the",
    "is",
    "are",
    "with",
    "without",
    "there",
    "vertebra",
    "carina",
    "tube",
    "tip",
    "above",
    "cm",
    "mm",
    "Dr",
    "vs",
    "approx",
    "e.g",
    "T7",
    "C5-6",
]
_TOKENS = st.one_of(
    st.sampled_from(CLINICAL_WORDS),
    st.sampled_from([".", ",", ";", ":", "\n", "\n\n", "1.", "2.", "(3)", "___", "XXXX", "  "]),
    st.from_regex(r"[0-9]{1,2}\.[0-9] (cm|mm)", fullmatch=True),
    st.from_regex(r"[0-9]\.[0-9] x [0-9]\.[0-9] mm", fullmatch=True),
)
REPORTISH = st.lists(_TOKENS, max_size=40).map(" ".join)
ANY_TEXT = st.text(max_size=200)


def _words(parser: ReportParser, text: str) -> list[str]:
    """Alphabetic words of `text` after unicode normalisation, placeholders removed."""
    return WORD.findall(re.sub(parser.placeholder_pattern, " ", normalize_unicode(text)))


@settings(max_examples=150, deadline=None)
@given(st.one_of(REPORTISH, ANY_TEXT))
def test_cleaning_never_loses_words(text: str) -> None:
    parser = ReportParser()
    assert WORD.findall(parser.clean(text)) == _words(parser, text)


@settings(max_examples=150, deadline=None)
@given(st.one_of(REPORTISH, ANY_TEXT), st.sampled_from(["merge", "keep"]))
def test_sentences_rejoin_to_the_cleaned_text(text: str, rule: str) -> None:
    parser = ReportParser(short_sentences=rule)
    sentences = parser.split_sentences(text)
    assert " ".join(sentences) == parser.clean(text)
    # cleaning is idempotent: a parsed section's sentences rejoin to the section itself
    assert parser.clean(parser.clean(text)) == parser.clean(text)
    assert all(s == s.strip() and s and WORD_OR_DIGIT.search(s) for s in sentences)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["FINDINGS:", "IMPRESSION:", "\n", "\n\n", "NOTE:"]), max_size=6),
    REPORTISH,
    ANY_TEXT,
)
def test_parsing_arbitrary_text_never_crashes(headers: list[str], prose: str, noise: str) -> None:
    parser = ReportParser()
    text = "\n".join([*headers, prose, noise])
    parsed = parser.parse(text)
    assert all(v and v == v.strip() for v in parsed.sections.values())
    # every sentence is drawn from a section's words
    words = set(WORD.findall(" ".join(parsed.sections.values())))
    assert set(WORD.findall(" ".join(parser.sentences(text)))) <= words


# ---- the synthetic world goes through the same parser ------------------------------------------


def test_synthetic_world_reports_parse(tmp_path: Path) -> None:
    world = generate_world(tmp_path / "world", WorldSpec(n_patients=6, image_size=64))
    table = pd.read_csv(Path(world.root) / "reports.csv", dtype=str)
    parser = ReportParser()
    assert len(table) >= 6
    for text in table["report"]:
        parsed = parser.parse(text)
        assert "impression" in parsed.sections and not parsed.fallback
        assert parser.sentences(text)
        # COMPARISON is sometimes only "___": an empty section is dropped
        assert {"examination", "indication"} <= set(parsed.sections)


def test_synthetic_sections_match_the_generator() -> None:
    """Over a few hundred generated reports (no pixels), the parser finds exactly the sections
    the generator wrote, and every sentence ends a sentence."""
    spec = WorldSpec(n_patients=150)
    parser = ReportParser()
    for study in plan_world(spec).studies:
        report = write_report(study, report_rng(spec, study))
        parsed = parser.parse(report.text)
        assert ("findings" in parsed.sections) == report.has_findings_section, report.text
        assert "impression" in parsed.sections and not parsed.fallback
        sentences = parser.sentences(report.text)
        assert sentences and all(s[-1] in ".!?" for s in sentences), sentences


# ---- configuration ------------------------------------------------------------------------------


def test_config_group_builds_the_library_rules_and_a_site_changes_one(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = compose_config(tmp_path)
    # the rules are written once, in medrep.data.reports: the config names only the class
    assert set(cfg.reports.parser) == {"_target_", "_convert_"}
    parser = instantiate(cfg.reports.parser)
    assert parser == ReportParser()
    assert list(cfg.reports.sections) == list(DEFAULT_SECTIONS)
    site = instantiate(
        compose_config(tmp_path, ["+reports.parser.synonyms={findings: [RESULT]}"]).reports.parser
    )
    assert site.parse("RESULT: Clear lungs.").sections == {"findings": "Clear lungs."}
    assert parser.parse("RESULT: Clear lungs.").sections != {"findings": "Clear lungs."}


def test_cleaning_a_list_number_left_after_a_dropped_placeholder_is_idempotent() -> None:
    # found by the property test above: the first pass tidies " . ," into "." and so puts "1."
    # after a sentence's end, where it is a list number
    parser = ReportParser(short_sentences="merge")
    assert parser.clean("No . , 1. No") == parser.clean("No. 1. No") == "No. No"
    assert parser.split_sentences("No . , 1. No") == ["No. No"]
