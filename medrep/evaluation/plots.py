"""Figures as PNG files (matplotlib's Agg backend: no display needed).

- `label_efficiency_plot`: macro AUROC against label fraction, one line per method.
- `retrieval_gallery`: rows of query image + top-k retrieved images, with their labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def label_efficiency_plot(
    results: pd.DataFrame,
    path: str | Path,
    tasks: Sequence[str] = ("linear_probe", "finetune"),
    metric: str = "macro_auroc",
    title: str = "",
) -> Path | None:
    """AUROC against the share of training labels, one line per method, one panel per task.

    Points are the mean over seeds, error bars the seed standard deviation, the band the mean
    per-seed 95% bootstrap interval. Returns None (and writes nothing) when `results` holds no
    row of these tasks.
    """
    rows = results[(results["metric"] == metric) & results["task"].isin(tasks)]
    present = [t for t in tasks if t in set(rows["task"])]
    if not present:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(5.5 * len(present), 4.2), squeeze=False)
    for ax, task in zip(axes[0], present, strict=True):
        sub = rows[rows["task"] == task]
        stats = sub.groupby(["method", "label_fraction"], sort=True).agg(
            mean=("value", "mean"),
            std=("value", "std"),
            low=("ci_low", "mean"),
            high=("ci_high", "mean"),
        )
        for method in dict.fromkeys(sub["method"]):
            s = stats.loc[method].sort_index()
            x = s.index.to_numpy(dtype=float) * 100
            ax.errorbar(
                x, s["mean"], yerr=s["std"].fillna(0.0), marker="o", capsize=3, label=method
            )
            if s["low"].notna().all():
                ax.fill_between(x, s["low"], s["high"], alpha=0.12)
        ax.set_xscale("log")
        ticks = sorted(set(sub["label_fraction"].astype(float) * 100))
        ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
        ax.set_xlabel("training labels used (by patient)")
        ax.set_ylabel(f"test {metric.replace('_', ' ')}")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{task.replace('_', ' ')}" + (f": {title}" if title else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def retrieval_gallery(
    query_images: Sequence[np.ndarray],
    query_titles: Sequence[str],
    retrieved_images: Sequence[Sequence[np.ndarray]],
    retrieved_titles: Sequence[Sequence[str]],
    retrieved_correct: Sequence[Sequence[bool]],
    path: str | Path,
    title: str = "",
) -> Path:
    """One row per query: the query image, then its top-k images framed green (correct) or red.

    Args:
        query_images / retrieved_images: [H, W] images in [0, 1] (display space).
        query_titles / retrieved_titles: captions (e.g. the query's category, the labels).
        retrieved_correct: whether each retrieved image is correct for its query.
    """
    plt = _pyplot()
    n_rows = len(query_images)
    k = max((len(r) for r in retrieved_images), default=0)
    fig, axes = plt.subplots(n_rows, k + 1, figsize=(1.9 * (k + 1), 2.1 * n_rows), squeeze=False)
    for i in range(n_rows):
        panels = [(query_images[i], f"QUERY\n{query_titles[i]}", "black")]
        panels += [
            (img, txt, "green" if ok else "red")
            for img, txt, ok in zip(
                retrieved_images[i], retrieved_titles[i], retrieved_correct[i], strict=True
            )
        ]
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.axis("off")
                continue
            image, caption, colour = panels[j]
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_title(caption, fontsize=6.5, color=colour if j else "black")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3 if j else 1.5)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.97 if title else 1.0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
