"""The report's sections, each written to markdown and self-contained HTML at once.

Every table names a row by its full identity (``ROW_IDENTITY``): epochs and overrides are
columns or part of a row's label, so two rows that differ only there never look like one. The
metric is in every caption or heading; in a study of several metrics each table holds one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.report import figures as fg
from harness.report.doc import Doc
from harness.report.identity import ROW_IDENTITY, SHOWN_IDENTITY, row_label
from harness.report.metric_text import (
    View,
    heading_suffix,
    metric_names,
    metric_parts,
    score_label,
    scores_sentence,
    width_text,
)
from harness.report.paper_tables import HP_TABLE, METHOD_TABLE, PAPER_METRIC, PAPER_RANDOM_SEARCH_STEPS
from harness.report.tables import (
    BASELINE_METHODS,
    correlation_table,
    fmt,
    has_variant,
    hp_table,
    label,
    method_table,
    ordered,
    paper_caption,
    paper_slices,
    paper_table_no,
    slice_title,
    sort_groups,
)
from harness.runner.store import TRIALS_FILE
from harness.stats._common import MIN_N_CI, iter_groups, ok_mask
from harness.stats.alpha_motion import FROZEN_THRESHOLD
from harness.stats.correlation import MIN_N_CORRELATION
from harness.tasks.metrics import find_metric, metric_label

MAX_COMPARISON_ROWS = 80
SAME_ARCHITECTURE_SHARE = 0.9  # pairs of rows this alike are named below the comparisons


def _part_intro(doc: Doc, metric: str, mixed: bool, text: str) -> None:
    """A table's lead-in; headed with its metric where the study has several."""
    if mixed:
        doc.heading(metric_label(metric), 3)
    doc.text(text)


def _identity_cells(r: pd.Series | dict, columns=SHOWN_IDENTITY) -> dict:
    """The identity of a table row as display cells (data set and method by their paper names)."""
    names = {"dataset": "data", "op_set": "ops", "hp_set": "hp set"}
    return {names.get(c, c): label(c, r[c]) if c in ("dataset", "method") else r[c] for c in columns}


def header(doc: Doc, folder: Path, df: pd.DataFrame, motion: pd.DataFrame, shared: str = "-") -> None:
    failed = int((~ok_mask(df)).sum())
    doc.heading(f"Study {folder.name}", 1)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc.text(f"{len(df)} trials ({failed} failed) in {folder}; generated {stamp} from {TRIALS_FILE}.")
    paper = (
        " Cells read 'ours (paper)' where [001] publishes a number (its PSNR tables); every paper table says "
        "the epochs both sides used." if PAPER_METRIC in metric_names(df) else ""
    )
    doc.text(
        f"{scores_sentence(df)} n counts all trials, failed trials are counted but never enter a statistic. "
        "A row is (data set, space, op set, method, hp set, epochs, variant); variant is the text of the "
        f"row's overrides and options, '-' for none.{paper}"
    )
    if has_variant(shared):
        doc.text(f"Settings of every trial in this study (left out of the rows' variants): {shared}.")
    frozen = int(motion["frozen"].eq(True).sum()) if len(motion) else 0  # None: not measurable
    if frozen:
        doc.warning(
            f"in {frozen} row(s) alpha essentially did not move during the search; see 'How far alpha moved'."
        )


def paper_layout(doc: Doc, summary: pd.DataFrame, runtime: pd.DataFrame, shared: str = "-") -> None:
    """Tables 1-4 layouts, one table per (metric, epochs, variant) slice, each headed with all three
    (the metric only when the study has several); [001]'s numbers only beside PSNR rows. ``shared``:
    the settings every trial has (factored out of the variants), which the captions still count."""
    parts = metric_parts(summary)
    for metric, scored in parts:
        suffix = heading_suffix(metric, len(parts) > 1)
        times = runtime[runtime["metric"] == metric] if "metric" in runtime.columns else runtime
        for space in ordered("space", scored["space"]):
            for labels, part in paper_slices(scored[scored["space"] == space]):
                no = paper_table_no(METHOD_TABLE, space, metric)
                what = slice_title(labels, part.loc[~part["method"].isin(BASELINE_METHODS), "hp_set"])
                title = f"Table {no} layout: methods" if no else "Methods"
                doc.heading(f"{title}, {space} space ({what}){suffix}")
                doc.text(paper_caption(labels, no, metric, shared))
                doc.table(method_table(part, times, space, metric))
                search = part[~part["method"].isin(BASELINE_METHODS)]
                if not search.empty:
                    no = paper_table_no(HP_TABLE, space, metric)
                    title = f"Table {no} layout: hyperparameter sets" if no else "Hyperparameter sets"
                    doc.heading(f"{title}, {space} space ({slice_title(labels, search['hp_set'])}){suffix}")
                    doc.text(paper_caption(labels, no, metric, shared))
                    doc.table(hp_table(part, space, metric))


