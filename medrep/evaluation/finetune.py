"""Full fine-tuning at label fractions: the encoder and a linear layer trained together.

The paper reports fine-tuning beside the linear probe. Here it is an option (a CPU affords only
a short schedule): `SupervisedPretrainer` on the exported encoder, trained by a Lightning
`Trainer` for a fixed number of Adam steps on masked binary cross-entropy, with the validation
macro AUROC checked every `eval_every` steps and the best state kept by `ModelCheckpoint` (early
stopping on validation, the fine-tuning counterpart of choosing the probe's regularisation there).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from medrep.data.augment import BatchImages
from medrep.data.cache import ImageCache
from medrep.data.image_only import LabelledImageDataset, PreparedBatches
from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.labels import sample_patients
from medrep.evaluation.metrics import macro_auroc_metrics, per_label_auroc, resample_weights
from medrep.evaluation.probe import ProbeResult, ProbeSettings, fraction_rows
from medrep.evaluation.results import Evaluation
from medrep.models.image_only import SupervisedPretrainer

MONITOR = "val/macro_auroc"


@dataclass(frozen=True)
class FinetuneSettings:
    """Whether, what and how to fine-tune (`conf/eval/` holds the values).

    Attributes:
        enabled: the evaluation stage fine-tunes at all.
        methods: which methods (None: every evaluated method with an exported encoder).
        seeds: one fine-tuning per label fraction and seed.
        steps / batch_size / lr / weight_decay: Adam's schedule.
        eval_every: validation macro AUROC every this many steps; the best state is kept.
    """

    enabled: bool
    methods: Sequence[str] | None
    seeds: Sequence[int]
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    eval_every: int


@dataclass(frozen=True)
class SplitImages:
    """One split's images: cache slots [N], patient keys [N] and labels [N, L] in {1, 0, NaN}."""

    cache_index: np.ndarray
    patient_key: np.ndarray
    labels: np.ndarray


def _train_loader(
    cache: ImageCache, train: SplitImages, images: BatchImages, batch_size: int, seed: int
) -> DataLoader:
    """Full batches drawn without replacement, reshuffled every pass by a seeded sampler, and
    augmented per batch (on the CPU, where the evaluation runs).

    BatchNorm needs two images per batch in training mode; a subset smaller than a batch is
    repeated (the sampler draws at least one batch per pass).
    """
    dataset = LabelledImageDataset(cache, train.cache_index, train.labels, images)
    batch = max(2, min(batch_size, len(dataset)))
    sampler = RandomSampler(
        dataset,
        num_samples=max(batch, len(dataset)),
        generator=torch.Generator().manual_seed(seed),
    )
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        drop_last=True,
        collate_fn=PreparedBatches(images),
    )


def finetune_classifier(
    encoder: nn.Module,
    cache: ImageCache,
    splits: Mapping[str, SplitImages],
    label_names: Sequence[str],
    images: BatchImages,
    settings: FinetuneSettings,
    seed: int = 0,
) -> ProbeResult:
    """Fine-tune `encoder` (with `out_dim`) plus a linear layer; test AUROC per label.

    `splits` holds `train` (the label fraction's subset), `val` and `test`; `images` augments
    the training batches and prepares the others deterministically. The encoder is
    modified in place: pass a fresh copy. Validation runs every `settings.eval_every` steps; the
    state with the best validation macro AUROC is tested (the last state if none was validated).
    """
    torch.manual_seed(seed)
    optimizer = partial(torch.optim.Adam, lr=settings.lr, weight_decay=settings.weight_decay)
    module = SupervisedPretrainer(
        encoder,  # type: ignore[arg-type]  # any encoder with `out_dim`, e.g. `load_encoder`'s
        len(label_names),
        optimizer,
        val_metrics=macro_auroc_metrics,
    )
    train = _train_loader(cache, splits["train"], images, settings.batch_size, seed)
    val, test = (
        DataLoader(
            LabelledImageDataset(cache, s.cache_index, s.labels),
            batch_size=settings.batch_size,
            collate_fn=PreparedBatches(images),
        )
        for s in (splits["val"], splits["test"])
    )
    with tempfile.TemporaryDirectory(prefix="finetune-") as scratch:
        best = ModelCheckpoint(dirpath=scratch, monitor=MONITOR, mode="max", save_weights_only=True)
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_steps=settings.steps,
            val_check_interval=settings.eval_every,
            check_val_every_n_epoch=None,
            num_sanity_val_steps=0,
            callbacks=[best],
            default_root_dir=scratch,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, train, val)
        if best.best_model_path:
            checkpoint = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(checkpoint["state_dict"])
        scores = torch.cat(trainer.predict(module, test)).numpy()  # type: ignore[arg-type]
    auroc = per_label_auroc(scores, splits["test"].labels, label_names)
    return ProbeResult(auroc=auroc, chosen_c={}, test_scores=scores)


def finetune_rows(
    run: str,
    method: str,
    make_encoder: Callable[[], nn.Module],
    cache: ImageCache,
    splits: Mapping[str, SplitImages],
    label_names: Sequence[str],
    probe: ProbeSettings,
    settings: FinetuneSettings,
    images: BatchImages,
    boot: BootstrapSettings,
) -> Evaluation:
    """Fine-tuning AUROC rows (task `finetune`) at every label fraction of `probe` and seed.

    Label fractions are drawn by patient exactly as for the linear probe (same seeds, same
    patients), so probe and fine-tuning rows compare like for like.
    """
    weights = resample_weights(np.asarray(splits["test"].patient_key), boot)
    out = Evaluation()
    train = splits["train"]
    for fraction in probe.fractions:
        for seed in settings.seeds:
            mask = sample_patients(train.patient_key, fraction, seed, probe.min_patients)
            subset = SplitImages(
                train.cache_index[mask], train.patient_key[mask], train.labels[mask]
            )
            result = finetune_classifier(
                make_encoder(),
                cache,
                {**splits, "train": subset},
                label_names,
                images,
                settings,
                seed,
            )
            out.extend(
                fraction_rows(
                    run,
                    method,
                    "finetune",
                    fraction,
                    seed,
                    result,
                    splits["test"].labels,
                    label_names,
                    np.asarray(train.patient_key),
                    mask,
                    weights,
                    boot,
                )
            )
    return out
