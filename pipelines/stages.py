"""Which stages can be skipped: a stage whose configuration and inputs have not changed since
its outputs were written is not run again.

A stage's key hashes the config groups it reads and the files it consumes (by content). The
key and the stage's outputs are stored in `.stage.json` inside the stage's folder once it
finishes; a later run with the same key reuses the outputs. Ingestion always runs: it has its
own fingerprint over the dataset's file list, reports and settings, and returns at once when
nothing changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medrep.data.cache import file_hash

MARKER = ".stage.json"
STAGE_DIRS = dict(
    ingest="ingest_dir", pretrain="pretrain_dir", export="embeddings_dir", evaluate="eval_dir"
)
# the config each stage reads (dotted paths)
STAGE_CONFIG: dict[str, tuple[str, ...]] = {
    "pretrain": (
        "model",
        "loss",
        "trainer",
        "callbacks",
        "seed",
        "data.datamodule",
        "export_checkpoint",
    ),
    "export": (
        "method",
        "seed",
        "eval.batch_size",
        "eval.retrieval.queries",
        "eval.zeroshot",
        "eval.raw_pixels_side",
    ),
    # seed and data.augment: fine-tuning's initialisation and transforms
    "evaluate": ("eval", "method", "run_name", "seed", "data.augment"),
}
# The version of what each stage computes and writes, part of its key. The key hashes config
# and inputs, not code: bump a stage's version when a change of its code changes its outputs
# (a new file, other numbers for the same inputs), so that folders written before are not
# reused. evaluate 2: eval/cells.npz, prompts counted, label draws not conditioned on labels
# (2026-12-07). pretrain 2 and evaluate 3: augmentation batched on the device, its parameters
# drawn per item (other draws than the MONAI per-image path; the fine-tuning's too) (2026-12-07).
STAGE_VERSIONS: dict[str, int] = {"pretrain": 2, "export": 1, "evaluate": 3}
# the files each stage consumes, relative to the config's paths (globs allowed)
_MANIFEST, _CACHE = ("ingest_dir", "manifest.parquet"), ("ingest_dir", "cache/cache_meta.json")
_REPORTS = ("ingest_dir", "reports.parquet")
_INGESTED = (_MANIFEST, _REPORTS, _CACHE)
STAGE_INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "pretrain": _INGESTED,
    "export": (("pretrain_dir", "model.pt"), _MANIFEST, _CACHE),
    # the evaluation's dedup-aware Recall@k reads the reports, the gallery and fine-tuning images
    "evaluate": (("embeddings_dir", "*/*.npz"), ("ingest_dir", "labels.parquet"), *_INGESTED),
}


def _plain(node: Any) -> Any:
    # resolved within the whole config, so interpolations to other groups work
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def stage_key(stage: str, cfg: DictConfig) -> str | None:
    """The stage's key, or None when the stage always runs (ingest) or an input is missing."""
    if stage not in STAGE_CONFIG:
        return None
    config = {name: _plain(OmegaConf.select(cfg, name)) for name in STAGE_CONFIG[stage]}
    files: dict[str, str] = {}
    for dir_key, pattern in STAGE_INPUTS[stage]:
        root = Path(cfg.paths[dir_key])
        matches = sorted(root.glob(pattern))
        if not matches:
            return None
        for path in matches:
            files[f"{dir_key}/{path.relative_to(root)}"] = file_hash(path)
    payload = json.dumps(
        {"stage": stage, "version": STAGE_VERSIONS[stage], "config": config, "files": files},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def stage_dir(stage: str, cfg: DictConfig) -> Path:
    return Path(cfg.paths[STAGE_DIRS[stage]])


def reusable_outputs(stage: str, cfg: DictConfig, key: str | None) -> dict[str, Any] | None:
    """The stored outputs of a finished stage with this key, or None when it must run."""
    if key is None:
        return None
    marker = stage_dir(stage, cfg) / MARKER
    if not marker.exists():
        return None
    record = json.loads(marker.read_text())
    return record["outputs"] if record.get("key") == key else None


def mark_finished(stage: str, cfg: DictConfig, outputs: dict[str, Any]) -> None:
    """Store the stage's key (computed now, over the inputs it consumed) and its outputs."""
    key = stage_key(stage, cfg)
    if key is None:
        return
    folder = stage_dir(stage, cfg)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"key": key, "outputs": outputs}, indent=2, default=str))
    tmp.replace(folder / MARKER)
