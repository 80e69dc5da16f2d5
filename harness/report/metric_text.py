"""Which metric a part of the report shows, and the words it uses for it.

A study may mix metrics (PSNR rows of the 1D tasks beside accuracy rows of the image tasks);
scores of different metrics never share a table or a figure. Sections split their tables with
``metric_parts``, figures are drawn per ``View`` (a data set and its metric), and every label
comes from ``harness.tasks.metrics.metric_label`` (``'PSNR (dB)'``, ``'accuracy (%)'``).
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from harness.report.tables import label, ordered
from harness.stats._common import METRIC, MISSING_LABEL
from harness.tasks.metrics import find_metric, metric_label


class View(NamedTuple):
    """One data set's rows of one metric: what a per-data-set figure shows."""

    dataset: str
    metric: str
    tag: str  # figure-name suffix (before ``safe_name``): the data set, plus the metric where it has several


def metric_names(df: pd.DataFrame) -> list[str]:
    """The metrics of ``df``'s rows in report order (PSNR first); ``['-']`` without a metric column."""
    if METRIC not in df.columns or df.empty:
        return [MISSING_LABEL]
    return ordered("metric", df[METRIC].astype(object).where(df[METRIC].notna(), MISSING_LABEL))


def metric_parts(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``df`` split by metric, in report order; the whole frame when it has no metric column."""
    if METRIC not in df.columns:
        return [(MISSING_LABEL, df)]
    return [(name, df[df[METRIC] == name]) for name in metric_names(df)]


def views(df: pd.DataFrame) -> list[View]:
    """Every (data set, metric) of the trials, in report order, with its figure tag."""
    out = []
    for dataset in ordered("dataset", df["dataset"].dropna()):
        names = metric_names(df[df["dataset"] == dataset])
        for name in names:
            out.append(View(dataset, name, dataset if len(names) == 1 else f"{dataset}_{name}"))
    return out


def score_label(name: str, kind: str = "architecture") -> str:
    """``'architecture PSNR (dB)'``, ``'one-shot accuracy (%)'``: an axis of scores."""
    return f"{kind} {metric_label(name)}"


def heading_suffix(name: str, mixed: bool) -> str:
    """``', accuracy (%)'`` for a heading in a study of several metrics, else ``''``."""
    return f", {metric_label(name)}" if mixed else ""


def scores_sentence(df: pd.DataFrame) -> str:
    """What the report's scores are: per metric its label, data sets and direction."""
    parts = metric_parts(df)
    if len(parts) == 1:
        name = parts[0][0]
        what = f"{metric_label(name)}, {find_metric(name).direction_text},"
    else:
        each = []
        for name, part in parts:
            datasets = ", ".join(label("dataset", d) for d in ordered("dataset", part["dataset"]))
            each.append(f"{metric_label(name)} for {datasets} ({find_metric(name).direction_text})")
        what = "; ".join(each) + ","
    text = f"Scores are the retrained architectures' {what} over ok trials; one-shot scores are the supernet's."
    if len(parts) > 1:
        text += " Rows of different metrics are never pooled: each table and figure shows one metric."
    return text


def width_text(names: list[str], width: float) -> str:
    """A CI width in each metric's unit: ``'1 dB'``, ``'1 dB (PSNR) / 1 percentage point (accuracy)'``."""
    if len(names) == 1:
        return find_metric(names[0]).amount(width)
    return " / ".join(f"{find_metric(n).amount(width)} ({find_metric(n).display_name})" for n in names)
