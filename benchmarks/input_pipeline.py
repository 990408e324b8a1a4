"""Input pipeline against the model, measured side by side: the loader reads, the device augments.

    .venv/bin/python -m benchmarks.input_pipeline [--patients 240] [--rounds 3] [--skip-paper]

Demo config (`model=convirt_cpu`: narrow ResNet-18 at 96 px, batch 32, 1 loader worker), in one
process on a synthetic world ingested at 96 px:
  loader   batches/s `PairedDataModule.train_dataloader()` delivers as configured (cache read
           as stored, each item's augmentation parameters, tokenisation, collation, in
           `data.num_workers` worker processes), from the first batch to the last of a pass
  model    batches/s the training process consumes: the batch made model input on the device
           (`on_after_batch_transfer`: the batched augmentation; here the device is the CPU), then
           forward, loss, backward and optimizer step, on one batch the loader produced
  fed      both together: steps on the loader's next batches, each beside a step on the fixed
           batch (the rate ratio is 1.00 when the loader keeps up)
Targets: loader >= 3x model; fed / fixed-batch rate >= 0.95.

Paper augmentation at 224 px (`model=convirt`'s data settings), on a world ingested at 224 px,
loader work in this process on one thread (CPU seconds, so the figure is per core):
  workers  images per CPU-second of everything a loader worker does per image, now (read the
           stored image, draw its parameters, tokenise and collate) and as before this change
           (the same plus MONAI's per-image augmentation, `reference_transform`), alternated
  device   the batched augmentation's own throughput on this CPU, batch 256
  kornia   the same augmentation written with kornia.augmentation, when kornia is installed
           (context for the choice of library; its crop and blur are parameterised differently)
Targets: now >= 450 images/s per core, and >= 5x before.
Passes alternate round by round so that the machine's noise hits both sides; figures are medians.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import (
    compose_config,
    configure,
    first_optimizer,
    ingest,
    machine_line,
    median,
    model_step,
    verdict,
)
from medrep.data.augment import BatchImages, to_unit
from medrep.data.transforms import AugmentConfig, reference_transform
from pipelines.training import build_module

LOADER_TARGET = 3.0
FED_TARGET = 0.95
PER_CORE_TARGET = 450.0
SPEEDUP_TARGET = 5.0


def loader_pass(datamodule: Any, batches: int) -> tuple[float, float]:
    """(seconds to the first batch, batches/s from the first batch to the last) of one pass."""
    start = time.perf_counter()
    iterator = iter(datamodule.train_dataloader())
    next(iterator)
    first = time.perf_counter()
    for _ in range(batches - 1):
        next(iterator)
    end = time.perf_counter()
    del iterator  # shuts the worker down before the model's turn
    return first - start, (batches - 1) / (end - first)


def train_step(
    module: Any, optimizer: torch.optim.Optimizer, datamodule: Any, batch: Any
) -> tuple[float, float]:
    """(seconds of the whole step, seconds of its augmentation): what training does per batch
    once the loader has handed it over (the transfer is a no-op on the CPU)."""
    start = time.perf_counter()
    inputs = datamodule.on_after_batch_transfer(batch, 0)
    augmented = time.perf_counter()
    model_step(module, optimizer, inputs)
    return time.perf_counter() - start, augmented - start


def fed_pairs(
    module: Any, optimizer: torch.optim.Optimizer, datamodule: Any, batch: Any, n: int
) -> list[tuple[float, float]]:
    """(fixed-batch step, fed step) seconds, alternately: a fed step waits for the loader's next
    batch, then trains on it; the loader's worker runs beside both, as in training."""
    iterator = iter(datamodule.train_dataloader())
    next(iterator)
    pairs = []
    for _ in range(n):
        fixed = train_step(module, optimizer, datamodule, batch)[0]
        start = time.perf_counter()
        next_batch = next(iterator)
        waited = time.perf_counter() - start
        pairs.append((fixed, waited + train_step(module, optimizer, datamodule, next_batch)[0]))
    del iterator
    return pairs


