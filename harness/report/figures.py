"""Report figures, drawn on the Agg canvas without pyplot.

Why no pyplot: the report may run inside a notebook or a worker thread, and pyplot's global
state (backend, current figure) would leak into or out of it. Each function writes one PNG
and returns its path, or None with a reason appended to ``notes`` when there is nothing to
draw (empty groups, all-failed groups, baselines without a one-shot score). Callers pass the
trials of one metric (a ``View``); every score axis is labelled with it (``score_label``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.atomic import save_figure_atomic
from harness.report.identity import LEVEL_COLUMNS, ROW_COLUMNS, identity_key, n_lines, row_label
from harness.report.metric_text import score_label
from harness.report.tables import label, ordered
from harness.stats import correlate, fit_inverse_sqrt, iter_groups, op_frequencies
from harness.stats._common import group_metric, n_failed, ok_pairs, ok_values
from harness.tasks.metrics import metric_label

# What one scatter panel holds: a row less its op set (op sets are the colours).
PANEL_COLUMNS = ("space", "method", "hp_set", "epochs", "variant")
DPI = 100
WRAP = 60  # characters per line of a row label in a figure
PANEL_WRAP = 45  # characters per line of a scatter panel's title (9 pt on a 4.6-inch panel)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """Write the PNG atomically: a report refreshed while a study runs is never read half-drawn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure_atomic(fig, path, format="png")


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(max_cols, max(n, 1))
    return math.ceil(max(n, 1) / cols), cols


def _message_figure(path: Path, title: str, message: str) -> Path:
    fig = new_figure(6, 2.5)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return save_png(fig, path)


