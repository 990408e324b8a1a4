"""The report generator's sentence banks: how each finding is said, hedged, summarised or negated.

One function a finding for each kind of mention, picked through a table by finding name; the
vocabulary of negations, normal impressions, indications and devices. Every function draws from
the report's stream, so the number and order of its draws are part of the world's bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from medrep.data.labels import FINDINGS
from medrep.data.synthetic.spec import LOBE_NAMES, MM_PER_UNIT, Finding, StudyPlan


def capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def pick_phrase(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of `options`, uniformly (one integer draw)."""
    return str(options[int(rng.integers(len(options)))])


_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "markedly"}


def _severity_adjective(finding: Finding) -> str:
    """ "mild", "moderate" or "marked" (a radiologist's word for severe)."""
    return finding.severity if finding.severity != "severe" else "marked"


def _effusion_words(finding: Finding) -> tuple[str, str, str]:
    """(size, side, noun) e.g. ("small", "left", "pleural effusion")."""
    noun = "pleural effusions" if finding.side == "bilateral" else "pleural effusion"
    return finding.severity, finding.side, noun


def _nodule_place(rng: np.random.Generator, finding: Finding) -> str:
    vertical = finding.location[1]
    zone = "upper" if vertical < 0.35 else "mid" if vertical < 0.65 else "lower"
    return pick_phrase(
        rng,
        (
            LOBE_NAMES[finding.lobe],
            f"{finding.side} {zone} lung",
            f"{finding.side} {zone} lung zone",
        ),
    )


def _nodule_size(rng: np.random.Generator, mm: float) -> str:
    if rng.random() < 0.5:
        return f"{mm:.0f} mm"
    return f"{mm / 10:.1f} cm"


def _unknown(finding: Finding) -> ValueError:
    return ValueError(f"unknown finding {finding.name!r}; expected one of {FINDINGS}")


# ---- affirmative FINDINGS sentences ----------------------------------------------------------


def _cardiomegaly_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    adverb, adjective = _ADVERB[finding.severity], _severity_adjective(finding)
    options = [
        f"The cardiac silhouette is {adverb} enlarged.",
        f"Heart size is {adverb} enlarged.",
        f"There is {adjective} cardiomegaly.",
        f"{capitalize_first(adjective)} enlargement of the cardiac silhouette.",
        f"The heart is {adverb} enlarged, with a cardiothoracic ratio of approx. "
        f"{finding.size:.2f}.",
        f"{capitalize_first(adjective)} cardiomegaly is noted.",
    ]
    if prior is not None:
        options += [
            f"Stable {adjective} cardiomegaly.",
            f"The cardiac silhouette remains {adverb} enlarged.",
        ]
    return pick_phrase(rng, options)


def _effusion_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    size, side, noun = _effusion_words(finding)
    bilateral = finding.side == "bilateral"
    verb = "are" if bilateral else "is"
    options = [
        f"There {verb} {'' if bilateral else 'a '}{size} {side} {noun}.",
        f"{capitalize_first(size)} {side} {noun}.",
        f"{capitalize_first(size)} {side} {noun} {verb} present.",
    ]
    if finding.severity == "small" and not bilateral:
        options.append(
            f"Blunting of the {side} costophrenic angle is consistent with a small pleural "
            "effusion."
        )
    if finding.severity != "small":
        options.append(
            f"{capitalize_first(size)} {side} {noun} with adjacent compressive atelectasis."
        )
    if study.truth.portable:
        options.append(f"{capitalize_first(size)} layering {side} {noun}.")
    if prior is not None and prior.side == finding.side:
        options += [
            f"Unchanged {size} {side} {noun}.",
            f"The {size} {side} {noun} {verb} stable.",
        ]
    elif study.prior is not None:
        options.append(f"New {size} {side} {noun}.")
    return pick_phrase(rng, options)


# The per-finding sentence functions share a shape (options, then a prior's wording, then a
# pick) that `duplicates` pairs; their sentences are what differs.
def _pneumothorax_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    size = "tiny" if finding.size < 0.07 and rng.random() < 0.5 else finding.severity
    side = finding.side
    cm = finding.size * 1.25 * MM_PER_UNIT / 10
    options = [
        f"There is a {size} {side} apical pneumothorax.",
        f"{capitalize_first(size)} {side} pneumothorax.",
        f"A {size} {side} pneumothorax is present, measuring approx. {cm:.1f} cm at the apex.",
        f"A visceral pleural line is seen at the {side} apex, consistent with a {size} "
        "pneumothorax.",
        f"{capitalize_first(size)} {side} pneumothorax without mediastinal shift.",
    ]
    if prior is not None and prior.side == side:
        options.append(f"The {size} {side} pneumothorax is unchanged in size.")
    elif study.prior is not None:
        options.append(f"New {size} {side} pneumothorax.")
    return pick_phrase(rng, options)


