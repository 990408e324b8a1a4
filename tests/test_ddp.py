"""Data parallelism on two CPU processes (gloo): the loss sees the whole global batch.

Each rank embeds its half of a global batch, gathers every rank's embeddings with gradients
(`medrep.models.distributed.global_loss`, what the LightningModule's training step uses) and
backpropagates through DistributedDataParallel, which averages gradients over ranks. The ranks'
losses must average to, and the averaged gradients must equal, those of one process on the
concatenated batch: for every loss of the family, learnable loss parameters included, and for the
duplicate-aware losses, whose sentence ids are gathered alongside.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from medrep.models.distributed import gather_pairs, global_loss
from medrep.models.heads import ProjectionHead
from tests.helpers import LOSS_FAMILY, IngestedWorld

WORLD = 2
PER_RANK = 3
# sentence ids of the global batch: a duplicate inside rank 0's rows and two across the ranks
TEXT_IDS = torch.tensor([3, 7, 3, 7, 5, 3])


class TwoTowers(nn.Module):
    """Projection heads over fixed features, and a loss: the trainable path of the pretrainer."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.image = ProjectionHead(5, 4, hidden_dim=8)
        self.text = ProjectionHead(6, 4, hidden_dim=8)
        self.loss = loss

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, text_ids: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        ids = text_ids if self.loss.uses_text_ids else None
        return global_loss(self.loss, self.image(image), self.text(text), ids)


def build(name: str) -> TwoTowers:
    torch.manual_seed(0)  # the same initial weights on every rank, as DDP requires
    return TwoTowers(LOSS_FAMILY[name]()).double()


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = WORLD * PER_RANK
    return (
        torch.randn(n, 5, generator=g, dtype=torch.float64),
        torch.randn(n, 6, generator=g, dtype=torch.float64),
    )


