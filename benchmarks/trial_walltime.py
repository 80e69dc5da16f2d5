"""Wall time of single trials with the plain (loop) engine, one thread, for the closing notes.

    python benchmarks/trial_walltime.py [--epochs 50] [--seed 100]

Run it on an otherwise idle machine; times under load are not comparable.
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.runner import TrialSpec, run_trial

CASES = [("das", "all"), ("das", "good"), ("nets-only", "good"), ("random", "all")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--dataset", default="blur")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for method, op_set in CASES:
        spec = TrialSpec.make(dataset=args.dataset, space="sequential", op_set=op_set, method=method, hp_set="H1",
                              seed=args.seed, epochs=args.epochs)
        start = time.perf_counter()
        r = run_trial(spec)
        print(f"{method:10s} {op_set:4s} wall {time.perf_counter() - start:6.1f} s  search {r.search_runtime_s:6.1f} s"
              f"  retrain {r.retrain_runtime_s:6.1f} s  arch PSNR {r.arch_score:.2f}  ({r.status})", flush=True)


if __name__ == "__main__":
    main()
