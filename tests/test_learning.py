"""A test that fails when pretraining learns nothing (issue 14).

The demo's recipe (`model=convirt_cpu`, `loss=convirt`, the pretrained MiniLM text tower) on a
small, easy synthetic world (300 patients, difficulty 0, 32 px, 20 epochs; under a minute on 2
idle cores): the validation loss must fall, and prompts that no training report contains must
find the images of their finding among the test studies above chance (text->image P@10, the
lower end of its 95% interval above the chance rate). The test split is large (40% of the
patients) so that the interval is tight; training sees only the training split.

Why retrieval and not the linear probe against random init (what this test asserted until
2026-12-08): the probe claim is not stable on this world. Measured on 2026-12-08 (AMD EPYC VM,
`pipelines.run_chain` with `LEARNING_WORLD` plus `seed=<s>`), ConVIRT's probe against random
init's at 100% labels:

| pretraining seed | ConVIRT | random init | difference [one-sided bound] | text->image P@10 [95% CI] (chance 0.204) |
|---|---|---|---|---|
| 0 | 0.644 | 0.647 | -0.003 [-0.041] | 0.462 [0.357, 0.562] |
| 1 | 0.715 | 0.712 | +0.004 [-0.033] | 0.386 [0.243, 0.524] |
| 2 | 0.692 | 0.665 | +0.026 [-0.022] | 0.362 [0.243, 0.471] |
| 0, the loss replaced by a constant | 0.615 | 0.647 | -0.032 [-0.074] | 0.210 [0.148, 0.276] |

On the VM of 2026-12-07 seed 0 gave 0.696 against 0.647 (bound +0.009, `shown`); on this one the
same code gives 0.644: another CPU's arithmetic moves a 20-epoch run that much. Random init's own
probe spans 0.647-0.712 over seeds. Neither the duplicate-aware loss (+0.042, +0.005, +0.027;
shown at seed 0 only) nor twice the patients (+0.096, +0.020, -0.033) made the claim hold on
every seed. Text->image retrieval separates a pretraining that learned from one that did not on
every seed, so it is what this test asserts; that the encoder transfers better than random
init is a claim for the recipe study's 3-seed tables (docs/recipe.md), not for a one-seed test.

Since the CPU recipe decays its learning rate by a cosine over the run's epochs (docs/recipe.md,
E23; here over the 20 epochs), on the same VM, seeds 0 / 1 / 2: probe against random init
+0.054 (bound +0.017, shown) / -0.029 / +0.044 (bound +0.002, shown); text->image P@10 0.533
[0.405, 0.657] / 0.329 [0.210, 0.452] / 0.405 [0.257, 0.552], each lower bound above chance,
seed 1's by 0.006.

What is not asserted either: that the pretrained encoder beats a probe on the raw pixels. On
no world tried does this recipe do so within a test's budget (raw pixels against ConVIRT, 100%
labels, 200 patients, 15 epochs: difficulty 0: 0.796 / 0.701; 0.5: 0.702 / 0.607; 1.0: 0.592 /
0.515; full reports as the text view at 0.5: 0.702 / 0.488; learning rate 3e-3 at difficulty
0: 0.796 / 0.578; this test's world: 0.803 against the table's 0.644-0.715), nor on the demo
world at the demo's budget (docs/evaluation.md). `test_pretraining_beats_raw_pixels` states it
as a strict expected failure: the day a recipe wins (the recipe study, issue 15), it passes,
strict mode turns that into a failure, and the marker must go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers import compose_config

LEARNING_WORLD = [
    "data.synthetic.n_patients=300",
    # a large test split (120 patients) for a tight interval: training cost depends on the
    # training split alone (150 patients)
    "data.ingest.split_fractions={train: 0.5, val: 0.1, test: 0.4}",
    "data.synthetic.difficulty=0.0",
    "data.image_size=32",
    "data.num_workers=0",
    "trainer.max_epochs=20",
    "trainer.enable_progress_bar=false",
    "eval.probe.fractions=[1.0]",
    "eval.probe.seeds=[0]",
    "eval.claims=['pretrained@1.0 > random_init@1.0','pretrained@1.0 > raw_pixels@1.0']",
    "threads=2",
]


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipelines.run import run_chain

    root = tmp_path_factory.mktemp("learning")
    cfg = compose_config(root, LEARNING_WORLD, experiment=None)
    run_chain(cfg)
    metrics = pd.read_csv(next(Path(cfg.paths.pretrain_dir).glob("logs/*/metrics.csv")))
    claims = pd.read_csv(Path(cfg.paths.eval_dir) / "claims.csv").set_index("claim")
    results = pd.read_csv(Path(cfg.paths.eval_dir) / "results.csv")
    text_to_image = results[(results["method"] == "convirt") & (results["task"] == "text_to_image")]
    return {
        "val_loss": metrics["val/loss"].dropna().tolist(),
        "claims": claims,
        "text_to_image": text_to_image.set_index("metric"),
    }


@pytest.mark.slow
def test_pretraining_lowers_the_validation_loss(learned: dict[str, Any]) -> None:
    losses = learned["val_loss"]
    assert len(losses) >= 5  # early stopping may end the run before max_epochs
    assert min(losses[1:]) < losses[0] - 0.05, losses


@pytest.mark.slow
def test_unseen_prompts_retrieve_their_images_above_chance(learned: dict[str, Any]) -> None:
    rows = learned["text_to_image"]
    assert rows.loc["n_queries", "value"] >= 10
    p10, chance = rows.loc["P@10"], rows.loc["P@10_chance", "value"]
    assert p10["ci_low"] > chance, (p10.to_dict(), chance)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the CPU recipe does not beat raw pixels at 100% labels on any world tried "
    "(module docstring); issue 15 must make this pass and remove the marker",
)
def test_pretraining_beats_raw_pixels(learned: dict[str, Any]) -> None:
    claim = learned["claims"].loc["convirt@1 > raw_pixels@1"]
    assert claim["verdict"] == "shown", claim.to_dict()
