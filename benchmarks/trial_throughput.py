"""Trials per hour on the trial axis: a trial alone (K = 1) vs K seeds as one computation, per
component kind, one process, one thread.

    python benchmarks/trial_throughput.py [--epochs 10] [--k 32] [--dataset blur] [--rows das gdas ...]
                                          [--samples N] [--alone-trials 1]

Each row is a preset that uses one component kind (and plain DAS and Random on the non-sequential
space). A trial alone runs ``--alone-trials`` trials one after another; each K runs one batch of K
seeds, in this process, one thread, so the ratio is like for like. A row that runs one trial at a
time in any batch (``ComposedSearch.trial_axis_reason``: none on the 1D spaces now) has only its
K = 1 timed. Achieved FLOP/s use the FLOPs of one trial alone
counted by ``torch.utils.flop_counter`` (convolutions and matrix products, forward and backward;
elementwise work is not counted) at 1 and 2 epochs and extrapolated linearly to ``--epochs``,
against this machine's float32 matmul peak measured here. Prints a markdown table, then
``speedup K=<K>: <ratio>`` for the first row and the largest K.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.runner import TrialSpec, run_trial  # noqa: E402
from harness.runner.trial import batching_reason, run_batch  # noqa: E402
from harness.spaces.kernels.fused_cnn import available, unavailable_reason  # noqa: E402

# (component kind, preset, space): one preset per kind of component.
ROWS = [
    ("plain DAS (softmax, 1st order, argmax)", "das", "sequential"),
    ("baseline: random architecture", "random", "sequential"),
    ("2nd-order estimator", "das-2nd", "sequential"),
    ("implicit estimator", "idarts", "sequential"),
    ("mixed-level estimator", "milenas", "sequential"),
    ("mixed-level 2nd order + lr schedule", "allegronas", "sequential"),
    ("Gumbel relaxation", "gdas", "sequential"),
    ("sampled paths + cost objective", "proxylessnas", "sequential"),
    ("sigmoid + zero-one loss + threshold", "fair-darts", "sequential"),
    ("hard-concrete gates + path regularizer", "pr-darts", "sequential"),
    ("novelty regularizer", "e2nas", "sequential"),
    ("beta decay", "beta-darts", "sequential"),
    ("MGDA + cost objectives + adversarial", "e2rnas", "sequential"),
    ("weight perturbation (random smoothing)", "sdarts-rs", "sequential"),
    ("weight perturbation (adversarial, PGD)", "sdarts-adv", "sequential"),
    ("mix hook (noisy inputs)", "noisy-darts", "sequential"),
    ("mix hook (auxiliary skip)", "darts-minus", "sequential"),
    ("early stopping (Hessian)", "darts-es", "sequential"),
    ("early stopping (rank stability)", "darts-plus", "sequential"),
    ("ablation loss", "d-darts", "sequential"),
    ("pre-trained, frozen ops", "das-single", "sequential"),
    ("discretization by perturbation", "darts-pt", "sequential"),
    ("stages with per-trial op masks + dropout", "p-darts", "sequential"),
    ("plain DAS, non-sequential space", "das", "nonsequential"),
    ("baseline: random, non-sequential space", "random", "nonsequential"),
]


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


def make_spec(dataset: str, method: str, space: str, seed: int, epochs: int, options: dict) -> TrialSpec:
    return TrialSpec.make(dataset=dataset, space=space, op_set="all", method=method, hp_set="H1", seed=seed,
                          epochs=epochs, options=options)


def trial_flops(dataset: str, method: str, space: str, epochs: int, options: dict) -> float:
    """FLOPs of one trial alone at ``epochs``, from counts at m and 2m epochs (linear in epochs; m = 1,
    or a staged method's number of stages, each of which needs an epoch)."""
    from torch.utils.flop_counter import FlopCounterMode

    from harness.methods.preset_registry import make_method

    preset = make_method(method)
    m = len(preset.plan(None)[0]) if hasattr(preset, "plan") else 1
    counts = []
    for e in (m, 2 * m):
        counter = FlopCounterMode(display=False)
        with counter:
            result = run_trial(make_spec(dataset, method, space, 10_000, e, options))
        if result.status != "ok":
            raise RuntimeError(f"FLOP count trial failed: {result.failure_reason}")
        counts.append(float(counter.get_total_flops()))
    return counts[0] + (counts[1] - counts[0]) * (epochs - m) / m


def _key_value(text: str, parser: argparse.ArgumentParser) -> tuple[str, object]:
    """'hvp=exact' -> ('hvp', 'exact'); numbers as numbers (the row's option types check the rest)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        parser.error(f"--method-option wants KEY=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--k", type=int, nargs="+", default=[32])
    parser.add_argument("--dataset", default="blur")
    parser.add_argument("--rows", nargs="+", help="presets (with --space) to time instead of every row")
    parser.add_argument("--space", default="sequential", help="space of --rows")
    parser.add_argument("--alone-trials", type=int, default=1)
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default: the problem's 2432)")
    parser.add_argument("--noise-op-std", type=float, default=4.0, help="the [001] studies' calibrated value")
    parser.add_argument("--method-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a preset option for every row of --rows, e.g. hvp=exact for idarts (repeatable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = {"ops": {"noise_op_std": args.noise_op_std}}
    if args.method_option:
        options["method"] = dict(_key_value(text, parser) for text in args.method_option)
    if args.samples:
        options["problem"] = {"samples_per_evaluation": args.samples}
    rows = [(m, m, args.space) for m in args.rows] if args.rows else ROWS
    peak = matmul_peak()
    kernel = "compiled fused kernel" if available() else f"reference kernels ({unavailable_reason()})"
    print(f"# {args.dataset}, all ops, H1, {args.epochs} epochs, 1 thread, {kernel}; float32 matmul peak "
          f"{peak:.1f} GFLOP/s; pid {os.getpid()}")
    print("| component kind | preset | space | K | s/trial | trials/h | GFLOP/s | % peak | vs K = 1 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    speedups = {}
    for kind, method, space in rows:
        flops = trial_flops(args.dataset, method, space, args.epochs, options)
        seed = 0
        t = time.perf_counter()
        for _ in range(args.alone_trials):
            r = run_trial(make_spec(args.dataset, method, space, seed, args.epochs, options))
            seed += 1
            if r.status != "ok":
                print(f"  a trial alone failed: {r.failure_reason}")
        per_trial = (time.perf_counter() - t) / args.alone_trials
        alone_rate = 3600 / per_trial
        gflops = flops / per_trial / 1e9
        print(f"| {kind} | {method} | {space} | 1 | {per_trial:.2f} | {alone_rate:.1f} | {gflops:.2f} | "
              f"{100 * gflops / peak:.1f}% | 1.00 |")
        reason = batching_reason(make_spec(args.dataset, method, space, 0, args.epochs, options))
        if reason:
            print(f"| {kind} | {method} | {space} | - | one trial at a time: {reason} | | | | |")
            continue
        for k in args.k:
            specs = [make_spec(args.dataset, method, space, seed + i, args.epochs, options) for i in range(k)]
            seed += k
            t = time.perf_counter()
            results = run_batch(specs, batched=True)
            per_trial = (time.perf_counter() - t) / k
            failed = sum(r.status != "ok" for r in results)
            rate = 3600 / per_trial
            gflops = flops / per_trial / 1e9
            speedups[(method, space, k)] = rate / alone_rate
            note = f" ({failed} failed)" if failed else ""
            print(f"| {kind} | {method} | {space} | {k} | {per_trial:.2f} | {rate:.1f} | {gflops:.2f} | "
                  f"{100 * gflops / peak:.1f}% | {rate / alone_rate:.2f}{note} |")
        sys.stdout.flush()
    k = max(args.k)
    first = rows[0]
    if (first[1], first[2], k) in speedups:
        print(f"speedup K={k}: {speedups[(first[1], first[2], k)]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
