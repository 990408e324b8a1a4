"""Evaluation at scale: retrieval and linear-probe time and peak memory at 1e3, 1e4, 1e5 embeddings.

    .venv/bin/python -m benchmarks.eval_scale [--sizes 1000 10000 100000] [--max-queries 10000]
    .venv/bin/python -m benchmarks.eval_scale --only retrieval --sizes 100000 --max-queries 0

Random 512-d float32 embeddings, each measurement in a fresh (spawned) process:
  retrieval  `medrep.evaluation.retrieval.topk_cosine` (top-10 cosine, chunks of 256 queries) of
             min(N, --max-queries) queries against N candidates (0: all N queries); all-pairs
             work, so its time grows as queries x candidates: ns a pair is the comparable figure
  probe      `medrep.evaluation.probe.linear_probe`, one label, a single C (1.0: no validation
             sweep), N training rows and N/10 validation and test rows, under the evaluation
             config's `eval.blas_threads`
Memory of the call (what it needs beyond its inputs): for retrieval, torch's allocations, which
tracemalloc does not see: the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs once the inputs exist) less its resident set just before the call; for the
probe, tracemalloc's peak (exact for numpy and scikit-learn; the RSS delta, which the allocator's
reuse of resident pages blurs at small sizes, beside it). The process's whole peak is context.
Targets: memory grows linearly (<= 11x per 10x, 10% for noise; quadratic would be 100x); the
1e5 x 1e5 retrieval fits in 2 GB (whole process), checked when N queries run against N
candidates. Absolute times are context only.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import compose_config, machine_line, verdict

DIM = 512
K = 10
LINEAR = 11.0  # memory per 10x
LIMIT_MIB = 2048.0


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, KiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak() -> None:
    """Set VmHWM to the current resident set (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def probe_data(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and a noisy linear label, [rows, DIM] float32 and [rows, 1] {0, 1}."""
    x = rng.standard_normal((rows, DIM), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
    y = (x @ w + rng.standard_normal(rows, dtype=np.float32) > 0).astype(np.float64)
    return x, y[:, None]


def measure(kind: str, n: int, queries: int, torch_threads: int, blas_threads: int) -> dict:
    """One measurement, meant for a fresh process: seconds, call's peak MiB, process peak MiB."""
    import torch
    from threadpoolctl import threadpool_limits

    from medrep.evaluation.probe import linear_probe
    from medrep.evaluation.retrieval import topk_cosine

    torch.set_num_threads(torch_threads)
    rng = np.random.default_rng(0)
    if kind == "retrieval":
        q = rng.standard_normal((queries, DIM), dtype=np.float32)
        c = rng.standard_normal((n, DIM), dtype=np.float32)
        topk_cosine(q[:8], c[:64], K)  # warm-up: kernels, lazy imports

        def call() -> Any:
            return topk_cosine(q, c, K)

    else:
        train, val, test = probe_data(rng, n), probe_data(rng, n // 10), probe_data(rng, n // 10)
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            linear_probe(
                *probe_data(rng, 200), *probe_data(rng, 50), *probe_data(rng, 50), ["y"], (1.0,)
            )

        def call() -> Any:
            with threadpool_limits(limits=blas_threads, user_api="blas"):
                return linear_probe(*train, *val, *test, ["y"], c_grid=(1.0,))

    gc.collect()
    before = memory_kib()["VmRSS"]
    reset_peak()
    if kind == "probe":  # numpy and scikit-learn report their allocations to tracemalloc
        tracemalloc.start()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak = memory_kib()["VmHWM"]
    out = {"seconds": seconds, "rss_mib": (peak - before) / 1024, "peak_mib": peak / 1024}
    if kind == "probe":
        out["traced_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        out["auroc"] = result.macro_auroc
    out["call_mib"] = out.get("traced_mib", out["rss_mib"])
    return out


def in_fresh_process(*args: Any) -> dict:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, *args).result()


def per_10x(rows: list[dict], key: str) -> list[float]:
    return [b[key] / a[key] for a, b in zip(rows, rows[1:], strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--max-queries", type=int, default=10000, help="0: N queries")
    parser.add_argument("--only", choices=("all", "retrieval", "probe"), default="all")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medrep-bench-") as tmp:
        cfg = compose_config(Path(tmp))
    torch_threads = int(cfg.threads) if cfg.get("threads") else 0
    blas_threads = int(cfg.eval.blas_threads)
    import torch

    torch_threads = torch_threads or torch.get_num_threads()
    print(machine_line())
    print(f"embeddings {DIM}-d float32; eval.blas_threads {blas_threads}")
    kinds = ("retrieval", "probe") if args.only == "all" else (args.only,)
    for kind in kinds:
        rows = []
        for n in args.sizes:
            queries = n if args.max_queries == 0 else min(n, args.max_queries)
            row = in_fresh_process(kind, n, queries, torch_threads, blas_threads)
            rows.append({"n": n, "queries": queries, **row})
        print(f"\n## {kind}")
        if kind == "retrieval":
            print(
                "| candidates | queries | seconds | ns a pair | call's peak MiB | process peak MiB |"
            )
            print("|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                pair_ns = 1e9 * r["seconds"] / (r["n"] * r["queries"])
                print(
                    f"| {r['n']:,} | {r['queries']:,} | {r['seconds']:.2f} | {pair_ns:.2f} | "
                    f"{r['call_mib']:.1f} | {r['peak_mib']:.0f} |"
                )
        else:
            print(
                "| training rows | seconds | call's peak MiB (tracemalloc) | RSS delta MiB | "
                "process peak MiB | AUROC |"
            )
            print("|---:|---:|---:|---:|---:|---:|")
            for r in rows:
                print(
                    f"| {r['n']:,} | {r['seconds']:.2f} | {r['call_mib']:.1f} | "
                    f"{r['rss_mib']:.1f} | {r['peak_mib']:.0f} | {r['auroc']:.3f} |"
                )
        for a, b, ratio, time_ratio in zip(
            rows, rows[1:], per_10x(rows, "call_mib"), per_10x(rows, "seconds"), strict=False
        ):
            step = f"{a['n']:,} -> {b['n']:,}"
            if kind == "retrieval" and a["queries"] != b["queries"]:
                step += f" (queries {a['queries']:,} -> {b['queries']:,})"
            print(f"{kind} {step}: time {time_ratio:.1f}x")
            print(verdict(f"{kind} memory {step}", ratio, "<=", LINEAR))
        if kind == "retrieval":
            full = [r for r in rows if r["n"] == r["queries"] and r["n"] >= 100000]
            if full:
                r = full[-1]
                print(
                    verdict(
                        f"{r['n']:,} x {r['n']:,} retrieval, process peak",
                        r["peak_mib"],
                        "<=",
                        LIMIT_MIB,
                        " MiB",
                    )
                )
            else:
                print(
                    "1e5 x 1e5 within 2 GB: not checked in this run (N queries against N "
                    "candidates only up to the cap; --max-queries 0 --sizes 100000 checks it)"
                )
    print(machine_line())
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
