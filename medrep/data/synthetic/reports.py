"""Report text: a MIMIC-CXR style report and its CheXpert-style labels for each planned study.

`write_report` drafts the FINDINGS section (mentions, resolutions, negations, devices, bones),
the IMPRESSION, then lays the report out; every step draws from the study's report stream
(`report_rng`) in that fixed order. `planted_identifiers` draws, from a stream of its own, the
identifiers that `WorldSpec.text_identifier_rate` plants in the text.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np

from medrep.data.labels import FINDINGS
from medrep.data.synthetic.sentences import (
    DEVICE_SENTENCES,
    NEGATION_RATE,
    NEGATIONS,
    NORMAL_IMPRESSIONS,
    QUESTIONS,
    REASONS,
    ROUTES,
    capitalize_first,
    cardiomegaly_only_impression,
    impression_positive,
    pick_phrase,
    resolution_sentence,
    sentence_hedged,
    sentence_positive,
)
from medrep.data.synthetic.spec import (
    TAG_PLANT,
    TAG_REPORT,
    Finding,
    StudyPlan,
    WorldSpec,
    stream_rng,
)

# Share of present findings the radiologist hedges on (-> label -1.0).
HEDGE_RATE = 0.1
# Share of reports with an impression only (no FINDINGS section).
IMPRESSION_ONLY_RATE = 0.1

_PLEURAL = ("Pleural Effusion", "Pneumothorax")
_PARENCHYMAL = ("Consolidation", "Edema", "Nodule")
# The order in which an impression lists findings: the most urgent first.
_IMPRESSION_PRIORITY = (
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
    "Cardiomegaly",
    "Nodule",
)


@dataclass(frozen=True)
class Report:
    """A report and the labels it supports.

    Attributes:
        text: the raw multi-line report.
        labels: LABEL_COLUMNS -> 1.0 / 0.0 / -1.0 (uncertain: the report hedges a present finding).
        hedged: the findings whose every mention is hedged.
        has_findings_section: False for impression-only reports.
    """

    text: str
    labels: dict[str, float]
    hedged: tuple[str, ...]
    has_findings_section: bool


def report_rng(spec: WorldSpec, study: StudyPlan) -> np.random.Generator:
    """The random stream of a study's report (independent of pixels)."""
    return stream_rng(spec.seed, TAG_REPORT, study.study_idx)


def exam_description(study: StudyPlan) -> str:
    """The EXAMINATION line, also written as the DICOM StudyDescription."""
    if "LL" in study.views:
        return "CHEST (PA AND LAT)"
    if study.truth.portable:
        return "CHEST PORT. LINE PLACEMENT" if study.truth.devices else "CHEST (PORTABLE AP)"
    return "CHEST (SINGLE VIEW)"


@dataclass(frozen=True)
class _Draft:
    """What every part of a report being written reads: the study, its stream, its decisions."""

    study: StudyPlan
    rng: np.random.Generator
    hedged: set[str]
    prior_of: dict[str, Finding | None]

    def mention(self, finding: Finding) -> str:
        """A FINDINGS sentence for a present finding: hedged, or affirmative."""
        if finding.name in self.hedged:
            return sentence_hedged(finding, self.rng, self.study)
        return sentence_positive(finding, self.rng, self.prior_of[finding.name], self.study)


# ---- FINDINGS: devices, lungs, pleura, heart and mediastinum, bones ------------------------


@dataclass
class _Sections:
    """FINDINGS sentences grouped by anatomy; a report puts the groups in one of two orders."""

    lungs: list[str]
    pleura: list[str]
    heart: list[str]

    def of(self, name: str) -> list[str]:
        if name == "Cardiomegaly":
            return self.heart
        return self.pleura if name in _PLEURAL else self.lungs


def _choose_negations(draft: _Draft) -> list[str]:
    """The absent findings the report will negate explicitly."""
    truth = draft.study.truth
    absent = [name for name in FINDINGS if not truth.has(name)]
    return [name for name in absent if draft.rng.random() < NEGATION_RATE[name]]


def _add_resolutions(draft: _Draft, sections: _Sections) -> None:
    """Half of the prior study's findings that are gone are said to have resolved."""
    study = draft.study
    if study.prior is None:
        return
    for finding in study.prior.findings:
        if not study.truth.has(finding.name) and draft.rng.random() < 0.5:
            sentence = resolution_sentence(finding)
            if sentence:
                sections.of(finding.name).append(sentence)


