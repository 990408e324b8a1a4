"""Which process of a run this is, and what the processes of one run do together.

Several processes run one chain under Lightning's subprocess launcher (`trainer=ddp` /
`ddp_cpu`), torchrun, SLURM and submitit's local executor. Each process learns its rank here
(`process_rank`); `pipelines/run.py` says which stages each rank runs. When a stage fails in one
rank, the others must not wait for it in a collective (gloo's and NCCL's timeout is 30 minutes)
or at a barrier: `RankFailures` writes the failure into the run folder, which every rank shares,
and a thread in every other rank of the same launch (`launch_token`) ends its process with one
message naming the failed rank and stage. The launchers' own mechanisms (Lightning's child-process observer, torchrun's agent) stop
the ranks they started too; submitit's local executor waits for every task, and SLURM's `srun`
only ends a step's other tasks when `--kill-on-bad-exit` is set: there this watch is what stops
them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medrep.data.locking import exit_with_parent

# the run folder's sub-folder where a failed rank leaves its note
FAILURES_DIR = ".rank_failures"
# the exit status of a rank ended because another one failed
PEER_FAILED_STATUS = 1
# the variable through which rank 0 passes its launch token to the ranks Lightning's launcher
# starts (they inherit its environment)
TOKEN_VAR = "MEDREP_LAUNCH_TOKEN"
# the exit status of a process stopped by SIGTERM (128 + the signal, as a shell reports it)
TERMINATED_STATUS = 128 + signal.SIGTERM


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
    launcher sets WORLD_SIZE in rank 0 only when pretraining starts; SLURM says SLURM_NTASKS)."""
    env = os.environ
    if env.get("WORLD_SIZE"):
        return int(env["WORLD_SIZE"])
    if env.get("SLURM_PROCID"):
        return int(env.get("SLURM_NTASKS", "1") or 1)
    return 1


def launch_token() -> str:
    """What the ranks of one launch share and no other launch does (a re-run in the same folder,
    a torchrun restart, a requeued SLURM job): the notes of other launches are not this one's."""
    env = os.environ
    if env.get(TOKEN_VAR):
        return env[TOKEN_VAR]
    if env.get("SLURM_JOB_ID") and env.get("SLURM_PROCID"):
        parts = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT")
        return "slurm:" + ":".join(env.get(k, "") for k in parts)
    if env.get("SUBMITIT_LOCAL_JOB_ID"):
        return f"submitit:{env['SUBMITIT_LOCAL_JOB_ID']}"
    if env.get("TORCHELASTIC_RESTART_COUNT") is not None and env.get("LOCAL_RANK"):
        restart = env["TORCHELASTIC_RESTART_COUNT"]
        run_id = env.get("TORCHELASTIC_RUN_ID", "none")
        # without a rendezvous id (one node), the agent that started every worker names it
        agent = run_id if run_id not in ("", "none") else f"agent{os.getppid()}"
        return f"torchrun:{agent}:{restart}"
    # alone, or rank 0 under Lightning's launcher: a fresh token its ranks will inherit
    env[TOKEN_VAR] = uuid.uuid4().hex
    return env[TOKEN_VAR]


class RankFailures:
    """The failure notes of one run's ranks in `<run folder>/.rank_failures/`.

    `report` is called by the rank whose stage raised (`during` does it); inside `with` a daemon
    thread ends this process (status 1) when another rank of the same launch has reported.
    Notes name the exception's type only: its message may hold a file name from a site's export,
    and the traceback is in the failed rank's own output. A stop asked from outside (SIGTERM,
    Ctrl-C) is no failure: every rank gets it and unwinds by itself.
    """

    def __init__(self, run_dir: Path, rank: int, poll_s: float = 1.0) -> None:
        self.folder = Path(run_dir) / FAILURES_DIR
        self.rank = rank
        self.poll_s = poll_s
        self.token = launch_token()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # this rank's note of an earlier launch would read as a failure of this one
        (self.folder / f"rank{rank}.json").unlink(missing_ok=True)

    def report(self, stage: str, exc: BaseException) -> None:
        """Say what failed (with the traceback, before any other rank can end this one), then
        leave this rank's note (atomically) for the others."""
        error = type(exc).__name__
        if isinstance(exc, SystemExit):  # its code may be a message: only a number is kept
            error = f"exit status {exc.code}" if isinstance(exc.code, int) else error
        if self.rank != 0 or world_size() > 1:
            # printed here: a rank that Lightning's launcher started dies with rank 0, which may
            # stop as soon as the note exists, and Hydra's submitit launcher keeps a task's
            # exception in its result and reads task 0's alone
            said = error if isinstance(exc, SystemExit) else f"{error}: {exc}"
            print(
                f"[chain] rank {self.rank} failed in {stage} ({said}); the other ranks stop",
                file=sys.stderr,
            )
            if not isinstance(exc, SystemExit):
                traceback.print_exception(exc)
            sys.stderr.flush()
        note = {"rank": self.rank, "stage": stage, "error": error, "token": self.token}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"rank{self.rank}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(note))
        tmp.replace(path)

    def failed_peer(self) -> dict[str, object] | None:
        """Another rank's note written during this launch, or None."""
        if not self.folder.is_dir():
            return None
        for path in sorted(self.folder.glob("rank*.json")):
            try:
                note = json.loads(path.read_text())
            except (OSError, ValueError):  # removed or being replaced: read it next time
                continue
            if note.get("token") == self.token and note.get("rank") != self.rank:
                return dict(note)
        return None

    @contextmanager
    def during(self, stage: str) -> Iterator[None]:
        """Report a failure of `stage` in this rank (an exception, or an exit with a non-zero
        status other than SIGTERM's), then let it propagate."""
        try:
            yield
        except BaseException as exc:
            self._stop.set()  # failing already: no other rank's note ends it mid-report
            stopped = isinstance(exc, KeyboardInterrupt) or (
                isinstance(exc, SystemExit) and exc.code in (0, None, TERMINATED_STATUS)
            )
            if not stopped:
                self.report(stage, exc)
            raise

    def __enter__(self) -> RankFailures:
        """Watch for other ranks' failures until the block ends: a daemon thread ends this
        process when one fails (it may be blocked in a collective, where no signal handler runs:
        the thread exits the process itself). A process alone (one rank, no launcher) is never
        ended: an in-process caller (a test, a notebook) keeps its interpreter."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="rank-failures", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.rank == 0 and world_size() == 1:
                continue  # alone so far (Lightning's launcher says WORLD_SIZE when it starts)
            note = self.failed_peer()
            if note is None or self._stop.is_set():
                continue
            print(
                f"[chain] rank {self.rank} stops: rank {note['rank']} failed in {note['stage']} "
                f"({note['error']}); its output has the traceback",
                file=sys.stderr,
            )
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(PEER_FAILED_STATUS)

    def clear(self) -> None:
        """Remove every note in this folder (rank 0, once the chain succeeded)."""
        for path in self.folder.glob("rank*.json") if self.folder.is_dir() else ():
            path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def join_run(run_dir: Path | str) -> RankFailures:
    """What every process of a run does first: adopt submitit's local tasks as ranks, follow
    rank 0 when Lightning's launcher started this process; then `with` the returned object
    watches for other ranks' failures."""
    adopt_local_tasks()
    follow_rank_zero()
    return RankFailures(Path(run_dir), process_rank())
