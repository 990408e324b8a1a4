"""Which process of a run this is, and what the processes of one run do together.

Several processes run one chain under Lightning's subprocess launcher (`trainer=ddp` /
`ddp_cpu`), torchrun, SLURM and submitit's local executor. Each process learns its rank here
(`process_rank`); `pipelines/run.py` says which stages each rank runs. When a stage fails in one
rank, the others must not wait for it in a collective (gloo's and NCCL's timeout is 30 minutes)
or at a barrier: `RankFailures` writes the failure into the run folder, which every rank shares,
and a thread in every other rank ends its process with one message naming the failed rank and
stage. The launchers' own mechanisms (Lightning's child-process observer, torchrun's agent) stop
the ranks they started too; submitit's local executor waits for every task, and SLURM's `srun`
only ends a step's other tasks when `--kill-on-bad-exit` is set: there this watch is what stops
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medrep.data.locking import exit_with_parent

# the run folder's sub-folder where a failed rank leaves its note
FAILURES_DIR = ".rank_failures"
# the exit status of a rank ended because another one failed
PEER_FAILED_STATUS = 1
# a note older than this process by more than this is a previous run's (ranks of one run start
# within seconds of each other; under Lightning's launcher the others start later than rank 0)
STALE_S = 30.0


def process_rank() -> int:
    """This process's global rank among the processes of one run: 0 alone, else what the
    launcher says (torchrun's RANK, SLURM's SLURM_PROCID in a multi-task step, Lightning's
    subprocess launcher's NODE_RANK and LOCAL_RANK: non-zero when either is)."""
    env = os.environ
    if env.get("RANK"):
        return int(env["RANK"])
    if env.get("SLURM_PROCID") and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return int(env["SLURM_PROCID"])
    node, local = int(env.get("NODE_RANK", "0") or 0), int(env.get("LOCAL_RANK", "0") or 0)
    return local if node == 0 else max(1, node * 1000 + local)


def adopt_local_tasks() -> bool:
    """Under submitit's local executor with several tasks (`hydra/launcher=submitit_local
    hydra.launcher.tasks_per_node=2`), say which task this is in the variables Lightning and
    `process_rank` read: each task then runs as one rank of a data-parallel group (Lightning
    sees processes created outside it and starts none), on a port derived from the job's id so
    that the tasks agree on it. SLURM jobs need nothing: Lightning reads SLURM's own variables.
    Returns whether this process is such a task."""
    env = os.environ
    tasks = int(env.get("SUBMITIT_LOCAL_NTASKS", "1") or 1)
    if env.get("SUBMITIT_EXECUTOR") != "local" or tasks < 2:
        return False
    local = env.get("SUBMITIT_LOCAL_LOCALID", "0")
    nodes = int(env.get("SUBMITIT_LOCAL_JOB_NUM_NODES", "1") or 1)
    job = env.get("SUBMITIT_LOCAL_JOB_ID", "0")
    env.setdefault("LOCAL_RANK", local)
    env.setdefault("NODE_RANK", env.get("SUBMITIT_LOCAL_NODEID", "0"))
    env.setdefault("RANK", env.get("SUBMITIT_LOCAL_GLOBALID", local))
    env.setdefault("WORLD_SIZE", str(tasks * nodes))
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    digest = int(hashlib.sha256(job.encode()).hexdigest(), 16)
    env.setdefault("MASTER_PORT", str(20000 + digest % 20000))
    return True


def follow_rank_zero() -> bool:
    """In a process that Lightning's subprocess launcher started for a non-zero rank, ask the
    kernel to end it when rank 0's process dies (rank 0 killed or crashed in pretraining would
    otherwise leave it waiting in a collective until gloo's or NCCL's timeout). torchrun's agent
    and SLURM stop their own tasks; returns whether the request was made."""
    env = os.environ
    launched_by_lightning = (
        int(env.get("LOCAL_RANK", "0") or 0) > 0
        and not env.get("RANK")
        and not (env.get("SLURM_PROCID") and int(env.get("SLURM_NTASKS", "1") or 1) > 1)
    )
    if launched_by_lightning:
        exit_with_parent(os.getppid())
    return launched_by_lightning


def world_size() -> int:
    """How many processes run this chain, as far as the launcher has said so far (Lightning's
    launcher sets WORLD_SIZE in rank 0 only when pretraining starts)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


class RankFailures:
    """The failure notes of one run's ranks in `<run folder>/.rank_failures/`.

    `report` is called by the rank whose stage raised (`during` does it); inside `with` a daemon
    thread ends this process (status 1) when another rank of the same run has reported. Notes name the
    exception's type only: its message may hold a file name from a site's export, and the
    traceback is in the failed rank's own output.
    """

    def __init__(self, run_dir: Path, rank: int, poll_s: float = 1.0) -> None:
        self.folder = Path(run_dir) / FAILURES_DIR
        self.rank = rank
        self.poll_s = poll_s
        self.started = time.time()
        self._stop = threading.Event()

    def report(self, stage: str, exc: BaseException) -> None:
        """Say what failed (with the traceback, before any other rank can end this one), then
        leave this rank's note (atomically) for the others."""
        error = type(exc).__name__
        if isinstance(exc, SystemExit):
            error = f"exit status {exc.code}"
        if self.rank != 0 or world_size() > 1:
            # printed here: a rank that Lightning's launcher started dies with rank 0, which may
            # stop as soon as the note exists, and Hydra's submitit launcher keeps a task's
            # exception in its result and reads task 0's alone
            said = f"{error}: {exc}" if not isinstance(exc, SystemExit) else error
            message = f"[chain] rank {self.rank} failed in {stage} ({said}); the other ranks stop"
            print(message, file=sys.stderr)
            if not isinstance(exc, SystemExit):
                traceback.print_exception(exc)
            sys.stderr.flush()
        note = {"rank": self.rank, "stage": stage, "error": error, "time": time.time()}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"rank{self.rank}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(note))
        tmp.replace(path)

    def failed_peer(self) -> dict[str, object] | None:
        """Another rank's note written during this run, or None."""
        if not self.folder.is_dir():
            return None
        for path in sorted(self.folder.glob("rank*.json")):
            try:
                fresh = path.stat().st_mtime >= self.started - STALE_S
                note = json.loads(path.read_text()) if fresh else None
            except (OSError, ValueError):  # removed or being replaced: read it next time
                continue
            if note is not None and note.get("rank") != self.rank:
                return note
        return None

    def __enter__(self) -> RankFailures:
        """Watch for other ranks' failures until the block ends: a daemon thread ends this
        process when one fails (it may be blocked in a collective, where no signal handler runs:
        the thread exits the process itself)."""
        self._stop.clear()
        threading.Thread(target=self._watch, name="rank-failures", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            note = self.failed_peer()
            if note is not None:
                print(
                    f"[chain] rank {self.rank} stops: rank {note['rank']} failed in "
                    f"{note['stage']} ({note['error']}); its output has the traceback",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(PEER_FAILED_STATUS)
            self._stop.wait(self.poll_s)

    def clear(self) -> None:
        """Remove the notes of earlier runs in this folder (rank 0, once the chain succeeded)."""
        for path in self.folder.glob("rank*.json") if self.folder.is_dir() else ():
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()

    @contextmanager
    def during(self, stage: str) -> Iterator[None]:
        """Report a failure of `stage` in this rank (an exception, or an exit with a non-zero
        status such as SIGTERM's 143), then let it propagate."""
        try:
            yield
        except BaseException as exc:
            if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
                self.report(stage, exc)
            raise


def join_run(run_dir: Path | str) -> RankFailures:
    """What every process of a run does first: adopt submitit's local tasks as ranks, follow
    rank 0 when Lightning's launcher started this process; then `with` the returned object
    watches for other ranks' failures."""
    adopt_local_tasks()
    follow_rank_zero()
    return RankFailures(Path(run_dir), process_rank())