def _add_clear_lungs_and_pleura(draft: _Draft, sections: _Sections, negate: list[str]) -> list[str]:
    """'The lungs are clear', and one sentence negating effusion and pneumothorax together.

    Returns the negations still to write.
    """
    truth, rng = draft.study.truth, draft.rng
    if not any(truth.has(n) for n in _PARENCHYMAL) and rng.random() < 0.5:
        sections.lungs.insert(
            0, pick_phrase(rng, ("The lungs are clear.", "Lungs are well expanded and clear."))
        )
    if "Pleural Effusion" in negate and "Pneumothorax" in negate and rng.random() < 0.6:
        sections.pleura.append(
            pick_phrase(
                rng,
                (
                    "No pleural effusion or pneumothorax.",
                    "There is no pleural effusion or pneumothorax.",
                    "No pleural effusion or pneumothorax is seen.",
                ),
            )
        )
        negate = [n for n in negate if n not in _PLEURAL]
    return negate


def _add_negations(draft: _Draft, sections: _Sections, negate: list[str]) -> None:
    lungs_abnormal = any(draft.study.truth.has(n) for n in _PARENCHYMAL)
    for name in negate:
        options = NEGATIONS[name]
        if lungs_abnormal:
            options = tuple(o for o in options if "clear" not in o)
        sections.of(name).append(pick_phrase(draft.rng, options))


def _add_mediastinum(draft: _Draft, sections: _Sections) -> None:
    if draft.rng.random() < 0.45:
        sections.heart.append(
            pick_phrase(
                draft.rng,
                (
                    "Mediastinal contours are unremarkable.",
                    "The hilar contours are normal.",
                    "Mediastinal and hilar contours are within normal limits.",
                ),
            )
        )


def _device_sentences(draft: _Draft) -> list[str]:
    return [
        pick_phrase(draft.rng, DEVICE_SENTENCES[d.kind]).format(
            tip=d.tip_cm, route=ROUTES.get(d.route, "")
        )
        for d in draft.study.truth.devices
    ]


def _bone_sentences(draft: _Draft) -> list[str]:
    if draft.rng.random() >= 0.3:
        return []
    return [
        pick_phrase(
            draft.rng,
            (
                "No acute osseous abnormality.",
                "Visualized osseous structures are unremarkable.",
                "Degenerative changes are noted in the thoracic spine."
                if draft.study.age > 55
                else "No acute osseous abnormality.",
            ),
        )
    ]


def _findings_sentences(draft: _Draft) -> list[str]:
    """The FINDINGS sentences in report order (drawn even for an impression-only report)."""
    sections = _Sections(lungs=[], pleura=[], heart=[])
    for finding in draft.study.truth.findings:
        sections.of(finding.name).append(draft.mention(finding))
    negate = _choose_negations(draft)
    _add_resolutions(draft, sections)
    negate = _add_clear_lungs_and_pleura(draft, sections, negate)
    _add_negations(draft, sections, negate)
    _add_mediastinum(draft, sections)
    devices = _device_sentences(draft)
    bones = _bone_sentences(draft)
    if draft.rng.random() < 0.6:
        blocks = [sections.lungs, sections.pleura, sections.heart]
    else:
        blocks = [sections.heart, sections.lungs, sections.pleura]
    return devices + [s for block in blocks for s in block] + bones


# ---- IMPRESSION ------------------------------------------------------------------------------


def _impression_items(draft: _Draft, has_findings: bool) -> list[str]:
    truth, rng = draft.study.truth, draft.rng
    present = list(truth.findings)
    ordered = sorted(present, key=lambda f: _IMPRESSION_PRIORITY.index(f.name))
    # an impression-only report must name every finding; otherwise it may summarise
    chosen = (
        ([f for f in ordered if rng.random() < 0.8] or ordered[:1]) if has_findings else ordered
    )
    items = [
        sentence_hedged(f, rng, draft.study)
        if f.name in draft.hedged
        else impression_positive(f, rng, draft.prior_of[f.name])
        for f in chosen
    ]
    if not present:
        items = [pick_phrase(rng, NORMAL_IMPRESSIONS)]
        if not has_findings and rng.random() < 0.5:
            items[0] += "  " + pick_phrase(
                rng, ("No pleural effusion or pneumothorax.", "Heart size is normal.")
            )
    elif (
        len(present) == 1
        and present[0].name == "Cardiomegaly"
        and present[0].name not in draft.hedged
        and rng.random() < 0.5
    ):
        items = [cardiomegaly_only_impression(present[0])]
    if truth.devices and rng.random() < 0.4:
        items.append(
            pick_phrase(
                rng, ("Lines and tubes in appropriate position.", "Support devices as described.")
            )
        )
    return items


