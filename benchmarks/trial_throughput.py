"""Trials per hour: loop engine vs batched engine, one process, one thread.

    python benchmarks/trial_throughput.py [--epochs 50] [--k 1 8 32 75] [--datasets blur downsampling]
                                          [--methods das random] [--loop-trials 1] [--backend auto]

For each data set and method (DAS on all ops, and the Random baseline) the loop engine runs
``--loop-trials`` trials one after another and the batched engine runs batches of K seeds;
both in this process, one thread, so the ratio is a like-for-like comparison. Achieved FLOP/s
use the FLOPs of one loop trial counted by ``torch.utils.flop_counter`` (convolutions and
matrix products, forward and backward; elementwise work is not counted), compared with this
machine's float32 matmul peak measured here. Ends with ``speedup K=<K>: <ratio>`` for the
largest K (DAS on the first data set, batched vs loop trials per hour).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.batched.fused_cnn import available, unavailable_reason  # noqa: E402
from harness.runner import TrialSpec, run_trial  # noqa: E402
from harness.runner.trial import run_batch  # noqa: E402


def matmul_peak(seconds: float = 1.0, n: int = 512) -> float:
    """float32 GFLOP/s of a square matmul on this thread (best of repeated runs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def make_spec(dataset: str, method: str, seed: int, epochs: int, options: dict) -> TrialSpec:
    return TrialSpec.make(
        dataset=dataset, space="sequential", op_set="all", method=method, hp_set="H1", seed=seed, epochs=epochs,
        options=options,
    )


def trial_flops(spec: TrialSpec) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        result = run_trial(spec)
    if result.status != "ok":
        raise RuntimeError(f"FLOP count trial failed: {result.failure_reason}")
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8, 32, 75])
    parser.add_argument("--datasets", nargs="+", default=["blur", "downsampling"])
    parser.add_argument("--methods", nargs="+", default=["das", "random"])
    parser.add_argument("--loop-trials", type=int, default=1)
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default: the problem's 2432)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = {"problem": {"samples_per_evaluation": args.samples}} if args.samples else {}
    peak = matmul_peak()
    kernel = "compiled fused kernel" if available() else f"reference kernels ({unavailable_reason()})"
    print(f"# {args.epochs} epochs, 1 thread, {kernel}; float32 matmul peak {peak:.1f} GFLOP/s; pid {os.getpid()}")
    print(f"{'dataset':13s} {'method':8s} {'engine':8s} {'K':>4s} {'s/trial':>9s} {'trials/h':>9s} "
          f"{'GFLOP/s':>8s} {'% peak':>7s} {'vs loop':>8s}")
    speedups = {}
    for dataset in args.datasets:
        for method in args.methods:
            flops = trial_flops(make_spec(dataset, method, 10_000, args.epochs, options))
            seed = 0
            t = time.perf_counter()
            for _ in range(args.loop_trials):
                r = run_trial(make_spec(dataset, method, seed, args.epochs, options))
                seed += 1
                if r.status != "ok":
                    print(f"  loop trial failed: {r.failure_reason}")
            per_trial = (time.perf_counter() - t) / args.loop_trials
            loop_rate = 3600 / per_trial
            gflops = flops / per_trial / 1e9
            print(f"{dataset:13s} {method:8s} {'loop':8s} {1:4d} {per_trial:9.2f} {loop_rate:9.1f} "
                  f"{gflops:8.2f} {100 * gflops / peak:6.1f}% {1.0:8.2f}")
            for k in args.k:
                specs = [make_spec(dataset, method, seed + i, args.epochs, options) for i in range(k)]
                seed += k
                t = time.perf_counter()
                results = run_batch(specs, engine="batched")
                per_trial = (time.perf_counter() - t) / k
                failed = sum(r.status != "ok" for r in results)
                rate = 3600 / per_trial
                gflops = flops / per_trial / 1e9
                speedups[(dataset, method, k)] = rate / loop_rate
                note = f"  ({failed} failed)" if failed else ""
                print(f"{dataset:13s} {method:8s} {'batched':8s} {k:4d} {per_trial:9.2f} {rate:9.1f} "
                      f"{gflops:8.2f} {100 * gflops / peak:6.1f}% {rate / loop_rate:8.2f}{note}")
            sys.stdout.flush()
    k = max(args.k)
    key = (args.datasets[0], args.methods[0], k)
    print(f"speedup K={k}: {speedups[key]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
