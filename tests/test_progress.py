"""Progress lines for logs that are files: the tiny chain's pretraining, its output a pipe."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from medrep.models.progress import LogProgress, _batch_size, _duration
from tests.helpers import REPO, tiny_chain


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="auto, always or never"):
        LogProgress(when="sometimes")
    with pytest.raises(ValueError, match="every_n_steps > 0 or every_s > 0"):
        LogProgress(every_n_steps=0, every_s=0)


def test_batch_sizes_and_durations() -> None:
    import torch

    assert _batch_size({"tokens": torch.zeros(7, 3), "image": torch.zeros(7, 1, 8, 8)}) == 7
    assert _batch_size((torch.zeros(5, 2), torch.zeros(5))) == 5
    assert _batch_size({"names": ["a"]}) == 0
    assert (_duration(75), _duration(3 * 3600 + 120)) == ("1m15s", "3h02m")


@pytest.mark.slow
def test_a_piped_pretraining_prints_progress_lines(tmp_path: Path) -> None:
    cmd = tiny_chain(tmp_path, "stages=[ingest,pretrain]", "callbacks.log_progress.every_n_steps=5")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[train] step")]
    pattern = r"\[train\] step (\d+)/(\d+), epoch \d+, loss [\d.]+, [\d.]+ samples/s(, ETA \S+)?"
    assert lines and all(re.fullmatch(pattern, line) for line in lines), lines[:3]
    steps = [int(re.match(pattern, line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(b - a >= 5 for a, b in zip(steps, steps[1:], strict=False))
    # no progress bar redraws (carriage returns) in the captured output
    assert "\r" not in proc.stderr and "\r" not in proc.stdout