def _plant_identifiers(
    planted: dict[str, str], findings: list[str], items: list[str], has_findings: bool
) -> tuple[list[str], list[str]]:
    """Add the planted identifiers' sentences to the findings and the impression (no draws)."""
    patient_sentence = (
        f"Patient {planted['title']} {planted['patient_last']} (MRN {planted['patient_id']}, "
        f"DOB {planted['birth_date']}) examined upright."
    )
    if has_findings:
        findings = [*findings, patient_sentence]
    else:
        items = [*items, patient_sentence]
    items = [
        *items,
        f"Findings discussed with Dr. {planted['referring_last']} by telephone at "
        f"{planted['time']} on {planted['study_date']}, callback {planted['phone']}; "
        f"accession number {planted['accession']}.",
    ]
    return findings, items


# ---- the header sections and the layout ------------------------------------------------------


def _indication(study: StudyPlan, rng: np.random.Generator) -> str:
    present = [f.name for f in study.truth.findings]
    key = pick_phrase(rng, present) if present and rng.random() < 0.6 else ""
    reason = pick_phrase(rng, REASONS[key])
    if any(d.kind == "ett" for d in study.truth.devices) and rng.random() < 0.6:
        reason = "intubation, evaluate ETT placement"
    elif any(d.kind in ("cvc", "picc") for d in study.truth.devices) and rng.random() < 0.4:
        reason = "line placement"
    man = study.patient.sex == "M"
    sex = pick_phrase(rng, ("man", "male") if man else ("woman", "female"))
    style = rng.random()
    if style < 0.45:
        text = f"___-year-old {sex} with {reason}"
    elif style < 0.7:
        text = f"___ year old {sex} with {reason}"
    elif style < 0.85:
        text = f"___{'M' if man else 'F'} with {reason}"
    else:
        text = capitalize_first(reason)
    if rng.random() < 0.4:
        text += f"  // {pick_phrase(rng, QUESTIONS)}"
    return text + "."


def _comparison(study: StudyPlan, rng: np.random.Generator) -> str:
    if study.prior is None:
        return pick_phrase(rng, ("None.", "___", "No prior studies available.", "None available."))
    return pick_phrase(
        rng,
        (
            "___",
            "Chest radiograph from ___.",
            "Prior study of ___.",
            "Comparison is made to the chest radiograph from ___.",
            "___ chest radiograph.",
        ),
    )


def _technique(study: StudyPlan, rng: np.random.Generator) -> str:
    if "LL" in study.views:
        return pick_phrase(rng, ("Chest PA and lateral", "PA and lateral views of the chest"))
    if study.truth.portable:
        return pick_phrase(
            rng, ("Portable AP chest radiograph", "Single portable AP view of the chest")
        )
    return pick_phrase(rng, ("Single frontal view of the chest", "PA view of the chest"))


def _wrap_lines(text: str, width: int, indent: str = " ") -> list[str]:
    return [
        indent + line
        for line in textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)
    ]


def _header_lines(study: StudyPlan, rng: np.random.Generator, width: int) -> list[str]:
    """FINAL REPORT, EXAMINATION, INDICATION, (TECHNIQUE,) COMPARISON."""
    lines = ["                                 FINAL REPORT"]
    lines.append(f" EXAMINATION:  {exam_description(study)}")
    lines.append("")
    lines += _wrap_lines(f"INDICATION:  {_indication(study, rng)}", width)
    lines.append("")
    if rng.random() < 0.6:
        lines += _wrap_lines(f"TECHNIQUE:  {_technique(study, rng)}", width)
        lines.append("")
    lines += _wrap_lines(f"COMPARISON:  {_comparison(study, rng)}", width)
    lines.append("")
    return lines


