"""Ingest stage: (synthetic world ->) DICOM export + reports -> manifest, ledger, image cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from medrep.data.ingest import run_ingestion
from medrep.data.reports import ReportParser
from pipelines.common import ingest_config, plain, timed_stage


def generate_synthetic(cfg: DictConfig) -> Path | None:
    """Generate the embedded synthetic world when the data config asks for it (idempotent)."""
    spec = cfg.data.get("synthetic")
    if not spec:
        return None
    from medrep.data.synthetic import WorldSpec, generate_world

    values = plain(spec)
    values["studies_per_patient"] = tuple(values["studies_per_patient"])
    summary = generate_world(
        cfg.data.root, WorldSpec(**values), workers=int(cfg.data.ingest_workers)
    )
    return Path(summary.root)


def run_ingest(cfg: DictConfig) -> dict[str, Any]:
    world = generate_synthetic(cfg)
    summary = run_ingestion(ingest_config(cfg), ReportParser())
    out = {
        k: summary[k]
        for k in ("files_seen", "cached", "rejected", "filtered", "patients", "studies")
    }
    out["ingest_dir"] = str(cfg.paths.ingest_dir)
    if world is not None:
        out["synthetic_world"] = str(world)
    return out


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("ingest", run_ingest, cfg)


if __name__ == "__main__":
    main()
