"""Ingest stage: (synthetic world ->) dataset adapter -> manifest, ledger, image cache.

python -m pipelines.ingest                          # the configured dataset, all cores
python -m pipelines.ingest data.shard=3/8 data.merge=false   # one of 8 shards
python -m pipelines.ingest                          # then: merge (skips finished parts)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.data.dicom import DecodeOptions
from medrep.data.ingest import IngestConfig, run_ingestion, summary_table
from medrep.data.privacy import resolve_secret
from pipelines.common import plain, timed_stage


def ingest_config(cfg: DictConfig) -> IngestConfig:
    """The library's ingestion settings from the `data` config group."""
    d = cfg.data
    decode = plain(d.decode)
    decode["percentile_window"] = tuple(decode["percentile_window"])
    workers = d.get("ingest_workers") or os.cpu_count() or 1
    return IngestConfig(
        out_dir=str(cfg.paths.ingest_dir),
        secret=resolve_secret(d.privacy.get("secret"), d.privacy.get("secret_env")),
        join_element=str(d.join_element),
        views=tuple(d.views or ()),
        modalities=tuple(d.modalities or ()),
        keep_unknown_view=bool(d.keep_unknown_view),
        one_image_per_study=bool(d.one_image_per_study),
        sections=tuple(cfg.reports.sections),
        image_size=int(d.image_size),
        cache_dtype=str(d.cache_dtype),
        split_fractions=dict(plain(d.split_fractions)),
        split_salt=str(d.split_salt),
        decode=DecodeOptions(**decode),
        workers=int(workers),
        chunk_size=int(d.chunk_size),
        max_report_chars=int(d.max_report_chars),
        min_side=int(d.min_side),
    )


def parse_shard(text: str | None) -> tuple[int, int]:
    """`"i/N"` -> (i, N); None -> the whole dataset."""
    if not text:
        return 0, 1
    try:
        index, total = (int(x) for x in str(text).split("/"))
    except ValueError as exc:
        raise ValueError(f"data.shard must look like 3/8, got {text!r}") from exc
    return index, total


def generate_synthetic(cfg: DictConfig) -> Path | None:
    """Generate the embedded synthetic world when the data config asks for it (idempotent)."""
    spec = cfg.data.get("synthetic")
    if not spec:
        return None
    from medrep.data.synthetic import WorldSpec, generate_world

    values = plain(spec)
    values["studies_per_patient"] = tuple(values["studies_per_patient"])
    workers = cfg.data.get("ingest_workers") or os.cpu_count() or 1
    summary = generate_world(cfg.data.root, WorldSpec(**values), workers=int(workers))
    return Path(summary.root)


def run_ingest(cfg: DictConfig) -> dict[str, Any]:
    world = generate_synthetic(cfg)
    adapter = instantiate(cfg.data.adapter)
    summary = run_ingestion(
        ingest_config(cfg),
        adapter,
        instantiate(cfg.reports.parser),
        scrubber=instantiate(cfg.reports.scrubber),
        shard=parse_shard(cfg.data.get("shard")),
        merge=bool(cfg.data.get("merge", True)),
    )
    if "files_seen" not in summary:  # a shard that did not merge
        return summary
    print(summary_table(summary), flush=True)
    keys = ("files_seen", "cached", "rejected", "filtered", "patients", "studies")
    out: dict[str, Any] = {k: summary[k] for k in keys}
    out["ingest_dir"] = str(cfg.paths.ingest_dir)
    if world is not None:
        out["synthetic_world"] = str(world)
    return out


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("ingest", run_ingest, cfg)


if __name__ == "__main__":
    main()