def demo(out_dir: Path, world: list[str], args: argparse.Namespace) -> None:
    cfg = compose_config(out_dir, world)
    configure(cfg)
    seconds, summary, _ = ingest(cfg)
    datamodule = instantiate(cfg.data.datamodule)
    datamodule.setup("fit")
    train_items = len(datamodule.datasets["train"])
    steps_per_epoch = train_items // datamodule.batch_size
    if steps_per_epoch < max(args.batches, args.fed + 1):
        raise SystemExit(f"{train_items} training items are too few; raise --patients")
    module = build_module(cfg).train()
    optimizer = first_optimizer(module.configure_optimizers())
    batch = next(iter(datamodule.train_dataloader()))
    print(
        f"\n## demo config: {cfg.model.name}, {cfg.data.image_size} px, batch "
        f"{cfg.data.batch_size}, {cfg.data.num_workers} loader worker(s), text max_length "
        f"{cfg.data.text.max_length} (this batch's tokens {batch['input_ids'].shape[1]}); the "
        f"loader yields {batch['image'].dtype} images and {batch['augment'].shape[1]} parameters "
        "an image"
    )
    print(
        f"world: {summary['cached']} images cached in {seconds:.1f} s, {train_items} training "
        f"items ({steps_per_epoch} batches an epoch)"
    )
    train_step(module, optimizer, datamodule, batch)  # warm-up: allocator, optimizer state
    startups, loader_rates, steps, augments = [], [], [], []
    for _ in range(args.rounds):
        startup, rate = loader_pass(datamodule, args.batches)
        startups.append(startup)
        loader_rates.append(rate)
        for _ in range(args.steps):
            step, augment = train_step(module, optimizer, datamodule, batch)
            steps.append(step)
            augments.append(augment)
    loader, model = median(loader_rates), 1.0 / median(steps)
    print(
        f"loader: {loader:.2f} batches/s, {loader * datamodule.batch_size:.0f} images/s "
        f"(median of {args.rounds} passes of {args.batches} batches: "
        f"{' '.join(f'{r:.2f}' for r in loader_rates)}); worker start-up "
        f"{median(startups):.2f} s a pass"
    )
    print(
        f"model:  {model:.3f} batches/s ({median(steps):.3f} s a step, of which the batched "
        f"augmentation {1000 * median(augments):.1f} ms = {median(augments) / median(steps):.1%}; "
        f"median of {len(steps)} steps)"
    )
    print(verdict("loader / model", loader / model, ">=", LOADER_TARGET))
    pairs = fed_pairs(module, optimizer, datamodule, batch, args.fed)
    ratio = median([fixed / fed for fixed, fed in pairs])
    print(
        f"fed:    {1 / median([fed for _, fed in pairs]):.3f} batches/s (median of {args.fed} "
        "steps on the loader's batches, each beside a step on the fixed batch)"
    )
    print(verdict("fed / fixed-batch rate", ratio, ">=", FED_TARGET))


class BeforeItems(Dataset):
    """The loader's work before this change: each item's image augmented in the worker by the
    MONAI reference (the stored image made float, then `reference_transform`)."""

    def __init__(self, dataset: Any, augment: AugmentConfig) -> None:
        self.dataset = dataset
        self.transform = reference_transform(augment, seed=0)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        item = dict(self.dataset[key])
        item.pop("augment")
        item["image"] = self.transform(to_unit(item["image"]))
        return item


