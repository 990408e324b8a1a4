"""The baselines grid on the tiny world: every stage, one table over all methods, claims, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import IngestedWorld, compose_config


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory, tiny_world: IngestedWorld):  # type: ignore[no-untyped-def]
    """The baselines grid's stages after ingestion, on the session's ingested tiny world."""
    from omegaconf import OmegaConf

    from pipelines.baselines import run_baselines
    from pipelines.evaluate import run_evaluate
    from pipelines.export import run_export
    from pipelines.pretrain import run_pretrain

    root = tmp_path_factory.mktemp("grid")
    # a local weights file: the pretrained encoder the export stage will write, named before it
    # exists so that one run exercises the weights baseline. Not random init's: a loader that
    # ignored the file would rebuild random init from the seed and pass a comparison with it.
    weights = root / "run" / "embeddings" / "convirt" / "encoder.pt"
    cfg = compose_config(
        root,
        [
            *tiny_world.overrides(),
            f"+grid.weights.copied={weights}",
            "eval.finetune.enabled=true",
            "eval.finetune.methods=[convirt,simclr]",
            "eval.finetune.steps=4",
            "eval.finetune.eval_every=2",
            "eval.bootstrap.n_resamples=100",
        ],
        config_name="baselines",
    )
    # the shared ingestion stands in for the grid's own only while their data settings agree
    tiny_data = compose_config(root, tiny_world.overrides()).data
    assert OmegaConf.to_container(cfg.data, resolve=True) == OmegaConf.to_container(
        tiny_data, resolve=True
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is fastest
    try:
        outputs = {"pretrain": None, "baselines": None}
        outputs["pretrain"] = run_pretrain(cfg)
        run_export(cfg)
        outputs["baselines"] = run_baselines(cfg)
        outputs["evaluate"] = run_evaluate(cfg)
    finally:
        torch.set_num_threads(threads)
    return cfg, outputs


@pytest.mark.slow
def test_grid_gives_baselines_the_pretraining_step_budget(grid_run) -> None:
    cfg, outputs = grid_run
    steps = outputs["pretrain"]["steps"]
    assert steps > 0
    assert outputs["pretrain"]["exported"].startswith("best (epoch")
    for name in ("simclr", "supervised"):
        assert outputs["baselines"][name]["steps"] == steps
        model = Path(cfg.paths.run_dir) / "baselines" / name / "model.pt"
        # every trained method exports the same choice of checkpoint (export_checkpoint: best)
        assert torch.load(model, weights_only=True)["exported"].startswith("best (epoch")


@pytest.mark.slow
def test_grid_weights_baseline_reproduces_the_named_encoder(grid_run) -> None:
    from medrep.evaluation.embeddings import load_embeddings

    cfg, _ = grid_run
    root = Path(cfg.paths.embeddings_dir)
    copied = load_embeddings(root / "copied" / "test.npz")
    source = load_embeddings(root / "convirt" / "test.npz")
    np.testing.assert_array_equal(copied["image_key"], source["image_key"])
    np.testing.assert_allclose(copied["image_features"], source["image_features"], atol=1e-6)
    # the file's weights, not a fresh encoder: random init's features differ from them
    fresh = load_embeddings(root / "random_init" / "test.npz")
    assert not np.allclose(copied["image_features"], fresh["image_features"], atol=1e-3)
    simclr = load_embeddings(root / "simclr" / "test.npz")
    assert not np.allclose(simclr["image_features"], source["image_features"])


@pytest.mark.slow
def test_grid_table_covers_every_method_task_and_claim(grid_run) -> None:
    cfg, outputs = grid_run
    out = outputs["evaluate"]
    results = pd.read_csv(out["results_csv"])
    probe = results[(results["task"] == "linear_probe") & (results["metric"] == "macro_auroc")]
    assert set(probe["method"]) == {
        "convirt",
        "random_init",
        "raw_pixels",
        "simclr",
        "supervised",
        "copied",
    }
    assert probe["ci_low"].notna().all() and (probe["ci_low"] <= probe["value"]).all()
    tuned = results[(results["task"] == "finetune") & (results["metric"] == "macro_auroc")]
    assert set(tuned["method"]) == {"convirt", "simclr"}
    assert set(tuned["label_fraction"]) == {0.1, 1.0}
    tasks = set(results[results["method"] == "convirt"]["task"])
    assert {"paired_retrieval", "paired_retrieval_dedup", "zero_shot", "claim"} <= tasks
    assert {"image_to_image", "text_to_image"} <= tasks
    i2i = results[(results["task"] == "image_to_image") & (results["metric"] == "n_queries")]
    assert set(i2i["method"]) == set(probe["method"])  # every method retrieves images
    claims = pd.read_csv(Path(cfg.paths.eval_dir) / "claims.csv")
    assert list(claims["claim"]) == [
        "convirt@0.1 >= random_init@1",
        "convirt@0.1 >= raw_pixels@1",
        "convirt@0.1 > raw_pixels@0.1",
        "convirt@1 > raw_pixels@1",
        "convirt@0.1 >= simclr@1",
        "convirt@0.1 > simclr@0.1",
        "convirt@1 > simclr@1",
    ]
    assert set(claims["verdict"]) <= {"shown", "not shown", "refuted"}
    assert (claims["bound"] <= claims["difference"]).all()
    assert (claims["difference"] <= claims["upper"]).all()
    md = Path(out["results_md"]).read_text()
    assert "## Claims" in md and "| simclr |" in md.splitlines()[0] + " |"
    for name in ("label_efficiency_plot", "retrieval_gallery"):
        png = Path(out[name])
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_random_init_and_supervised_ignore_the_pretrainings_weights_file(tmp_path: Path) -> None:
    """With model.module.image_encoder.weights_path set (e.g. ImageNet), random init and the
    supervised-from-scratch baseline still start from random weights; SimCLR starts as the
    pretraining does."""
    from hydra.utils import instantiate

    from pipelines.baselines import build_baseline

    cfg = compose_config(tmp_path, [])
    torch.manual_seed(0)
    named = instantiate(cfg.model.module.image_encoder)
    weights = tmp_path / "encoder.pt"
    torch.save(named.net.state_dict(), weights)
    cfg = compose_config(
        tmp_path,
        [f"model.module.image_encoder.weights_path={weights}", "+baseline@spec=simclr_cpu"],
    )
    from pipelines.export import no_weights

    assert no_weights(cfg) == {"weights_path": None}
    reference = named.net.state_dict()

    def same(encoder: torch.nn.Module) -> bool:
        return all(torch.equal(v, reference[k]) for k, v in encoder.net.state_dict().items())

    assert same(instantiate(cfg.model.module.image_encoder))  # the file is loaded
    torch.manual_seed(1)
    assert not same(instantiate(cfg.model.module.image_encoder, **no_weights(cfg)))
    with_cfg = compose_config(
        tmp_path,
        [f"model.module.image_encoder.weights_path={weights}", "+baseline@spec=supervised_cpu"],
    )
    supervised = build_baseline(with_cfg, with_cfg.spec)
    assert not same(supervised.image_encoder)
    assert same(build_baseline(cfg, cfg.spec).image_encoder)
