"""How far the architecture parameters alpha moved during a search, per trial and per row.

Why: a search whose alpha never leaves its random initialization (e.g. fewer epochs than the
alpha warm-up, or a learning rate too small for the budget) still returns a genotype: the
argmax of the random initial alphas. Its score then measures the initialization, not the
search, and nothing else in a trial record says so. Motion is measured between the first and
the last recorded alpha, as the largest absolute change of an op probability (softmax over the
ops of one position) and of a raw alpha value, plus the fraction of positions whose argmax op
changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.stats._common import GROUP_COLUMNS, as_list, iter_groups, join_notes, n_failed, ok_mask
from harness.stats.genotypes import softmax

# A row is flagged as frozen when the median trial's largest op-probability change is below
# one percentage point. In the 50-epoch reference runs (results/blur-75trials,
# downsampling-75trials) plain DAS/H1 moves at most 0.002, while searches that do select ops
# (BOHB hp sets, D-DARTS, DARTS-) move 0.05 to 0.8: 0.01 sits in that gap with a margin of
# at least 5x on both sides. Below it the supernet's op mixture is uniform to within 1%.
FROZEN_THRESHOLD = 0.01

TRIAL_COLUMNS = ["n_recorded", "prob_motion", "raw_motion", "argmax_changed", "motion_note"]
ROW_COLUMNS = [
    "n",
    "n_failed",
    "n_alpha",
    "prob_motion_median",
    "prob_motion_max",
    "raw_motion_median",
    "raw_motion_max",
    "argmax_changed_mean",
    "frozen",
    "note",
]


def _leaves(alphas) -> list[np.ndarray] | None:
    """The op vectors of one recorded alpha (one per position, any nesting); None if unreadable."""
    try:
        arr = np.asarray(alphas, dtype=float)
    except (TypeError, ValueError):  # ragged: positions with different op counts, or cells
        if not isinstance(alphas, (list, tuple)) or not alphas:
            return None
        parts = [_leaves(a) for a in alphas]
        return None if any(p is None for p in parts) else [v for p in parts for v in p]
    if arr.ndim == 0 or arr.size == 0:
        return None
    return list(arr.reshape(-1, arr.shape[-1]))


def trial_motion(history) -> dict:
    """Motion between the first and the last entry of one trial's ``alpha_history``.

    ``prob_motion``: max |Δ softmax(alpha)| over positions and ops; ``raw_motion``: max |Δ alpha|;
    ``argmax_changed``: fraction of positions whose most likely op changed. NaN with a
    ``motion_note`` when there is no history, a single entry, or first and last differ in shape.
    """
    out = {"n_recorded": 0, "prob_motion": np.nan, "raw_motion": np.nan, "argmax_changed": np.nan}
    if not isinstance(history, (list, tuple)) or len(history) == 0:
        return {**out, "motion_note": "no alpha history (baseline or not recorded)"}
    out["n_recorded"] = len(history)
    if len(history) < 2:
        return {**out, "motion_note": "a single recorded alpha: motion not measurable"}
    first, last = _leaves(history[0]), _leaves(history[-1])
    if first is None or last is None:
        return {**out, "motion_note": "unreadable alpha history"}
    if [v.size for v in first] != [v.size for v in last]:
        return {**out, "motion_note": "first and last alpha differ in shape"}
    prob = max(float(np.abs(softmax(b) - softmax(a)).max()) for a, b in zip(first, last, strict=True))
    raw = max(float(np.abs(b - a).max()) for a, b in zip(first, last, strict=True))
    changed = float(np.mean([np.argmax(a) != np.argmax(b) for a, b in zip(first, last, strict=True)]))
    return {**out, "prob_motion": prob, "raw_motion": raw, "argmax_changed": changed, "motion_note": ""}


def alpha_motion(df: pd.DataFrame, by: str | Sequence[str] = GROUP_COLUMNS) -> pd.DataFrame:
    """One row per trial: its ``by`` labels, trial id, seed, status and ``trial_motion``."""
    cols = as_list(by)
    rows = []
    histories = df["alpha_history"] if "alpha_history" in df.columns else pd.Series([None] * len(df), index=df.index)
    for labels, g in iter_groups(df, cols):
        for idx, rec in g.iterrows():
            row = {**labels, "trial_id": rec.get("trial_id"), "seed": rec.get("seed"), "status": rec.get("status")}
            rows.append({**row, **trial_motion(histories.loc[idx])})
    return pd.DataFrame(rows, columns=[*cols, "trial_id", "seed", "status", *TRIAL_COLUMNS])


def alpha_motion_summary(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    threshold: float = FROZEN_THRESHOLD,
) -> pd.DataFrame:
    """One row per group: median and max motion over its ok trials with a history, and ``frozen``.

    ``frozen`` is True when the median trial's ``prob_motion`` is below ``threshold`` (None
    when no ok trial has a usable history); ``n_alpha`` counts the trials that entered.
    """
    cols = as_list(by)
    rows = []
    for labels, g in iter_groups(df, cols):
        ok = g[ok_mask(g)]
        motion = pd.DataFrame([trial_motion(h) for h in ok.get("alpha_history", [None] * len(ok))])
        usable = motion[motion["prob_motion"].notna()] if len(motion) else motion
        row = {**labels, "n": len(g), "n_failed": n_failed(g), "n_alpha": len(usable)}
        row.update({c: np.nan for c in ROW_COLUMNS[3:8]}, frozen=None)
        if usable.empty:
            notes = sorted(set(motion["motion_note"])) if len(motion) else ["no ok trials"]
            rows.append({**row, "note": join_notes(*notes)})
            continue
        for name in ("prob_motion", "raw_motion"):
            row[f"{name}_median"] = float(usable[name].median())
            row[f"{name}_max"] = float(usable[name].max())
        row["argmax_changed_mean"] = float(usable["argmax_changed"].mean())
        row["frozen"] = bool(row["prob_motion_median"] < threshold)
        skipped = len(ok) - len(usable)
        row["note"] = f"{skipped} ok trial(s) without a usable alpha history" if skipped else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=[*cols, *ROW_COLUMNS])
