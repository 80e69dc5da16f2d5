"""The tuning backends (hpbandster's BOHB, SMAC3's multi-fidelity facade, Optuna's TPE + Hyperband
pruner) on the same small tuning problem with the same budget: incumbent score against evaluations.

    python benchmarks/tuner_comparison.py [--backends hpbandster smac optuna] [--iterations 4]
        [--min-budget 1] [--max-budget 9] [--eta 3] [--seed 0] [--samples 256] [--channels 4]
        [--synthetic] [--png PATH]

The problem: DAS on Blur, sequential space, all ops, the Table 7 space, objective ``architecture``,
one trial seed, a small problem (``--samples``, ``--channels``) so that a run takes minutes on a CPU.
Every backend gets ``--iterations`` hyperband iterations of the same budgets (Optuna: the same
trial-epochs, see harness/tune/optuna_backend.py). ``--synthetic`` replaces the trials by a smooth
function of the hyperparameters (seconds; checks the plumbing, says nothing about the optimizers).

Prints two markdown tables: per backend the evaluations, trial-epochs, best score on the largest
budget and wall time; then the incumbent score (best on the largest budget reached so far, with that
budget) after n evaluations. A single seed of a few iterations is anecdote, not a ranking.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKENDS = ("hpbandster", "smac", "optuna")


def synthetic_run(specs):
    """A run_batch stand-in: best near param_lr = alpha_lr = 1e-3 with adam, better with more epochs."""
    from harness.runner.spec import STATUS_OK, TrialResult

    out = []
    for s in specs:
        hp = s.hp_overrides_dict
        score = 20 - abs(math.log10(hp["param_lr"]) + 3) - abs(math.log10(hp["alpha_lr"]) + 3)
        score += 1.0 * (hp["alpha_optimizer"] == "adam") - 0.5 * hp["alpha_warmup"] + 2 * math.log(s.epochs + 1)
        out.append(TrialResult(spec=s, status=STATUS_OK, oneshot_score=score - 1, arch_score=score))
    return out


def tune_config(args: argparse.Namespace, backend: str):
    from harness.tune.config import parse_tune

    data = {
        "name": f"compare_{backend}", "dataset": "blur", "space": "sequential", "op_set": "all", "method": "das",
        "objective": "architecture", "iterations": args.iterations, "min_budget": args.min_budget,
        "max_budget": args.max_budget, "eta": args.eta, "seed": args.seed, "backend": backend,
        "options": {"problem": {"samples_per_evaluation": args.samples}, "ops": {"channels": args.channels}},
    }
    return parse_tune(data, f"<{backend}>")


def run_backend(backend: str, args: argparse.Namespace, folder: Path) -> tuple[list, float]:
    """(runs in the order they finished, wall seconds) of one tuning run."""
    from harness.tune.objective import TrialObjective
    from harness.tune.runlog import require_backend

    require_backend(backend)
    config = tune_config(args, backend)
    objective = (TrialObjective(config.task, config.objective, config.trial_seeds, run=synthetic_run)
                 if args.synthetic else config.make_objective())
    if backend == "hpbandster":
        from harness.tune.bohb import HpBandSterTuner
        from harness.tune.pyro_hmac import master_key

        tuner = HpBandSterTuner(folder, run_id=config.name)
    elif backend == "smac":
        from harness.tune.smac_backend import SmacTuner

        tuner = SmacTuner(folder, run_name=config.name)
    else:
        from harness.tune.optuna_backend import OptunaTuner

        tuner = OptunaTuner(folder, run_name=config.name)
    start = time.perf_counter()
    if backend == "hpbandster":
        with master_key():
            result = tuner.optimize(objective, config.make_space(), config.budgets, args.iterations, args.seed)
    else:
        result = tuner.optimize(objective, config.make_space(), config.budgets, args.iterations, args.seed)
    seconds = time.perf_counter() - start
    return sorted(result.runs, key=lambda r: r.finished), seconds


def trajectory(runs: list) -> list[tuple[float | None, float | None]]:
    """(incumbent score, its budget) after each evaluation."""
    from harness.tune.tuner import select_incumbent

    out = []
    for n in range(1, len(runs) + 1):
        inc = select_incumbent(runs[:n])
        out.append((inc.score, inc.budget) if inc is not None else (None, None))
    return out


def fmt(point: tuple[float | None, float | None]) -> str:
    score, budget = point
    return "-" if score is None else f"{score:.2f} @{budget:g}"


def report(results: dict[str, tuple[list, float]], max_budget: float, png: str | None) -> None:
    print("| backend | evaluations | trial-epochs | best score @ max budget | wall s |")
    print("|---|---|---|---|---|")
    for backend, (runs, seconds) in results.items():
        top = [r.score for r in runs if r.ok and r.budget >= max_budget - 1e-9]
        best = f"{max(top):.3f}" if top else "-"
        epochs = sum(int(r.info.get("epochs", round(r.budget))) for r in runs)
        print(f"| {backend} | {len(runs)} | {epochs} | {best} | {seconds:.1f} |")
    paths = {b: trajectory(runs) for b, (runs, _) in results.items()}
    longest = max((len(p) for p in paths.values()), default=0)
    marks = sorted(({n for n in (1, 5, 10, 20, 40, 80, 160, 320) if n <= longest} | {longest}) - {0})
    print()
    print("| evaluations | " + " | ".join(paths) + " |")
    print("|---|" + "---|" * len(paths))
    for n in marks:
        print(f"| {n} | " + " | ".join(fmt(p[n - 1]) if n <= len(p) else "(done)" for p in paths.values()) + " |")
    if png:
        plot(paths, png)
        print(f"\nwrote {png}", file=sys.stderr)


def plot(paths: dict[str, list], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.atomic import save_figure_atomic

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for backend, points in paths.items():
        xs = [i + 1 for i, (s, _) in enumerate(points) if s is not None]
        ys = [s for s, _ in points if s is not None]
        ax.step(xs, ys, where="post", label=backend)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("incumbent score (largest budget reached)")
    ax.set_title("Tuning backends on the same problem and budget")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--iterations", type=int, default=4, help="hyperband iterations per backend")
    p.add_argument("--min-budget", type=float, default=1)
    p.add_argument("--max-budget", type=float, default=9)
    p.add_argument("--eta", type=float, default=3)
    p.add_argument("--seed", type=int, default=0, help="optimizer seed (the same for every backend)")
    p.add_argument("--samples", type=int, default=256, help="problem.samples_per_evaluation")
    p.add_argument("--channels", type=int, default=4, help="ops.channels")
    p.add_argument("--synthetic", action="store_true", help="a synthetic objective instead of real trials")
    p.add_argument("--png", help="also plot incumbent score against evaluations")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # as trials specify; and the backends get the same machine
    from harness.tune.runlog import BackendUnavailable

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            try:
                results[backend] = run_backend(backend, args, Path(tmp) / backend)
            except BackendUnavailable as exc:
                print(f"skipping {backend}: {exc}", file=sys.stderr)
            print(f"{backend}: done", file=sys.stderr)
    if not results:
        print("error: no backend could run", file=sys.stderr)
        return 2
    report(results, args.max_budget, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