def ranks_methods(ranking: pd.DataFrame) -> bool:
    """Whether some (dataset, metric, space, op set) holds at least three search rows to rank."""
    search = ranking[~ranking["baseline"]]
    return bool(len(search)) and int(search.groupby(["dataset", "metric", "space", "op_set"]).size().max()) >= 3


def methods_section(doc: Doc, ranking: pd.DataFrame, figs: dict, views: list[View]) -> None:
    if not ranks_methods(ranking):
        return
    doc.heading("Methods ranked by median architecture score")
    best = "; ".join(f"{find_metric(m).best_word} median {metric_label(m)}" for m in metric_names(ranking))
    doc.text(
        f"Rank 1 = best median retrained-architecture score ({best}) within its data set, space and op set; "
        "best = the best trial's score. "
        f"CIs are scipy BCa bootstrap intervals (percentile where BCa is undefined; see the note columns); "
        f"groups under {MIN_N_CI} ok trials get no CI and under {MIN_N_CORRELATION} no correlation. "
        "Spearman: one-shot vs architecture score over the "
        "method's trials (the paper's question, asked of every method). Hessian: median dominant "
        "eigenvalue of the validation loss w.r.t. alpha at the end of search. Seed distance: mean pairwise "
        "DARTOpti architecture distance between the genotypes of different seeds."
    )
    cols = {
        "rank": "rank", "method": "method", "hp_set": "hp set", "epochs": "epochs", "variant": "variant",
        "n": "n", "n_failed": "failed", "median": "median", "median_ci_low": "CI low",
        "median_ci_high": "CI high", "best": "best", "spearman_rho": "Spearman", "spearman_p": "p",
        "hessian_median": "Hessian", "param_free_mean": "param-free ops", "seed_distance_mean": "seed distance",
        "runtime_mean_s": "runtime s",
    }
    for labels, group in iter_groups(ranking, ("dataset", "metric", "space", "op_set")):
        where = f"{label('dataset', labels['dataset'])}, {labels['space']} space, {labels['op_set']} ops"
        doc.heading(f"{where}: {metric_label(labels['metric'])}", 3)
        table = group[[c for c in cols if c in group.columns]].rename(columns=cols).copy()
        table["method"] = [label("method", m) for m in table["method"]]
        doc.table(table)
    for v in views:
        caption = f"{label('dataset', v.dataset)}: methods ranked by median architecture {metric_label(v.metric)}"
        doc.figure(figs.get(f"methods_{fg.safe_name(v.tag)}"), caption)


def correlation_section(doc: Doc, summary: pd.DataFrame, figs: dict, views: list[View]) -> None:
    doc.heading("One-shot vs architecture score (Figs 3-8)")
    parts = [(m, correlation_table(part)) for m, part in metric_parts(summary)]
    parts = [(m, table) for m, table in parts if not table.empty]
    if not parts:
        doc.text("No group has one-shot scores (baselines only, or all trials failed).")
    for metric, table in parts:
        text = f"Per row, one-shot vs architecture {metric_label(metric)} over the ok trials with both scores."
        _part_intro(doc, metric, len(parts) > 1, text)
        doc.table(table)
    for v in views:
        caption = f"{label('dataset', v.dataset)}: {score_label(v.metric)} vs {score_label(v.metric, 'one-shot')}"
        doc.figure(figs.get(f"scatter_{fg.safe_name(v.tag)}"), caption)


def distribution_section(doc: Doc, figs: dict, views: list[View]) -> None:
    doc.heading("Distributions over trials")
    for v in views:
        tag, what = fg.safe_name(v.tag), f"{label('dataset', v.dataset)}: {score_label(v.metric)}"
        doc.figure(figs.get(f"distribution_{tag}"), f"{what}, box and strip plot per row")
        doc.figure(figs.get(f"ecdf_{tag}"), f"{what}, empirical CDF per row")


