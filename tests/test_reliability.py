"""What ingestion and the chain do when several processes, signals or a shared server meet them:
one writer per ingestion folder, a folder never reused when mixed, SIGTERM never read as
success, decoding workers that die with their parent, no literal secret in any written config,
and private file modes. docs/reliability.md lists the same guarantees."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medrep.data.adapters.generic import GenericAdapter
from medrep.data.ingest import SUMMARY_NAME, IngestConfig, run_ingestion
from medrep.data.locking import LOCK_NAME, IngestLockTimeout, ingest_lock
from tests.helpers import REPO, compose, tiny_chain, write_dicom


def make_export(root: Path, n: int, seed: int) -> GenericAdapter:
    """`n` DICOMs (each its own picture) and their reports, keyed by accession number."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        key = f"S{seed}-{i:03d}"
        pixels = rng.integers(0, 4096, (48, 40)).astype(np.uint16)
        write_dicom(
            root / "export" / f"{i:03d}.dcm",
            pixels,
            accession=key,
            patient_id=f"P{seed}-{i % 7}",
            window=(2048, 4096),
        )
        rows.append({"AccessionNumber": key, "report": "FINDINGS: Lungs are clear."})
    pd.DataFrame(rows).to_csv(root / "reports.csv", index=False)
    return GenericAdapter(str(root / "export"), str(root / "reports.csv"))


def config(out: Path, **kwargs) -> IngestConfig:  # type: ignore[no-untyped-def]
    return IngestConfig(
        out_dir=str(out),
        secret="s",
        source_paths="relative",
        image_size=24,
        progress=False,
        chunk_size=4,
        **kwargs,
    )


# --- one writer per folder --------------------------------------------------------------------


def test_a_second_ingestion_stops_at_once_naming_the_holder(tmp_path: Path) -> None:
    adapter = make_export(tmp_path / "a", 3, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    holder = pytest.raises(IngestLockTimeout, match=f"process {os.getpid()} on ")
    with ingest_lock(out, None), holder:
        run_ingestion(config(out, lock_timeout_s=0), adapter)
    assert not (out / SUMMARY_NAME).exists()
    # released: the same call now runs, and leaves no holder named in the lock file
    summary = run_ingestion(config(out, lock_timeout_s=0), adapter)
    assert summary["cached"] == 3
    assert (out / LOCK_NAME).read_text() == ""


CONCURRENT = """
import sys
from medrep.data.adapters.generic import GenericAdapter
from medrep.data.ingest import IngestConfig, run_ingestion
root, out = sys.argv[1], sys.argv[2]
cfg = IngestConfig(out_dir=out, secret="s", source_paths="relative", image_size=24, progress=False, chunk_size=2, workers=1)
summary = run_ingestion(cfg, GenericAdapter(root + "/export", root + "/reports.csv"))
print(summary["manifest_sha256"])
"""


def test_two_ingestions_of_different_exports_into_one_folder_never_mix_it(tmp_path: Path) -> None:
    roots = [tmp_path / "a", tmp_path / "b"]
    for seed, root in enumerate(roots):
        make_export(root, 12 + 4 * seed, seed=seed)
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(root), str(out)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for root in roots
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr[-2000:]
    # the folder holds one complete ingestion: the later writer's, every file agreeing
    summary = json.loads((out / SUMMARY_NAME).read_text())
    meta = json.loads((out / "cache" / "cache_meta.json").read_text())
    manifest = pd.read_parquet(out / "manifest.parquet")
    from medrep.data.cache import frame_hash

    assert summary["manifest_sha256"] == meta["manifest_sha256"] == frame_hash(manifest)
    assert summary["cached"] == len(manifest) in (12, 16)
    assert summary["manifest_sha256"] in {r[0].split()[-1] for r in results}


def test_a_mixed_folder_is_redone_not_reused(tmp_path: Path) -> None:
    adapter_a = make_export(tmp_path / "a", 4, seed=3)
    adapter_b = make_export(tmp_path / "b", 5, seed=4)
    out_a, out_b = tmp_path / "out_a", tmp_path / "out_b"
    run_ingestion(config(out_a), adapter_a)
    run_ingestion(config(out_b), adapter_b)
    manifest_b = (out_b / "manifest.parquet").read_bytes()
    # b's folder with a's manifest (what a writer interrupted between two renames leaves)
    (out_b / "manifest.parquet").write_bytes((out_a / "manifest.parquet").read_bytes())
    run_ingestion(config(out_b), adapter_b)
    assert (out_b / "manifest.parquet").read_bytes() == manifest_b
    # and an intact folder is reused as it is: no output is written again
    stamp = (out_b / "manifest.parquet").stat().st_mtime_ns
    run_ingestion(config(out_b), adapter_b)
    assert (out_b / "manifest.parquet").stat().st_mtime_ns == stamp


def test_run_folders_of_two_processes_started_in_the_same_second_differ() -> None:
    cfg = compose(return_hydra_config=True)
    from omegaconf import OmegaConf

    import pipelines.common  # noqa: F401 - registers the `pid` resolver

    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]  # type: ignore[index]
    assert str(run_dir).endswith(f"_{os.getpid()}")


