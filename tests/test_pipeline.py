"""Each stage on the tiny config, in order, then the chained entry point as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import REPO, IngestedWorld, compose_config, execute_notebook


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_world: IngestedWorld):  # type: ignore[no-untyped-def]
    """The tiny config: the session's ingested world, this module's own run folder."""
    return compose_config(tmp_path_factory.mktemp("tiny"), tiny_world.overrides())


@pytest.fixture(scope="module")
def pretrained(tiny_run):  # type: ignore[no-untyped-def]
    from pipelines.pretrain import run_pretrain

    return run_pretrain(tiny_run)


@pytest.fixture(scope="module")
def exported(tiny_run, pretrained):  # type: ignore[no-untyped-def]
    from pipelines.export import run_export

    return run_export(tiny_run)


def test_ingest_stage_accounts_for_the_synthetic_world(tiny_run, tiny_world: IngestedWorld) -> None:
    ingested = tiny_world.summary  # what pipelines.ingest.run_ingest returned
    assert (
        ingested["files_seen"] == ingested["cached"] + ingested["rejected"] + ingested["filtered"]
    )
    assert ingested["filtered"] > 0  # lateral views are filtered out by default
    assert ingested["rejected"] == 0
    manifest = pd.read_parquet(Path(tiny_run.paths.ingest_dir) / "manifest.parquet")
    assert set(manifest["view"]) <= {"PA", "AP"}
    assert manifest.groupby("patient_key")["split"].nunique().max() == 1
    assert {"train", "val", "test"} <= set(manifest["split"])


def test_pretrain_stage_writes_a_weights_only_model(tiny_run, pretrained) -> None:
    model = Path(pretrained["model"])
    state = torch.load(model, weights_only=True)
    assert state["format"] == 1 and any(k.startswith("image_encoder.") for k in state["state_dict"])
    assert (model.parent / "config.yaml").exists()
    assert np.isfinite(pretrained["val/loss"])
    assert pretrained["steps"] > 0
    # the exported weights are the best checkpoint's (export_checkpoint: best)
    (best,) = model.parent.glob("checkpoints/epoch*.ckpt")
    kept = torch.load(best, weights_only=True)
    assert pretrained["exported"] == f"best (epoch {kept['epoch']})"
    for name, value in kept["state_dict"].items():
        assert torch.equal(state["state_dict"][name], value), name


def test_training_curves_go_to_csv_and_tensorboard(tiny_run, pretrained) -> None:
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = Path(tiny_run.paths.pretrain_dir)
    (metrics,) = out.glob("logs/version_*/metrics.csv")
    assert "val/loss" in pd.read_csv(metrics).columns
    (events,) = {p.parent for p in out.glob("tensorboard/version_*/events.out.tfevents.*")}
    scalars = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert "val/loss" in scalars and "train/loss_step" in scalars


def test_model_rebuilds_from_its_folder(tiny_run, pretrained) -> None:
    from pipelines.training import load_model

    module, cfg = load_model(tiny_run.paths.pretrain_dir)
    assert cfg.model.module.embed_dim == 16
    state = torch.load(pretrained["model"], weights_only=True)["state_dict"]
    for name, value in module.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_export_stage_writes_aligned_embeddings(tiny_run, exported) -> None:
    from medrep.evaluation.embeddings import load_embeddings

    root = Path(tiny_run.paths.embeddings_dir)
    for method in ("convirt", "random_init"):
        test = load_embeddings(root / method / "test.npz")
        n = len(test["image_key"])
        assert n == exported["test_images"] > 0
        assert test["image_features"].shape == (n, 32)
        assert len(set(test["image_key"])) == n
    convirt = load_embeddings(root / "convirt" / "test.npz")
    assert convirt["image_embeddings"].shape == convirt["text_embeddings"].shape == (n, 16)
    queries = load_embeddings(root / "convirt" / "queries.npz")
    assert len(queries["category"]) == len(queries["text"]) == queries["text_embeddings"].shape[0]


def test_evaluate_stage_writes_the_results_table(tiny_run, exported) -> None:
    from pipelines.evaluate import run_evaluate

    out = run_evaluate(tiny_run)
    results = pd.read_csv(out["results_csv"])
    probe = results[(results["task"] == "linear_probe") & (results["metric"] == "macro_auroc")]
    assert set(probe["method"]) == {"convirt", "random_init", "raw_pixels"}
    assert set(probe["label_fraction"]) == {0.1, 1.0}
    claims = pd.read_csv(Path(tiny_run.paths.eval_dir) / "claims.csv")
    assert "convirt@0.1 >= raw_pixels@1" in set(claims["claim"])
    assert probe["value"].between(0, 1).all()
    t2i = results[(results["task"] == "text_to_image") & (results["metric"] == "P@10")]
    assert len(t2i) == 1 and 0 <= t2i["value"].iloc[0] <= 1
    assert "macro_auroc" in Path(out["results_md"]).read_text()


@pytest.mark.slow
def test_chained_entry_point_runs_end_to_end(tmp_path: Path) -> None:
    """`python -m pipelines.run` as a user runs it (Hydra makes the run folder)."""
    cmd = [sys.executable, "-m", "pipelines.run", "experiment=tiny", f"paths.root_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "runs" / "tiny").iterdir())
    assert len(runs) == 1
    run_dir = runs[0]
    record = json.loads((run_dir / "run_record.json").read_text())
    assert list(record["stages"]) == ["ingest", "pretrain", "export", "evaluate"]
    assert (run_dir / "eval" / "results.md").exists()
    assert "Results (tiny;" in proc.stdout and "| macro_auroc |" in proc.stdout
    assert "results table" in proc.stdout
    same_folder = [*cmd, f"hydra.run.dir={run_dir}"]
    # the same command again: every stage after ingest is reused, ingestion finds nothing new
    proc = subprocess.run(same_folder, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("pretrain", "export", "evaluate"):
        assert f"[{stage}] unchanged config and inputs: reusing" in proc.stdout, stage
    record = json.loads((run_dir / "run_record.json").read_text())
    assert record["stages"]["pretrain"]["outputs"]["reused"] is True
    assert len(record["input_manifest_sha256"]) == 64
    # an evaluation setting changes: only evaluation runs again
    proc = subprocess.run(
        [*same_folder, "eval.probe.seeds=[1]"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[pretrain] unchanged config and inputs: reusing" in proc.stdout
    assert "[export] unchanged config and inputs: reusing" in proc.stdout
    assert "[evaluate] unchanged" not in proc.stdout
    results = pd.read_csv(run_dir / "eval" / "results.csv")
    assert set(results.loc[results["task"] == "linear_probe", "seed"]) == {1}
    # and an evaluation-only run in the same folder
    proc = subprocess.run(
        [*same_folder, "stages=[evaluate]", "rerun=true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[evaluate] done" in proc.stdout and "[pretrain]" not in proc.stdout


def test_privacy_audit_finds_no_identifier_in_any_artifact(tiny_run, exported) -> None:
    """Every file the run and its ingestion wrote, searched for every header identifier."""
    from medrep.audit import audit_files, identifiers_from_dicom
    from medrep.data.ingest import SUMMARY_NAME
    from medrep.data.synthetic import PLANTED_NAME
    from pipelines.evaluate import run_evaluate

    run_evaluate(tiny_run)
    identifiers = identifiers_from_dicom(Path(tiny_run.data.root) / "dicom")
    # and the identifiers the world planted in report text (names after titles, MRN, accession,
    # dates, a time, a phone number), which the scrubber must have removed at ingestion
    planted = pd.read_csv(Path(tiny_run.data.root) / PLANTED_NAME, dtype=str)
    assert set(planted["kind"]) >= {"patient_last", "phone", "time", "referring_last"}
    text_ids = zip(planted["value"], planted["kind"], strict=True)
    identifiers.update({v: f"report text: {k}" for v, k in text_ids})
    summary = json.loads((Path(tiny_run.paths.ingest_dir) / SUMMARY_NAME).read_text())
    scrubbed = summary["scrubbed_identifiers"]
    assert all(scrubbed[c] > 0 for c in ("name", "phone", "date", "time", "id")), scrubbed
    kinds = set(identifiers.values())
    assert {
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "PatientBirthDate",
        "InstitutionName",
    } <= kinds
    hits, n_files = audit_files([tiny_run.paths.run_dir, tiny_run.paths.ingest_dir], identifiers)
    assert n_files > 20
    assert hits == []


@pytest.mark.slow  # 6 s: a Jupyter kernel starts and runs every cell
def test_embedding_notebook_executes_top_to_bottom(tiny_run, exported) -> None:
    """notebooks/embedding_explorer.ipynb on the tiny run; the stored copy has no outputs."""
    from pipelines.evaluate import run_evaluate

    run_evaluate(tiny_run)
    env = {"MEDREP_RUN_DIR": str(tiny_run.paths.run_dir)}
    outputs = execute_notebook(REPO / "notebooks", env)
    assert sum(o.output_type == "display_data" for o in outputs) >= 4  # the figures


def test_restore_best_loads_the_monitored_checkpoint(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import ModelCheckpoint

    from medrep.models.checkpointing import restore_best

    best = torch.nn.Linear(3, 2)
    torch.save({"epoch": 4, "state_dict": best.state_dict()}, tmp_path / "epoch004.ckpt")
    module = torch.nn.Linear(3, 2)
    unmonitored = ModelCheckpoint(dirpath=tmp_path, monitor=None)
    monitored = ModelCheckpoint(dirpath=tmp_path, monitor="val/loss")
    monitored.best_model_path = str(tmp_path / "epoch004.ckpt")
    trainer = SimpleNamespace(checkpoint_callbacks=[unmonitored, monitored])
    assert restore_best(trainer, module) == 4  # type: ignore[arg-type]
    assert torch.equal(module.weight, best.weight)
    assert restore_best(SimpleNamespace(checkpoint_callbacks=[unmonitored]), module) is None  # type: ignore[arg-type]


def test_stage_key_changes_with_the_stages_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage whose code changed its outputs bumps STAGE_VERSIONS: folders written before are
    not reused (the key hashes config and inputs, not code)."""
    from pipelines import stages

    cfg = compose_config(tmp_path)
    ingest = Path(cfg.paths.ingest_dir)
    (ingest / "cache").mkdir(parents=True)
    for name in ("manifest.parquet", "reports.parquet", "cache/cache_meta.json"):
        (ingest / name).write_text(name)
    before = stages.stage_key("pretrain", cfg)
    assert before is not None and stages.stage_key("pretrain", cfg) == before
    monkeypatch.setitem(stages.STAGE_VERSIONS, "pretrain", stages.STAGE_VERSIONS["pretrain"] + 1)
    assert stages.stage_key("pretrain", cfg) != before