def _consolidation_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    lobe = LOBE_NAMES[finding.lobe]
    adjective = {"mild": "patchy", "moderate": "focal", "severe": "dense"}[finding.severity]
    options = [
        f"Focal consolidation in the {lobe}.",
        f"There is {adjective} consolidation in the {lobe}.",
        f"Patchy opacity in the {lobe} consistent with pneumonia.",
        f"{capitalize_first(lobe)} airspace opacity, compatible with pneumonia.",
        f"Airspace consolidation is seen in the {lobe}.",
        f"{capitalize_first(adjective)} consolidation in the {lobe}, consistent with pneumonia in "
        "the appropriate clinical setting.",
    ]
    if finding.lobe == "RML":
        options.append(
            "Opacity obscuring the right heart border, consistent with right middle lobe "
            "consolidation."
        )
    if finding.lobe == "LLL":
        options.append("Retrocardiac opacity, consistent with left lower lobe consolidation.")
    if finding.lobe in ("RLL", "LLL"):
        options.append(f"Consolidation at the {finding.side} lung base.")
    return pick_phrase(rng, options)


def _nodule_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    place, size = _nodule_place(rng, finding), _nodule_size(rng, finding.size)
    minor = finding.size * float(rng.uniform(0.75, 0.95))
    options = [
        f"A {size} nodular opacity projects over the {place}.",
        f"There is a {size} nodule in the {place}.",
        f"Rounded {size} nodule in the {place}.",
        f"A nodular opacity in the {place} measures {finding.size:.1f} x {minor:.1f} mm.",
    ]
    if prior is not None:
        options.append(f"The {size} pulmonary nodule in the {place} is again seen.")
    return pick_phrase(rng, options)


_EDEMA_BY_SEVERITY = {
    "mild": [
        "Mild pulmonary vascular congestion.",
        "Mild interstitial pulmonary edema.",
        "Pulmonary vascular congestion with mild interstitial edema.",
    ],
    "moderate": [
        "Moderate pulmonary edema.",
        "Pulmonary vascular congestion and interstitial edema.",
        "Perihilar haziness and vascular indistinctness consistent with moderate pulmonary edema.",
    ],
    "severe": [
        "Severe pulmonary edema with diffuse bilateral perihilar opacities.",
        "Marked perihilar haziness and interstitial opacities consistent with severe "
        "pulmonary edema.",
    ],
}


def _edema_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    severity = finding.severity
    options = _EDEMA_BY_SEVERITY[severity] + [
        f"Diffuse bilateral interstitial opacities consistent with {severity} pulmonary edema.",
        f"Increased interstitial markings and Kerley B lines, compatible with {severity} "
        "interstitial edema.",
    ]
    if prior is not None:
        options.append(f"Persistent {severity} pulmonary edema.")
    return pick_phrase(rng, options)


_PositiveSentence = Callable[[Finding, np.random.Generator, Finding | None, StudyPlan], str]
_POSITIVE_SENTENCES: dict[str, _PositiveSentence] = {
    "Cardiomegaly": _cardiomegaly_positive,
    "Pleural Effusion": _effusion_positive,
    "Pneumothorax": _pneumothorax_positive,
    "Consolidation": _consolidation_positive,
    "Nodule": _nodule_positive,
    "Edema": _edema_positive,
}


def sentence_positive(
    finding: Finding, rng: np.random.Generator, prior: Finding | None, study: StudyPlan
) -> str:
    """One affirmative FINDINGS sentence for a present finding (`prior`: the prior study's)."""
    describe = _POSITIVE_SENTENCES.get(finding.name)
    if describe is None:
        raise _unknown(finding)
    return describe(finding, rng, prior, study)


# ---- hedged mentions -------------------------------------------------------------------------


