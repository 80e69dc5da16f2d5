"""``write_report``: regenerate the paper's tables and figures from a study's stored trials.

Everything is recomputed from ``trials.jsonl`` on each call, so a report can be refreshed
while a study is still running and never disagrees with the trials it describes.
"""

from __future__ import annotations

import base64
import html
import itertools
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.report import figures as fg
from harness.report.paper_tables import HP_TABLE, METHOD_TABLE, PAPER_RANDOM_SEARCH_STEPS
from harness.report.tables import (
    BASELINE_METHODS,
    correlation_table,
    fmt,
    hp_table,
    label,
    method_table,
    order_key,
    ordered,
    sort_groups,
    to_html,
    to_markdown,
)
from harness.runner.store import TRIALS_FILE, TrialStore
from harness.stats import (
    GROUP_COLUMNS,
    ci_width_curve,
    compare_groups,
    describe_scores,
    level_labels,
    random_search_steps,
    seed_budget,
    summary_table,
)
from harness.stats._common import iter_groups, ok_mask
from harness.stats.methods import method_ranking

FIGURES_DIR = "figures"
MAX_COMPARISON_ROWS = 80
FIGURE_PREFIXES = ("methods_", "scatter_", "distribution_", "ecdf_", "seed_budget_", "op_frequency_", "alphas_")


class ReportError(RuntimeError):
    """A study folder that cannot be reported on (no trials file, no records)."""


class _Doc:
    """The report as sections, rendered both to markdown and to self-contained HTML."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.md: list[str] = []
        self.html: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame) -> None:
        self.md.append(to_markdown(df))
        self.html.append(to_html(df))

    def figure(self, path: Path | None, caption: str = "") -> None:
        if path is None:
            return
        rel = path.relative_to(self.folder).as_posix()
        self.md.append(f"![{caption or path.stem}]({rel})\n")
        data = base64.b64encode(path.read_bytes()).decode()
        alt = html.escape(caption or path.stem)
        image = f'<img alt="{alt}" src="data:image/png;base64,{data}"/>'
        self.html.append(f"<figure>{image}<figcaption>{alt}</figcaption></figure>")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
img{max-width:100%}figure{margin:1em 0}figcaption{font-size:12px;color:#555}
"""


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a file
    return path


def load_study(study_folder: str | os.PathLike) -> tuple[TrialStore, pd.DataFrame]:
    """The study's store and trials; ``ReportError`` when there is nothing to report."""
    folder = Path(study_folder)
    store = TrialStore(folder)
    if not folder.is_dir():
        raise ReportError(f"study folder {folder} does not exist")
    if not store.path.exists():
        raise ReportError(f"no {TRIALS_FILE} in {folder}: run a study into this folder first")
    df = store.dataframe()
    if df.empty:
        raise ReportError(f"{store.path} has no complete trial records")
    return store, df


