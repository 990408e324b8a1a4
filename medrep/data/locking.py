"""One writer per ingestion folder, private files, and worker processes that die with their
parent: what keeps concurrent or interrupted ingestions from leaving a folder wrong."""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".ingest.lock"
_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


class IngestLockTimeout(RuntimeError):
    """Another ingestion holds the output folder's lock."""


class IngestLock:
    """An advisory lock (`flock`) on an ingestion folder, shared or exclusive.

    A whole ingestion holds it exclusively; shards of one ingestion (`data.shard=i/N`, each
    writing its own parts) hold it shared, so they run side by side while no whole ingestion
    runs, and take it exclusively only to merge. The holder is written into the lock file while
    exclusive, for the message of whoever waits. The kernel releases the lock of a process that
    dies, even by kill -9.
    """

    def __init__(self, out: Path, timeout_s: float | None) -> None:
        self.path = out / LOCK_NAME
        self.timeout_s = timeout_s
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.mode = 0

    def acquire(self, exclusive: bool) -> None:
        """Take the lock (waiting, or failing after `timeout_s`); a held lock changes mode."""
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if self.mode == mode:
            return
        if self.mode:
            self.release()
        start, announced = time.monotonic(), False
        while True:
            try:
                fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                waited = time.monotonic() - start
                if self.timeout_s is not None and waited >= self.timeout_s:
                    raise IngestLockTimeout(
                        f"{self.path.parent} is being written by another ingestion ({holder}); "
                        f"waited {waited:.0f} s (data.ingest.lock_timeout_s={self.timeout_s}). "
                        "Run again when it has finished, or give this run another "
                        "paths.ingest_dir."
                    ) from None
                if not announced:
                    log.info("waiting for another ingestion into %s (%s)", self.path.parent, holder)
                    announced = True
                time.sleep(0.5)
        self.mode = mode
        if exclusive:
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(owner).encode(), 0)

    @property
    def exclusive(self) -> bool:
        return self.mode == fcntl.LOCK_EX

    def release(self) -> None:
        if self.mode == fcntl.LOCK_EX:
            os.ftruncate(self.fd, 0)  # no holder named any more
        if self.mode:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.mode = 0

    def holder(self) -> str:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            owner = {}
        if not owner:
            return "holder unknown (shards of an ingestion hold the lock shared)"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
        return f"process {owner.get('pid')} on {owner.get('host')}, started {started}"

    def close(self) -> None:
        self.release()
        os.close(self.fd)


@contextmanager
def ingest_lock(
    out: Path, timeout_s: float | None, *, shared: bool = False
) -> Iterator[IngestLock]:
    """Hold `out`'s ingestion lock (exclusive unless `shared`) for the block."""
    lock = IngestLock(out, timeout_s)
    try:
        lock.acquire(exclusive=not shared)
        yield lock
    finally:
        lock.close()


@contextmanager
def private_files(private: bool) -> Iterator[None]:
    """Files and folders created meanwhile are the owner's only (umask 077)."""
    if not private:
        yield
        return
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def exit_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux; elsewhere nothing).

    Called in a worker pool's initialiser, with the pid of the process that made the pool: a
    parent killed by -9, the OOM killer or a scheduler would otherwise leave its workers
    running, re-parented, holding their memory. Under `fork`, a worker whose parent died before
    the request took effect exits at once; under `forkserver` or `spawn` the request follows
    the process that started the worker.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
    if multiprocessing.get_start_method(allow_none=True) in (None, "fork") and (
        os.getppid() != parent
    ):
        os._exit(1)
