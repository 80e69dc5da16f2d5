"""DARTS cell space: retraining-step throughput of K separate EvalNetworks vs one BatchedEvalNetwork.

    python benchmarks/eval_throughput.py [--quick] [--k 1 4 8 16] [--channels 8] [--px 16 32]
                                         [--formats nchw cl] [--steps 3]

One retraining step as DARTS retrains ([003] section IV-B3): forward with the auxiliary head
(weight 0.4) and drop path 0.2, backward, gradient clipping at norm 5 per network, SGD
(lr 0.025, momentum 0.9, weight decay 3e-4). K random genotypes (uniform ops and inputs), a
proxy network of ``--cells`` cells, batch ``--batch`` per trial, random data, one thread.

"loop" steps the K networks one after another (the straightforward way); "batched" is one
``BatchedEvalNetwork`` built from the same K networks. "vs loop" is trial-steps/s over the
NCHW loop's for the same K genotypes, measured in this process (CPU time, rounds interleaved,
best of ``--steps`` kept: the machine may be shared).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.spaces.darts_cell import (  # noqa: E402
    OP_NAMES,
    BatchedEvalNetwork,
    EvalConfig,
    EvalNetwork,
    batched_eval_loss,
    eval_loss,
    make_genotype,
    per_trial_grad_norm_clip,
)

CLIP = 5.0  # DARTS clips each network's gradient norm at 5 (not stated in [003]; DARTS's code)


def random_genotypes(k: int, seed: int) -> list:
    rng = random.Random(seed)
    ops = [o for o in OP_NAMES if o != "none"]
    cell = lambda: [(rng.choice(ops), rng.randrange(node + 2)) for node in range(4) for _ in range(2)]
    return [make_genotype(cell(), cell()) for _ in range(k)]


class Trainer:
    """One network (K = 1 EvalNetwork or a BatchedEvalNetwork) with its optimizer and batch."""

    def __init__(self, net: torch.nn.Module, k: int, batch: int, px: int, channels_last: bool, seed: int) -> None:
        self.batched = isinstance(net, BatchedEvalNetwork)
        gens = [torch.Generator().manual_seed(seed + t) for t in range(k)]
        if self.batched:
            net.set_drop_path(0.2, gens)
        else:
            net.set_drop_path(0.2, gens[0])
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(memory_format=fmt).train()
        self.opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, 3 * k, px, px, generator=gen).contiguous(memory_format=fmt)
        shape = (k, batch) if self.batched else (batch,)
        self.y = torch.randint(0, 10, shape, generator=gen)

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        if self.batched:
            batched_eval_loss(*self.net(self.x), self.y).sum().backward()
            per_trial_grad_norm_clip(self.net, CLIP)
        else:
            eval_loss(*self.net(self.x), self.y).backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), CLIP)
        self.opt.step()


def time_rounds(trainers: list[list[Trainer]], rounds: int) -> list[float]:
    """Best CPU seconds per round (one step of every trainer of a set) for each set, after one
    warm-up round. Process CPU time, rounds interleaved, minimum kept: on a shared machine wall
    time mostly measures the other processes (one thread, so CPU time is the step's cost)."""
    best = [float("inf")] * len(trainers)
    for r in range(rounds + 1):
        for i, group in enumerate(trainers):
            start = time.process_time()
            for t in group:
                t.step()
            if r:
                best[i] = min(best[i], time.process_time() - start)
    return best


def networks(genotypes: list, config: EvalConfig, seed: int) -> list[EvalNetwork]:
    out = []
    for t, g in enumerate(genotypes):
        torch.manual_seed(seed + t)
        out.append(EvalNetwork(g, config))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny CI-sized run (seconds)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--channels", type=int, nargs="+", default=[8])
    parser.add_argument("--px", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--formats", nargs="+", choices=["nchw", "cl"], default=["nchw", "cl"])
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds after a warm-up (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.k, args.channels, args.px, args.cells, args.batch, args.steps = [1, 4], [4], [8], 3, 8, 2
    torch.set_num_threads(1)
    print(f"# DARTS retraining step (aux 0.4, drop path 0.2, clip {CLIP:g}, SGD), {args.cells} cells, "
          f"batch {args.batch}/trial, random genotypes, 1 thread, torch {torch.__version__}")
    print("| C | px | engine | format | K | CPU s/step | trial-steps/s | vs loop |")
    print("|---:|---:|---|---|---:|---:|---:|---:|")
    for c in args.channels:
        config = EvalConfig(n_cells=args.cells, channels=c)
        for px in args.px:
            for k in args.k:
                genotypes = random_genotypes(k, args.seed + k)
                base = None
                for fmt in args.formats:
                    cl = fmt == "cl"
                    sets = [[Trainer(net, 1, args.batch, px, cl, args.seed + t)
                             for t, net in enumerate(networks(genotypes, config, args.seed))]]
                    net = BatchedEvalNetwork.from_networks(networks(genotypes, config, args.seed))
                    sets.append([Trainer(net, k, args.batch, px, cl, args.seed)])
                    for name, seconds in zip(["loop", "batched"], time_rounds(sets, args.steps)):
                        base = base or k / seconds
                        print(f"| {c} | {px} | {name} | {fmt} | {k} | {seconds:.3f} | {k / seconds:.2f} | "
                              f"{k / seconds / base:.2f} |", flush=True)
                    del sets
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
