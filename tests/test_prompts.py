"""The default retrieval and zero-shot prompts are paraphrases that the model never read.

A prompt that is a sentence of the training reports makes text->image retrieval and zero-shot
measure recall of the synthetic generator's templates instead of language (issue 14). The
check runs on the reports of the default world exactly as `conf/` describes it (generated
without images: plan and report text only, about 2 s).
"""

from __future__ import annotations

import pytest

from medrep.data.synthetic import WorldSpec, plan_world, report_rng, write_report
from medrep.evaluation.zeroshot import prompts_in_texts
from pipelines.common import plain
from tests.helpers import compose


@pytest.fixture(scope="module")
def default_world_reports() -> list[str]:
    values = plain(compose().data.synthetic)
    values["studies_per_patient"] = tuple(values["studies_per_patient"])
    spec = WorldSpec(**values)
    return [write_report(s, report_rng(spec, s)).text for s in plan_world(spec).studies]


def default_prompts() -> list[str]:
    settings = compose().eval
    prompts = [p for ps in settings.retrieval.queries.values() for p in ps]
    return prompts + [p for ps in settings.zeroshot.negative_prompts.values() for p in ps]


def test_default_prompts_are_in_no_report_of_the_default_world(
    default_world_reports: list[str],
) -> None:
    prompts = default_prompts()
    assert len(prompts) == 33
    found = {p: n for p, n in prompts_in_texts(prompts, default_world_reports).items() if n}
    assert found == {}, f"prompts that training reports contain (prompt: reports): {found}"


def test_the_check_finds_the_generators_own_sentences(default_world_reports: list[str]) -> None:
    # the prompts of before 2026-12-07: template sentences are found, in many reports
    counts = prompts_in_texts(
        ["Moderate cardiomegaly.", "No pneumothorax.", "the lungs are clear"],
        default_world_reports,
    )
    assert all(n >= 50 for n in counts.values()), counts
    assert len(default_world_reports) > 1000


def test_prompts_in_texts_matches_whole_words_after_normalising() -> None:
    texts = ["FINDINGS: Mild pulmonary\nedema, unchanged.", "Pulmonary edemas are absent."]
    counts = prompts_in_texts(["Pulmonary edema.", "mild PULMONARY edema", "monary edema"], texts)
    assert counts == {"Pulmonary edema.": 1, "mild PULMONARY edema": 1, "monary edema": 0}


def test_evaluation_counts_prompts_in_training_reports_only() -> None:
    import pandas as pd
    from hydra.utils import instantiate

    from medrep.evaluation.runner import prompts_in_training

    settings = instantiate(compose().eval)
    manifest = pd.DataFrame({"study_key": ["a", "b", "c"], "split": ["train", "train", "test"]})
    reports = pd.DataFrame(
        {
            "study_key": ["a", "b", "c"],
            "text": [
                "IMPRESSION: There is a pulmonary nodule.",
                "FINDINGS: there is a pulmonary nodule. No nodule or mass.",
                "IMPRESSION: The heart is enlarged.",  # test split: not training text
            ],
        }
    )
    seen = prompts_in_training(settings, manifest, reports)
    assert seen == {"There is a pulmonary nodule.": 2, "No nodule or mass.": 1}