def cpu_rate(loader: DataLoader, batches: int) -> float:
    """Images per CPU-second of this thread over `batches` batches (after the first)."""
    iterator = iter(loader)
    next(iterator)
    images, start = 0, time.thread_time()
    for _ in range(batches):
        images += len(next(iterator)["image"])
    return images / (time.thread_time() - start)


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `fn` over `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def kornia_augmentation(cfg: AugmentConfig) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The augmentation in kornia.augmentation (None when kornia is not installed)."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    side = math.sqrt(cfg.crop_area[0]), math.sqrt(cfg.crop_area[1])
    tail = int(cfg.blur_sigma[1] * 4 + 0.5)
    pipeline = K.AugmentationSequential(
        K.RandomResizedCrop(
            (cfg.size, cfg.size), scale=cfg.crop_area, ratio=(side[0] / side[1], side[1] / side[0])
        ),
        K.RandomHorizontalFlip(p=cfg.flip_prob),
        K.RandomAffine(
            degrees=cfg.rotate_degrees,
            translate=(cfg.translate, cfg.translate),
            scale=(*cfg.scale, *cfg.scale),
            p=cfg.affine_prob,
        ),
        K.ColorJiggle(brightness=cfg.brightness, contrast=cfg.contrast, p=1.0),
        K.RandomGaussianBlur((2 * tail + 1, 2 * tail + 1), cfg.blur_sigma, p=cfg.blur_prob),
        K.Normalize(mean=torch.tensor([cfg.mean]), std=torch.tensor([cfg.std])),
    )
    return lambda images: pipeline(to_unit(images))


def paper(out_dir: Path, world: list[str], args: argparse.Namespace) -> None:
    cfg = compose_config(out_dir, [*world, "model=convirt", "data.num_workers=0"])
    configure(cfg)
    seconds, summary, _ = ingest(cfg)
    datamodule = instantiate(cfg.data.datamodule)
    datamodule.setup("fit")
    augment: AugmentConfig = datamodule.augment
    dataset = datamodule.datasets["train"]
    print(
        f"\n## paper augmentation: {cfg.data.image_size} px, batch {cfg.data.batch_size}, text "
        f"max_length {cfg.data.text.max_length}; loader work on 1 thread in this process; "
        f"{summary['cached']} images cached in {seconds:.1f} s"
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker (`single_threaded_worker`)

    def loader(items: Dataset) -> DataLoader:
        return DataLoader(
            items,
            batch_size=datamodule.batch_size,
            sampler=datamodule.train_sampler(),
            collate_fn=datamodule.collate,
        )

    now, before = [], []
    for _ in range(args.paper_rounds):
        now.append(cpu_rate(loader(dataset), args.paper_batches))
        before.append(cpu_rate(loader(BeforeItems(dataset, augment)), args.paper_batches))
    torch.set_num_threads(threads)
    print(
        f"workers: now {median(now):.0f} images/s per core (read, parameters, tokens, collate; "
        f"{' '.join(f'{r:.0f}' for r in now)}), before {median(before):.0f} (the same plus "
        f"MONAI per image; {' '.join(f'{r:.0f}' for r in before)})"
    )
    print(verdict("images/s per core, now", median(now), ">=", PER_CORE_TARGET, unit=""))
    print(verdict("per-core rate now / before", median(now) / median(before), ">=", SPEEDUP_TARGET))

    images = BatchImages(augment)
    rng = np.random.default_rng(0)
    side = datamodule.images.config.size
    stored = torch.randint(0, 256, (args.device_batch, 1, side, side), dtype=torch.uint8)
    params = torch.from_numpy(np.stack([images.draw(rng, side, side) for _ in stored]))
    ours = timed(lambda: images.augment(stored, params), args.repeats)
    print(
        f"device: the batched augmentation on this CPU ({threads} threads), batch "
        f"{args.device_batch} at {side} px: {args.device_batch / ours:.0f} images/s "
        f"({ours:.2f} s a batch; median of {args.repeats})"
    )
    kornia = kornia_augmentation(augment)
    if kornia is None:
        print("kornia: not installed (pip install kornia for the comparison)")
        return
    theirs = timed(lambda: kornia(stored), args.repeats)
    print(
        f"kornia: the same augmentation with kornia.augmentation, batch {args.device_batch}: "
        f"{args.device_batch / theirs:.0f} images/s ({theirs:.2f} s a batch); torch / kornia "
        f"= {theirs / ours:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=240, help="synthetic world size")
    parser.add_argument("--rounds", type=int, default=3, help="loader/model rounds (demo)")
    parser.add_argument("--batches", type=int, default=8, help="batches per loader pass (demo)")
    parser.add_argument("--steps", type=int, default=3, help="model steps per round (demo)")
    parser.add_argument("--fed", type=int, default=6, help="fed model steps (demo)")
    parser.add_argument("--paper-rounds", type=int, default=3, help="worker passes (paper)")
    parser.add_argument("--paper-batches", type=int, default=4, help="batches per pass (paper)")
    parser.add_argument("--device-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="batched augmentation timings")
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    world = [f"data.synthetic.n_patients={args.patients}"]
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="medrep-bench-") as tmp:
        demo(Path(tmp) / "demo", world, args)
        print(machine_line())
        if not args.skip_paper:
            paper(Path(tmp) / "paper", world, args)
            print(machine_line())
    print(f"took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
