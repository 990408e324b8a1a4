"""Export under two processes: rank 0 alone, or sharded over both ranks and gathered?

    .venv/bin/python -m benchmarks.export_ranks --run outputs/runs/demo/<stamp> [--repeats 3]

`--run` is a finished run folder (its `pretrain/model.pt`, `resolved_config.yaml` and the
ingestion folder that config names). What the chain's export stage encodes
(`pipelines.export.export_images`: the pretrained model with its reports, the random-init
encoder, raw pixels; the prompts, a few dozen sentences, are left out of both) is timed two ways,
each from the start of fresh processes to the last file written, so process start-up and model
loading count on both sides:
  rank0    one process with the chain's 2 threads encodes every split (what `pipelines/run.py`
           does: export is rank 0's);
  sharded  two processes at once, one thread each (two ranks on a 2-core machine), each encodes
           every other row of each split (`ShardExporter`), then this process gathers the
           shards' files into the full ones (rows back in order) and writes them.
The gathered files are compared with rank 0's (same keys, features within 1e-4: one and two
threads sum in other orders). The repeats alternate the two ways; medians are reported with
the machine's load. Target: sharding is adopted only when it is at least 1.2x faster (it costs
a gather and a second model load, and every rank must then reach the export stage).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import REPO, machine_line, median, verdict
from medrep.evaluation.embeddings import load_embeddings, save_embeddings
from medrep.evaluation.export import SPLITS, ImageExporter

TARGET = 1.2


@dataclasses.dataclass(frozen=True)
class ShardExporter(ImageExporter):
    """An exporter over every `shards`-th paired row of each split, from row `shard` on."""

    shard: int = 0
    shards: int = 1

    def rows(self, split: str) -> pd.DataFrame:
        return super().rows(split).iloc[self.shard :: self.shards]


def export_shard(run: Path, out: Path, shard: int, shards: int, threads: int) -> None:
    """One process's part: the chain's export calls over its shard of the rows."""
    import torch
    from omegaconf import DictConfig, OmegaConf

    from benchmarks.common import configure
    from medrep.pretrained import load_tokenizer
    from pipelines.export import export_images, image_exporter
    from pipelines.training import load_model

    cfg = OmegaConf.load(run / "resolved_config.yaml")
    assert isinstance(cfg, DictConfig)
    cfg.paths.embeddings_dir = str(out)
    configure(cfg)
    torch.set_num_threads(threads)
    module, model_cfg = load_model(run / "pretrain")
    base = image_exporter(cfg, model_cfg, {"model_dir": str(run / "pretrain")})
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    exporter = ShardExporter(**fields, shard=shard, shards=shards)
    tokenizer = load_tokenizer(model_cfg.model.module.text_encoder.model_path)
    export_images(cfg, module, model_cfg, exporter, tokenizer)


def worker_command(run: Path, out: Path, shard: int, shards: int, threads: int) -> list[str]:
    """The command of one export process: this script in worker mode, on one shard."""
    return [
        sys.executable,
        "-m",
        "benchmarks.export_ranks",
        "--worker",
        f"{shard}/{shards}",
        "--threads",
        str(threads),
        "--run",
        str(run),
        "--out",
        str(out),
    ]


def gather(parts: list[Path], out: Path) -> None:
    """The shards' files as one export: each split's rows joined and put in image-key order
    (the order `paired_rows` gives rank 0's export)."""
    for method_dir in sorted(p for p in parts[0].iterdir() if p.is_dir()):
        method = method_dir.name
        for split in SPLITS:
            pieces = [load_embeddings(part / method / f"{split}.npz") for part in parts]
            joined = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
            order = np.argsort(joined["image_key"], kind="stable")
            arrays = {key: values[order] for key, values in joined.items()}
            meta = (method_dir / f"{split}.meta.json").read_text()
            save_embeddings(out / method / f"{split}.npz", arrays, {"gathered": meta})
        for extra in method_dir.glob("encoder.*"):  # the same weights in every shard
            shutil.copy(extra, out / method / extra.name)


def timed(run: Path, out: Path, shards: int) -> float:
    """Seconds from starting the processes to the full export written."""
    start = time.perf_counter()
    if shards == 1:
        subprocess.run(worker_command(run, out, 0, 1, 2), cwd=REPO, check=True)
        return time.perf_counter() - start
    parts = [out.with_name(f"{out.name}_part{i}") for i in range(shards)]
    procs = [
        subprocess.Popen(worker_command(run, part, i, shards, 1), cwd=REPO)
        for i, part in enumerate(parts)
    ]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError("a shard's export failed (its output is above)")
    gather(parts, out)
    return time.perf_counter() - start


def same_export(a: Path, b: Path) -> None:
    """The gathered export holds what rank 0's does: the same files, keys and rows."""
    files = sorted(p.relative_to(a) for p in a.rglob("*.npz"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.npz")), "other files"
    for name in files:
        x, y = load_embeddings(a / name), load_embeddings(b / name)
        assert list(x) == list(y), name
        for key in x:
            if x[key].dtype.kind in "US":
                assert (x[key] == y[key]).all(), (name, key)
            else:
                np.testing.assert_allclose(x[key], y[key], atol=1e-4, err_msg=f"{name} {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = args.run.resolve()
    if args.worker:
        shard, shards = (int(x) for x in args.worker.split("/"))
        export_shard(run, args.out, shard, shards, args.threads)
        return
    if not (run / "pretrain" / "model.pt").exists():
        parser.error(f"{run} has no pretrain/model.pt: give a finished run folder")
    print(machine_line())
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for shards in (1, 2) if repeat % 2 == 0 else (2, 1):
                out = Path(tmp) / f"r{repeat}_s{shards}"
                times[shards].append(timed(run, out, shards))
                print(
                    f"repeat {repeat}: {'rank0' if shards == 1 else 'sharded'} "
                    f"{times[shards][-1]:.1f}s",
                    flush=True,
                )
            same_export(Path(tmp) / f"r{repeat}_s1", Path(tmp) / f"r{repeat}_s2")
    rank0, sharded = median(times[1]), median(times[2])
    print(f"rank0 (1 process, 2 threads): median {rank0:.1f}s of {times[1]}")
    print(f"sharded (2 processes, 1 thread each, gathered): median {sharded:.1f}s of {times[2]}")
    print("gathered export equals rank 0's: yes (keys, rows; features within 1e-4)")
    print(machine_line())
    print(verdict("sharded speed-up", rank0 / sharded, ">=", TARGET))


if __name__ == "__main__":
    main()
