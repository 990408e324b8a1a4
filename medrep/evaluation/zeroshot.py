"""Zero-shot classification from text prompts (as CheXzero and MedCLIP report; ConVIRT has none).

For every finding, a positive and a negative prompt set ("The heart is enlarged." against "No
cardiac enlargement."): each set's text embeddings are normalised and averaged (prompt
ensembling), and an image's score is its cosine similarity to the positive centroid minus that
to the negative one. The softmax of the two similarities that CheXzero uses is a monotone
function of this difference, so the AUROC is the same. `zero_shot_rows` turns the scores into
per-label and macro AUROC rows (task `zero_shot`) with bootstrap intervals over test patients.

A prompt that the training reports contain word for word measures recall of the reports' own
phrasing, not language: `prompts_in_texts` counts such prompts (the evaluation warns about them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial

import numpy as np
import pandas as pd

from medrep.data.reports import normalise_text
from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.labels import labels_for
from medrep.evaluation.metrics import auroc_rows, per_label_auroc, resample_weights
from medrep.evaluation.results import Evaluation, ResultRow

POLARITIES = ("positive", "negative")


def prompts_in_texts(prompts: Iterable[str], texts: Iterable[str]) -> dict[str, int]:
    """How many of `texts` contain each prompt, whole words, after `normalise_text` on both.

    "Pulmonary edema." is in "Mild pulmonary edema is present" and not in "pulmonary edemas";
    case, punctuation and line breaks do not matter.
    """
    corpus = [f" {normalise_text(t)} " for t in texts]
    return {p: sum(f" {normalise_text(p)} " in text for text in corpus) for p in prompts}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def zero_shot_scores(
    image_embeddings: np.ndarray,
    prompt_embeddings: np.ndarray,
    prompt_categories: Sequence[str] | np.ndarray,
    prompt_polarities: Sequence[str] | np.ndarray,
    categories: Sequence[str],
) -> np.ndarray:
    """[N, C] zero-shot scores of N images for each of `categories`.

    Args:
        image_embeddings: [N, D] images in the shared space.
        prompt_embeddings: [P, D] prompts in the shared space.
        prompt_categories / prompt_polarities: [P] category and `positive`/`negative` of each
            prompt.
        categories: the categories to score, each needing both polarities.

    Raises:
        ValueError: a category without a positive or a negative prompt.
    """
    images = _unit(image_embeddings)
    prompts = _unit(prompt_embeddings)
    cats, pols = np.asarray(prompt_categories), np.asarray(prompt_polarities)
    unknown = set(pols.tolist()) - set(POLARITIES)
    if unknown:
        raise ValueError(f"prompt polarities must be {POLARITIES}, got {sorted(unknown)}")
    out = np.empty((len(images), len(categories)))
    for j, category in enumerate(categories):
        centroids = []
        for polarity in POLARITIES:
            sel = (cats == category) & (pols == polarity)
            if not sel.any():
                raise ValueError(
                    f"no {polarity} prompt for {category!r}; add one under "
                    f"eval.zeroshot.prompts.{category}.{polarity}"
                )
            centroids.append(_unit(prompts[sel].mean(0)))
        out[:, j] = images @ centroids[0] - images @ centroids[1]
    return out


def zero_shot_rows(
    run: str,
    method: str,
    test: Mapping[str, np.ndarray],
    prompts: Mapping[str, np.ndarray],
    labels: pd.DataFrame,
    label_names: Sequence[str],
    uncertain: str,
    boot: BootstrapSettings,
) -> Evaluation:
    """Zero-shot AUROC (per label and macro) of prompt scores on the test split."""
    y = labels_for(test, labels, label_names, uncertain)
    scores = zero_shot_scores(
        test["image_embeddings"],
        prompts["text_embeddings"],
        prompts["category"],
        prompts["polarity"],
        label_names,
    )
    auroc = per_label_auroc(scores, y, label_names)
    weights = resample_weights(np.asarray(test["patient_key"]), boot)
    row = partial(ResultRow, run, method, "zero_shot")
    rows, _ = auroc_rows(row, scores, y, label_names, auroc, weights, boot)
    return Evaluation(rows=rows)
