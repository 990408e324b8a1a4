"""Export stage: encode every split's images and reports with the pretrained model, the same
image encoder at random initialisation, and raw pixels (medrep.evaluation.export says what is
written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.data.augment import BatchImages
from medrep.data.datamodule import load_ingested
from medrep.evaluation.embeddings import encode_texts
from medrep.evaluation.export import (
    ImageExporter,
    export_pretrained,
    export_prompts,
    raw_pixel_features,
)
from medrep.models.module import ContrastivePretrainer
from medrep.models.serialization import encoder_arch
from medrep.pretrained import load_tokenizer
from pipelines.common import plain, timed_stage
from pipelines.training import load_model


def no_weights(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate overrides that keep an image encoder at its random initialisation."""
    return {"weights_path": None} if "weights_path" in cfg.model.module.image_encoder else {}


def image_exporter(cfg: DictConfig, model_cfg: DictConfig, meta: dict[str, Any]) -> ImageExporter:
    """Exports with the pretraining's deterministic transform, into the run's embeddings."""
    manifest, reports, cache = load_ingested(cfg.paths.ingest_dir)
    images = BatchImages(instantiate(model_cfg.data.augment))
    out_root = Path(cfg.paths.embeddings_dir)
    meta = {**meta, "image_size": images.config.size}
    return ImageExporter(
        manifest, reports, cache, images.prepare, out_root, int(cfg.eval.batch_size), meta
    )


def export_images(
    cfg: DictConfig,
    module: ContrastivePretrainer,
    model_cfg: DictConfig,
    exporter: ImageExporter,
    tokenizer: Any,
) -> dict[str, int]:
    """Every image of `exporter`'s rows through the pretrained model (with its reports), the
    same encoder at random initialisation, and raw pixels; image counts per split."""
    image_cfg = model_cfg.model.module.image_encoder
    arch = encoder_arch(plain(image_cfg))
    max_length = int(model_cfg.data.text.max_length)
    # the random-init baseline: the same architecture, fresh weights from the run's seed (never
    # the weights file the pretraining may have started from)
    torch.manual_seed(int(cfg.seed))
    random_encoder = instantiate(image_cfg, **no_weights(model_cfg))
    counts = export_pretrained(exporter, str(cfg.method), module, arch, tokenizer, max_length)
    exporter.encoder("random_init", random_encoder, arch)
    side = int(cfg.eval.raw_pixels_side)
    exporter.images("raw_pixels", raw_pixel_features(side), lambda rows: {})
    return counts


def run_export(cfg: DictConfig) -> dict[str, Any]:
    module, model_cfg = load_model(cfg.paths.pretrain_dir)
    exporter = image_exporter(cfg, model_cfg, {"model_dir": str(cfg.paths.pretrain_dir)})
    tokenizer = load_tokenizer(model_cfg.model.module.text_encoder.model_path)
    max_length, method = int(model_cfg.data.text.max_length), str(cfg.method)
    counts = export_images(cfg, module, model_cfg, exporter, tokenizer)
    export_prompts(
        exporter.out_root / method,
        lambda texts: encode_texts(
            module.embed_texts, tokenizer, texts, max_length, exporter.batch_size
        ),
        plain(cfg.eval.retrieval.queries),
        plain(cfg.eval.zeroshot.negative_prompts),
        {**exporter.meta, "method": method},
    )
    return {
        "embeddings_dir": str(exporter.out_root),
        **{f"{split}_images": n for split, n in counts.items()},
    }


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("export", run_export, cfg)


if __name__ == "__main__":
    main()
