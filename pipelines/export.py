"""Export stage: encode every split's images and reports with the pretrained model and baselines.

Writes, under `embeddings/`:
  <method>/{train,val,test}.npz   keys, image features (and, for the pretrained model, projected
                                  image and report embeddings)
  <method>/encoder.pt, encoder.json  the image encoder's weights and architecture (fine-tuning
                                  and the local-weights baseline rebuild encoders from them)
  <method>/queries.npz            category text queries (retrieval), pretrained model only
  <method>/prompts.npz            positive/negative prompts (zero-shot), pretrained model only
  random_init/...                 the same architecture, freshly initialised
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.data.cache import ImageCache
from medrep.data.datamodule import load_ingested, paired_rows
from medrep.data.transforms import eval_transform
from medrep.evaluation.embeddings import encode_images, encode_texts, save_embeddings
from medrep.models.encoders import ImageEncoder
from medrep.pretrained import load_tokenizer
from pipelines.common import load_model, plain, timed_stage

SPLITS = ("train", "val", "test")
ENCODER_FILE = "encoder.pt"
ENCODER_ARCH_FILE = "encoder.json"
ImageFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def no_weights(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate overrides that keep an image encoder at its random initialisation."""
    return {"weights_path": None} if "weights_path" in cfg.model.module.image_encoder else {}


def encoder_arch(image_encoder_cfg: Any) -> dict[str, Any]:
    """An image encoder config node as constructor arguments without its weights file.

    The `_target_` stays (`load_encoder` instantiates it); `weights_format` goes, since
    `save_encoder` always writes the encoder's own format.
    """
    values = dict(plain(image_encoder_cfg))
    values.pop("weights_path", None)
    values.pop("weights_format", None)
    return values


def save_encoder(encoder: ImageEncoder, arch: dict[str, Any], directory: Path) -> Path:
    """The encoder's network weights in `ImageEncoder(weights_path=...)` format + architecture."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(encoder.net.state_dict(), directory / ENCODER_FILE)
    (directory / ENCODER_ARCH_FILE).write_text(json.dumps(arch, indent=2, sort_keys=True))
    return directory / ENCODER_FILE


def load_encoder(directory: Path) -> ImageEncoder:
    """Rebuild an encoder saved by `save_encoder`."""
    arch = json.loads((directory / ENCODER_ARCH_FILE).read_text())
    return instantiate(arch, weights_path=str(directory / ENCODER_FILE))


def split_keys(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: rows[c].to_numpy(dtype=str) for c in ("image_key", "study_key", "patient_key")}


def export_images(
    method: str,
    fn: ImageFn,
    manifest: pd.DataFrame,
    reports: pd.DataFrame,
    cache: ImageCache,
    transform: Callable[[torch.Tensor], torch.Tensor],
    out_root: Path,
    batch_size: int,
    meta: dict[str, Any],
) -> dict[str, int]:
    """`<method>/{split}.npz` with the image outputs of `fn` for every split; image counts."""
    counts = {}
    for split in SPLITS:
        rows = paired_rows(manifest, reports, split)
        images = encode_images(fn, cache, rows["cache_index"].tolist(), transform, batch_size)
        save_embeddings(
            out_root / method / f"{split}.npz",
            {**split_keys(rows), **images},
            {**meta, "method": method, "split": split},
        )
        counts[split] = len(rows)
    return counts


def run_export(cfg: DictConfig) -> dict[str, Any]:
    module, model_cfg = load_model(cfg.paths.pretrain_dir)
    manifest, reports, cache = load_ingested(cfg.paths.ingest_dir)
    text_cfg = model_cfg.model.module.text_encoder
    tokenizer = load_tokenizer(text_cfg.model_path)
    max_length = int(model_cfg.model.text.max_length)
    augment = model_cfg.model.augment
    transform = eval_transform(int(augment.size), float(augment.mean), float(augment.std))
    batch_size = int(cfg.eval.batch_size)
    out_root = Path(cfg.paths.embeddings_dir)
    arch = encoder_arch(model_cfg.model.module.image_encoder)
    method = str(cfg.method)

    # the random-init baseline: the same architecture, fresh weights from the run's seed (never
    # the weights file the pretraining may have started from)
    torch.manual_seed(int(cfg.seed))
    random_encoder = instantiate(
        model_cfg.model.module.image_encoder, **no_weights(model_cfg)
    ).eval()

    def pretrained_images(x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = module.image_encoder(x)
        return {"image_features": features, "image_embeddings": module.image_head(features)}

    def random_images(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_features": random_encoder(x)}

    written: dict[str, Any] = {}
    meta = {"model_dir": str(cfg.paths.pretrain_dir), "image_size": int(augment.size)}
    for split in SPLITS:
        rows = paired_rows(manifest, reports, split)
        keys = split_keys(rows)
        studies, inverse = np.unique(keys["study_key"], return_inverse=True)
        study_text = rows.groupby("study_key")["text"].first().loc[studies].tolist()
        text_emb = encode_texts(module.embed_texts, tokenizer, study_text, max_length, batch_size)[
            inverse
        ]
        images = encode_images(
            pretrained_images, cache, rows["cache_index"].tolist(), transform, batch_size
        )
        path = save_embeddings(
            out_root / method / f"{split}.npz",
            {**keys, **images, "text_embeddings": text_emb},
            {**meta, "method": method, "split": split},
        )
        written[f"{split}_images"] = len(rows)
        written[f"{split}_file"] = str(path)
    export_images(
        "random_init",
        random_images,
        manifest,
        reports,
        cache,
        transform,
        out_root,
        batch_size,
        meta,
    )
    save_encoder(module.image_encoder, arch, out_root / method)
    save_encoder(random_encoder, arch, out_root / "random_init")

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(module.embed_texts, tokenizer, texts, max_length, batch_size)

    categories, texts = [], []
    for category, prompts in cfg.eval.retrieval.queries.items():
        categories += [str(category)] * len(prompts)
        texts += [str(p) for p in prompts]
    save_embeddings(
        out_root / method / "queries.npz",
        {
            "category": np.array(categories, dtype=str),
            "text": np.array(texts, dtype=str),
            "text_embeddings": encode(texts),
        },
        {**meta, "method": method, "split": "queries"},
    )
    zs_cat, zs_pol, zs_text = [], [], []
    negatives = (cfg.eval.get("zeroshot") or {}).get("negative_prompts") or {}
    for category, negative in negatives.items():
        positive = cfg.eval.retrieval.queries.get(category) or []
        for polarity, prompts in (("positive", positive), ("negative", negative)):
            zs_cat += [str(category)] * len(prompts)
            zs_pol += [str(polarity)] * len(prompts)
            zs_text += [str(p) for p in prompts]
    if zs_text:
        save_embeddings(
            out_root / method / "prompts.npz",
            {
                "category": np.array(zs_cat, dtype=str),
                "polarity": np.array(zs_pol, dtype=str),
                "text": np.array(zs_text, dtype=str),
                "text_embeddings": encode(zs_text),
            },
            {**meta, "method": method, "split": "prompts"},
        )
    return {
        "embeddings_dir": str(out_root),
        **{k: v for k, v in written.items() if k.endswith("_images")},
    }


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    timed_stage("export", run_export, cfg)


if __name__ == "__main__":
    main()