def scatter_dataset(df: pd.DataFrame, dataset: str, path: Path, notes: list[str]) -> Path:
    """Figs 3-8: architecture score vs one-shot score, one panel per row less its op set.

    Op sets are colours, each with its least-squares line and Spearman/Pearson in the legend.
    Always writes the PNG (a message panel if no trial has a one-shot score).
    """
    sub = df[df["dataset"] == dataset]
    metric = group_metric(sub).name
    panels = []
    for labels, g in iter_groups(sub, PANEL_COLUMNS):
        if ok_pairs(g, "oneshot_score", "arch_score")[0].size:
            panels.append((labels, g))
    if not panels:
        notes.append(f"scatter {dataset}: no trial has both a one-shot and an architecture score")
        message = "no one-shot scores (baselines only or all failed)"
        return _message_figure(path, label("dataset", dataset), message)
    panels = sorted(panels, key=lambda p: identity_key(p[0], PANEL_COLUMNS))
    nrows, ncols = grid_shape(len(panels))
    fig = new_figure(4.6 * ncols, 3.8 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (labels, g) in zip(axes, panels, strict=False):
        for i, op_set in enumerate(ordered("op_set", g["op_set"])):
            part = g[g["op_set"] == op_set]
            x, y = ok_pairs(part, "oneshot_score", "arch_score")
            if x.size == 0:
                continue
            res = correlate(x, y, n_boot=0)
            color = f"C{i}"
            rho, r = num_text(res["spearman_rho"]), num_text(res["pearson_r"])
            text = f"{label('op_set', op_set)} n={x.size}: Spearman ρ={rho}, Pearson r={r}"
            ax.scatter(x, y, s=14, alpha=0.7, color=color, label=text)
            if np.isfinite(res["slope"]):
                xs = np.linspace(x.min(), x.max(), 2)
                ax.plot(xs, res["intercept"] + res["slope"] * xs, color=color, lw=1.2)
        failed = n_failed(g)
        title = row_label(labels, PANEL_COLUMNS, wrap=PANEL_WRAP)
        ax.set_title(title + (f"\n({failed} failed trial(s) not shown)" if failed else ""), fontsize=9)
        ax.set_xlabel(score_label(metric, "one-shot"))
        ax.set_ylabel(score_label(metric))
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    fig.suptitle(f"{label('dataset', dataset)}: architecture vs one-shot {metric_label(metric)}")
    return save_png(fig, path)


def num_text(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.2f}"


def _rows(df: pd.DataFrame) -> list[tuple[str, np.ndarray, int]]:
    rows = []
    for labels, g in iter_groups(df, ROW_COLUMNS):
        rows.append((labels, ok_values(g, "arch_score"), n_failed(g)))
    rows.sort(key=lambda r: identity_key(r[0], ROW_COLUMNS))
    return [(row_label(lab, wrap=WRAP) + (f" ({f} failed)" if f else ""), v, f) for lab, v, f in rows]


def distributions_dataset(df: pd.DataFrame, dataset: str, path: Path, notes: list[str]) -> Path | None:
    """Box + strip plot of architecture scores per row (space / op set / method / hp set / epochs / variant)."""
    sub = df[df["dataset"] == dataset]
    rows = _rows(sub)
    if not any(v.size for _, v, _ in rows):
        notes.append(f"distributions {dataset}: no ok trials")
        return None
    fig = new_figure(9, 1.0 + len(rows) * max(0.45, 0.14 * n_lines([n for n, _, _ in rows])))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, (_, v, _) in enumerate(rows):
        if v.size == 0:
            continue  # the row keeps its tick, labelled "all failed"
        _hbox(ax, v, i)
        ax.scatter(v, i + rng.uniform(-0.18, 0.18, v.size), s=9, alpha=0.6, color="C0", zorder=3)
    ax.set_yticks(range(len(rows)), [n if v.size else f"{n} — all failed" for n, v, _ in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel(score_label(group_metric(sub).name))
    ax.set_title(f"{label('dataset', dataset)}: distribution over trials (ok trials only)")
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)


def _hbox(ax, values: np.ndarray, position: int) -> None:
    """A horizontal box; ``orientation`` replaced ``vert`` in matplotlib 3.10."""
    try:
        ax.boxplot(values, positions=[position], orientation="horizontal", widths=0.6, showfliers=False)
    except TypeError:
        ax.boxplot(values, positions=[position], vert=False, widths=0.6, showfliers=False)


def ecdf_dataset(df: pd.DataFrame, dataset: str, path: Path, notes: list[str]) -> Path | None:
    """Empirical CDF of architecture scores per row, one panel per search space."""
    sub = df[df["dataset"] == dataset]
    spaces = ordered("space", sub["space"])
    panels = [(s, [r for r in _rows(sub[sub["space"] == s]) if r[1].size]) for s in spaces]
    panels = [(s, rows) for s, rows in panels if rows]
    if not panels:
        notes.append(f"ECDF {dataset}: no ok trials")
        return None
    legend_lines = max(sum(name.count("\n") + 1 for name, _, _ in rows) for _, rows in panels)
    fig = new_figure(6.5 * len(panels), max(4.5, 1.5 + 0.11 * legend_lines))  # the legend must fit
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    for ax, (space, rows) in zip(axes, panels, strict=False):
        for i, (name, v, _) in enumerate(rows):
            xs = np.sort(v)
            style, color = ("-" if i < 10 else "--"), f"C{i % 10}"
            ax.step(xs, np.arange(1, xs.size + 1) / xs.size, style, where="post", label=name, color=color)
        ax.set_title(f"{label('dataset', dataset)} / {space}")
        ax.set_xlabel(score_label(group_metric(sub).name))
        ax.set_ylabel("fraction of ok trials ≤ x")
        ax.legend(fontsize=6, loc="upper left")
        ax.grid(alpha=0.3)
    return save_png(fig, path)


def op_frequency_figure(
    df: pd.DataFrame, dataset: str, space: str, path: Path, notes: list[str]
) -> Path | None:
    """One heatmap: rows = (op set / method / hp set / epochs / variant, op), columns = positions, colour = fraction
    of ok trials' genotypes that chose the op there."""
    sub = df[(df["dataset"] == dataset) & (df["space"] == space)]
    keys = list(ROW_COLUMNS[1:])
    freq = op_frequencies(sub, keys)
    if freq.empty:
        notes.append(f"op frequencies {dataset}/{space}: no genotypes of ok trials")
        return None
    groups = sorted(
        {tuple(r) for r in freq[keys].itertuples(index=False)},
        key=lambda k: identity_key(dict(zip(keys, k, strict=True)), keys),
    )
    n_pos = int(freq["position_index"].max()) + 1
    blocks, ylabels, edges, blocks_of = [], [], [], []
    for key in groups:
        part = freq[(freq[keys] == pd.Series(key, index=keys)).all(axis=1)]
        table = part.pivot_table(index="op", columns="position_index", values="freq", fill_value=0.0)
        table = table.reindex(columns=range(n_pos), fill_value=0.0)
        n_geno = int(part["n_genotypes"].iloc[0])
        blocks.append(table.to_numpy())
        name = row_label(dict(zip(keys, key, strict=True)), keys, wrap=WRAP)
        blocks_of.append((f"{name} (n={n_geno})", len(ylabels)))
        ylabels += [str(op) for op in table.index]
        edges.append(len(ylabels))
    matrix = np.vstack(blocks)
    positions = freq.drop_duplicates("position_index").set_index("position_index")["position"]
    # Each block's row label sits left of its op names: rows tall enough for its wrapped lines.
    fewest_ops = min(b.shape[0] for b in blocks)
    row_height = max(0.17, 0.1 * n_lines([name for name, _ in blocks_of]) / fewest_ops)
    fig = new_figure(min(6.0 + 0.3 * n_pos, 19), 1.2 + row_height * len(ylabels))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=6)
    ax.set_xticks(range(n_pos), [str(positions.get(i, i)) for i in range(n_pos)], rotation=90, fontsize=6)
    for e in edges[:-1]:
        ax.axhline(e - 0.5, color="white", lw=1.5)
    for (name, start), end in zip(blocks_of, edges, strict=True):
        centre = (start + end - 1) / 2
        ax.annotate(name, xy=(0, centre), xycoords=("axes fraction", "data"), xytext=(-36, 0),
                    textcoords="offset points", ha="right", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of genotypes")
    ax.set_title(f"{label('dataset', dataset)} / {space}: chosen op per position", fontsize=9)
    return save_png(fig, path)


def seed_budget_figure(curve: pd.DataFrame, budget: pd.DataFrame, dataset: str, path: Path) -> Path | None:
    """Bootstrap CI width of the median vs n per row (one panel per space), fitted c/sqrt(n), target."""
    sub = curve[curve["dataset"] == dataset]
    if sub.empty:
        return None
    spaces = ordered("space", sub["space"])
    fig = new_figure(6.5 * len(spaces), 4.8)
    axes = fig.subplots(1, len(spaces), squeeze=False, sharey=True).ravel()
    target = budget["target_width"].dropna()
    for ax, space in zip(axes, spaces, strict=True):
        groups = list(iter_groups(sub[sub["space"] == space], ROW_COLUMNS[1:]))
        groups.sort(key=lambda p: identity_key(p[0], ROW_COLUMNS[1:]))
        for i, (labels, g) in enumerate(groups):
            color, style = f"C{i % 10}", "-" if i < 10 else "--"
            ax.plot(g["n"], g["width_mean"], "o", color=color, ms=3)
            c = fit_inverse_sqrt(g["n"], g["width_mean"])
            ns = np.linspace(g["n"].min(), max(g["n"].max(), 75), 50)
            name = row_label(labels, ROW_COLUMNS[1:], wrap=WRAP)
            ax.plot(ns, c / np.sqrt(ns), style, color=color, lw=1, label=name)
        if not target.empty:
            ax.axhline(float(target.iloc[0]), color="k", lw=0.8, ls=":", label="target width")
        ax.set_xlabel("ok trials n")
        ax.set_title(f"{label('dataset', dataset)} / {space}", fontsize=9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"95% CI width of the median {metric_label(group_metric(sub).name)}")
    fig.suptitle("Seed budget: points = subsample bootstrap, lines = c/√n fit", fontsize=10)
    return save_png(fig, path)


def method_ranking_figure(ranking: pd.DataFrame, dataset: str, path: Path, notes: list[str]) -> Path | None:
    """Per (space, op set): median architecture score with its CI per method, best on top, and
    the one-shot/architecture Spearman correlation with its CI beside it (baselines in grey)."""
    sub = ranking[ranking["dataset"] == dataset]
    metric = group_metric(sub)
    panels = [(labels, g) for labels, g in iter_groups(sub, ("space", "op_set")) if g["median"].notna().any()]
    if not panels:
        notes.append(f"method ranking ({dataset}): no group with a finite median")
        return None
    names_of = [[row_label(r, LEVEL_COLUMNS, wrap=WRAP) for r in g.to_dict("records")] for _, g in panels]
    per_row = max(0.28, 0.12 * n_lines([n for names in names_of for n in names]))
    height = sum(per_row * len(g) + 1.2 for _, g in panels)
    fig = new_figure(11, max(height, 3))
    grid = fig.add_gridspec(len(panels), 2, width_ratios=(3, 2), height_ratios=[len(g) + 3 for _, g in panels])
    for i, (labels, group) in enumerate(panels):
        group = group.sort_values("rank", ascending=False, na_position="first")
        y = np.arange(len(group))
        names = [row_label(r, LEVEL_COLUMNS, wrap=WRAP) for r in group.to_dict("records")]
        colours = ["0.6" if b else "C0" for b in group["baseline"]]
        panels_of_row = (
            (grid[i, 0], "median", "median_ci_low", "median_ci_high", f"median {score_label(metric.name)}, 95% CI"),
            (grid[i, 1], "spearman_rho", "spearman_ci_low", "spearman_ci_high", "Spearman one-shot vs arch."),
        )
        for cell, centre, low, high, title in panels_of_row:
            ax = fig.add_subplot(cell)
            c = pd.to_numeric(group[centre], errors="coerce").to_numpy(float)
            lo = pd.to_numeric(group[low], errors="coerce").to_numpy(float)
            hi = pd.to_numeric(group[high], errors="coerce").to_numpy(float)
            err = np.vstack([np.clip(c - lo, 0, None), np.clip(hi - c, 0, None)])
            err = np.where(np.isfinite(err), err, 0.0)
            ax.errorbar(c, y, xerr=err, fmt="none", ecolor="0.5", capsize=2)
            ax.scatter(c, y, c=colours, zorder=3, s=18)
            ax.set_yticks(y, names if centre == "median" else [""] * len(y), fontsize=7)
            ax.set_title(f"{labels['space']}, {labels['op_set']} ops: {title}", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            if centre == "spearman_rho":
                ax.axvline(0, color="0.3", lw=0.8)
                ax.set_xlim(-1.05, 1.05)
    what = f"median architecture {metric.display_name}, {metric.direction_text}"
    fig.suptitle(f"{label('dataset', dataset)}: methods ranked by {what} (best on top)")
    return save_png(fig, path)
