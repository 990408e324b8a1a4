"""pipelines/ranks.py without launchers: the failure notes one rank leaves for the others, and
the watch that ends a rank blocked while another has failed (tests/test_ddp.py runs the same
under Lightning's launcher, torchrun and submitit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.ranks import FAILURES_DIR, PEER_FAILED_STATUS, STALE_S, RankFailures
from tests.helpers import REPO


def test_a_peer_note_is_seen_and_an_own_or_stale_note_is_not(tmp_path: Path) -> None:
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
    # a note of an earlier run in the same folder (a resumed run) is not this run's
    old = time.time() - 10 * STALE_S
    os.utime(tmp_path / FAILURES_DIR / "rank0.json", (old, old))
    assert RankFailures(tmp_path, 1).failed_peer() is None
    zero.clear()
    assert not (tmp_path / FAILURES_DIR).exists()


def test_notes_name_the_type_only_and_a_clean_exit_leaves_none(tmp_path: Path) -> None:
    """The note is in the run folder: an exception's message may name a site's file, so only
    its type is written; an exit with status 0 is no failure."""
    one = RankFailures(tmp_path, 1)
    with pytest.raises(SystemExit), one.during("ingest"):
        raise SystemExit(0)
    assert not (tmp_path / FAILURES_DIR).exists()
    with pytest.raises(FileNotFoundError), one.during("ingest"):
        raise FileNotFoundError("/export/Doe^John/1.dcm")
    text = (tmp_path / FAILURES_DIR / "rank1.json").read_text()
    assert "Doe" not in text and json.loads(text)["error"] == "FileNotFoundError"
    with pytest.raises(SystemExit), one.during("pretrain"):
        raise SystemExit(143)
    assert json.loads((tmp_path / FAILURES_DIR / "rank1.json").read_text())["error"] == (
        "exit status 143"
    )


def test_the_watch_ends_a_blocked_rank_when_another_fails(tmp_path: Path) -> None:
    """A rank stuck where no signal handler runs (here: sleeping under the watch) ends with
    status 1 and one line naming the failed rank, within a few polls of the note."""
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
    assert proc.stdout is not None and proc.stdout.readline() == b"watching\n"
    with pytest.raises(RuntimeError), RankFailures(tmp_path, 1).during("pretrain"):
        raise RuntimeError("planted")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == PEER_FAILED_STATUS
    assert b"[chain] rank 0 stops: rank 1 failed in pretrain (RuntimeError)" in err


def test_the_watch_stops_with_its_block(tmp_path: Path) -> None:
    """In-process callers (tests, a notebook) keep no thread polling after the chain ends."""
    import threading

    with RankFailures(tmp_path, 0, poll_s=0.05):
        assert any(t.name == "rank-failures" for t in threading.enumerate())
    time.sleep(0.3)
    assert not any(t.name == "rank-failures" for t in threading.enumerate())
