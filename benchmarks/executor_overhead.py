"""Trials per hour of the local executor (loky processes) and the Dask executor (a LocalCluster
of the same number of worker processes) on the same study, in this process, alternating.

    python benchmarks/executor_overhead.py [--epochs 10] [--trials 8] [--workers 2] [--repeats 3] [--samples N]

Each repeat runs the whole study from an empty folder through ``harness.run_study`` (store
appends, checkpoints and all; no report), once per executor, in alternating order so that a
machine busy with something else slows both alike. The Dask time includes starting and closing
its LocalCluster and the local time starting fresh loky workers (their imports), as a user pays
them. Prints a markdown table of the median trials/hour per
executor and ``dask/local: <ratio>`` (1.0 = no overhead; target: within 5%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def study(trials: int, epochs: int, workers: int, samples: int | None) -> dict:
    """Blur, sequential space: DAS and Random on all ops ([001] Table 1's rows), H1."""
    options = {"ops": {"noise_op_std": 4.0}}
    if samples:
        options["problem"] = {"samples_per_evaluation": samples}
    return {"name": "executor_overhead", "trials": trials, "epochs": epochs, "workers": workers,
            "defaults": {"dataset": "blur", "space": "sequential", "hp_set": "H1"}, "options": options,
            "rows": [{"op_set": "all", "method": ["das", "random"]}]}


def timed_run(executor: str, spec: dict) -> tuple[float, int]:
    import harness

    if executor == "local":  # a fresh set of worker processes, as a new CLI run gets
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        frame = harness.run_study(spec, out=out, executor=executor, report=False, progress=False, verbose=False)
        seconds = time.perf_counter() - start
    failed = int((frame["status"] != "ok").sum())
    if failed:
        print(f"  note: {failed} trial(s) failed under {executor}", file=sys.stderr)
    return seconds, len(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=8, help="seeds per row (2 rows)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default: the problem's 2432)")
    args = parser.parse_args(argv)
    spec = study(args.trials, args.epochs, args.workers, args.samples)
    rates: dict[str, list[float]] = {"local": [], "dask": []}
    for r in range(args.repeats):
        order = ("local", "dask") if r % 2 == 0 else ("dask", "local")
        for executor in order:
            seconds, n = timed_run(executor, spec)
            rates[executor].append(3600 * n / seconds)
            print(f"  repeat {r + 1} {executor}: {n} trials in {seconds:.1f} s", file=sys.stderr)
    print(f"# blur, all ops, DAS + Random, {args.trials} trials per row, {args.epochs} epochs, "
          f"{args.workers} workers, median of {args.repeats}")
    print("| executor | trials/h (median) | runs |")
    print("|---|---:|---|")
    for executor, values in rates.items():
        print(f"| {executor} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
    print(f"dask/local: {statistics.median(rates['dask']) / statistics.median(rates['local']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
