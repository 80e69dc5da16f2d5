"""``write_report``: regenerate the paper's tables and figures from a study's stored trials.

Everything is recomputed from ``trials.jsonl`` (and shard files) on each call, so a report can be refreshed
while a study is still running and never disagrees with the trials it describes. Every
statistic groups by the full row identity (``ROW_IDENTITY``: the paper's columns plus the
metric, epochs and the override text ``variant``), so rows that differ only in their overrides
stay apart and scores of different metrics are never pooled: figures are drawn per data set and
metric (``View``), and every label names the metric.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pandas as pd

from harness.atomic import write_text_atomic
from harness.report import alpha_figures as af
from harness.report import figures as fg
from harness.report import parquet as pq
from harness.report import sections as sec
from harness.report.identity import ROW_IDENTITY, add_levels, factor_shared_settings, identity_key, with_identity
from harness.report.metric_text import views
from harness.report.provenance import provenance_groups, provenance_note, provenance_section
from harness.report.tables import order_key, ordered, sort_groups
from harness.runner.store import TRIALS_FILE, TrialStore
from harness.stats import (
    ci_width_curve,
    compare_groups,
    describe_scores,
    random_search_steps,
    seed_budget,
    summary_table,
)
from harness.stats.alpha_motion import alpha_motion_summary
from harness.stats.methods import method_ranking

FIGURES_DIR = "figures"
FIGURE_PREFIXES = (
    "methods_", "scatter_", "distribution_", "ecdf_", "seed_budget_", "op_frequency_", "alphas_", "alpha_motion",
)
STEPS_BY = ("dataset", "metric", "space", "op_set", "epochs", "variant")
CELL = ("dataset", "metric", "space", "op_set")  # what a comparison holds fixed


class ReportError(RuntimeError):
    """A study folder that cannot be reported on (no trials file, no records)."""


def load_study(study_folder: str | os.PathLike) -> tuple[TrialStore, pd.DataFrame]:
    """The study's store and trials (with every identity column); ``ReportError`` when empty."""
    folder = Path(study_folder)
    store = TrialStore(folder)
    if not folder.is_dir():
        raise ReportError(f"study folder {folder} does not exist")
    if not store.files():  # trials.jsonl and/or the shards' files, merged
        raise ReportError(f"no {TRIALS_FILE} in {folder}: run a study into this folder first")
    df = store.dataframe()
    if df.empty:
        raise ReportError(f"{folder} has no complete trial records")
    return store, with_identity(df)


# The search method whose median random draws must beat ([001] §5.2): DAS on the 1D spaces, its
# counterpart DARTS on the cell space.
STEPS_REFERENCES = ("das", "darts")


