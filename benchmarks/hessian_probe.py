"""The end-of-search Hessian diagnostic of K trials: power iteration with Hessian-vector products
from central differences of exact gradients (the engine) against exact double-backward products
(the former engine), on the same batch of trials, in this process, one thread.

    python benchmarks/hessian_probe.py [--space nonsequential] [--k 25] [--epochs 1] [--samples 640]
                                       [--repeats 1]

Runs one batch of K plain-DAS trials (blur, all ops, H1) per variant, alternating, and reports the
batch's wall time, the time spent in the diagnostic (``SearchFinish._final_eigenvalues``), and the
largest relative difference of the trials' eigenvalues between the variants. Every other number of
a trial is the same in both (the diagnostic reads the supernet, it does not change it). Prints a
markdown table and ``diagnostic speedup: <ratio>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.methods import hessian, search_finish  # noqa: E402
from harness.runner import TrialSpec  # noqa: E402
from harness.runner.trial import run_batch  # noqa: E402


def timed_batch(specs, hvp) -> tuple[float, float, list[float]]:
    """(batch wall s, diagnostic s, eigenvalues) with ``hvp`` as the K-trial product of the 1D
    spaces (the "difference" products that ``dominant_eigenvalues`` looks up)."""
    spent = []
    original_final = search_finish.SearchFinish._final_eigenvalues

    def timed_final(self, run, final):
        t = time.perf_counter()
        out = original_final(self, run, final)
        spent.append(time.perf_counter() - t)
        return out

    original_hvp = hessian.HESSIAN_PRODUCTS["difference"]
    hessian.HESSIAN_PRODUCTS["difference"] = hvp
    search_finish.SearchFinish._final_eigenvalues = timed_final
    try:
        t = time.perf_counter()
        results = run_batch(specs, batched=True)
        wall = time.perf_counter() - t
    finally:
        hessian.HESSIAN_PRODUCTS["difference"] = original_hvp
        search_finish.SearchFinish._final_eigenvalues = original_final
    failed = [r.failure_reason for r in results if r.status != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} trials failed: {failed[0]}")
    return wall, sum(spent), [r.extra["hessian_eigenvalue"] for r in results]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="nonsequential")
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--samples", type=int, default=640, help="samples per epoch (the problem's: 2432)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = {"ops": {"noise_op_std": 4.0}, "problem": {"samples_per_evaluation": args.samples}}
    specs = [TrialSpec.make(dataset="blur", space=args.space, op_set="all", method="das", hp_set="H1", seed=s,
                            epochs=args.epochs, options=options) for s in range(args.k)]
    variants = {"exact (double backward)": hessian.trial_exact_hvp,
                "differences (engine)": hessian.trial_difference_hvp}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    values: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, hvp in variants.items():
            wall, diag, eig = timed_batch(specs, hvp)
            times[name].append((wall, diag))
            values[name] = eig
    print(f"# {args.space}, blur, all ops, DAS, H1, K = {args.k}, {args.epochs} epoch(s), {args.samples} samples, "
          f"1 thread, median of {args.repeats}")
    print("| Hessian-vector products | batch s | diagnostic s | diagnostic share |")
    print("|---|---:|---:|---:|")
    medians = {}
    for name, pairs in times.items():
        wall, diag = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        medians[name] = diag
        print(f"| {name} | {wall:.1f} | {diag:.1f} | {100 * diag / wall:.0f}% |")
    exact, diff = values.values()
    rel = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(exact, diff))
    print(f"largest relative difference of the {args.k} eigenvalues: {rel:.2e}")
    first, second = medians.values()
    print(f"diagnostic speedup: {first / second:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
