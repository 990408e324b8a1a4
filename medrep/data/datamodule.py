"""Paired image-report datasets and the Lightning DataModule over an ingestion folder."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from medrep.data.cache import ImageCache, frame_hash
from medrep.data.ingest import CACHE_DIR, MANIFEST_NAME, REPORTS_NAME
from medrep.data.reports import text_id
from medrep.data.sampling import ItemKey, ResumableSampler
from medrep.data.transforms import AugmentConfig, ImageTransform, eval_transform, train_transform
from medrep.pretrained import load_tokenizer

TEXT_VIEWS = ("random_sentence", "fixed_sentence", "full_text")


def load_ingested(ingest_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, ImageCache]:
    """The manifest, the reports and the image cache of an ingestion folder, checked together."""
    ingest_dir = Path(ingest_dir)
    manifest = pd.read_parquet(ingest_dir / MANIFEST_NAME)
    reports = pd.read_parquet(ingest_dir / REPORTS_NAME)
    cache = ImageCache(ingest_dir / CACHE_DIR, manifest_sha256=frame_hash(manifest))
    return manifest, reports, cache


def paired_rows(manifest: pd.DataFrame, reports: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """Images of a split joined to their reports by `study_key` (never by row order)."""
    rows = manifest if split is None else manifest[manifest["split"] == split]
    joined = rows.merge(
        reports[["study_key", "text", "sentences"]],
        on="study_key",
        how="inner",
        validate="many_to_one",
    )
    return joined.sort_values("image_key").reset_index(drop=True)


class PairedImageTextDataset(Dataset):
    """One item per image: the cached image and one text view of its study's report.

    Args:
        cache: the image cache.
        rows: `paired_rows(...)` output (needs cache_index, sentences, text).
        transform: image transform ([1, H, W] -> [1, S, S]).
        text_view: `random_sentence` (ConVIRT: a new sentence every step), `fixed_sentence`
            (one sentence per item chosen by a hash of its key, for stable validation) or
            `full_text` (the chosen sections joined).
    """

    def __init__(
        self, cache: ImageCache, rows: pd.DataFrame, transform: ImageTransform, text_view: str
    ) -> None:
        if text_view not in TEXT_VIEWS:
            raise ValueError(f"text_view must be one of {TEXT_VIEWS}, got {text_view!r}")
        self.cache = cache
        self.cache_index = rows["cache_index"].to_numpy()
        self.sentences: list[list[str]] = [list(s) for s in rows["sentences"]]
        self.texts: list[str] = list(rows["text"])
        self.keys: list[str] = list(rows["image_key"])
        self.transform = transform
        self.text_view = text_view

    def __len__(self) -> int:
        return len(self.cache_index)

    def text_for(self, index: int, rng: np.random.Generator | None = None) -> str:
        sentences = self.sentences[index]
        if self.text_view == "full_text" or not sentences:
            return self.texts[index]
        if self.text_view == "fixed_sentence":
            return sentences[zlib.crc32(self.keys[index].encode()) % len(sentences)]
        if rng is not None:
            return sentences[int(rng.integers(len(sentences)))]
        return sentences[int(torch.randint(len(sentences), (1,)).item())]

    def __getitem__(self, key: int | ItemKey) -> dict[str, Any]:
        """An item by index, or by `(index, seed)` from `ResumableSampler`.

        With a seed, the item's augmentation and sentence are a function of it alone (what makes a
        resumed run see the same data as an uninterrupted one); without, they use the process RNGs.
        """
        index, seed = (key, None) if isinstance(key, int) else key
        rng = None
        if seed is not None:
            rng = np.random.default_rng(seed)
            reseed = getattr(self.transform, "reseed", None)
            if reseed is not None:
                reseed(int(rng.integers(2**31 - 1)))
        image = torch.from_numpy(self.cache.image(int(self.cache_index[index])))[None]
        return {"image": self.transform(image), "text": self.text_for(index, rng), "index": index}


class TextCollator:
    """Stacks images and tokenises texts in the loader (so workers do the tokenising).

    Besides the tokens, `text_ids` [B] (int64) identifies each text after normalisation
    (`medrep.data.reports.text_id`): losses that must not use a repeated sentence as a negative
    read it (`medrep.models.losses.ConVIRTDedupLoss`).
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            [it["text"] for it in items],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "image": torch.stack([it["image"] for it in items]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "index": torch.tensor([it["index"] for it in items]),
            "text_ids": torch.tensor([text_id(it["text"]) for it in items], dtype=torch.int64),
        }


def single_threaded_worker(worker_id: int) -> None:
    """DataLoader workers augment one image at a time: intra-op threads only add overhead.

    (MONAI's affine and blur run 10-20x slower per image with two threads than with one when the
    cores are shared with the training process.) Each worker's torch seed is already distinct
    and reproducible (DataLoader's base seed + worker id); the transforms reseed from it.
    """
    torch.set_num_threads(1)


