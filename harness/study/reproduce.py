"""``python -m harness.study.reproduce [--list] [--only NAME ...] [--index-only] [--out results]``

Regenerates the reference runs of [001] (and the issue-12 CIFAR proxy) one study after another,
each resumable from its trial store (a killed or partial run continues where it stopped; a trial
another reference run already holds is copied from there, ``--reuse``), then
writes ``<out>/index.md``: one line per reference run with its progress (trials stored of the
study's, failed), the paper table it reproduces and links to its summary (ours beside the
paper's numbers) and HTML report. ``--index-only`` rewrites the index without running anything.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.atomic import write_text_atomic
from harness.report.paper_comparison import comparison_markdown, paper_comparison

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Reference:
    name: str  # the study's name = its folder under --out
    study: str  # the study file, relative to the repository
    reproduces: str
    extra_args: tuple[str, ...] = ()
    tables: tuple[int, ...] = ()  # the [001] tables whose published rows this run's rows stand beside


REFERENCES = (
    Reference("blur", "studies/blur.yaml", "[001] Table 1, blur column", tables=(1,)),
    Reference("downsampling", "studies/downsampling.yaml", "[001] Table 1, downsampling column", tables=(1,)),
    Reference("nonsequential", "studies/nonsequential.yaml", "[001] Table 2", tables=(2,)),
    Reference("hyperparameters_blur", "studies/hyperparameters_blur.yaml", "[001] Table 3 (blur), Figs 4-8",
              tables=(3,)),
    Reference("hyperparameters_downsampling", "studies/hyperparameters_downsampling.yaml",
              "[001] Table 3 (downsampling), Figs 4-8", tables=(3,)),
    Reference("das_single", "studies/das_single.yaml", "[001] §5.4, Fig. 5 (DAS-single vs DAS)"),
    Reference("nonsequential_hyperparameters", "studies/nonsequential_hyperparameters.yaml", "[001] Table 4",
              tables=(4,)),
    Reference("methods_blur", "studies/methods_blur.yaml", "every method preset on blur (METHODS.md)"),
    Reference("cifar_proxy", "studies/cifar_proxy.yaml", "[003]/[004] DARTS cell search, CPU proxy (issue 12)",
              ("--data-dir", "../shared/data/mnist")),
)


def progress(reference: Reference, out: Path) -> tuple[int, int, int]:
    """(trials stored that the study defines, trials it defines, failed among the stored)."""
    from harness.runner.store import TrialStore
    from harness.study.config import load_study

    wanted = {s.trial_id for s in load_study(REPO / reference.study).specs()}
    records = [r for r in TrialStore(out / reference.name).records() if r["trial_id"] in wanted]
    latest = {r["trial_id"]: r for r in records}  # a retried trial's last record counts
    return len(latest), len(wanted), sum(r["status"] != "ok" for r in latest.values())


def write_index(out: Path) -> Path:
    lines = ["# Reference runs", "",
             "Regenerate with `python -m harness.study.reproduce` (each study resumes from its store). "
             "Each summary prints our numbers beside the paper's.", "",
             "| study | reproduces | trials stored | failed | summary | report |", "|---|---|---:|---:|---|---|"]
    for ref in REFERENCES:
        stored, wanted, failed = progress(ref, out)
        folder = out / ref.name
        summary = f"[summary.md]({ref.name}/summary.md)" if (folder / "summary.md").exists() else "-"
        report = f"[report.html]({ref.name}/report.html)" if (folder / "report.html").exists() else "-"
        lines.append(f"| `{ref.study}` | {ref.reproduces} | {stored} / {wanted} | {failed} | {summary} | {report} |")
    lines += ["", "## [001] Tables 1-4 beside ours", "",
              "Architecture validation PSNR (dB) of every published row, from each run's `summary.csv` "
              "(regenerated with its report). Ours at 50 epochs without overrides, with the harmful ops' "
              "calibrated strength (docs/open_choices.md); the CI is the report's bootstrap 95% CI of our median; "
              "Spearman ρ is one-shot vs architecture score over our trials.", "",
              comparison_markdown(paper_comparison(table_summaries(out)))]
    path = out / "index.md"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines))
    return path


def table_summaries(out: Path) -> dict[int, pd.DataFrame]:
    """[001] table number -> the summaries of the reference runs that reproduce it (those written)."""
    parts: dict[int, list[pd.DataFrame]] = {}
    for ref in REFERENCES:
        path = out / ref.name / "summary.csv"
        if ref.tables and path.is_file():
            summary = pd.read_csv(path, dtype={"hp_set": str, "variant": str})
            for table in ref.tables:
                parts.setdefault(table, []).append(summary)
    return {table: pd.concat(frames, ignore_index=True) for table, frames in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--out", default="results", help="results root folder (default: results/)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these studies (see --list)")
    parser.add_argument("--list", action="store_true", help="list the reference runs and their progress")
    parser.add_argument("--index-only", action="store_true", help="rewrite the index, run nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    names = [r.name for r in REFERENCES]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        print(f"error: unknown reference run(s) {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    if args.list:
        for ref in REFERENCES:
            stored, wanted, failed = progress(ref, out)
            print(f"{ref.name:30s} {stored:5d} / {wanted:5d} trials ({failed} failed)  {ref.reproduces}")
        return 0
    if not args.index_only:
        from harness.runner.store import TrialStore
        from harness.study.__main__ import main as study_main

        for ref in REFERENCES:
            if args.only and ref.name not in args.only:
                continue
            print(f"== {ref.name}: {ref.reproduces}", file=sys.stderr)
            # A trial that another reference run already holds (the same trial id: e.g. DAS under
            # BOHB-one-shot-Blur in das_single and hyperparameters_blur) is copied, not recomputed.
            reuse = [a for r in REFERENCES if r.name != ref.name and TrialStore(out / r.name).files()
                     for a in ("--reuse", str(out / r.name))]
            code = study_main([str(REPO / ref.study), "--out", str(out), *ref.extra_args, *reuse])
            if code:
                print(f"stopped: {ref.name} exited with {code}; rerun to resume", file=sys.stderr)
                write_index(out)
                return code
    print(f"wrote {write_index(out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
