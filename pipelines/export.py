"""Export stage: encode every split's images and reports with the pretrained model and baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from medrep.data.datamodule import load_ingested, paired_rows
from medrep.data.transforms import eval_transform
from medrep.evaluation.embeddings import encode_images, encode_texts, save_embeddings
from medrep.pretrained import load_tokenizer
from pipelines.common import load_model, timed_stage

SPLITS = ("train", "val", "test")


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

    # the random-init baseline: the same architecture, fresh weights from the run's seed
    torch.manual_seed(int(cfg.seed))
    random_encoder = instantiate(model_cfg.model.module.image_encoder).eval()

    def pretrained_images(x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = module.image_encoder(x)
        return {"image_features": features, "image_embeddings": module.image_head(features)}

    def random_images(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_features": random_encoder(x)}

    written: dict[str, Any] = {}
    meta = {"model_dir": str(cfg.paths.pretrain_dir), "image_size": int(augment.size)}
    for split in SPLITS:
        rows = paired_rows(manifest, reports, split)
        keys = {c: rows[c].to_numpy(dtype=str) for c in ("image_key", "study_key", "patient_key")}
        studies, inverse = np.unique(keys["study_key"], return_inverse=True)
        study_text = rows.groupby("study_key")["text"].first().loc[studies].tolist()
        text_emb = encode_texts(module.embed_texts, tokenizer, study_text, max_length, batch_size)[
            inverse
        ]
        images = encode_images(
            pretrained_images, cache, rows["cache_index"].tolist(), transform, batch_size
        )
        path = save_embeddings(
            out_root / str(cfg.method) / f"{split}.npz",
            {**keys, **images, "text_embeddings": text_emb},
            {**meta, "method": cfg.method, "split": split},
        )
        base = encode_images(
            random_images, cache, rows["cache_index"].tolist(), transform, batch_size
        )
        save_embeddings(
            out_root / "random_init" / f"{split}.npz",
            {**keys, **base},
            {**meta, "method": "random_init", "split": split},
        )
        written[f"{split}_images"] = len(rows)
        written[f"{split}_file"] = str(path)

    categories, texts = [], []
    for category, prompts in cfg.eval.retrieval.queries.items():
        categories += [str(category)] * len(prompts)
        texts += [str(p) for p in prompts]
    save_embeddings(
        out_root / str(cfg.method) / "queries.npz",
        {
            "category": np.array(categories, dtype=str),
            "text": np.array(texts, dtype=str),
            "text_embeddings": encode_texts(
                module.embed_texts, tokenizer, texts, max_length, batch_size
            ),
        },
        {**meta, "method": cfg.method, "split": "queries"},
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