class CachedImagesDataModule(L.LightningDataModule):
    """What the training data modules share: the train/val rows of an ingestion folder (images
    that have a report, `paired_rows`), their augmentation, batch size, workers and seed.

    Subclasses say what a split's dataset is (`_dataset`).
    """

    # (constructor assignments: the same shape as the baselines' LightningModule base)
    def __init__(
        self, ingest_dir: str, augment: AugmentConfig, batch_size: int, num_workers: int, seed: int
    ) -> None:
        super().__init__()
        self.ingest_dir = ingest_dir
        self.augment = augment
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.datasets: dict[str, Dataset] = {}

    def _dataset(self, cache: ImageCache, rows: pd.DataFrame, split: str) -> Dataset:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Set-up before the datasets are built (e.g. a tokenizer)."""

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        manifest, reports, cache = load_ingested(self.ingest_dir)
        self._prepare()
        for split in ("train", "val"):
            rows = paired_rows(manifest, reports, split)
            if len(rows) == 0:
                raise ValueError(
                    f"{self.ingest_dir}: the {split} split is empty; ingest more data or change "
                    "split fractions"
                )
            self.datasets[split] = self._dataset(cache, rows, split)

    def evaluation_transform(self) -> ImageTransform:
        return eval_transform(self.augment.size, self.augment.mean, self.augment.std)


class PairedDataModule(CachedImagesDataModule):
    """Train/val loaders of image-report pairs from an ingestion folder.

    Args:
        ingest_dir: folder written by `run_ingestion`.
        tokenizer_path: model location of the text encoder (see `medrep.pretrained`).
        augment: training augmentation; validation uses resize and normalisation only.
        train_text_view / val_text_view: see `PairedImageTextDataset`.
    """

    def __init__(
        self,
        ingest_dir: str,
        tokenizer_path: str,
        augment: AugmentConfig,
        batch_size: int = 32,
        num_workers: int = 0,
        max_length: int = 64,
        train_text_view: str = "random_sentence",
        val_text_view: str = "fixed_sentence",
        seed: int = 0,
    ) -> None:
        super().__init__(ingest_dir, augment, batch_size, num_workers, seed)
        # where the next training iteration starts: (epoch, steps done), set by a resumed run
        self._resume_at: tuple[int, int] | None = None
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self.text_views = {"train": train_text_view, "val": val_text_view}

    def _prepare(self) -> None:
        self.collate = TextCollator(load_tokenizer(self.tokenizer_path), self.max_length)

    def _dataset(self, cache: ImageCache, rows: pd.DataFrame, split: str) -> Dataset:
        transform = (
            train_transform(self.augment, self.seed)
            if split == "train"
            else self.evaluation_transform()
        )
        return PairedImageTextDataset(cache, rows, transform, self.text_views[split])

    def _loader(self, split: str, sampler: ResumableSampler | None = None) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=False,
            worker_init_fn=single_threaded_worker,
            # a private generator: creating an iterator must not draw from the global RNG, which
            # the model's dropout uses (a resumed run restores that RNG and must not perturb it)
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _processes(self) -> tuple[int, int]:
        """(world size, rank) of the attached trainer; (1, 0) without one."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def train_sampler(self) -> ResumableSampler:
        """This process's share of each global batch, starting where a resumed run left off."""
        world_size, rank = self._processes()
        epoch = int(self.trainer.current_epoch) if self.trainer is not None else 0
        done = 0
        if self._resume_at is not None:
            epoch, done = self._resume_at
            self._resume_at = None
        dataset = self.datasets["train"]
        assert isinstance(dataset, PairedImageTextDataset)
        sampler = ResumableSampler(
            dataset, self.batch_size, self.seed, world_size, rank, epoch, done
        )
        if done >= sampler.steps:  # the checkpoint closed its epoch: start the next one
            sampler.epoch, sampler.start_batch = epoch + 1, 0
        return sampler

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_sampler())

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def state_dict(self) -> dict[str, Any]:
        """The training position for a checkpoint: epoch and steps done in it (plain ints).

        Taken from the trainer's progress rather than from the loader, which has already
        prefetched batches that were not trained on yet.
        """
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        # at on_train_batch_end (where step checkpoints are written) the batch counts as
        # processed but not yet completed
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        done = getattr(progress, "processed", progress.completed)
        return {
            "epoch": int(trainer.current_epoch),
            "steps_done": int(done),
            "global_batch": self.batch_size * self._processes()[0],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        global_batch = self.batch_size * self._processes()[0]
        if state_dict["global_batch"] != global_batch:
            raise ValueError(
                f"the checkpoint was trained with a global batch of {state_dict['global_batch']} "
                f"pairs, this run has {global_batch} (batch size x devices); resume with the same "
                "batch size and number of devices, or start a new run folder"
            )
        self._resume_at = (int(state_dict["epoch"]), int(state_dict["steps_done"]))
