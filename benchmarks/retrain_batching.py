"""Retraining K trials whose genotypes differ: which batching is fastest?

    python benchmarks/retrain_batching.py [--k 32] [--epochs 5] [--genotypes das|random] [--dataset blur]

Three ways to train K discrete networks with different genotypes as batched computations:

- ``per-layer``: the engine's way (``train_fixed``). At each layer the seeds that chose an op
  run that op together; nothing runs for a seed that did not choose it.
- ``by-genotype``: split the K jobs into groups of identical genotype; each group is one
  ``train_fixed`` call (every layer then runs one op for the whole group).
- ``masked``: every seed runs the whole supernet (all ops at every layer) and a one-hot weight
  keeps its chosen op. Timed only: unused ops draw noise and update BatchNorm statistics, so
  it could not keep each trial's random streams equal to the loop's even if it were faster.

Genotypes are the 75 DAS-searched architectures of the committed reference run
(``results/blur-75trials``, all ops; ``--genotypes das``) or uniformly random ones. One thread;
prints seconds per trial for each strategy and the ratio to ``per-layer``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from harness.batched.engine import FixedJob, evaluate, fit, train_fixed  # noqa: E402
from harness.batched.networks import BatchedSequential  # noqa: E402
from harness.runner import TrialSpec  # noqa: E402
from harness.runner.trial import build_context  # noqa: E402

REFERENCE = ROOT / "results" / "blur-75trials" / "trials.jsonl"


def reference_genotypes() -> list[list[str]]:
    rows = [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]
    return [r["genotype"] for r in rows if r["method"] == "das" and r["op_set"] == "all" and r["status"] == "ok"]


def make_jobs(dataset: str, k: int, epochs: int, source: str, samples: int | None = None) -> list[FixedJob]:
    jobs = []
    pool = reference_genotypes() if source == "das" else None
    options = {"problem": {"samples_per_evaluation": samples}} if samples else {}
    for seed in range(k):
        spec = TrialSpec.make(
            dataset=dataset,
            space="sequential",
            op_set="all",
            method="random",
            hp_set="H1",
            seed=seed,
            epochs=epochs,
            options=options,
        )
        _, ctx = build_context(spec)
        if pool is not None:
            genotype = pool[seed % len(pool)]
        else:
            genotype = ctx.space.random_genotype(ctx.ops, ctx.streams.generator("arch"))
        jobs.append(FixedJob(ctx, genotype, ctx.streams))
    return jobs


def by_genotype(jobs: list[FixedJob]) -> None:
    groups: dict[tuple, list[FixedJob]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.genotype), []).append(job)
    for group in groups.values():
        train_fixed(group)


def masked(jobs: list[FixedJob]) -> None:
    """``train_fixed`` on supernets with one-hot mixing weights (timing only)."""
    ctx = jobs[0].ctx
    ops = ctx.ops
    supernets = []
    for job in jobs:
        with job.streams.seeded_init("retrain_init"):
            supernets.append(job.ctx.space.supernet(ops, job.ctx.op_config))
    net = BatchedSequential(supernets, ctx.op_config, ctx.device)
    onehot = torch.zeros(len(jobs), len(jobs[0].genotype), len(ops))
    for s, job in enumerate(jobs):
        for layer, op in enumerate(job.genotype):
            onehot[s, layer, ops.index(op)] = 1.0
    fit(net, jobs, onehot)
    evaluate(net, [j.ctx for j in jobs], onehot, "auto")


STRATEGIES = {"per-layer": train_fixed, "by-genotype": by_genotype, "masked": masked}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dataset", default="blur")
    parser.add_argument("--genotypes", choices=("das", "random"), default="das")
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default: the problem's 2432)")
    parser.add_argument("--strategies", nargs="+", choices=sorted(STRATEGIES), default=list(STRATEGIES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    distinct = len({tuple(j.genotype) for j in make_jobs(args.dataset, args.k, 1, args.genotypes, args.samples)})
    print(
        f"# {args.dataset}, K={args.k}, {args.epochs} epochs, {args.genotypes} genotypes "
        f"({distinct} distinct), 1 thread"
    )
    for name in args.strategies:  # warm-up: kernel loading, allocator growth
        STRATEGIES[name](make_jobs(args.dataset, 2, 1, args.genotypes, args.samples))
    print(f"{'strategy':12s} {'s/trial':>8s} {'vs per-layer':>13s}")
    times = {}
    for name in args.strategies:
        jobs = make_jobs(args.dataset, args.k, args.epochs, args.genotypes, args.samples)
        start = time.perf_counter()
        STRATEGIES[name](jobs)
        times[name] = (time.perf_counter() - start) / args.k
        base = times.get("per-layer")
        ratio = f"{times[name] / base:13.2f}" if base else f"{'':>13s}"
        print(f"{name:12s} {times[name]:8.3f} {ratio}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