def rank_main(rank: int, rendezvous: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    try:
        image, text = global_batch()
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        results: dict[str, object] = {}
        for name in LOSS_FAMILY:
            model = build(name)
            ddp = nn.parallel.DistributedDataParallel(model)
            terms = ddp(image[rows], text[rows], TEXT_IDS[rows])
            terms["loss"].backward()
            results[name] = {
                "loss": terms["loss"].detach(),
                "grads": {
                    n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
                },
            }
        # validation embeddings shared unevenly (rank 1 also repeats item 0, as padding does)
        index = torch.tensor([0, 2, 4]) if rank == 0 else torch.tensor([1, 3, 0])
        emb = torch.arange(5, dtype=torch.float64)[:, None].expand(5, 4)
        results["val"] = gather_pairs(index, emb[index], -emb[index])
        results["val_uneven"] = gather_pairs(
            index[: 3 - rank], emb[index[: 3 - rank]], emb[index[: 3 - rank]]
        )
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The two ranks' results. The ranks meet through a file (no port to race for). A rank
    killed by a signal is retried once: on 2026-12-07 one run in about six had rank 0 abort in
    torch's C++ ("terminate called without an active exception", SIGABRT),
    and passed when run again. A Python exception in a rank (a real failure) is not retried.
    """
    out = tmp_path_factory.mktemp("ddp")
    for attempt in range(2):
        try:
            rendezvous = str(out / f"rendezvous{attempt}")
            mp.spawn(rank_main, args=(rendezvous, str(out)), nprocs=WORLD, join=True)
            break
        except mp.ProcessExitedException as exc:
            if exc.signal_name is None or attempt == 1:
                raise
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSS_FAMILY))
def test_two_processes_equal_one_process_on_the_concatenated_batch(
    ranks: list[dict], name: str
) -> None:
    model = build(name)
    image, text = global_batch()
    # one process: no process group, the whole batch
    reference = model(image, text, TEXT_IDS)["loss"]
    reference.backward()
    losses = torch.stack([r[name]["loss"] for r in ranks])
    # each rank's loss covers its own rows; their mean is the whole batch's loss
    assert not torch.isclose(losses[0], losses[1])
    assert torch.allclose(losses.mean(), reference, atol=1e-12)
    for n, p in model.named_parameters():
        assert p.grad is not None
        for r in ranks:
            # DDP's averaged gradient on every rank is the single process's gradient
            assert torch.allclose(r[name]["grads"][n], p.grad, atol=1e-12), (name, n)
    if name in ("clip", "siglip"):
        assert any(n.startswith("loss.") for n in ranks[0][name]["grads"])


@pytest.mark.slow
def test_validation_pairs_are_gathered_once_in_order(ranks: list[dict]) -> None:
    for r in ranks:
        index, image, text = r["val"]
        assert index.tolist() == [0, 1, 2, 3, 4]
        assert torch.equal(image[:, 0], torch.arange(5, dtype=torch.float64))
        assert torch.equal(text, -image)
        index, image, _ = r["val_uneven"]
        assert index.tolist() == [0, 1, 2, 3, 4]
        assert torch.equal(image[:, 0], torch.arange(5, dtype=torch.float64))


@pytest.mark.slow  # the tiny chain with two gloo processes (Lightning's subprocess launcher)
def test_the_chain_under_two_processes_runs_each_stage_once_where_it_should(
    tmp_path: Path, tiny_world: IngestedWorld
) -> None:
    """`trainer=ddp_cpu` re-runs the command for rank 1 (Lightning's launcher): rank 1 ingests
    (waiting on the lock, then reusing), pretrains, and stops; export, evaluation and the run
    record are rank 0's alone."""
    import json
    import subprocess

    from tests.helpers import REPO, tiny_chain

    cmd = tiny_chain(tmp_path, *tiny_world.overrides(), "trainer=ddp_cpu", "trainer.max_epochs=2")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    for stage in ("export", "evaluate"):
        assert output.count(f"[{stage}] done") == 1, stage
        assert f"[{stage}] rank 1" not in output
    assert output.count("[pretrain] done") == 1 and "[pretrain] rank 1 done" in output
    assert "[chain] rank 1: runs ['ingest', 'pretrain']" in output
    (run_dir,) = (tmp_path / "outputs" / "runs" / "tiny").iterdir()
    record = json.loads((run_dir / "run_record.json").read_text())
    assert list(record["stages"]) == ["ingest", "pretrain", "export", "evaluate"]
    assert (run_dir / "eval" / "results.csv").exists()


@pytest.mark.slow  # two gloo processes, rank 0 killed while both pretrain
def test_rank_one_ends_when_rank_zero_dies(tmp_path: Path, tiny_world: IngestedWorld) -> None:
    """Rank 0 killed by -9 in pretraining (the OOM killer, a scheduler): the rank that
    Lightning's launcher started must not wait in a collective until gloo's timeout."""
    import contextlib
    import os
    import signal
    import subprocess
    import time

    from tests.helpers import REPO, tiny_chain

    log = tmp_path / "chain.log"
    cmd = tiny_chain(tmp_path, *tiny_world.overrides(), "trainer=ddp_cpu", "trainer.max_epochs=200")
    with log.open("w") as out:
        main = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    rank_one = None
    try:
        deadline = time.time() + 600
        while rank_one is None and time.time() < deadline and main.poll() is None:
            time.sleep(2)
            if "[chain] rank 1" in log.read_text(errors="replace"):
                # rank 1: the child Lightning started with LOCAL_RANK=1 (rank 0 has other
                # children: decoding workers, git)
                rank_one = next((c for c in _children(main.pid) if _local_rank(c) == "1"), None)
        assert rank_one is not None, log.read_text(errors="replace")[-3000:]
        time.sleep(8)  # both in pretraining (rank 1 reused the ingestion and started its loop)
        assert _alive(rank_one)
        os.kill(main.pid, signal.SIGKILL)
        main.wait(timeout=30)
        gone_by = time.time() + 30
        while _alive(rank_one) and time.time() < gone_by:
            time.sleep(1)
        assert not _alive(rank_one), "rank 1 outlived rank 0"
    finally:
        for pid in {main.pid, *_children(main.pid), *([rank_one] if rank_one else [])}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _local_rank(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    values = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"LOCAL_RANK=")]
    return values[0] if values else None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # the tiny chain under torchrun with two processes
def test_the_chain_under_torchrun_runs_each_stage_once_where_it_should(
    tmp_path: Path, tiny_world: IngestedWorld
) -> None:
    """torchrun starts both ranks itself (Lightning reads its environment and spawns nothing):
    the same division of stages as under Lightning's launcher, one run record, exit 0. The run
    folder is given (docs/running.md: each process would otherwise name its own)."""
    import json
    import subprocess
    import sys

    from tests.helpers import REPO, tiny_chain

    run_dir = tmp_path / "outputs" / "runs" / "tiny" / "torchrun"
    chain = tiny_chain(
        tmp_path,
        *tiny_world.overrides(),
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        *chain[1:],
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    for stage in ("export", "evaluate"):
        assert output.count(f"[{stage}] done") == 1, stage
    assert output.count("[pretrain] done") == 1 and "[pretrain] rank 1 done" in output
    assert "[chain] rank 1: runs ['ingest', 'pretrain']" in output
    record = json.loads((run_dir / "run_record.json").read_text())
    assert list(record["stages"]) == ["ingest", "pretrain", "export", "evaluate"]
    assert (run_dir / "eval" / "results.csv").exists()


@pytest.mark.slow  # the tiny chain as one Hydra job of two submitit tasks (local executor)
def test_the_chain_under_the_submitit_local_launcher_with_two_tasks(
    tmp_path: Path, tiny_world: IngestedWorld
) -> None:
    """hydra-submitit-launcher's local executor starts two tasks of one job, as a SLURM step
    with two tasks would: each is one rank (pipelines.ranks.adopt_local_tasks), rank 1 ingests
    and pretrains, rank 0 also exports, evaluates and writes the run record."""
    import json
    import subprocess

    from tests.helpers import REPO, tiny_chain

    sweep = tmp_path / "multirun"
    chain = tiny_chain(
        tmp_path,
        *tiny_world.overrides(),
        "hydra/launcher=submitit_local",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.timeout_min=15",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
    )
    cmd = [*chain[:3], "-m", *chain[3:]]  # python -m pipelines.run -m <overrides>
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(sweep.rglob("*.out")))
    logs += "\n".join(p.read_text(errors="replace") for p in sorted(sweep.rglob("*.err")))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:] + logs[-3000:]
    assert "[chain] rank 1: runs ['ingest', 'pretrain']" in logs, logs[-3000:]
    assert logs.count("[export] done") == 1 and logs.count("[evaluate] done") == 1
    assert "[pretrain] rank 1 done" in logs
    record = json.loads((sweep / "0" / "run_record.json").read_text())
    assert list(record["stages"]) == ["ingest", "pretrain", "export", "evaluate"]
    assert (sweep / "0" / "eval" / "results.csv").exists()


