"""Calibrate the harmful ops' unstated strength on [001] Table 1's *baseline* rows only.

[001] names a noise layer ("a gradient layer with white Gaussian noise") and a roll layer
("rolls the inputs in all dimensions") but not their strength. With our first reading (noise
std 0.1, roll by 1) Random on all ops scores far above the paper (blur 14.26 dB median against
8.10). This script sweeps the two unstated numbers, ``noise_op_std`` and ``roll_shift``, and
scores only the Random row on all ops (a uniformly random architecture, retrained), never a DAS
row: every DAS number stays an out-of-sample prediction (docs/open_choices.md, "Harmful ops").

    python benchmarks/calibrate_harmful_ops.py --seeds 24 --workers 2 --out results/calibration_harmful_ops

Prints, per grid point, the Random median on blur and on downsampling beside the paper's, and
the loss sum((ours - paper)^2) over both data sets; writes every trial to ``OUT/trials.jsonl``
(the runner's resumable store: rerunning the command continues it) and the table to
``OUT/calibration.md``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path

# [001] Table 1, "all" rows, median architecture PSNR (../shared/seeds/001_*.txt, lines 165-166).
PAPER_RANDOM_MEDIAN = {"blur": 8.10, "downsampling": 4.31}
PAPER_RANDOM_SEARCH_MEDIAN = {"blur": 12.34, "downsampling": 9.77}
NOISE_STDS = (0.1, 0.2, 0.3, 0.5, 1.0)
ROLL_SHIFTS = (1, 5)


def grid_specs(seeds: int, epochs: int, noise_stds, roll_shifts, methods=("random",)):
    from harness.runner.spec import TrialSpec

    for std, shift, dataset, method, seed in itertools.product(
        noise_stds, roll_shifts, PAPER_RANDOM_MEDIAN, methods, range(seeds)
    ):
        yield TrialSpec.make(dataset=dataset, space="sequential", op_set="all", method=method, hp_set="H1",
                             seed=seed, epochs=epochs, options={"ops": {"noise_op_std": std, "roll_shift": shift}})


def table(records: list[dict], method: str = "random") -> list[dict]:
    """One row per (noise std, roll shift): the medians per data set and the loss against the paper."""
    paper = PAPER_RANDOM_MEDIAN if method == "random" else PAPER_RANDOM_SEARCH_MEDIAN
    cells: dict[tuple, dict[str, list[float]]] = {}
    failed: dict[tuple, int] = {}
    for r in records:
        if r["method"] != method:
            continue
        ops = r["options"]["ops"]
        key = (ops["noise_op_std"], ops["roll_shift"])
        if r["status"] != "ok" or r["arch_score"] is None:
            failed[key] = failed.get(key, 0) + 1
            continue
        cells.setdefault(key, {}).setdefault(r["dataset"], []).append(r["arch_score"])
    rows = []
    for key in sorted(cells):
        medians = {d: statistics.median(v) for d, v in cells[key].items()}
        loss = sum((medians.get(d, float("nan")) - p) ** 2 for d, p in paper.items())
        rows.append({"noise_op_std": key[0], "roll_shift": key[1], "loss": loss, "failed": failed.get(key, 0),
                     **{f"{d}_median": m for d, m in medians.items()},
                     **{f"{d}_n": len(v) for d, v in cells[key].items()}})
    return rows


def markdown(rows: list[dict], method: str) -> str:
    paper = PAPER_RANDOM_MEDIAN if method == "random" else PAPER_RANDOM_SEARCH_MEDIAN
    lines = [f"{method}, all ops, sequential space, H1: median architecture PSNR (paper: "
             + ", ".join(f"{d} {v}" for d, v in paper.items()) + ")", "",
             "| noise_op_std | roll_shift | blur median (n) | downsampling median (n) | failed | loss |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["loss"]):
        lines.append(f"| {r['noise_op_std']} | {r['roll_shift']} | {r.get('blur_median', float('nan')):.2f} "
                     f"({r.get('blur_n', 0)}) | {r.get('downsampling_median', float('nan')):.2f} "
                     f"({r.get('downsampling_n', 0)}) | {r['failed']} | {r['loss']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noise-stds", type=float, nargs="+", default=NOISE_STDS)
    parser.add_argument("--roll-shifts", type=int, nargs="+", default=ROLL_SHIFTS)
    parser.add_argument("--methods", nargs="+", default=["random"], choices=["random", "random-search"])
    parser.add_argument("--out", type=Path, default=Path("results/calibration_harmful_ops"))
    args = parser.parse_args()

    from harness.atomic import write_text_atomic
    from harness.runner.executor import run_specs
    from harness.runner.store import TrialStore

    args.out.mkdir(parents=True, exist_ok=True)
    store = TrialStore(args.out)
    done = store.finished_ids()
    specs = [s for s in grid_specs(args.seeds, args.epochs, args.noise_stds, args.roll_shifts, args.methods)
             if s.trial_id not in done]
    run_specs(specs, workers=args.workers, store=store)
    records = store.records()
    text = "\n".join(markdown(table(records, m), m) for m in args.methods)
    write_text_atomic(args.out / "calibration.md", text)
    print(text)


if __name__ == "__main__":
    main()
