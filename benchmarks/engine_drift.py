"""How far a trial's result in a batch (K seeds) drifts from its result alone (K = 1), against how far
the loop drifts from itself when every initial network weight is nudged by one part in 2^23.

    python benchmarks/engine_drift.py [--method nets-only] [--op-set good] [--epochs 1 3 10] [--seeds 5]

Why: the two engines compute the same trial with different float summation orders. Training is
chaotic at float precision, so last-bit differences grow with the number of steps; a tolerance
for comparing engines is only meaningful next to this floor. Prints, per training length, the
largest and mean architecture-PSNR difference over the seeds for (batched - loop) and for
(nudged loop - loop), and how many genotypes agree (searching methods).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.runner import TrialSpec, run_trial  # noqa: E402
from harness.runner.trial import run_batch  # noqa: E402
from harness.spaces import ops  # noqa: E402

NUDGE = 1 + 2**-23


def _run_nudged(spec: TrialSpec):
    """``run_trial`` with every parameter of every 2-layer CNN scaled by ``NUDGE`` at construction."""
    original = ops.TwoLayerCNN.__init__

    def nudged(self, cfg, *args, **kwargs):
        original(self, cfg, *args, **kwargs)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(NUDGE)

    ops.TwoLayerCNN.__init__ = nudged
    try:
        return run_trial(spec)
    finally:
        ops.TwoLayerCNN.__init__ = original


def _max_and_mean(diffs: list[float]) -> tuple[float, float]:
    return max(map(abs, diffs)), sum(diffs) / len(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="blur")
    parser.add_argument("--method", default="nets-only")
    parser.add_argument("--op-set", default="good")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default: the problem's 2432)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = {"problem": {"samples_per_evaluation": args.samples}} if args.samples else {}
    print(
        f"# {args.dataset}, {args.method}, {args.op_set} ops, {args.seeds} seeds; architecture PSNR differences in dB"
    )
    print(
        f"{'epochs':>6s} {'batched-loop max':>17s} {'mean':>9s} {'nudged-loop max':>16s} {'mean':>9s} "
        f"{'same genotype (batched, nudged)':>32s}"
    )
    for epochs in args.epochs:
        specs = [
            TrialSpec.make(
                dataset=args.dataset,
                space="sequential",
                op_set=args.op_set,
                method=args.method,
                hp_set="H1",
                seed=seed,
                epochs=epochs,
                options=options,
            )
            for seed in range(args.seeds)
        ]
        loop = [run_trial(s) for s in specs]
        batched = run_batch(specs, batched=True)
        nudged = [_run_nudged(s) for s in specs]
        if any(r.status != "ok" for r in [*loop, *batched, *nudged]):
            print(f"{epochs:6d} (a trial failed; skipped)")
            continue
        d_batched = [b.arch_score - r.arch_score for b, r in zip(batched, loop)]
        d_nudged = [n.arch_score - r.arch_score for n, r in zip(nudged, loop)]
        same = (
            sum(b.genotype == r.genotype for b, r in zip(batched, loop)),
            sum(n.genotype == r.genotype for n, r in zip(nudged, loop)),
        )
        (bmax, bmean), (nmax, nmean) = _max_and_mean(d_batched), _max_and_mean(d_nudged)
        agree = f"{same[0]}/{args.seeds}, {same[1]}/{args.seeds}"
        print(f"{epochs:6d} {bmax:17.4f} {bmean:+9.4f} {nmax:16.4f} {nmean:+9.4f} {agree:>32s}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
