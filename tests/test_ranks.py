"""pipelines/ranks.py without launchers: the failure notes one rank leaves for the others, and
the watch that ends a rank blocked while another has failed (tests/test_ddp.py runs the same
under Lightning's launcher, torchrun and submitit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.ranks import (
    FAILURES_DIR,
    PEER_FAILED_STATUS,
    TERMINATED_STATUS,
    TOKEN_VAR,
    RankFailures,
    launch_token,
)
from tests.helpers import REPO, compose_config


def _note(folder: Path, rank: int) -> dict[str, Any]:
    return json.loads((folder / FAILURES_DIR / f"rank{rank}.json").read_text())


def test_a_peer_note_of_this_launch_is_seen_and_an_own_or_earlier_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VAR, "launch-a")
    zero, one = RankFailures(tmp_path, 0), RankFailures(tmp_path, 1)
    assert zero.failed_peer() is None  # no folder yet
    with pytest.raises(ValueError), zero.during("export"):
        raise ValueError("boom")
    assert zero.failed_peer() is None  # its own note
    note = one.failed_peer()
    assert note is not None and (note["rank"], note["stage"], note["error"]) == (
        0,
        "export",
        "ValueError",
    )
    # a re-run in the same folder, however soon: the earlier launch's note is not its failure,
    # and its own rank's old note goes when it joins
    monkeypatch.setenv(TOKEN_VAR, "launch-b")
    assert RankFailures(tmp_path, 1).failed_peer() is None
    RankFailures(tmp_path, 0)
    assert not (tmp_path / FAILURES_DIR / "rank0.json").exists()
    RankFailures(tmp_path, 1).report("ingest", RuntimeError("x"))
    zero.clear()
    assert not (tmp_path / FAILURES_DIR).exists()


def test_the_launch_token_is_the_launchers_and_shared_by_its_ranks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (TOKEN_VAR, "SLURM_JOB_ID", "SLURM_PROCID", "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    first = launch_token()  # alone: a fresh one, left in the environment for Lightning's ranks
    assert os.environ[TOKEN_VAR] == first and launch_token() == first
    monkeypatch.delenv(TOKEN_VAR)
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    assert launch_token() == "submitit:4242"
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert launch_token().startswith("slurm:7:") and launch_token().endswith(":2")


def test_notes_name_the_type_only_and_a_stop_from_outside_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note is in the run folder: an exception's message (or a SystemExit's text) may name
    a site's file, so only its type is written. Exit 0, SIGTERM's 143 and Ctrl-C are no
    failures: every rank receives those and unwinds by itself."""
    monkeypatch.setenv(TOKEN_VAR, "t")
    one = RankFailures(tmp_path, 1)
    for stop in (SystemExit(0), SystemExit(TERMINATED_STATUS), KeyboardInterrupt()):
        with pytest.raises(type(stop)), one.during("ingest"):
            raise stop
    assert not (tmp_path / FAILURES_DIR).exists()
    with pytest.raises(FileNotFoundError), one.during("ingest"):
        raise FileNotFoundError("/export/Doe^John/1.dcm")
    assert "Doe" not in json.dumps(_note(tmp_path, 1))
    assert _note(tmp_path, 1)["error"] == "FileNotFoundError"
    with pytest.raises(SystemExit), one.during("ingest"):
        raise SystemExit("cannot read /export/Doe^John/1.dcm")
    assert _note(tmp_path, 1)["error"] == "SystemExit"
    with pytest.raises(SystemExit), one.during("pretrain"):
        raise SystemExit(2)
    assert _note(tmp_path, 1)["error"] == "exit status 2"


def test_the_watch_ends_a_blocked_rank_when_another_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank stuck where no signal handler runs (here: sleeping under the watch) ends with
    status 1 and one line naming the failed rank, within a few polls of the note."""
    monkeypatch.setenv(TOKEN_VAR, "shared-by-both")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = (
        "import sys, time\n"
        "from pipelines.ranks import RankFailures\n"
        f"with RankFailures({str(tmp_path)!r}, 0, poll_s=0.1):\n"
        "    print('watching', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"watching\n"
        with pytest.raises(RuntimeError), RankFailures(tmp_path, 1).during("pretrain"):
            raise RuntimeError("planted")
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == PEER_FAILED_STATUS
    assert b"[chain] rank 0 stops: rank 1 failed in pretrain (RuntimeError)" in err


def test_a_process_alone_is_never_ended_and_the_watch_stops_with_its_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process callers (tests, a notebook) keep their interpreter and no polling thread."""
    import threading
    import time

    monkeypatch.setenv(TOKEN_VAR, "t")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    RankFailures(tmp_path, 1).report("pretrain", RuntimeError("x"))
    with RankFailures(tmp_path, 0, poll_s=0.02):
        assert any(t.name == "rank-failures" for t in threading.enumerate())
        time.sleep(0.2)  # polls that see a peer's note, but this process is alone
    assert not any(t.name == "rank-failures" for t in threading.enumerate())


def test_the_chain_notes_a_failed_stage_and_clears_the_notes_when_it_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_chain`'s wiring: the failing stage is named in the note; a chain that succeeds
    leaves none behind."""
    from pipelines.run import run_chain

    monkeypatch.setenv(TOKEN_VAR, "t")
    cfg = compose_config(tmp_path, ["stages=[ingest,pretrain]"])

    def fail(cfg: Any) -> dict[str, Any]:
        raise OSError("disk full")

    with pytest.raises(OSError):
        run_chain(cfg, {"ingest": lambda cfg: {}, "pretrain": fail})
    run_dir = Path(cfg.paths.run_dir)
    assert _note(run_dir, 0)["stage"] == "pretrain"
    run_chain(cfg, {"ingest": lambda cfg: {}, "pretrain": lambda cfg: {}})
    assert not (run_dir / FAILURES_DIR).exists()
