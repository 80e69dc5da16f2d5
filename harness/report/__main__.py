"""``python -m harness.report <study_folder>``: write the study's tables, figures and report."""

from __future__ import annotations

import argparse
import sys

from harness.report.build import ReportError, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report",
        description="Write trials.csv, trials.parquet, summary.csv, summary.md, report.html and figures/ into a study.",
    )
    parser.add_argument("study_folder", help="folder holding the study's trials.jsonl, e.g. results/blur")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per CI (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstraps and resampling (default 0)")
    parser.add_argument(
        "--target-width", type=float, default=1.0, help="seed budget: wanted 95%% CI width of the median"
    )
    parser.add_argument("--alpha-trials", type=int, default=6, help="trials to plot alpha trajectories for")
    args = parser.parse_args(argv)
    if args.n_boot < 0 or args.alpha_trials < 0 or not args.target_width > 0:
        parser.error("--n-boot and --alpha-trials must be >= 0 and --target-width > 0")
    try:
        written = write_report(
            args.study_folder,
            n_boot=args.n_boot,
            seed=args.seed,
            target_width=args.target_width,
            alpha_trials=args.alpha_trials,
        )
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"wrote {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
