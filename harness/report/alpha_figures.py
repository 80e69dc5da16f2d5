"""Alpha figures: softmax trajectories of sample trials and how far alpha moved per row.

Why autoscaled axes: in a frozen search the op probabilities stay within 0.001 of uniform, a
flat line on a 0-1 axis that looks like "converged to uniform" rather than "never moved".
Each panel is scaled to its data and every title states the range, so the scale is never
hidden; the row figure shows motion on a log axis next to the frozen threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from harness.report.figures import WRAP, grid_shape, new_figure, num_text, save_png
from harness.report.identity import ROW_IDENTITY, identity_key, n_lines, row_label
from harness.report.metric_text import score_label
from harness.stats import alpha_probabilities, iter_groups
from harness.stats.alpha_motion import FROZEN_THRESHOLD, alpha_motion, trial_motion


def motion_text(prob: float, raw: float) -> str:
    """``'alpha moved: max |Δp| = 0.00029, max |Δα| = 0.0011 (first to last epoch)'``."""
    if not np.isfinite(prob):
        return "alpha motion not measurable"
    return f"alpha moved: max |Δp| = {prob:.2g}, max |Δα| = {raw:.2g} (first to last epoch)"


def alpha_trajectories(record: pd.Series, path: Path, notes: list[str]) -> Path | None:
    """Softmax op probabilities over epochs (epoch 0 = init): one panel per op, one line per position.

    Panels per op rather than per position keep the figure readable (and quick to draw) for
    the 30 edges of the non-sequential space too. Each panel's y axis fits its data.
    """
    res = alpha_probabilities(record)
    if res is None:
        notes.append(f"alphas {record.get('trial_id')}: no usable alpha history")
        return None
    probs, ops, positions = res
    nrows, ncols = grid_shape(len(ops), max_cols=len(ops) if len(ops) <= 5 else 3)
    fig = new_figure(3.4 * ncols + 1.2, 2.9 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True).ravel()
    epochs = np.arange(probs.shape[0])
    colors = colormaps["viridis"](np.linspace(0, 0.95, len(positions)))
    for k, ax in enumerate(axes):
        if k >= len(ops):
            ax.set_axis_off()
            continue
        for p in range(len(positions)):
            ax.plot(epochs, probs[:, p, k], color=colors[p], lw=1, label=positions[p])
        low, high = float(probs[:, :, k].min()), float(probs[:, :, k].max())
        ax.set_title(f"p({ops[k]}): y from {low:.4g} to {high:.4g}", fontsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if len(positions) <= 12:
        axes[len(ops) - 1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:
        mappable = ScalarMappable(norm=Normalize(0, len(positions) - 1), cmap="viridis")
        fig.colorbar(mappable, ax=list(axes[: len(ops)]), label="position index (see extra.positions)")
    score = record.get("arch_score")
    score = float(score) if score is not None else np.nan
    motion = trial_motion(record.get("alpha_history"))
    moved = motion_text(motion["prob_motion"], motion["raw_motion"])
    if motion["prob_motion"] < FROZEN_THRESHOLD:
        moved += f" < {FROZEN_THRESHOLD:g}: essentially did not move"
    what = row_label({c: record.get(c, "-") for c in ROW_IDENTITY}, ROW_IDENTITY, wrap=2 * WRAP)
    scored = f"{score_label(record.get('metric'))} {num_text(score)}"
    fig.suptitle(f"{what} / seed {record.get('seed')}: {scored}\n{moved}", fontsize=9)
    return save_png(fig, path)


def pick_alpha_trials(df: pd.DataFrame, limit: int) -> list[pd.Series]:
    """Best and worst ok trial per row with alpha histories, up to ``limit``.

    Rows are visited in paper order, first one row per (dataset, space, op set, method), so a
    small sample still covers the data sets and op sets before it shows hp sets or variants.
    """
    if "alpha_history" not in df.columns or limit <= 0:
        return []
    has = df[df["alpha_history"].map(lambda h: isinstance(h, list) and len(h) > 0) & (df["status"] == "ok")]
    groups = sorted(iter_groups(has, ROW_IDENTITY), key=lambda p: identity_key(p[0]))
    seen: set[tuple] = set()
    first, rest = [], []
    for labels, g in groups:
        cell = tuple(labels[c] for c in ("dataset", "space", "op_set", "method"))
        (rest if cell in seen else first).append(g)
        seen.add(cell)
    picked: list[pd.Series] = []
    for g in first + rest:
        scored = g.dropna(subset=["arch_score"]).sort_values("arch_score")
        candidates = [scored.iloc[-1], scored.iloc[0]] if len(scored) > 1 else [g.iloc[0]]
        picked.extend(candidates[: limit - len(picked)])
    return picked


def alpha_motion_figure(df: pd.DataFrame, path: Path, notes: list[str]) -> Path | None:
    """Per row, each ok trial's max |Δ softmax(alpha)| on a log axis, with the frozen threshold."""
    motion = alpha_motion(df[df["status"] == "ok"], ROW_IDENTITY)
    motion = motion[motion["prob_motion"].notna()]
    if motion.empty:
        notes.append("alpha motion: no ok trial has an alpha history of two or more entries")
        return None
    rows = sorted(iter_groups(motion, ROW_IDENTITY), key=lambda p: identity_key(p[0]))
    names = [row_label(lab, ROW_IDENTITY, wrap=WRAP) for lab, _ in rows]
    fig = new_figure(9, 1.4 + len(rows) * max(0.4, 0.13 * n_lines(names)))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    floor = 1e-9  # a trial whose alpha never changed (0) is drawn at the axis floor
    for i, (_, g) in enumerate(rows):
        values = np.maximum(g["prob_motion"].to_numpy(float), floor)
        ax.scatter(values, i + rng.uniform(-0.18, 0.18, values.size), s=9, alpha=0.6, color="C0")
        ax.plot([np.median(values)] * 2, [i - 0.3, i + 0.3], color="C3", lw=2)
    ax.axvline(FROZEN_THRESHOLD, color="k", ls=":", lw=1, label=f"frozen threshold {FROZEN_THRESHOLD:g}")
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel("max |Δ softmax(alpha)|, first to last recorded epoch (log scale; red = median)")
    low, high = float(motion["prob_motion"].min()), float(motion["prob_motion"].max())
    ax.set_title(f"How far alpha moved per trial: {low:.2g} to {high:.2g}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)
