"""Calibrate the 1D problem's open choices against [001] Table 1's single-op baselines.

For each reading (noise level, sigma_b units) it trains the "Learnable Grad. only" and
"Nets only" networks and reports their validation PSNR under every peak convention, next to
the paper's medians. The evidence for our defaults (docs/open_choices.md) comes from here.

    python benchmarks/calibrate_problem.py --epochs 50 --seeds 2 --workers 2
"""

from __future__ import annotations

import argparse
import itertools

import torch
from joblib import Parallel, delayed

PAPER_MEDIANS = {("blur", "lg-only"): 16.49, ("blur", "nets-only"): 20.71,
                 ("downsampling", "lg-only"): 13.55, ("downsampling", "nets-only"): 14.05}
READINGS = {
    "text (noise 0.01, sigma in samples)": {"noise_std": 0.01, "blur_sigma_units": "samples"},
    "noise 0.10, sigma in samples": {"noise_std": 0.10, "blur_sigma_units": "samples"},
    "noise 0.01, sigma in w units": {"noise_std": 0.01, "blur_sigma_units": "domain"},
    "noise 0.10, sigma in w units": {"noise_std": 0.10, "blur_sigma_units": "domain"},
}
PEAKS = ("range", "max", "unit")


def one_run(reading: str, dataset: str, method: str, seed: int, epochs: int) -> dict:
    torch.set_num_threads(1)
    from harness.methods import make_method
    from harness.methods.training import evaluate_primary, train_network
    from harness.runner.spec import TrialSpec
    from harness.runner.trial import build_context

    spec = TrialSpec.make(dataset=dataset, space="sequential", op_set="good", method=method, hp_set="H1",
                          seed=seed, epochs=epochs, options={"problem": READINGS[reading]})
    _, ctx = build_context(spec, "cpu")
    genotype = make_method(method).search(ctx).genotype
    with ctx.streams.seeded_init("retrain_init"):
        model = ctx.space.network(genotype, ctx.op_config)
    train_network(model, ctx, ctx.streams.generator("retrain_data"), ctx.streams.generator("noise_op"))
    row = {"reading": reading, "dataset": dataset, "method": method, "seed": seed}
    base = ctx.problem.config
    for peak in PEAKS:
        ctx.problem.config = base.replace(psnr_peak=peak)
        row[peak] = evaluate_primary(model, ctx)
        row[f"input_{peak}"] = input_psnr(ctx)
    ctx.problem.config = base
    return row


def input_psnr(ctx) -> float:
    """PSNR of the network input u0 itself (no learning), for orientation."""
    gen = ctx.streams.fresh("eval")
    x, y = ctx.problem.sample(ctx.problem.config.samples_per_evaluation, gen)
    return float(ctx.problem.psnr(ctx.problem.network_input(y).squeeze(1), x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    jobs = list(itertools.product(READINGS, ("blur", "downsampling"), ("lg-only", "nets-only"), range(args.seeds)))
    rows = Parallel(n_jobs=args.workers)(delayed(one_run)(*job, args.epochs) for job in jobs)
    import pandas as pd

    df = pd.DataFrame(rows).groupby(["reading", "dataset", "method"], sort=False).mean(numeric_only=True)
    df["paper_median"] = [PAPER_MEDIANS[(d, m)] for _, d, m in df.index]
    pd.set_option("display.width", 200)
    print(df.drop(columns="seed").round(2).to_string())


if __name__ == "__main__":
    main()
