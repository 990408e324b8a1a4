"""Report sections, cleaning and sentence splitting."""

from __future__ import annotations

from medrep.data.reports import ReportParser

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