def comparison_section(doc: Doc, comparisons: pd.DataFrame) -> None:
    doc.heading("Method comparisons (same data set, space and op set)")
    if comparisons.empty:
        doc.text("Fewer than two rows per data set, space and op set: nothing to compare.")
        return
    doc.text(
        "A and B name a row as method/hp set, epochs and, when set, its overrides. P(A beats B): the chance "
        "that a random trial of A scores better than one of B (ties count 1/2). Same arch.: of the seeds with an "
        "ok trial in both rows, those where both returned the same architecture, which the same seed retrains "
        "to the same score on one CPU and batch plan (to within rounding otherwise, docs/reliability.md)."
    )
    # Per data set / space / op set, the reference is its first level (e.g. das/H1) vs the rest.
    cell = ["dataset", "metric", "space", "op_set"]
    reference = comparisons.groupby(cell, sort=False)["a"].transform("first")
    shown = comparisons[comparisons["a"] == reference].head(MAX_COMPARISON_ROWS)
    parts = metric_parts(shown)
    for metric, part in parts:
        text = f"Medians and their difference in {metric_label(metric)}; {find_metric(metric).direction_text}."
        _part_intro(doc, metric, len(parts) > 1, text)
        doc.table(_comparison_rows(part))
    if len(shown) < len(comparisons):
        shown_of = f"Showing {len(shown)} of {len(comparisons)} pairs"
        doc.text(f"{shown_of} (the reference of each cell vs the rest); all are in comparisons.csv.")
    same = shown[(shown["n_same_genotype"] >= SAME_ARCHITECTURE_SHARE * shown["n_paired"]) & (shown["n_paired"] > 0)]
    if len(same):
        pairs = "; ".join(f"{r['a']} and {r['b']} ({_same_text(r)})" for _, r in same.iterrows())
        doc.text(f"**Rows that returned the same architecture for at least {SAME_ARCHITECTURE_SHARE:.0%} of their "
                 f"paired seeds: {pairs}. Their searches barely differ in outcome: a score difference between such "
                 "rows comes from the few seeds where they differ, or from rounding where their trials ran on "
                 "different CPUs (docs/reliability.md).**")


def _same_text(r: pd.Series) -> str:
    return f"{int(r['n_same_genotype'])}/{int(r['n_paired'])}" if r["n_paired"] else "–"


def _comparison_rows(shown: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {
            **_identity_cells(r, ("dataset", "space", "op_set")),
            "A": r["a"],
            "B": r["b"],
            "ok A (failed)": f"{r['n_a']} ({r['n_failed_a']})",
            "ok B (failed)": f"{r['n_b']} ({r['n_failed_b']})",
            "med A": fmt(r["median_a"]),
            "med B": fmt(r["median_b"]),
            "Δ med [95% CI]": f"{fmt(r['median_diff'])} [{fmt(r['median_diff_ci_low'])}, "
            f"{fmt(r['median_diff_ci_high'])}]",
            "Mann-Whitney p": fmt(r["mannwhitney_p"], 3),
            "P(A beats B)": fmt(r["prob_a_beats_b"]),
            "same arch.": _same_text(r),
            "note": r["note"],
        }
        for _, r in shown.iterrows()
    ]
    return pd.DataFrame(rows)


def steps_section(doc: Doc, steps: pd.DataFrame) -> None:
    doc.heading("Random search steps to beat the DAS / DARTS median (§5.2)")
    if steps.empty:
        doc.text("Needs 'random' trials and 'das' (or, on the cell space, 'darts') trials in the same data set, "
                 "space, op set, epochs and variant.")
        return
    doc.text(
        "The random pool of a row is the random trials with the same epochs and variant; failed ones count as "
        "draws that did not improve."
    )
    parts = metric_parts(steps)
    for metric, part in parts:
        higher = "higher" if find_metric(metric).direction == "max" else "lower"
        text = (f"Target: the median {metric_label(metric)} of the reference row (DAS; DARTS on the cell space); "
                f"a random trial beats it by scoring {higher}.")
        _part_intro(doc, metric, len(parts) > 1, text)
        doc.table(_steps_rows(part))
        if metric == PAPER_METRIC:
            p = PAPER_RANDOM_SEARCH_STEPS
            doc.text(
                f"Paper (50 epochs): {p['dataset']}, {p['space']}, {p['op_set']} ops: {p['mean_steps']:.0f} steps "
                f"on average ({p['n_runs']} runs) to beat the DAS median PSNR of {p['target']} dB."
            )


