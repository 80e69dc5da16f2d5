"""Forward+backward time of the 2-layer CNN op over K seeds: per-seed nn loop vs batched reference vs fused kernel.

    python benchmarks/fused_cnn_kernel.py [--k 1 8 32] [--repeats 20] [--threads 1]

Times are the best of --repeats runs (robust to background load) of forward + backward (gradients w.r.t. u and
all parameters, output gradient given), training mode, B=128, N=50, C=16, k=3 by default. On a shared machine
compare the ratios rather than the times.
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.spaces.kernels import fused_cnn
from harness.spaces.ops import OpConfig, TwoLayerCNN


def _best_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def bench(K: int, B: int, N: int, C: int, ks: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = OpConfig(channels=C, kernel_size=ks)
    nets = [TwoLayerCNN(cfg) for _ in range(K)]
    u = torch.randn(K, B, N)
    g = torch.randn(K, B, N)

    def loop():
        xs = [u[k].unsqueeze(1).clone().requires_grad_() for k in range(K)]
        torch.autograd.backward([net(x) for net, x in zip(nets, xs)], [g[k].unsqueeze(1) for k in range(K)])

    def stacked(module: str, attr: str, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.stack([getattr(getattr(n, module), attr).detach() for n in nets]).reshape(shape).requires_grad_()

    w1, b1 = stacked("conv1", "weight", (K, C, ks)), stacked("conv1", "bias", (K, C))
    gamma, beta = stacked("bn", "weight", (K, C)), stacked("bn", "bias", (K, C))
    w2, b2 = stacked("conv2", "weight", (K, C, ks)), stacked("conv2", "bias", (K,))

    def batched(backend):
        def run():
            x = u.clone().requires_grad_()
            out, _, _ = fused_cnn.two_layer_cnn(x, w1, b1, gamma, beta, w2, b2, training=True, backend=backend)
            out.backward(g)
        return run

    res = {"loop": _best_ms(loop, repeats), "reference": _best_ms(batched("reference"), repeats)}
    if fused_cnn.available():
        res["compiled"] = _best_ms(batched("compiled"), repeats)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--kernel-size", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not fused_cnn.available():
        print(f"compiled kernel unavailable: {fused_cnn.unavailable_reason()}")
    print(f"forward+backward, training mode, B={args.batch} N={args.length} C={args.channels} "
          f"k={args.kernel_size}, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'K':>4} {'loop ms':>9} {'ref ms':>9} {'fused ms':>9} {'ref/loop':>9} {'loop/ref':>9} {'loop/fused':>11}"
          f" {'fused us/seed':>14}")
    for K in args.k:
        r = bench(K, args.batch, args.length, args.channels, args.kernel_size, args.repeats)
        c = r.get("compiled", float("nan"))
        print(f"{K:>4} {r['loop']:9.3f} {r['reference']:9.3f} {c:9.3f} {r['reference'] / r['loop']:9.2f} "
              f"{r['loop'] / r['reference']:9.2f} {r['loop'] / c:11.2f} {1e3 * c / K:14.1f}", flush=True)


if __name__ == "__main__":
    main()
