"""Full fine-tuning at label fractions: the encoder and a linear layer trained together.

The paper reports fine-tuning beside the linear probe. Here it is an option (a CPU affords only
a short schedule): a fixed number of steps of Adam on masked binary cross-entropy, with the
validation macro AUROC checked every `eval_every` steps and the best state kept (early stopping
on validation, the fine-tuning counterpart of choosing the probe's regularisation there).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from medrep.data.cache import ImageCache
from medrep.data.transforms import ImageTransform
from medrep.evaluation.bootstrap import DEFAULT_BOOTSTRAP, BootstrapSettings
from medrep.evaluation.harness import Evaluation, ProbeSettings, auroc_rows, resample_weights
from medrep.evaluation.probe import ProbeResult, sample_patients
from medrep.evaluation.results import ResultRow
from medrep.models.image_only import masked_bce


@dataclass(frozen=True)
class FinetuneSettings:
    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-6
    eval_every: int = 25


@dataclass(frozen=True)
class SplitImages:
    """One split's images: cache slots [N], patient keys [N] and labels [N, L] in {1, 0, NaN}."""

    cache_index: np.ndarray
    patient_key: np.ndarray
    labels: np.ndarray


def _images(cache: ImageCache, index: np.ndarray, transform: ImageTransform) -> torch.Tensor:
    return torch.stack([transform(torch.from_numpy(cache.image(int(i)))[None]) for i in index])


@torch.no_grad()
def _predict(model: nn.Module, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    model.eval()
    return torch.cat(
        [
            torch.sigmoid(model(images[s : s + batch_size]))
            for s in range(0, len(images), batch_size)
        ]
    ).numpy()


def _macro(scores: np.ndarray, labels: np.ndarray) -> float:
    values = []
    for j in range(labels.shape[1]):
        keep = ~np.isnan(labels[:, j])
        if len(np.unique(labels[keep, j])) == 2:
            values.append(roc_auc_score(labels[keep, j], scores[keep, j]))
    return float(np.mean(values)) if values else float("nan")


def finetune_classifier(
    encoder: nn.Module,
    cache: ImageCache,
    train: SplitImages,
    val_images: torch.Tensor,
    val_labels: np.ndarray,
    test_images: torch.Tensor,
    test_labels: np.ndarray,
    label_names: Sequence[str],
    train_transform: ImageTransform,
    settings: FinetuneSettings,
    seed: int = 0,
) -> ProbeResult:
    """Fine-tune `encoder` (with `out_dim`) plus a linear layer; test AUROC per label.

    `val_images`/`test_images` are already transformed [N, 1, S, S] tensors. The encoder is
    modified in place: pass a fresh copy.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = nn.Sequential(encoder, nn.Linear(int(encoder.out_dim), len(label_names)))  # type: ignore[arg-type]
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    # BatchNorm needs two images per batch in training mode
    batch = max(2, min(settings.batch_size, len(train.cache_index)))
    targets = torch.as_tensor(train.labels, dtype=torch.float32)
    best_state, best_score = copy.deepcopy(model.state_dict()), -np.inf
    for step in range(1, settings.steps + 1):
        model.train()
        pick = rng.choice(
            len(train.cache_index), size=batch, replace=batch > len(train.cache_index)
        )
        loss = masked_bce(
            model(_images(cache, train.cache_index[pick], train_transform)), targets[pick]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            score = _macro(_predict(model, val_images), val_labels)
            # a NaN score (validation lacks a class) keeps the latest state instead
            if score > best_score or (np.isnan(score) and best_score == -np.inf):
                best_state = copy.deepcopy(model.state_dict())
                best_score = -np.inf if np.isnan(score) else score
    model.load_state_dict(best_state)
    scores = _predict(model, test_images)
    auroc = {}
    for j, name in enumerate(label_names):
        keep = ~np.isnan(test_labels[:, j])
        both = len(np.unique(test_labels[keep, j])) == 2
        auroc[name] = (
            float(roc_auc_score(test_labels[keep, j], scores[keep, j])) if both else float("nan")
        )
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
    train_transform: ImageTransform,
    eval_transform: ImageTransform,
    seeds: Sequence[int] = (0,),
    boot: BootstrapSettings = DEFAULT_BOOTSTRAP,
) -> Evaluation:
    """Fine-tuning AUROC rows (task `finetune`) at every label fraction of `probe` and seed.

    Label fractions are drawn by patient exactly as for the linear probe (same seeds, same
    patients), so probe and fine-tuning rows compare like for like.
    """
    val_images = _images(cache, splits["val"].cache_index, eval_transform)
    test_images = _images(cache, splits["test"].cache_index, eval_transform)
    weights = resample_weights(np.asarray(splits["test"].patient_key), boot)
    out = Evaluation()
    train = splits["train"]
    for fraction in probe.fractions:
        for seed in seeds:
            mask = sample_patients(
                train.patient_key, train.labels, fraction, seed, probe.min_patients
            )
            subset = SplitImages(
                train.cache_index[mask], train.patient_key[mask], train.labels[mask]
            )
            result = finetune_classifier(
                make_encoder(),
                cache,
                subset,
                val_images,
                splits["val"].labels,
                test_images,
                splits["test"].labels,
                label_names,
                train_transform,
                settings,
                seed,
            )
            row = partial(
                ResultRow, run, method, "finetune", label_fraction=float(fraction), seed=seed
            )
            rows, macro = auroc_rows(
                row,
                result.test_scores,
                splits["test"].labels,
                label_names,
                result.auroc,
                weights,
                boot,
            )
            out.rows.extend(rows)
            out.rows.append(row(metric="train_images", value=float(mask.sum())))
            if macro is not None:
                out.replicates.setdefault((method, "finetune", float(fraction)), []).append(macro)
    return out