def _steps(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    parts = [random_search_steps(df, STEPS_BY, reference_method=m, seed=seed) for m in STEPS_REFERENCES
             if (df["method"] == m).any()]
    steps = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(
        not p.empty for p in parts) else pd.DataFrame()
    if steps.empty:
        return steps
    keys = [
        (*identity_key(r, STEPS_BY), order_key("hp_set", str(r["reference"]).partition("/")[2]))
        for r in steps.to_dict("records")
    ]
    return steps.iloc[sorted(range(len(steps)), key=keys.__getitem__)].reset_index(drop=True)


def write_report(
    study_folder: str | os.PathLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    target_width: float = 1.0,
    alpha_trials: int = 6,
) -> dict[str, Path]:
    """Write trials.csv, trials.parquet (with pyarrow), summary.csv, summary.md, report.html and
    figures/*.png into the folder.

    Returns the written files keyed by their path relative to the study folder.
    """
    store, full = load_study(study_folder)
    df, shared = factor_shared_settings(full)
    # The CSVs keep each row's full override text (data files may be merged across studies).
    full_variant = dict(zip(df["variant"], full["variant"]))

    def csv_text(table: pd.DataFrame) -> str:
        if "variant" in table.columns:
            table = table.assign(variant=[full_variant.get(v, v) for v in table["variant"]])
        return table.to_csv(index=False)

    folder = store.folder
    written: dict[str, Path] = {"trials.csv": store.write_csv()}
    notes: list[str] = [store.damage_note()] if store.damaged else []
    columnar = pq.write_trials_parquet(store)  # the same merged records as trials.csv, typed
    if columnar is not None:
        written[pq.PARQUET_FILE] = columnar
    else:
        notes.append(pq.skip_message())
        pq.say_skipped_once()

    summary = sort_groups(summary_table(df, ROW_IDENTITY, n_boot=n_boot, seed=seed), list(ROW_IDENTITY))
    written["summary.csv"] = write_text_atomic(folder / "summary.csv", csv_text(summary))

    runtime = describe_scores(df, ROW_IDENTITY[1:], oneshot=None, n_boot=0)
    leveled, level_keys = add_levels(df)
    pairs = list(itertools.combinations(sorted(level_keys, key=level_keys.__getitem__), 2))
    comparisons = compare_groups(leveled, CELL, between="level", pairs=pairs, n_boot=n_boot, seed=seed)
    comparisons = sort_groups(comparisons, list(CELL))
    steps = _steps(df, seed)
    budget_boot = min(n_boot, 500)
    curve = ci_width_curve(df, ROW_IDENTITY, n_boot=budget_boot, seed=seed)
    budget = seed_budget(df, ROW_IDENTITY, target_width=target_width, n_boot=budget_boot, seed=seed, curve=curve)
    budget = sort_groups(budget, list(ROW_IDENTITY))
    ranking = method_ranking(df, summary=summary)
    motion = alpha_motion_summary(df, ROW_IDENTITY)
    motion = sort_groups(motion[motion["n_alpha"] > 0], list(ROW_IDENTITY))
    extra = {
        "methods_ranking.csv": ranking,
        "comparisons.csv": comparisons,
        "random_search_steps.csv": steps,
        "seed_budget.csv": budget,
        "alpha_motion.csv": motion,
    }
    for name, table in extra.items():
        if not table.empty:
            written[name] = write_text_atomic(folder / name, csv_text(table))

    fig_dir = folder / FIGURES_DIR
    _remove_stale_figures(fig_dir)
    figs: dict[str, Path | None] = {}
    shown = views(df)
    for v in shown:  # one data set's rows of one metric
        tag, d = fg.safe_name(v.tag), v.dataset
        trials, ranked = df[df["metric"] == v.metric], ranking[ranking["metric"] == v.metric]
        if sec.ranks_methods(ranking):
            figs[f"methods_{tag}"] = fg.method_ranking_figure(ranked, d, fig_dir / f"methods_{tag}.png", notes)
        figs[f"scatter_{tag}"] = fg.scatter_dataset(trials, d, fig_dir / f"scatter_{tag}.png", notes)
        png = fig_dir / f"distribution_{tag}.png"
        figs[f"distribution_{tag}"] = fg.distributions_dataset(trials, d, png, notes)
        figs[f"ecdf_{tag}"] = fg.ecdf_dataset(trials, d, fig_dir / f"ecdf_{tag}.png", notes)
        png = fig_dir / f"seed_budget_{tag}.png"
        figs[f"seed_budget_{tag}"] = fg.seed_budget_figure(curve[curve["metric"] == v.metric], budget, d, png)
        for s in ordered("space", trials.loc[trials["dataset"] == d, "space"].dropna()):
            name = f"op_frequency_{tag}_{fg.safe_name(s)}"
            figs[name] = fg.op_frequency_figure(trials, d, s, fig_dir / f"{name}.png", notes)
    if not motion.empty:
        figs["alpha_motion"] = af.alpha_motion_figure(df, fig_dir / "alpha_motion.png", notes)
    for rec in af.pick_alpha_trials(df, alpha_trials):
        name = f"alphas_{fg.safe_name(rec['trial_id'])}"
        figs[name] = af.alpha_trajectories(rec, fig_dir / f"{name}.png", notes)
    for key, path in figs.items():
        if path is not None:
            written[f"{FIGURES_DIR}/{key}.png"] = path

    doc = sec.Doc(folder)
    sec.header(doc, folder, df, motion, shared)
    environments = provenance_groups(full)
    if provenance_note(environments):  # a study resumed on another machine or engine says so up front
        doc.text(provenance_note(environments))
    if store.damaged:  # torn fragments of crashed writes: their trials count as not run
        doc.warning(store.damage_note())
    sec.paper_layout(doc, summary, runtime, shared)
    sec.methods_section(doc, ranking, figs, shown)
    sec.correlation_section(doc, summary, figs, shown)
    sec.distribution_section(doc, figs, shown)
    sec.comparison_section(doc, comparisons)
    sec.steps_section(doc, steps)
    sec.budget_section(doc, budget, figs, shown, target_width)
    sec.alpha_motion_section(doc, motion, figs)
    sec.architecture_section(doc, figs)
    sec.failures_section(doc, df)
    provenance_section(doc, environments)
    doc.heading("Notes")
    for note in notes or ["none"]:
        doc.text(f"- {note}")

    written["summary.md"] = write_text_atomic(folder / "summary.md", "\n".join(doc.md))
    written["report.html"] = write_text_atomic(folder / "report.html", doc.page(folder.name))
    return written


def _remove_stale_figures(fig_dir: Path) -> None:
    """Drop the PNGs an earlier report wrote (our own name patterns only), e.g. old alpha samples."""
    if fig_dir.is_dir():
        for prefix in FIGURE_PREFIXES:
            for old in fig_dir.glob(f"{prefix}*.png"):
                old.unlink(missing_ok=True)
