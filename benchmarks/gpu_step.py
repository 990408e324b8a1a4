"""One GPU at the paper's settings: does the input pipeline keep the device busy?

    python -m benchmarks.gpu_step [--steps 30] [--warmup 5] [--batch 256] [--workers N]

On a CUDA device: ConVIRT at the paper's settings (`model=convirt`: ResNet-50 at 224 px, the
paper's augmentation) with a BERT-base-sized text encoder (12 layers, 768 wide, 12 heads; random
weights, no download), batch 256, bf16 autocast, channels-last, Adam; fed by the project's own
loader (`PairedDataModule`: the cache's uint8 images, each item's augmentation parameters, the
tokens; `--workers` loader processes, default all cores) from a synthetic world ingested at
224 px, and augmented per batch on the device (`on_after_batch_transfer`).

Prints the step time, images/s, the share of each step spent waiting for the loader (the host
blocked in `next()`; the step synchronises the device, so this is time the device has nothing
to do), the augmentation's share (CUDA events) and the peak device memory. Target: data wait
< 5% of the step time.

`--device cpu --depth 18 --image-size 64 --batch 16 --text-layers 2 --text-width 64` checks the
script itself where there is no GPU (its figures mean nothing there).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from benchmarks.common import compose_config, configure, first_optimizer, ingest, machine_line
from pipelines.training import build_module

WAIT_TARGET = 0.05


def overrides(args: argparse.Namespace) -> list[str]:
    width, layers = args.text_width, args.text_layers
    heads = max(1, width // 64)
    text = (
        f"{{hidden_size: {width}, num_hidden_layers: {layers}, num_attention_heads: {heads}, "
        f"intermediate_size: {4 * width}}}"
    )
    return [
        "model=convirt",
        f"data.synthetic.n_patients={args.patients}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch}",
        f"data.num_workers={args.workers}",
        f"model.module.image_encoder.depth={args.depth}",
        "++model.module.text_encoder.random_init=true",
        f"++model.module.text_encoder.config_overrides={text}",
        f"model.module.text_encoder.n_frozen_layers={min(6, layers)}",
    ]


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


class Batches:
    """The training loader's batches without end (a new pass when one ends, as training does)."""

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule
        self.iterator = iter(datamodule.train_dataloader())

    def next(self) -> dict[str, Any]:
        try:
            return next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.datamodule.train_dataloader())
            return next(self.iterator)


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device: run with --device cpu (and small sizes) to check the script"
        )
    with tempfile.TemporaryDirectory(prefix="medrep-gpu-step-") as tmp:
        cfg = compose_config(Path(tmp), overrides(args))
        configure(cfg)
        seconds, summary, _ = ingest(cfg)
        datamodule = instantiate(cfg.data.datamodule)
        datamodule.setup("fit")
        module = build_module(cfg).train().to(device).to(memory_format=torch.channels_last)
        optimizer = first_optimizer(module.configure_optimizers())
        print(
            f"{cfg.model.name}: ResNet-{args.depth} at {args.image_size} px, text encoder "
            f"{args.text_layers} layers x {args.text_width}, batch {args.batch}, "
            f"{'bf16 autocast' if cuda else 'float32'}, channels-last, {args.workers} loader "
            f"workers; {summary['cached']} images cached in {seconds:.0f} s"
        )
        batches = Batches(datamodule)
        waits, steps, augments = [], [], []
        for step in range(args.warmup + args.steps):
            start = time.perf_counter()
            batch = batches.next()
            waited = time.perf_counter() - start
            if cuda:
                before = torch.cuda.Event(enable_timing=True)
                after = torch.cuda.Event(enable_timing=True)
                before.record()
            inputs = datamodule.on_after_batch_transfer(to_device(batch, device), 0)
            inputs["image"] = inputs["image"].contiguous(memory_format=torch.channels_last)
            if cuda:
                after.record()
            augmented = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                emb = module(inputs)
            loss = module.loss_terms(emb, text_ids=inputs.get("text_ids"))["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            total = time.perf_counter() - start
            if step >= args.warmup:
                waits.append(waited)
                steps.append(total)
                augments.append(
                    before.elapsed_time(after) / 1000 if cuda else augmented - start - waited
                )
        median = statistics.median(steps)
        wait_share = sum(waits) / sum(steps)
        print(
            f"step: {median:.3f} s (median of {len(steps)} after {args.warmup} warm-up), "
            f"{args.batch / median:.0f} images/s; data wait {wait_share:.1%} of the step time "
            f"(median {1000 * statistics.median(waits):.1f} ms a step); augmentation "
            f"{sum(augments) / sum(steps):.1%} ({1000 * statistics.median(augments):.1f} ms a step)"
        )
        if cuda:
            print(f"peak device memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
        met = wait_share < WAIT_TARGET
        print(
            f"data wait share = {wait_share:.3f} (target < {WAIT_TARGET:.2f}): "
            f"{'MET' if met else 'MISSED'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--patients", type=int, default=1500, help="synthetic world size")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--depth", type=int, default=50, help="ResNet depth")
    parser.add_argument("--text-layers", type=int, default=12)
    parser.add_argument("--text-width", type=int, default=768)
    args = parser.parse_args()
    print(machine_line())
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name()}")
    run(args)
    print(machine_line())


if __name__ == "__main__":
    main()