def write_report(
    study_folder: str | os.PathLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    target_width: float = 1.0,
    alpha_trials: int = 6,
) -> dict[str, Path]:
    """Write trials.csv, summary.csv, summary.md, report.html and figures/*.png into the folder.

    Returns the written files keyed by their path relative to the study folder.
    """
    store, df = load_study(study_folder)
    folder = store.folder
    written: dict[str, Path] = {"trials.csv": store.write_csv()}
    notes: list[str] = []

    summary = sort_groups(summary_table(df, GROUP_COLUMNS, n_boot=n_boot, seed=seed), list(GROUP_COLUMNS))
    written["summary.csv"] = _write_text(folder / "summary.csv", summary.to_csv(index=False))

    runtime = describe_scores(df, ("space", "op_set", "method", "hp_set"), oneshot=None, n_boot=0)
    levels = sorted(set(level_labels(df, ("method", "hp_set"))), key=_level_key)
    pairs = list(itertools.combinations(levels, 2))  # search methods first, then baselines
    comparisons = compare_groups(df, pairs=pairs, n_boot=n_boot, seed=seed)
    comparisons = sort_groups(comparisons, ["dataset", "space", "op_set"])
    steps = random_search_steps(df, seed=seed)
    if not steps.empty:
        keys = [
            (*(order_key(c, r[c]) for c in ("dataset", "space", "op_set")), _level_key(r["reference"]))
            for _, r in steps.iterrows()
        ]
        steps = steps.iloc[sorted(range(len(steps)), key=keys.__getitem__)].reset_index(drop=True)
    budget_boot = min(n_boot, 500)
    curve = ci_width_curve(df, n_boot=budget_boot, seed=seed)
    budget = seed_budget(df, target_width=target_width, n_boot=budget_boot, seed=seed, curve=curve)
    ranking = method_ranking(df, summary=summary)
    extra = {
        "methods_ranking.csv": ranking,
        "comparisons.csv": comparisons,
        "random_search_steps.csv": steps,
        "seed_budget.csv": budget,
    }
    for name, table in extra.items():
        if not table.empty:
            table.to_csv(folder / name, index=False)
            written[name] = folder / name

    fig_dir = folder / FIGURES_DIR
    _remove_stale_figures(fig_dir)
    figs: dict[str, Path | None] = {}
    datasets = ordered("dataset", df["dataset"].dropna())
    for d in datasets:
        tag = fg.safe_name(d)
        if _ranks_methods(ranking):
            figs[f"methods_{tag}"] = fg.method_ranking_figure(ranking, d, fig_dir / f"methods_{tag}.png", notes)
        figs[f"scatter_{tag}"] = fg.scatter_dataset(df, d, fig_dir / f"scatter_{tag}.png", notes)
        png = fig_dir / f"distribution_{tag}.png"
        figs[f"distribution_{tag}"] = fg.distributions_dataset(df, d, png, notes)
        figs[f"ecdf_{tag}"] = fg.ecdf_dataset(df, d, fig_dir / f"ecdf_{tag}.png", notes)
        png = fig_dir / f"seed_budget_{tag}.png"
        figs[f"seed_budget_{tag}"] = fg.seed_budget_figure(curve, budget, d, png)
        for s in ordered("space", df.loc[df["dataset"] == d, "space"].dropna()):
            name = f"op_frequency_{tag}_{fg.safe_name(s)}"
            figs[name] = fg.op_frequency_figure(df, d, s, fig_dir / f"{name}.png", notes)
    for rec in fg.pick_alpha_trials(df, alpha_trials):
        name = f"alphas_{fg.safe_name(rec['trial_id'])}"
        figs[name] = fg.alpha_trajectories(rec, fig_dir / f"{name}.png", notes)
    for key, path in figs.items():
        if path is not None:
            written[f"{FIGURES_DIR}/{key}.png"] = path

    doc = _Doc(folder)
    _header(doc, folder, df)
    _paper_tables(doc, summary, runtime)
    _methods_section(doc, ranking, figs, datasets)
    _correlation_section(doc, summary, figs, datasets)
    _distribution_section(doc, figs, datasets)
    _comparison_section(doc, comparisons)
    _steps_section(doc, steps)
    _budget_section(doc, budget, figs, datasets, target_width)
    _architecture_section(doc, figs)
    _failures_section(doc, df)
    doc.heading("Notes")
    for note in notes or ["none"]:
        doc.text(f"- {note}")

    written["summary.md"] = _write_text(folder / "summary.md", "\n".join(doc.md))
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(folder.name)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(doc.html)}</body></html>\n"
    )
    written["report.html"] = _write_text(folder / "report.html", page)
    return written


def _level_key(level: str) -> tuple:
    method, _, hp_set = level.partition("/")
    return (method in BASELINE_METHODS, order_key("method", method), order_key("hp_set", hp_set))


def _remove_stale_figures(fig_dir: Path) -> None:
    """Drop the PNGs an earlier report wrote (our own name patterns only), e.g. old alpha samples."""
    if fig_dir.is_dir():
        for prefix in FIGURE_PREFIXES:
            for old in fig_dir.glob(f"{prefix}*.png"):
                old.unlink(missing_ok=True)


def _header(doc: _Doc, folder: Path, df: pd.DataFrame) -> None:
    failed = int((~ok_mask(df)).sum())
    doc.heading(f"Study {folder.name}", 1)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc.text(f"{len(df)} trials ({failed} failed) in {folder}; generated {stamp} from {TRIALS_FILE}.")
    doc.text(
        "Scores are architecture validation PSNR of ok trials; n counts all trials, failed trials are "
        "counted but never enter a statistic. Cells read 'ours (paper)' where [001] publishes a number."
    )


