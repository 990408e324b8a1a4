"""The baselines grid in one command: the pretrained method against image-only baselines.

python -m pipelines.baselines                    # ingest -> pretrain -> export -> baselines -> evaluate
python -m pipelines.baselines stages=[baselines,evaluate] hydra.run.dir=<an existing run folder>

The `baselines` stage trains every `grid.train` model (conf/baseline/) with the pretraining's
trainer, callbacks and seed into `baselines/<name>/`, and exports its image features to
`embeddings/<name>/` as the export stage does for random init; `grid.weights` entries (local
encoder weights files) are exported without training. The evaluate stage then puts every method
in one table (eval.baselines lists the trained ones; weights entries are added automatically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medrep.data.datamodule import load_ingested
from medrep.data.ingest import LABELS_NAME
from medrep.data.transforms import AugmentConfig, eval_transform
from medrep.evaluation.probe import binarize_labels
from medrep.models.image_only import ImageOnlyDataModule
from pipelines.common import build_loggers, plain
from pipelines.evaluate import run_evaluate
from pipelines.export import encoder_arch, export_images, no_weights, run_export, save_encoder
from pipelines.ingest import run_ingest
from pipelines.pretrain import run_pretrain
from pipelines.run import run_stages

MODEL_FILE = "model.pt"


def _augment(node: Any) -> AugmentConfig:
    values = plain(node)
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def study_labels(cfg: DictConfig) -> pd.DataFrame:
    """Training targets: study_key-indexed {1, 0, NaN} columns of eval.label_names."""
    labels = pd.read_parquet(Path(cfg.paths.ingest_dir) / LABELS_NAME)
    names = [str(n) for n in cfg.eval.label_names]
    values = binarize_labels(labels[names].to_numpy(dtype=float), str(cfg.eval.probe.uncertain))
    return pd.DataFrame(values, index=labels["study_key"].to_numpy(), columns=names)


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
    cfg: DictConfig, name: str, spec: DictConfig, out_dir: Path
) -> tuple[L.LightningModule, int]:
    """Train one grid model (resuming from its last checkpoint) and save its weights."""
    L.seed_everything(int(cfg.seed), workers=True)
    kind = str(spec.kind)
    module = build_baseline(cfg, spec)
    datamodule = ImageOnlyDataModule(
        ingest_dir=str(cfg.paths.ingest_dir),
        kind=kind,
        augment=_augment(spec.augment),
        batch_size=int(spec.batch_size),
        num_workers=int(cfg.data.num_workers),
        labels=study_labels(cfg) if kind == "labelled" else None,
        seed=int(cfg.seed),
    )
    callbacks = []
    for node in cfg.callbacks.values():
        # the pretraining's callbacks, with checkpoints in this baseline's folder
        overrides = {"dirpath": str(out_dir / "checkpoints")} if "dirpath" in node else {}
        callbacks.append(instantiate(node, **overrides))
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        default_root_dir=str(out_dir),
        callbacks=callbacks,
        logger=build_loggers(cfg, out_dir),
    )
    last = out_dir / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)
    steps = int(trainer.global_step)
    torch.save(
        {"format": 1, "steps": steps, "state_dict": module.state_dict()}, out_dir / MODEL_FILE
    )
    OmegaConf.save(spec, out_dir / "config.yaml", resolve=True)
    print(
        f"[baselines] {name}: {trainer.current_epoch} epochs, {trainer.global_step} steps",
        flush=True,
    )
    return module, steps


def run_baselines(cfg: DictConfig) -> dict[str, Any]:
    grid = cfg.get("grid") or {}
    manifest, reports, cache = load_ingested(cfg.paths.ingest_dir)
    emb_root = Path(cfg.paths.embeddings_dir)
    augment = cfg.model.augment
    transform = eval_transform(int(augment.size), float(augment.mean), float(augment.std))
    batch_size = int(cfg.eval.batch_size)
    arch = encoder_arch(cfg.model.module.image_encoder)
    outputs: dict[str, Any] = {}

    def export(
        name: str, encoder: torch.nn.Module, source: str, arch: dict[str, Any] = arch
    ) -> None:
        encoder.eval()

        def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"image_features": encoder(x)}

        meta = {"source": source, "image_size": int(augment.size)}
        counts = export_images(
            name, features, manifest, reports, cache, transform, emb_root, batch_size, meta
        )
        save_encoder(encoder, arch, emb_root / name)  # type: ignore[arg-type]
        outputs[name] = dict(counts)

    for name in [str(n) for n in grid.get("train") or []]:
        if name not in grid.models:
            raise KeyError(f"grid.train names {name!r}, but grid.models has {list(grid.models)}")
        out_dir = Path(cfg.paths.run_dir) / "baselines" / name
        if (out_dir / MODEL_FILE).exists():
            # a finished baseline is re-exported, not retrained (delete its folder to retrain)
            module = build_baseline(cfg, grid.models[name])
            state = torch.load(out_dir / MODEL_FILE, map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
            steps = int(state.get("steps", -1))
        else:
            module, steps = train_baseline(cfg, name, grid.models[name], out_dir)
        export(name, module.image_encoder, str(out_dir / MODEL_FILE))
        outputs[name]["steps"] = steps
    for name, spec in (grid.get("weights") or {}).items():
        # a path (this encoder's own format), or image-encoder arguments that name the file
        # and whatever differs from model.module.image_encoder (e.g. a torchvision ResNet-50)
        overrides = {"weights_path": str(spec)} if isinstance(spec, str) else dict(plain(spec))
        node = OmegaConf.merge(cfg.model.module.image_encoder, overrides)
        export(str(name), instantiate(node), str(overrides["weights_path"]), encoder_arch(node))
    return {"embeddings_dir": str(emb_root), **outputs}


STAGES: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    "ingest": run_ingest,
    "pretrain": run_pretrain,
    "export": run_export,
    "baselines": run_baselines,
    "evaluate": run_evaluate,
}


def run_grid(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    outputs = run_stages(cfg, STAGES)
    eval_dir = Path(cfg.paths.eval_dir)
    print("\nArtifacts:")
    for label, path in (
        ("run folder", Path(cfg.paths.run_dir)),
        ("baselines", Path(cfg.paths.run_dir) / "baselines"),
        ("embeddings", Path(cfg.paths.embeddings_dir)),
        ("results table", eval_dir / "results.md"),
        ("results rows", eval_dir / "results.csv"),
        ("claims", eval_dir / "claims.csv"),
        ("label plot", eval_dir / "label_efficiency.png"),
        ("gallery", eval_dir / "retrieval_gallery.png"),
    ):
        if path.exists():
            print(f"  {label:15s} {path}")
    return outputs


@hydra.main(config_path="../conf", config_name="baselines", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_grid(cfg)


if __name__ == "__main__":
    main()
