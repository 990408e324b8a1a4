"""The label-efficiency plot and the retrieval gallery write PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medrep.evaluation.plots import label_efficiency_plot, retrieval_gallery
from medrep.evaluation.results import ResultRow, results_frame


def test_label_efficiency_plot_draws_each_task_panel(tmp_path: Path) -> None:
    rows = [
        ResultRow("r", m, task, "macro_auroc", v + 0.01 * s, f, s, v - 0.05, v + 0.05)
        for task in ("linear_probe", "finetune")
        for m, base in (("convirt", 0.8), ("simclr", 0.6))
        for f in (0.01, 0.1, 1.0)
        for s in (0, 1)
        for v in [base + 0.05 * np.log10(f * 100)]
    ]
    frame = results_frame(rows)
    one = label_efficiency_plot(frame[frame["task"] == "linear_probe"], tmp_path / "one.png")
    two = label_efficiency_plot(frame, tmp_path / "two.png")
    assert one is not None and two is not None
    w1, h1 = Image.open(one).size
    w2, h2 = Image.open(two).size
    assert h1 == h2 and w2 > 1.8 * w1  # one panel per task
    assert label_efficiency_plot(frame[frame["task"] == "zero_shot"], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_retrieval_gallery_has_a_row_per_query(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = lambda: rng.random((24, 24))  # noqa: E731
    path = retrieval_gallery(
        [img(), img()],
        ["Edema", "Nodule"],
        [[img(), img(), img()], [img(), img(), img()]],
        [["Edema", "(none)", "Edema"], ["Nodule", "Edema", "(none)"]],
        [[True, False, True], [True, False, False]],
        tmp_path / "g.png",
        title="test",
    )
    width, height = Image.open(path).size
    assert width > height  # 2 rows of 4 panels
