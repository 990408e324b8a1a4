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

from medrep.data.ingest import parse_shard, run_ingestion, summary_table
from pipelines.common import plain, timed_stage


def generate_synthetic(cfg: DictConfig) -> Path | None:
    """Generate the embedded synthetic world when the data config asks for it (idempotent)."""
    spec = cfg.data.get("synthetic")
    if not spec:
        return None
    from medrep.data.synthetic import WorldSpec, generate_world

    values = plain(spec)
    values["studies_per_patient"] = tuple(values["studies_per_patient"])
    workers = cfg.data.ingest.workers or os.cpu_count() or 1
    summary = generate_world(cfg.data.root, WorldSpec(**values), workers=int(workers))
    return Path(summary.root)


def run_ingest(cfg: DictConfig) -> dict[str, Any]:
    world = generate_synthetic(cfg)
    adapter = instantiate(cfg.data.adapter)
    summary = run_ingestion(
        instantiate(cfg.data.ingest),
        adapter,
        instantiate(cfg.reports.parser),
        scrubber=instantiate(cfg.reports.scrubber),
        shard=parse_shard(cfg.data.shard),
        merge=bool(cfg.data.merge),
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


# the entry point every stage file ends with (lightning-hydra-template's src/train.py)
@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("ingest", run_ingest, cfg)


if __name__ == "__main__":
    main()