def sentence_hedged(finding: Finding, rng: np.random.Generator, study: StudyPlan) -> str:
    """A FINDINGS or IMPRESSION sentence that mentions a present finding with uncertainty."""
    if finding.name == "Cardiomegaly":
        options = [
            "Possible mild cardiomegaly.",
            "Cardiomegaly cannot be excluded given the low lung volumes.",
            "The cardiac silhouette may be mildly enlarged.",
        ]
        if study.truth.portable:
            options.append(
                "The heart size is possibly enlarged, which may be accentuated by AP technique."
            )
        return pick_phrase(rng, options)
    if finding.name == "Pleural Effusion":
        size, side, noun = _effusion_words(finding)
        both = side == "bilateral"
        return pick_phrase(
            rng,
            [
                f"Possible {size} {side} {noun}.",
                f"A {size} {side} {noun} cannot be excluded.",
                f"Blunting of the {'bilateral' if both else side} costophrenic "
                f"{'angles' if both else 'angle'} may represent pleural effusion "
                "or pleural thickening.",
            ],
        )
    if finding.name == "Pneumothorax":
        side = finding.side
        return pick_phrase(
            rng,
            [
                f"Possible tiny {side} apical pneumothorax.",
                f"A small {side} apical pneumothorax cannot be excluded.",
                f"Questionable {side} apical pneumothorax.",
                f"Lucency at the {side} apex may represent a small pneumothorax.",
            ],
        )
    if finding.name == "Consolidation":
        lobe = LOBE_NAMES[finding.lobe]
        return pick_phrase(
            rng,
            [
                f"Opacity in the {lobe} may represent atelectasis vs. pneumonia.",
                f"Subtle {lobe} opacity; early pneumonia cannot be excluded.",
                f"Possible {lobe} pneumonia.",
                f"Hazy opacity in the {lobe} could reflect atelectasis or possibly pneumonia.",
            ],
        )
    if finding.name == "Nodule":
        place, size = _nodule_place(rng, finding), _nodule_size(rng, finding.size)
        options = [
            f"A {size} nodular opacity in the {place} may represent overlapping vessels vs. a "
            "true nodule.",
            f"Questionable nodular opacity in the {place}.",
        ]
        if finding.location[1] > 0.6:
            options.append(
                f"Possible {size} nodule in the {place}, which may represent a nipple shadow."
            )
        return pick_phrase(rng, options)
    if finding.name == "Edema":
        return pick_phrase(
            rng,
            [
                "Possible mild pulmonary vascular congestion.",
                "Mild interstitial prominence may reflect mild pulmonary edema.",
                "Mild pulmonary edema cannot be excluded.",
            ],
        )
    raise _unknown(finding)


# ---- IMPRESSION items ------------------------------------------------------------------------


def impression_positive(finding: Finding, rng: np.random.Generator, prior: Finding | None) -> str:
    """One IMPRESSION item that names a present finding without hedging."""
    if finding.name == "Cardiomegaly":
        adjective = _severity_adjective(finding)
        return pick_phrase(
            rng,
            [f"{capitalize_first(adjective)} cardiomegaly.", "Cardiomegaly."]
            + ([f"Stable {adjective} cardiomegaly."] if prior is not None else []),
        )
    if finding.name == "Pleural Effusion":
        size, side, noun = _effusion_words(finding)
        return pick_phrase(
            rng,
            [
                f"{capitalize_first(size)} {side} {noun}.",
                f"{capitalize_first(side)} {noun}, {size}.",
            ],
        )
    if finding.name == "Pneumothorax":
        text = pick_phrase(
            rng,
            [
                f"{capitalize_first(finding.severity)} {finding.side} pneumothorax.",
                f"{capitalize_first(finding.side)} pneumothorax.",
            ],
        )
        if rng.random() < 0.4:
            text += "  Findings were communicated to Dr. ___ by telephone at ___."
        return text
    if finding.name == "Consolidation":
        lobe = LOBE_NAMES[finding.lobe]
        return pick_phrase(
            rng,
            [
                f"{capitalize_first(lobe)} pneumonia.",
                f"{capitalize_first(lobe)} consolidation, compatible with pneumonia.",
                f"Findings consistent with {lobe} pneumonia.",
            ],
        )
    if finding.name == "Nodule":
        place, size = _nodule_place(rng, finding), _nodule_size(rng, finding.size)
        text = pick_phrase(
            rng,
            [
                f"{capitalize_first(size)} nodule in the {place}.",
                f"{capitalize_first(place)} nodule.",
            ],
        )
        if rng.random() < 0.6:
            text += "  " + pick_phrase(
                rng,
                [
                    "Recommend chest CT for further characterization.",
                    "Nonurgent chest CT is recommended.",
                    "Comparison with prior imaging or CT is suggested.",
                ],
            )
        return text
    if finding.name == "Edema":
        severity = finding.severity
        return pick_phrase(
            rng,
            [
                f"{capitalize_first(severity)} pulmonary edema.",
                f"Congestive heart failure with {severity} pulmonary edema.",
                f"Pulmonary vascular congestion and {severity} interstitial edema.",
            ],
        )
    raise _unknown(finding)


