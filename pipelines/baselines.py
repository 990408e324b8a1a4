"""The baselines grid in one command: the pretrained method against image-only baselines.

python -m pipelines.baselines                    # ingest -> pretrain -> export -> baselines -> evaluate
python -m pipelines.baselines stages=[baselines,evaluate] hydra.run.dir=<an existing run folder>

`baselines` trains every `grid.train` model (conf/baseline/) with the pretraining's trainer,
callbacks, loggers and seed into `baselines/<name>/` (a finished one is only re-exported: delete
its folder to retrain) and exports its features to `embeddings/<name>/`, as it does for the local
weights files of `grid.weights`. The evaluate stage puts every method in one table.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medrep.models.serialization import MODEL_FILE, encoder_arch, load_weights
from pipelines import run
from pipelines.common import plain
from pipelines.export import image_exporter, no_weights
from pipelines.training import fit, save_model, select_export


def build_baseline(cfg: DictConfig, spec: DictConfig) -> L.LightningModule:
    """A grid model, freshly initialised (a labelled one gets one output per eval label)."""
    extra: dict[str, Any] = {}
    if str(spec.kind) == "labelled":
        # supervised from scratch: the labels' own head, and no pretrained weights file
        extra = {"n_labels": len(cfg.eval.label_names)}
        if no_weights(cfg):
            extra["image_encoder"] = {**plain(spec.module.image_encoder), "weights_path": None}
    return instantiate(spec.module, **extra, _convert_="partial")


def train_baseline(
    cfg: DictConfig, spec: DictConfig, out_dir: Path
) -> tuple[L.LightningModule, int]:
    """Train one grid model (resuming from its last checkpoint), or load the finished one."""
    L.seed_everything(int(cfg.seed), workers=True)
    module = build_baseline(cfg, spec)
    if (out_dir / MODEL_FILE).exists():
        return module, int(load_weights(module, out_dir).get("steps", -1))
    datamodule = instantiate(spec.datamodule)
    trainer = fit(cfg, module, datamodule, out_dir)
    exported = select_export(cfg, trainer, module)
    save_model(module, spec, out_dir, steps=int(trainer.global_step), exported=exported)
    return module, int(trainer.global_step)


def run_baselines(cfg: DictConfig) -> dict[str, Any]:
    grid = cfg.get("grid") or {}
    exporter = image_exporter(cfg, cfg, {})
    arch = encoder_arch(plain(cfg.model.module.image_encoder))
    outputs: dict[str, Any] = {}
    for name in [str(n) for n in grid.get("train") or []]:
        if name not in grid.models:
            raise KeyError(f"grid.train names {name!r}, but grid.models has {list(grid.models)}")
        out_dir = Path(cfg.paths.run_dir) / "baselines" / name
        module, steps = train_baseline(cfg, grid.models[name], out_dir)
        source = replace(exporter, meta={**exporter.meta, "source": str(out_dir / MODEL_FILE)})
        outputs[name] = {**source.encoder(name, module.image_encoder, arch), "steps": steps}
    for name, spec in (grid.get("weights") or {}).items():
        # a path (this encoder's own format), or image-encoder arguments that name the file
        # and whatever differs from model.module.image_encoder (e.g. a torchvision ResNet-50)
        overrides = {"weights_path": str(spec)} if isinstance(spec, str) else dict(plain(spec))
        node = OmegaConf.merge(cfg.model.module.image_encoder, overrides)
        source = replace(exporter, meta={**exporter.meta, "source": str(overrides["weights_path"])})
        outputs[str(name)] = source.encoder(str(name), instantiate(node), encoder_arch(plain(node)))
    return {"embeddings_dir": str(exporter.out_root), **outputs}


@hydra.main(config_path="../conf", config_name="baselines", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run.run_chain(cfg, {**run.STAGES, "baselines": run_baselines})


if __name__ == "__main__":
    main()