# --- files and secrets ------------------------------------------------------------------------


def test_outputs_are_private_whatever_the_umask(tmp_path: Path) -> None:
    adapter = make_export(tmp_path / "a", 3, seed=5)
    previous = os.umask(0o022)
    try:
        run_ingestion(config(tmp_path / "out"), adapter)
        run_ingestion(config(tmp_path / "open", private=False), adapter)
    finally:
        os.umask(previous)
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in out.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path
    # `private: false` leaves the umask's modes (a site that manages access otherwise)
    assert stat.S_IMODE((tmp_path / "open" / "reports.parquet").stat().st_mode) == 0o644


@pytest.mark.slow
def test_a_literal_secret_is_in_no_written_file(tmp_path: Path) -> None:
    secret = "hunter2-literal-secret-9f4c"
    cmd = tiny_chain(tmp_path, "stages=[ingest]", f"data.ingest.secret.secret={secret}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in written)
    assert any(p.name == "resolved_config.yaml" for p in written)
    leaks = [p for p in written if secret.encode() in p.read_bytes()]
    assert leaks == []
    # the keys were made with the secret, not with the redaction mark
    overrides = next(p for p in written if p.name == "overrides.yaml").read_text()
    assert "data.ingest.secret.secret=<redacted>" in overrides


# --- signals and processes --------------------------------------------------------------------


ORPHAN = """
import os, sys, time
from medrep.data.locking import exit_with_parent
parent = os.getpid()
child = os.fork()
if child == 0:
    exit_with_parent(parent)
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_decoding_worker_dies_with_its_killed_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the child has asked for its death signal
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_the_pool_initialiser_asks_for_the_death_signal() -> None:
    """The pool's initialiser is the function the orphan test exercises (not a copy)."""
    import inspect

    from medrep.data import ingest

    assert "exit_with_parent(parent)" in inspect.getsource(ingest._init_worker)
    assert "initargs=(os.getpid(),)" in inspect.getsource(ingest._pool_imap)


@pytest.mark.slow
def test_sigterm_during_pretraining_exits_non_zero_and_stops_the_chain(tmp_path: Path) -> None:
    cmd = tiny_chain(tmp_path, "trainer.max_epochs=50", "callbacks.early_stopping.patience=50")
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[ingest] done"):
            break
    time.sleep(8.0)  # inside the training loop
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 143, output[-3000:]
    assert "[pretrain] stopped by SIGTERM" in output
    assert "[export]" not in output and "[pretrain] done" not in output
    run_dir = next((tmp_path / "outputs" / "runs" / "tiny").iterdir())
    record = json.loads((run_dir / "run_record.json").read_text())
    assert list(record["stages"]) == ["ingest"]


def test_lightnings_code_less_sigterm_exit_is_not_a_success(tmp_path: Path) -> None:
    """Lightning's SIGTERMException is a SystemExit without a code (status 0): the stage
    wrapper turns it into 143 and records nothing."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from pipelines.common import TERMINATED_STATUS, timed_stage

    cfg = compose([f"paths.root_dir={tmp_path}", f"paths.run_dir={tmp_path / 'run'}"])

    def stage(_cfg):  # type: ignore[no-untyped-def]
        raise SIGTERMException()

    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            timed_stage("pretrain", stage, cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == TERMINATED_STATUS
    assert not (tmp_path / "run" / "run_record.json").exists()


def test_ingestion_outputs_written_under_a_lock_keep_the_previous_ingestion_comparable(
    tmp_path: Path,
) -> None:
    """The lock file is the only new file in the folder and ends empty: a second run of the
    same inputs changes no byte of the outputs."""
    adapter = make_export(tmp_path / "a", 4, seed=6)
    cfg = config(tmp_path / "out")
    run_ingestion(cfg, adapter)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()}
    run_ingestion(replace(cfg), adapter)
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert before == after and after[LOCK_NAME] == b""


# --- what the review of the first version found -----------------------------------------------


def test_a_fifo_in_the_export_neither_hangs_discovery_nor_ingestion(tmp_path: Path) -> None:
    adapter = make_export(tmp_path / "a", 3, seed=7)
    export = Path(adapter.image_dir)
    os.mkfifo(export / "pipe")  # no extension: discovery would sniff it
    os.mkfifo(export / "pipe.dcm")  # a DICOM name: listed, then refused unopened
    summary = run_ingestion(config(tmp_path / "out"), adapter)
    assert summary["cached"] == 3
    ledger = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False)
    assert sorted(zip(ledger["source"], ledger["reason"], strict=True)) == [
        ("pipe", "unsupported_file"),
        ("pipe.dcm", "unsupported_file"),
    ]


def test_an_export_root_behind_a_link_is_not_outside_itself(tmp_path: Path) -> None:
    """Clusters mount data through links (/data -> /nfs/...): files under a linked root are
    inside it; a link inside the root is still a link."""
    from medrep.data.adapters.base import ImageRecord
    from medrep.data.containment import admit_records

    real = tmp_path / "nfs" / "export"
    real.mkdir(parents=True)
    (real / "a.png").write_bytes(b"x")
    (real / "b.png").symlink_to(real / "a.png")
    (tmp_path / "data").symlink_to(real)
    root = tmp_path / "data"
    records = [ImageRecord(str(root / n), n) for n in ("a.png", "b.png")]
    admitted, refused = admit_records(records, str(root), follow_symlinks=False)
    assert [r.source for r in admitted] == ["a.png"]
    assert [(r.source, reason) for r, reason, _ in refused] == [("b.png", "symlink")]


def test_shards_of_one_ingestion_run_side_by_side_then_merge(tmp_path: Path) -> None:
    adapter = make_export(tmp_path / "a", 9, seed=8)
    cfg = config(tmp_path / "out", lock_timeout_s=0)
    out = tmp_path / "out"
    out.mkdir()
    # shard 1 runs while another shard holds the lock shared: no waiting, no error
    with ingest_lock(out, None, shared=True):
        part = run_ingestion(cfg, adapter, shard=(1, 3), merge=False)
        # a whole ingestion cannot start meanwhile
        with pytest.raises(IngestLockTimeout):
            run_ingestion(cfg, adapter)
    assert part["parts_written"] >= 1
    run_ingestion(cfg, adapter, shard=(0, 3), merge=False)
    run_ingestion(cfg, adapter, shard=(2, 3), merge=False)
    summary = run_ingestion(cfg, adapter)
    assert summary["cached"] == 9
    whole = run_ingestion(config(tmp_path / "whole"), adapter)
    assert summary["manifest_sha256"] == whole["manifest_sha256"]


def test_report_tables_a_spreadsheet_writes_are_read(tmp_path: Path) -> None:
    import lzma

    from medrep.data.adapters.common import read_table

    path = tmp_path / "reports.csv"
    path.write_text("key,report,,\nA,FINDINGS: Clear.,,\n")
    table = read_table(path, ["key", "report"], "fix")
    assert list(table.columns) == ["key", "report"] and table["report"].tolist() == [
        "FINDINGS: Clear."
    ]
    broken = tmp_path / "reports.csv.xz"
    broken.write_bytes(lzma.compress(b"key,report\nA,x\n")[:-9])
    with pytest.raises(ValueError, match="cannot be read"):
        read_table(broken, ["key"], "fix")


def test_a_short_secret_is_redacted_without_touching_the_rest(tmp_path: Path) -> None:
    from pipelines.common import _without_secret

    tree = {
        "data": {"ingest": {"secret": {"secret": "s", "secret_env": "MEDREP_PSEUDONYM_SECRET"}}},
        "overrides": ["data.ingest.secret.secret=s", "seed=1"],
        "dirname": "data.ingest.secret.secret=s,seed=1",
    }
    assert _without_secret(tree, "s") == {
        "data": {
            "ingest": {"secret": {"secret": "<redacted>", "secret_env": "MEDREP_PSEUDONYM_SECRET"}}
        },
        "overrides": ["data.ingest.secret.secret=<redacted>", "seed=1"],
        "dirname": "data.ingest.secret.secret=<redacted>,seed=1",
    }


def test_a_config_another_rank_is_still_writing_is_redacted_once_written(tmp_path: Path) -> None:
    """Under torchrun every rank's Hydra writes `.hydra/config.yaml` in the shared run folder: a
    rank reading it mid-write used to fail on the half file (a fresh clone's make test hit it).
    The file is read again until it parses; the redacted copy replaces it atomically."""
    import threading

    from pipelines.common import redact_file

    whole = "data:\n  ingest:\n    secret:\n      secret: hunter2\n  name: x\nseed: 0\n"
    path = tmp_path / "config.yaml"
    path.write_text(whole[: whole.index("  name")] + "  name: [x, \n")  # cut mid-write
    threading.Timer(0.3, path.write_text, args=(whole,)).start()
    assert redact_file(path, "hunter2", wait_s=0.05)
    text = path.read_text()
    assert "hunter2" not in text and "<redacted>" in text and "name: x" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temporary left
    assert not redact_file(path, "hunter2")  # nothing left to redact


def test_a_redacted_secret_is_refused_not_used() -> None:
    from medrep.data.privacy import resolve_secret

    with pytest.raises(ValueError, match="reads <redacted>"):
        resolve_secret("<redacted>", "MEDREP_PSEUDONYM_SECRET")
