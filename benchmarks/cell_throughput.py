"""DARTS cell space: search-step throughput of K separate networks vs one K-trial network.

    python benchmarks/cell_throughput.py [--quick] [--k 1 4 8 16] [--channels 4 8] [--px 16 32]
                                         [--formats nchw cl] [--steps 2] [--max-gb 6] [--depthwise fast|aten]

One search step = one alpha step + one weight step, first order (DARTS with inner step 0,
[003] section III-D): Adam on alpha (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3) and SGD
on the weights (momentum 0.9, weight decay 3e-4), as [003] section IV-B2 states; the weight
learning rate is not stated there (0.025 here, irrelevant to timing). A proxy network of
``--cells`` cells, batch ``--batch`` per trial, random data, one thread.

"loop" runs K = 1 networks one after another (the straightforward way, per trial); "batched"
runs one network holding K trials. "vs loop" is trial-steps/s over the NCHW loop's, measured in
this process. Configurations whose step would exceed ``--max-gb`` are skipped: DARTS supernets
are memory hungry (a 32 px, C = 8, K = 16 step peaked at 19.4 GB resident here). The estimate
is MEMORY_FACTOR x K x the bytes autograd saves in one K = 1 forward (0.97 GB for that case).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.spaces.darts_cell import OpSettings, SearchConfig, SearchNetwork, trial_cross_entropy  # noqa: E402

W_LR = 0.025  # not stated in [003] (weight learning rate); any value times the same
MEMORY_FACTOR = 1.25  # peak resident / saved activations, measured: 19.4 GB / (16 x 0.97 GB)


class Trainer:
    """A network with its alphas, optimizers and fixed random batches (train and validation)."""

    def __init__(self, config: SearchConfig, k: int, batch: int, px: int, channels_last: bool, seed: int) -> None:
        torch.manual_seed(seed)
        self.net = SearchNetwork(config, n_trials=k)
        shape = (k, config.n_edges, len(config.op_names))
        self.alphas = [(1e-3 * torch.randn(shape)).requires_grad_(), (1e-3 * torch.randn(shape)).requires_grad_()]
        # [003] IV-B2: Adam(3e-4, betas (0.5, 0.999), wd 1e-3) on alpha; SGD(momentum 0.9, wd 3e-4) on weights.
        self.opt_a = torch.optim.Adam(self.alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        self.opt_w = torch.optim.SGD(self.net.parameters(), lr=W_LR, momentum=0.9, weight_decay=3e-4)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.x = [torch.randn(batch, 3 * k, px, px).contiguous(memory_format=fmt) for _ in range(2)]
        self.y = [torch.randint(0, config.n_classes, (k, batch)) for _ in range(2)]

    def step(self) -> None:
        normal, reduce = self.alphas
        self.opt_a.zero_grad(set_to_none=True)
        loss = trial_cross_entropy(self.net(self.x[1], normal, reduce), self.y[1]).sum()
        grads = torch.autograd.grad(loss, self.alphas)  # weight gradients are not needed here
        for a, g in zip(self.alphas, grads):
            a.grad = g
        self.opt_a.step()
        self.opt_w.zero_grad(set_to_none=True)
        loss = trial_cross_entropy(self.net(self.x[0], normal.detach(), reduce.detach()), self.y[0]).sum()
        loss.backward()
        self.opt_w.step()


def saved_bytes(config: SearchConfig, batch: int, px: int) -> int:
    """Bytes autograd keeps for backward in one K = 1 forward (the bulk of a step's memory)."""
    trainer = Trainer(config, 1, batch, px, False, 0)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trainer.net(trainer.x[0], *trainer.alphas)
    return sum(seen.values())


def time_steps(trainers: list[Trainer], steps: int) -> float:
    """Seconds per round (one step of every trainer), after one warm-up round."""
    for t in trainers:
        t.step()
    start = time.perf_counter()
    for _ in range(steps):
        for t in trainers:
            t.step()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny CI-sized run (seconds)")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--px", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--formats", nargs="+", choices=["nchw", "cl"], default=["nchw", "cl"])
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--loop-nets", type=int, default=2, help="K=1 networks in the straightforward loop")
    parser.add_argument("--max-gb", type=float, default=6.0)
    parser.add_argument("--depthwise", choices=["fast", "aten"], default="fast",
                        help="depthwise backward: ours (depthwise.py) or PyTorch's")
    args = parser.parse_args(argv)
    if args.quick:
        args.k, args.channels, args.px, args.cells = [1, 2], [4], [8], 3
        args.batch, args.steps, args.loop_nets = 8, 1, 1
    torch.set_num_threads(1)
    ops = OpSettings(bn_affine=False, pool_bn=True, fast_depthwise=args.depthwise == "fast")
    print(f"# DARTS search step (alpha + weight, 1st order), {args.cells} cells, batch {args.batch}/trial, "
          f"1 thread, torch {torch.__version__}, depthwise backward: {args.depthwise}")
    print("| C | px | engine | format | K | s/step | steps/s | trial-steps/s | vs loop |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for c in args.channels:
        for px in args.px:
            config = SearchConfig(n_cells=args.cells, channels=c, ops=ops)
            per_trial_gb = MEMORY_FACTOR * saved_bytes(config, args.batch, px) / 1e9
            base = None
            for fmt in args.formats:
                cl = fmt == "cl"
                loop = [Trainer(config, 1, args.batch, px, cl, seed) for seed in range(args.loop_nets)]
                seconds = time_steps(loop, args.steps) / len(loop)
                base = base or 1 / seconds
                print(f"| {c} | {px} | loop | {fmt} | 1 | {seconds:.3f} | {1 / seconds:.2f} | {1 / seconds:.2f} | "
                      f"{1 / seconds / base:.2f} |", flush=True)
                del loop
                for k in args.k:
                    if k * per_trial_gb > args.max_gb:
                        print(f"| {c} | {px} | batched | {fmt} | {k} | skipped: ~{k * per_trial_gb:.1f} GB "
                              f"> --max-gb {args.max_gb:g} | | | |", flush=True)
                        continue
                    seconds = time_steps([Trainer(config, k, args.batch, px, cl, 100 + k)], args.steps)
                    print(f"| {c} | {px} | batched | {fmt} | {k} | {seconds:.3f} | {1 / seconds:.2f} | "
                          f"{k / seconds:.2f} | {k / seconds / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