def _paper_tables(doc: _Doc, summary: pd.DataFrame, runtime: pd.DataFrame) -> None:
    for space in ordered("space", summary["space"]):
        no = METHOD_TABLE.get(space)
        doc.heading(f"Table {no} layout: methods, {space} space" if no else f"Methods, {space} space")
        doc.table(method_table(summary, runtime, space))
        search = summary[(summary["space"] == space) & ~summary["method"].isin(BASELINE_METHODS)]
        if not search.empty:
            no = HP_TABLE.get(space)
            title = f"Table {no} layout: hyperparameter sets" if no else "Hyperparameter sets"
            doc.heading(f"{title}, {space} space")
            doc.table(hp_table(summary, space))


def _ranks_methods(ranking: pd.DataFrame) -> bool:
    """Whether some (dataset, space, op set) holds at least three search rows to rank."""
    search = ranking[~ranking["baseline"]]
    return bool(len(search)) and int(search.groupby(["dataset", "space", "op_set"]).size().max()) >= 3


def _methods_section(doc: _Doc, ranking: pd.DataFrame, figs: dict, datasets: list[str]) -> None:
    if not _ranks_methods(ranking):
        return
    doc.heading("Methods ranked by median architecture score")
    doc.text(
        "Rank 1 = highest median retrained-architecture score within its data set, space and op set; "
        "CIs are bootstrap percentile intervals. Spearman: one-shot vs architecture score over the "
        "method's trials (the paper's question, asked of every method). Hessian: median dominant "
        "eigenvalue of the validation loss w.r.t. alpha at the end of search. Seed distance: mean pairwise "
        "DARTOpti architecture distance between the genotypes of different seeds."
    )
    cols = {
        "rank": "rank", "method": "method", "hp_set": "hp set", "n": "n", "n_failed": "failed",
        "median": "median", "median_ci_low": "CI low", "median_ci_high": "CI high", "max": "max",
        "spearman_rho": "Spearman", "spearman_p": "p", "hessian_median": "Hessian",
        "param_free_mean": "param-free ops", "seed_distance_mean": "seed distance", "runtime_mean_s": "runtime s",
    }
    for labels, group in iter_groups(ranking, ("dataset", "space", "op_set")):
        doc.heading(f"{label('dataset', labels['dataset'])}, {labels['space']} space, {labels['op_set']} ops", 3)
        table = group[[c for c in cols if c in group.columns]].rename(columns=cols).copy()
        table["method"] = [label("method", m) for m in table["method"]]
        doc.table(table)
    for d in datasets:
        doc.figure(figs.get(f"methods_{fg.safe_name(d)}"), f"{label('dataset', d)}: methods ranked")


def _correlation_section(doc: _Doc, summary: pd.DataFrame, figs: dict, datasets: list[str]) -> None:
    doc.heading("One-shot vs architecture score (Figs 3-8)")
    table = correlation_table(summary)
    if table.empty:
        doc.text("No group has one-shot scores (baselines only, or all trials failed).")
    else:
        doc.table(table)
    for d in datasets:
        doc.figure(figs.get(f"scatter_{fg.safe_name(d)}"), f"{label('dataset', d)}: arch vs one-shot score")


def _distribution_section(doc: _Doc, figs: dict, datasets: list[str]) -> None:
    doc.heading("Distributions over trials")
    for d in datasets:
        tag = fg.safe_name(d)
        doc.figure(figs.get(f"distribution_{tag}"), f"{label('dataset', d)}: box and strip plot per row")
        doc.figure(figs.get(f"ecdf_{tag}"), f"{label('dataset', d)}: empirical CDF per row")


def _comparison_section(doc: _Doc, comparisons: pd.DataFrame) -> None:
    doc.heading("Method comparisons (same data set, space and op set)")
    if comparisons.empty:
        doc.text("Fewer than two methods / hp sets per data set: nothing to compare.")
        return
    # Per data set / space / op set, the reference is its first level (e.g. das/H1) vs the rest.
    cell = ["dataset", "space", "op_set"]
    reference = comparisons.groupby(cell, sort=False)["a"].transform("first")
    shown = comparisons[comparisons["a"] == reference].head(MAX_COMPARISON_ROWS)
    rows = [
        {
            "data": label("dataset", r["dataset"]),
            "space": r["space"],
            "ops": r["op_set"],
            "A": r["a"],
            "B": r["b"],
            "ok A (failed)": f"{r['n_a']} ({r['n_failed_a']})",
            "ok B (failed)": f"{r['n_b']} ({r['n_failed_b']})",
            "med A": fmt(r["median_a"]),
            "med B": fmt(r["median_b"]),
            "Δ med [95% CI]": f"{fmt(r['median_diff'])} [{fmt(r['median_diff_ci_low'])}, "
            f"{fmt(r['median_diff_ci_high'])}]",
            "Mann-Whitney p": fmt(r["mannwhitney_p"], 3),
            "P(A > B)": fmt(r["prob_a_beats_b"]),
            "note": r["note"],
        }
        for _, r in shown.iterrows()
    ]
    doc.table(pd.DataFrame(rows))
    if len(shown) < len(comparisons):
        shown_of = f"Showing {len(shown)} of {len(comparisons)} pairs"
        doc.text(f"{shown_of} (the reference of each cell vs the rest); all are in comparisons.csv.")


