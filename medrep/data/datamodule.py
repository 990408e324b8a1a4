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

from medrep.data.augment import AUGMENT_KEY, BatchImages, item_params, item_rng
from medrep.data.cache import ImageCache, frame_hash
from medrep.data.ingest import CACHE_DIR, MANIFEST_NAME, REPORTS_NAME
from medrep.data.reports import text_id
from medrep.data.sampling import ItemKey, ResumableSampler
from medrep.data.transforms import AugmentConfig
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


def split_key(key: int | ItemKey) -> tuple[int, int | None]:
    """(index, item seed or None) of a dataset key: a plain index, or `ResumableSampler`'s."""
    return (key, None) if isinstance(key, int) else key


def stored_image(cache: ImageCache, slot: int) -> torch.Tensor:
    """A cached image as stored: [1, S, S] in the cache's integer type (the device converts)."""
    return torch.from_numpy(cache.stored(slot))[None]


class PairedImageTextDataset(Dataset):
    """One item per image: the cached image, as stored, and one text view of its study's report.

    Args:
        cache: the image cache.
        rows: `paired_rows(...)` output (needs cache_index, sentences, text).
        augment: draws each item's augmentation parameters (applied per batch on the device,
            `medrep.data.augment`); None for deterministic items (validation).
        text_view: `random_sentence` (ConVIRT: a new sentence every step), `fixed_sentence`
            (one sentence per item chosen by a hash of its key, for stable validation) or
            `full_text` (the chosen sections joined).
    """

    def __init__(
        self, cache: ImageCache, rows: pd.DataFrame, augment: BatchImages | None, text_view: str
    ) -> None:
        if text_view not in TEXT_VIEWS:
            raise ValueError(f"text_view must be one of {TEXT_VIEWS}, got {text_view!r}")
        self.cache = cache
        self.cache_index = rows["cache_index"].to_numpy()
        self.sentences: list[list[str]] = [list(s) for s in rows["sentences"]]
        self.texts: list[str] = list(rows["text"])
        self.keys: list[str] = list(rows["image_key"])
        self.augment = augment
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

        With a seed, the item's augmentation parameters and sentence are a function of it alone
        (what makes a resumed run see the same data as an uninterrupted one); without, they use
        the process RNGs.
        """
        index, seed = split_key(key)
        image = stored_image(self.cache, int(self.cache_index[index]))
        rng = item_rng(seed, self.augment)
        params = item_params(self.augment, rng, image)
        text = self.text_for(index, rng)
        return {"image": image, "text": text, "index": index, **params}


class TextCollator:
    """Stacks images (and their augmentation parameters) and tokenises texts in the loader (so
    workers do the tokenising).

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
        batch = {
            "image": torch.stack([it["image"] for it in items]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "index": torch.tensor([it["index"] for it in items]),
            "text_ids": torch.tensor([text_id(it["text"]) for it in items], dtype=torch.int64),
        }
        if AUGMENT_KEY in items[0]:
            batch[AUGMENT_KEY] = torch.stack([it[AUGMENT_KEY] for it in items])
        return batch


def single_threaded_worker(worker_id: int) -> None:
    """DataLoader workers read and collate: intra-op threads would only compete with training.

    Each worker's torch seed is already distinct and reproducible (DataLoader's base seed +
    worker id); items without a seed of their own draw from it (`medrep.data.augment.item_rng`).
    """
    torch.set_num_threads(1)


class CachedImagesDataModule(L.LightningDataModule):
    """What the training data modules share: the train/val rows of an ingestion folder (images
    that have a report, `paired_rows`), their augmentation, batch size, workers and seed; a
    training sampler that resumes mid-epoch; and the batch's images made model inputs on the
    device (`on_after_batch_transfer`: augmented where the batch carries parameters, else
    prepared deterministically; `medrep.data.augment`).

    Subclasses say what a split's dataset is (`_dataset`) and how items are collated.
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
        self.images = BatchImages(augment)
        self.datasets: dict[str, Dataset] = {}
        self.collate: Any = None  # DataLoader's default unless a subclass sets one
        # where the next training iteration starts: (epoch, steps done), set by a resumed run
        self._resume_at: tuple[int, int] | None = None

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

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.images(batch)

    def _loader(self, split: str, sampler: ResumableSampler | None = None) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=False,
            # page-locked batches make the copy to a GPU asynchronous (non_blocking)
            pin_memory=self._on_cuda(),
            worker_init_fn=single_threaded_worker,
            # a private generator: creating an iterator must not draw from the global RNG, which
            # the model's dropout uses (a resumed run restores that RNG and must not perturb it)
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _on_cuda(self) -> bool:
        """Whether the attached trainer trains on a CUDA device."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

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
        sampler = ResumableSampler(
            self.datasets["train"],  # type: ignore[arg-type]  # the datasets are sized
            self.batch_size,
            self.seed,
            world_size,
            rank,
            epoch,
            done,
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


class PairedDataModule(CachedImagesDataModule):
    """Train/val loaders of image-report pairs from an ingestion folder.

    Args:
        ingest_dir: folder written by `run_ingestion`.
        tokenizer_path: model location of the text encoder (see `medrep.pretrained`).
        augment: training augmentation; validation is prepared deterministically.
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
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self.text_views = {"train": train_text_view, "val": val_text_view}

    def _prepare(self) -> None:
        self.collate = TextCollator(load_tokenizer(self.tokenizer_path), self.max_length)

    def _dataset(self, cache: ImageCache, rows: pd.DataFrame, split: str) -> Dataset:
        augment = self.images if split == "train" else None
        return PairedImageTextDataset(cache, rows, augment, self.text_views[split])