def _steps_rows(steps: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {
            **_identity_cells(r, ("dataset", "space", "op_set", "epochs", "variant")),
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
    return pd.DataFrame(rows)


def budget_section(doc: Doc, budget: pd.DataFrame, figs: dict, views: list[View], target: float) -> None:
    doc.heading(f"Seed budget: trials for a {width_text(metric_names(budget), target)} wide 95% CI of the median")
    if budget["n_needed"].notna().sum() == 0:
        doc.text(f"No group has enough ok trials ({MIN_N_CI}) for an estimate.")
        return
    parts = metric_parts(budget)
    for metric, part in parts:
        _part_intro(doc, metric, len(parts) > 1, f"CI widths of the median architecture {metric_label(metric)}.")
        doc.table(_budget_rows(part))
    for v in views:
        caption = f"{label('dataset', v.dataset)}: CI width of the median {metric_label(v.metric)} vs trials"
        doc.figure(figs.get(f"seed_budget_{fg.safe_name(v.tag)}"), caption)


def _budget_rows(budget: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {
            "row": row_label(r, ROW_IDENTITY),
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
    return pd.DataFrame(rows)


def frozen_sentence(r: pd.Series | dict) -> str:
    """The warning for one row whose alpha essentially did not move."""
    kept = 1 - r["argmax_changed_mean"]
    return (
        f"alpha essentially did not move in row {row_label(r, ROW_IDENTITY)}: the median trial's largest "
        f"change of an op probability was {r['prob_motion_median']:.2g} (max over trials "
        f"{r['prob_motion_max']:.2g}), below the {FROZEN_THRESHOLD:g} threshold. Its architectures are "
        f"decided by probability differences under one percentage point; on average at {kept:.0%} of the "
        "positions the chosen op is the argmax of the random initial alphas."
    )


def alpha_motion_section(doc: Doc, motion: pd.DataFrame, figs: dict) -> None:
    doc.heading("How far alpha moved")
    if motion.empty:
        doc.text("No ok trial has an alpha history (baselines only, or all failed).")
        return
    doc.text(
        "Per trial: the largest absolute change of an op probability softmax(alpha) (max |Δp|) and of a raw "
        "alpha (max |Δα|) between the first (initialization) and the last recorded epoch, and the fraction "
        "of positions whose most likely op changed; the table gives median and max over the row's ok "
        f"trials. A row is flagged when its median max |Δp| is below {FROZEN_THRESHOLD:g} (one percentage "
        "point): then the search returned (close to) the argmax of its random initial alphas, e.g. because "
        "it ran fewer epochs than the alpha warm-up."
    )
    rows = [
        {
            **_identity_cells(r),
            "trials with alpha": r["n_alpha"],
            "max |Δp| median": f"{r['prob_motion_median']:.2g}",
            "max |Δp| max": f"{r['prob_motion_max']:.2g}",
            "max |Δα| median": f"{r['raw_motion_median']:.2g}",
            "max |Δα| max": f"{r['raw_motion_max']:.2g}",
            "argmax changed": f"{r['argmax_changed_mean']:.0%}",
            "moved": "NO (frozen)" if r["frozen"] else "yes",
            "note": r["note"],
        }
        for _, r in motion.iterrows()
    ]
    doc.table(pd.DataFrame(rows))
    for _, r in motion[motion["frozen"].eq(True)].iterrows():
        doc.warning(frozen_sentence(r))
    doc.figure(figs.get("alpha_motion"), "max |Δ softmax(alpha)| per trial and row, log scale")


def architecture_section(doc: Doc, figs: dict) -> None:
    doc.heading("Chosen architectures and alpha trajectories")
    for key, path in figs.items():
        if key.startswith("op_frequency_"):
            doc.figure(path, "fraction of genotypes choosing each op per position (ok trials)")
    alphas = [(k, p) for k, p in figs.items() if k.startswith("alphas_") and p is not None]
    if not alphas:
        doc.text("No trial has an alpha history (baselines only, or all failed).")
    for _, path in alphas:
        caption = "softmax(alpha) per position over epochs (epoch 0 = initialization); y axes fit the data"
        doc.figure(path, caption)


def failures_section(doc: Doc, df: pd.DataFrame) -> None:
    doc.heading("Failed trials")
    failed = df[~ok_mask(df)]
    if failed.empty:
        doc.text("No failed trials.")
        return
    table = failed[list(SHOWN_IDENTITY)].astype(str)
    table["reason"] = failed["failure_reason"].fillna("").astype(str).str.slice(0, 120)
    counts = table.value_counts(sort=False).rename("count").reset_index()
    doc.table(sort_groups(counts, list(SHOWN_IDENTITY)))