def _steps_section(doc: _Doc, steps: pd.DataFrame) -> None:
    doc.heading("Random search steps to beat the DAS median (§5.2)")
    if steps.empty:
        doc.text("Needs 'random' trials and 'das' trials in the same data set, space and op set.")
        return
    rows = [
        {
            "data": label("dataset", r["dataset"]),
            "space": r["space"],
            "ops": r["op_set"],
            "reference": r["reference"],
            "target (median)": fmt(r["target"]),
            "random trials (failed)": f"{r['n_pool']} ({r['n_pool_failed']})",
            "beating target": r["n_better"],
            "mean steps": fmt(r["mean_steps"], 1),
            "runs (censored)": f"{r['n_runs']} ({r['n_censored']})",
            "expected 1/p": fmt(r["expected_steps"], 1),
            "note": r["note"],
        }
        for _, r in steps.iterrows()
    ]
    doc.table(pd.DataFrame(rows))
    p = PAPER_RANDOM_SEARCH_STEPS
    doc.text(
        f"Paper: {p['dataset']}, {p['space']}, {p['op_set']} ops: {p['mean_steps']:.0f} steps on average "
        f"({p['n_runs']} runs) to beat the DAS median of {p['target']}. Failed random trials count as "
        "draws that did not improve."
    )


def _budget_section(doc: _Doc, budget: pd.DataFrame, figs: dict, datasets: list[str], target: float) -> None:
    doc.heading(f"Seed budget: trials for a {target:g} PSNR wide 95% CI of the median")
    if budget["n_needed"].notna().sum() == 0:
        doc.text("No group has enough ok trials (5) for an estimate.")
        return
    rows = [
        {
            "row": fg.row_label(r, ("dataset", *fg.ROW_COLUMNS)),
            "n (failed)": f"{r['n']} ({r['n_failed']})",
            "CI width now": fmt(r["ci_width"]),
            "c in c/√n": fmt(r["c"]),
            "ok trials needed": fmt(r["n_needed"], 0),
            "trials needed (with failures)": fmt(r["n_trials_needed"], 0),
            "enough": {True: "yes", False: "no"}.get(r["enough"], "–"),
            "note": r["note"],
        }
        for _, r in budget.iterrows()
    ]
    doc.table(pd.DataFrame(rows))
    for d in datasets:
        doc.figure(figs.get(f"seed_budget_{fg.safe_name(d)}"), f"{label('dataset', d)}: CI width vs trials")


def _architecture_section(doc: _Doc, figs: dict) -> None:
    doc.heading("Chosen architectures and alpha trajectories")
    for key, path in figs.items():
        if key.startswith("op_frequency_"):
            doc.figure(path, "fraction of genotypes choosing each op per position (ok trials)")
    alphas = [(k, p) for k, p in figs.items() if k.startswith("alphas_") and p is not None]
    if not alphas:
        doc.text("No trial has an alpha history (baselines only, or all failed).")
    for _, path in alphas:
        doc.figure(path, "softmax(alpha) per position over epochs (epoch 0 = initialization)")


def _failures_section(doc: _Doc, df: pd.DataFrame) -> None:
    doc.heading("Failed trials")
    failed = df[~ok_mask(df)]
    if failed.empty:
        doc.text("No failed trials.")
        return
    table = failed[list(GROUP_COLUMNS)].astype(str)
    table["reason"] = failed["failure_reason"].fillna("").astype(str).str.slice(0, 120)
    counts = table.value_counts(sort=False).rename("count").reset_index()
    doc.table(sort_groups(counts, list(GROUP_COLUMNS)))