def _findings_lines(sentences: list[str], rng: np.random.Generator, width: int) -> list[str]:
    """The FINDINGS section: one paragraph, or (sometimes, when long) two."""
    lines = [" FINDINGS:", ""]
    if len(sentences) > 4 and rng.random() < 0.35:
        cut = len(sentences) // 2
        paragraphs = [sentences[:cut], sentences[cut:]]
    else:
        paragraphs = [sentences]
    for paragraph in paragraphs:
        lines += _wrap_lines("  ".join(paragraph), width)
        lines.append("")
    return lines


def _impression_lines(items: list[str], rng: np.random.Generator, width: int) -> list[str]:
    """The IMPRESSION section: a numbered list or running text."""
    lines = [" IMPRESSION:", ""]
    if len(items) > 1 and rng.random() < 0.5:
        for i, item in enumerate(items, 1):
            lines += _wrap_lines(f"{i}. {item}", width)
    else:
        lines += _wrap_lines("  ".join(items), width)
    return lines


def _labels(present: list[Finding], hedged: set[str]) -> dict[str, float]:
    labels = {name: 0.0 for name in FINDINGS}
    for finding in present:
        labels[finding.name] = -1.0 if finding.name in hedged else 1.0
    labels["No Finding"] = 0.0 if present else 1.0
    return labels


def write_report(
    study: StudyPlan, rng: np.random.Generator, planted: dict[str, str] | None = None
) -> Report:
    """MIMIC-CXR style report text for a study, and the CheXpert-style labels it supports.

    `planted` (from `planted_identifiers`) adds sentences with identifiers to the findings and
    the impression, after all random draws, so the rest of the report is unchanged.

    Every present finding is described affirmatively, or (HEDGE_RATE of them) with hedges in
    every mention, which makes its label -1.0. Absent findings are 0.0 whether or not the report
    negates them (the truth is known here; CheXpert would leave unmentioned ones blank).
    """
    present = list(study.truth.findings)
    hedged = {f.name for f in present if rng.random() < HEDGE_RATE}
    has_findings = rng.random() >= IMPRESSION_ONLY_RATE
    width = int(rng.integers(68, 80))
    prior_of = {
        f.name: (study.prior.get(f.name) if study.prior is not None else None) for f in present
    }
    draft = _Draft(study=study, rng=rng, hedged=hedged, prior_of=prior_of)
    findings = _findings_sentences(draft)
    items = _impression_items(draft, has_findings)
    if planted is not None:
        findings, items = _plant_identifiers(planted, findings, items, has_findings)
    lines = _header_lines(study, rng, width)
    if has_findings:
        lines += _findings_lines(findings, rng, width)
    lines += _impression_lines(items, rng, width)
    return Report(
        text="\n".join(lines) + "\n",
        labels=_labels(present, hedged),
        hedged=tuple(n for n in FINDINGS if n in hedged),
        has_findings_section=has_findings,
    )


def planted_identifiers(spec: WorldSpec, study: StudyPlan) -> dict[str, str] | None:
    """The identifiers planted in this study's report text, or None (spec.text_identifier_rate).

    Values are those of the study's DICOM headers (patient surname and id, accession, birth
    date, referring physician) written as a hospital report writes them, plus a time and a phone
    number that exist only in the text. Names follow a title ("Ms. Novak", "Dr. Castillo"):
    a bare name without a title or cue is beyond the scrubber (docs/reports.md).
    """
    if not spec.text_identifier_rate:
        return None
    rng = stream_rng(spec.seed, TAG_PLANT, study.study_idx)
    if rng.random() >= spec.text_identifier_rate:
        return None
    patient = study.patient
    last = patient.name.partition("^")[0]
    birth, day = patient.birth_date, study.study_date
    return {
        "title": "Ms." if patient.sex == "F" else "Mr.",
        "patient_last": last,
        "patient_id": patient.patient_id,
        "birth_date": f"{birth[4:6]}/{birth[6:8]}/{birth[:4]}",
        "accession": study.accession,
        "study_date": f"{day[4:6]}/{day[6:8]}/{day[:4]}",
        "referring_last": study.referring.partition("^")[0],
        "time": f"{int(rng.integers(7, 19)):02d}:{int(rng.integers(0, 60)):02d}",
        "phone": f"617-{int(rng.integers(200, 999))}-{int(rng.integers(0, 10000)):04d}",
    }
