"""Whole proxy trials on the DARTS cell space: the loop engine (one trial at a time, the
straightforward way) vs the batched engine (K seeds of a row as one computation), measured side
by side in this process on one thread, with the rows and options of studies/cifar_proxy.yaml.

    python benchmarks/cell_trials.py --data-dir DIR [--methods darts random] [--k 10] [--loop-trials 2]
                                     [--epochs 10] [--retrain-epochs 20] [--quick] [--straightforward]

Prints per method: seconds per trial (search, retraining) in each engine, trials/hour per core,
the ratio, and the study's estimated wall time on ``--workers`` cores (each worker one batch).
``--straightforward`` adds the issue's baseline: the loop engine at 32 px, 3 channels and 30
retraining epochs (the "straightforward proxy trial" the issue timed at ~8 min per core).
``--epochs``/``--retrain-epochs`` below the study's scale the measurement down; the estimate
scales the per-epoch times back up (both parts are linear in epochs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from harness.runner.spec import TrialSpec  # noqa: E402
from harness.runner.trial import run_batch, run_trial  # noqa: E402
from harness.yaml_files import parse_yaml  # noqa: E402

# The "straightforward proxy trial": 32 px, 3 channels (MNIST padded and replicated, the
# task's defaults), 30 retraining epochs, everything else as the study; one trial at a time.
STRAIGHTFORWARD = {"image_size": 32, "channels": 3}
STRAIGHTFORWARD_RETRAIN_EPOCHS = 30


def _specs(study: dict, method: str, seeds, epochs: int, retrain_epochs: int,
           problem: dict | None = None) -> list[TrialSpec]:
    options = {k: dict(v) for k, v in study["options"].items()}
    options["problem"]["retrain_epochs"] = retrain_epochs
    options["problem"].update(problem or {})
    for row in study["rows"]:
        methods = row["method"] if isinstance(row["method"], list) else [row["method"]]
        if method in methods:
            options.update({k: dict(v) for k, v in (row.get("options") or {}).items()})
    d = study["defaults"]
    return [TrialSpec.make(dataset=d["dataset"], space=d["space"], op_set=d["op_set"], method=method,
                           hp_set=d["hp_set"], epochs=epochs, seed=s, options=options) for s in seeds]


def _timed(fn) -> tuple[float, list]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "cifar_proxy.yaml"))
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST t10k files")
    parser.add_argument("--methods", nargs="+", default=["darts", "random", "random-search"])
    parser.add_argument("--k", type=int, default=10, help="seeds per batch (the study: 20 seeds on 2 workers)")
    parser.add_argument("--loop-trials", type=int, default=2, help="trials timed in the loop engine")
    parser.add_argument("--epochs", type=int, default=None, help="search epochs (default: the study's)")
    parser.add_argument("--retrain-epochs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 search + 2 retraining epochs, K = 4")
    parser.add_argument("--straightforward", action="store_true",
                        help="also time the issue's straightforward trial (32 px, 3 channels, 30 retraining "
                             "epochs, loop) per method and compare the whole study's wall time")
    args = parser.parse_args(argv)
    os.environ["HARNESS_DATA_DIR"] = args.data_dir
    study = parse_yaml(Path(args.study).read_text())
    full_epochs, full_retrain = int(study["epochs"]), int(study["options"]["problem"]["retrain_epochs"])
    if args.quick:
        args.epochs, args.retrain_epochs, args.k, args.loop_trials = 2, 2, 4, 1
    epochs, retrain = args.epochs or full_epochs, args.retrain_epochs or full_retrain
    torch.set_num_threads(1)
    print(f"# {study['name']}: {epochs} search + {retrain} retraining epochs measured "
          f"(study: {full_epochs} + {full_retrain}), 1 thread, torch {torch.__version__}")
    print("| method | engine | K | search s/trial | retrain s/trial | trials/hour/core | vs loop | "
          f"study row on {args.workers} cores |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    n_trials = int(study["trials"])
    study_wall: dict[str, float] = {}
    for method in args.methods:
        rows = {}
        plan = [("loop", 1, range(args.loop_trials), None), ("batched", args.k, range(100, 100 + args.k), None)]
        if args.straightforward:
            plan.insert(0, ("straightforward", 1, range(args.loop_trials), STRAIGHTFORWARD))
        for engine, k, seeds, problem in plan:
            specs = _specs(study, method, seeds, epochs, retrain, problem)
            if engine in ("loop", "straightforward"):
                _, results = _timed(lambda specs=specs: [run_trial(s, "cpu") for s in specs])
            else:
                _, results = _timed(lambda specs=specs: run_batch(specs, "cpu", batched=True))
            bad = [r.failure_reason for r in results if r.status != "ok"]
            if bad:
                raise SystemExit(f"{method} ({engine}) failed: {bad[0]}")
            target_retrain = STRAIGHTFORWARD_RETRAIN_EPOCHS if engine == "straightforward" else full_retrain
            search = sum(r.search_runtime_s for r in results) / len(results) * full_epochs / epochs
            rest = sum(r.retrain_runtime_s for r in results) / len(results) * target_retrain / retrain
            per_trial = search + rest
            rows[engine] = per_trial
            ratio = rows["loop"] / per_trial if "loop" in rows else float("nan")
            # The study runs n_trials seeds of the row on `workers` cores (batches of `k` in parallel).
            wall = per_trial * n_trials / args.workers
            study_wall[engine] = study_wall.get(engine, 0.0) + wall
            print(f"| {method} | {engine} | {k} | {search:.1f} | {rest:.1f} | {3600 / per_trial:.1f} | "
                  f"{ratio:.2f} | {wall / 60:.1f} min |", flush=True)
    print(f"\n{len(args.methods)} rows x {n_trials} trials on {args.workers} cores, estimated wall time:")
    for engine, wall in study_wall.items():
        versus = "" if engine == "batched" or "batched" not in study_wall else \
            f" ({wall / study_wall['batched']:.2f}x the batched engine's)"
        print(f"- {engine}: {wall / 3600:.2f} h{versus}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