def cardiomegaly_only_impression(finding: Finding) -> str:
    """The impression of a study whose one finding is cardiomegaly, said plainly."""
    adjective = _severity_adjective(finding)
    return f"{capitalize_first(adjective)} cardiomegaly without acute cardiopulmonary process."


def resolution_sentence(finding: Finding) -> str | None:
    """'Interval resolution of ...' for a finding the prior study had and this one lacks."""
    if finding.name == "Pleural Effusion":
        return f"Interval resolution of the previously seen {finding.side} pleural effusion."
    if finding.name == "Pneumothorax":
        return f"Interval resolution of the previously seen {finding.side} pneumothorax."
    if finding.name == "Consolidation":
        return (
            f"Interval resolution of the previously seen {LOBE_NAMES[finding.lobe]} consolidation."
        )
    if finding.name == "Edema":
        return "Interval resolution of the previously seen pulmonary edema."
    return None


# ---- fixed vocabularies ----------------------------------------------------------------------

NEGATIONS = {
    "Cardiomegaly": (
        "Heart size is normal.",
        "The cardiac silhouette is normal in size.",
        "Normal heart size.",
        "The heart is not enlarged.",
        "No cardiomegaly.",
        "The cardiomediastinal silhouette is within normal limits.",
    ),
    "Pleural Effusion": (
        "No pleural effusion.",
        "There is no pleural effusion.",
        "No pleural effusion is seen.",
    ),
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."),
    "Consolidation": (
        "No focal consolidation.",
        "The lungs are clear without focal consolidation.",
        "No evidence of pneumonia.",
        "There is no focal consolidation.",
    ),
    "Nodule": (
        "No suspicious pulmonary nodules.",
        "No focal nodular opacity.",
        "No pulmonary nodules or masses.",
    ),
    "Edema": (
        "No pulmonary edema.",
        "No pulmonary vascular congestion.",
        "There is no pulmonary edema.",
        "No evidence of pulmonary edema or vascular congestion.",
    ),
}
# How often an absent finding is negated explicitly.
NEGATION_RATE = {
    "Cardiomegaly": 0.65,
    "Pleural Effusion": 0.75,
    "Pneumothorax": 0.7,
    "Consolidation": 0.7,
    "Nodule": 0.2,
    "Edema": 0.4,
}
NORMAL_IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary abnormality.",
    "No acute intrathoracic process.",
    "Normal chest radiograph.",
    "No radiographic evidence of pneumonia.",
    "No acute findings in the chest.",
)
# Indications by the finding that prompted the study ("": none of them).
REASONS = {
    "Consolidation": ("fever and cough", "productive cough", "fever", "leukocytosis"),
    "Edema": ("shortness of breath", "dyspnea on exertion", "CHF exacerbation", "hypoxia"),
    "Cardiomegaly": ("shortness of breath", "dyspnea", "chest pain"),
    "Pleural Effusion": ("shortness of breath", "decreased breath sounds", "dyspnea"),
    "Pneumothorax": ("chest pain", "s/p fall", "trauma", "sudden onset dyspnea"),
    "Nodule": ("cough", "weight loss", "follow-up"),
    "": (
        "chest pain",
        "cough",
        "pre-operative evaluation",
        "fever",
        "shortness of breath",
        "hypoxia",
        "weakness",
        "syncope",
        "fall",
    ),
}
QUESTIONS = (
    "evaluate for pneumonia",
    "eval for acute process",
    "assess for interval change",
    "? pneumonia",
    "evaluate for effusion",
    "r/o pneumothorax",
)
DEVICE_SENTENCES = {
    "ett": (
        "Endotracheal tube terminates approx. {tip} cm above the carina.",
        "The endotracheal tube tip is {tip} cm above the carina.",
        "ET tube in standard position, {tip} cm above the carina.",
    ),
    "ngt": (
        "Enteric tube courses below the diaphragm with the tip in the stomach.",
        "Nasogastric tube tip is in the stomach.",
        "An orogastric tube extends into the stomach.",
    ),
    "cvc": (
        "{route} central venous catheter terminates in the mid SVC.",
        "{route} central line tip is at the cavoatrial junction.",
        "{route} central venous catheter ends in the low SVC.",
    ),
    "picc": (
        "{route} PICC line terminates in the lower SVC.",
        "{route} PICC tip projects over the cavoatrial junction.",
    ),
}
ROUTES = {
    "right_ij": "Right internal jugular",
    "left_ij": "Left internal jugular",
    "right_subclavian": "Right subclavian",
    "left_subclavian": "Left subclavian",
    "right_arm": "Right-sided",
    "left_arm": "Left-sided",
}