@pytest.mark.slow  # three ingestions of the tiny world, two of them as submitit jobs side by side
def test_sharded_ingestion_over_two_submitit_jobs_equals_one_ingestion_byte_for_byte(
    tmp_path: Path, tiny_world: IngestedWorld
) -> None:
    """docs/running.md's recipe for a large export: N shards as jobs of Hydra's submitit
    launcher (here its local executor, both jobs at once), then one merge; every artifact equals
    a single ingestion's, byte for byte (the summary's timing aside)."""
    import json
    import subprocess

    from tests.helpers import REPO, tiny_chain

    data = f"paths.data_dir={tiny_world.data_dir}"
    small_parts = "data.ingest.chunk_size=16"  # several parts per shard

    def ingest(out: Path, *extra: str, multirun: bool = False) -> None:
        chain = tiny_chain(tmp_path, data, f"paths.ingest_dir={out}", small_parts, *extra)
        cmd = [chain[0], "-m", "pipelines.ingest", *(["-m"] if multirun else []), *chain[3:]]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    single, sharded = tmp_path / "single", tmp_path / "sharded"
    ingest(single)
    ingest(
        sharded,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "data.shard=0/2,1/2",
        "data.merge=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        multirun=True,
    )
    assert not (sharded / "manifest.parquet").exists()  # the shards only wrote parts
    assert len(list((sharded / "parts").glob("*"))) > 2
    ingest(sharded)  # merges
    files = sorted(p.relative_to(single) for p in single.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(sharded) for p in sharded.rglob("*") if p.is_file())
    for name in files:
        if name.name == "ingest_summary.json":
            a, b = (json.loads((d / name).read_text()) for d in (single, sharded))
            assert {**a, "seconds": 0} == {**b, "seconds": 0}
        elif name.name != ".ingest.lock":
            assert (single / name).read_bytes() == (sharded / name).read_bytes(), name


@pytest.mark.slow  # the tiny chain under each launcher with two processes, rank 1 failing
@pytest.mark.parametrize("launcher", ["lightning", "torchrun", "submitit_local"])
def test_a_failure_in_rank_one_stops_every_rank(
    tmp_path: Path, tiny_world: IngestedWorld, launcher: str
) -> None:
    """Rank 1 raises in pretraining (tests/faults.py) while rank 0 goes on into the next
    collective: every rank ends, soon (not at gloo's 30-minute timeout), the command exits
    non-zero, the failure is named once, and no later stage runs. Under submitit's local
    executor, which waits for every task, only the run's own watch (pipelines/ranks.py) ends
    rank 0."""
    import subprocess
    import sys

    from tests.helpers import REPO, tiny_chain

    run_dir = tmp_path / "run"
    fault = "+callbacks.fault._target_=tests.faults.FailInRank"
    chain = tiny_chain(
        tmp_path, *tiny_world.overrides(), "trainer=ddp_cpu", "trainer.max_epochs=50", fault
    )
    if launcher == "lightning":
        cmd = [*chain, f"hydra.run.dir={run_dir}"]
    elif launcher == "torchrun":
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
        cmd = [*torchrun, "--master_port=29518", *chain[1:], f"hydra.run.dir={run_dir}"]
    else:
        local = ["hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2"]
        cmd = [*chain[:3], "-m", *chain[3:], *local, f"hydra.sweep.dir={run_dir}"]
    # no timeout_min: a rank left waiting would hold the job for gloo's 30 minutes
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    output += "\n".join(p.read_text(errors="replace") for p in sorted(run_dir.rglob("*.out")))
    output += "\n".join(p.read_text(errors="replace") for p in sorted(run_dir.rglob("*.err")))
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" in output and "tests/faults.py" in output, output[-3000:]
    failed = "[chain] rank 1 failed in pretrain (RuntimeError: planted failure in rank 1"
    assert output.count(failed) == 1, output[-3000:]
    assert "[export]" not in output and "[evaluate]" not in output
    if launcher == "submitit_local":
        assert "[chain] rank 0 stops: rank 1 failed in pretrain (RuntimeError)" in output
