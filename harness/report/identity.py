"""A report row's full identity and its readable label.

Why: two rows that differ only in epochs or in hyperparameter overrides are different
experiments; pooling them, or printing them under the same label, would present one as the
other. Every table and figure of the report groups by ``ROW_IDENTITY`` and names a row with
``row_label``, which shows the epochs and, when there is one, the override text (``variant``).
The metric is part of the identity (scores of different metrics are never pooled) but not of a
row's name: every table and figure shows one metric and says which.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence

import pandas as pd

from harness.report.tables import BASELINE_METHODS, epochs_text, has_variant, label, order_key
from harness.runner.spec import items_label, setting_items
from harness.stats import GROUP_COLUMNS
from harness.stats._common import METRIC, metric_labels

NO_VARIANT = "-"
# The stats package groups by the same columns, so a report row is exactly one stats group.
ROW_IDENTITY: tuple[str, ...] = tuple(GROUP_COLUMNS)
# The identity as a table shows it: the metric is named by the table's heading or caption.
SHOWN_IDENTITY: tuple[str, ...] = tuple(c for c in ROW_IDENTITY if c != METRIC)
# The identity below the data set: what tells rows apart inside one data set's figure.
ROW_COLUMNS: tuple[str, ...] = tuple(c for c in SHOWN_IDENTITY if c != "dataset")
# Of a level compared within one (dataset, space, op set) cell.
LEVEL_COLUMNS: tuple[str, ...] = ("method", "hp_set", "epochs", "variant")


def with_identity(df: pd.DataFrame) -> pd.DataFrame:
    """The trials with every identity column; frames from before ``variant`` existed get '-'.

    ``metric`` is ``metric_labels``: a failed trial carries its data set's metric."""
    out = df.copy()
    for column in ROW_IDENTITY:
        if column not in out.columns:
            out[column] = NO_VARIANT  # an unknown setting reads as "-", like iter_groups
    out[METRIC] = metric_labels(df)
    out["variant"] = out["variant"].astype(object).where(out["variant"].notna(), NO_VARIANT).astype(str)
    out.loc[out["variant"].str.strip() == "", "variant"] = NO_VARIANT
    return out


def row_label(labels: Mapping, columns: Sequence[str] = ROW_COLUMNS, wrap: int = 0) -> str:
    """``'all / DAS / H1 / 50 epochs'``, plus ``' / param_lr=0.1'`` for a row with overrides.

    ``wrap`` > 0 breaks the text into lines of at most that many characters, for figures,
    where a tuned row's long override text would otherwise be cut off at the canvas edge.
    """
    parts = []
    for c in columns:
        value = labels.get(c, NO_VARIANT)
        if c == METRIC:
            continue
        if c == "variant":
            if has_variant(value):
                parts.append(str(value))
        elif c == "epochs":
            parts.append(epochs_text(value))
        else:
            parts.append(label(c, value) if c in ("method", "dataset") else str(value))
    text = " / ".join(parts)
    return textwrap.fill(text, wrap, break_on_hyphens=False) if wrap > 0 else text


def n_lines(texts: Sequence[str]) -> int:
    """The most lines any of ``texts`` spans (1 for none), to size a figure to wrapped labels."""
    return max((t.count("\n") + 1 for t in texts), default=1)


def identity_key(labels: Mapping, columns: Sequence[str] = ROW_IDENTITY) -> tuple:
    """Paper order of a row (missing columns sort as '-')."""
    return tuple(order_key(c, labels.get(c, NO_VARIANT)) for c in columns)


def level_label(labels: Mapping) -> str:
    """A compared level: ``'das/H1'``, then ``', 50 epochs'`` and the overrides when set."""
    text = f"{labels['method']}/{labels['hp_set']}, {epochs_text(labels['epochs'])}"
    return f"{text}, {labels['variant']}" if has_variant(labels["variant"]) else text


def add_levels(df: pd.DataFrame, column: str = "level") -> tuple[pd.DataFrame, dict[str, tuple]]:
    """The trials with a ``level`` label column, and each label's sort key (search methods first)."""
    out = df.copy()
    records = out[list(LEVEL_COLUMNS)].to_dict("records")
    out[column] = [level_label(r) for r in records]
    keys = {
        level_label(r): (r["method"] in BASELINE_METHODS, *identity_key(r, LEVEL_COLUMNS)) for r in records
    }
    return out, keys


def _record_items(record: Mapping) -> list[tuple[str, object]]:
    """``setting_items`` of a stored record (a missing or NaN field reads as none)."""
    overrides, options = (record.get(k) if isinstance(record.get(k), dict) else {} for k in ("overrides", "options"))
    return setting_items(overrides, options)


def factor_shared_settings(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Move the settings every trial of the study shares out of the rows' ``variant`` text.

    Why: a study that sets twenty options for all its rows (an image proxy) would print them in
    every label and table cell. Returns the trials with the shortened variants and the shared
    settings' text ('-' for none), which the report prints once (its CSV files keep the full
    text). Rows stay apart: two rows that differed still differ in a setting that not every trial
    shares."""
    if df.empty or not {"overrides", "options"} & set(df.columns):
        return df, NO_VARIANT
    per_trial = [_record_items(r) for r in df.to_dict("records")]
    texts = [{k: json.dumps(v, sort_keys=True) for k, v in items} for items in per_trial]
    shared = {k for k, v in texts[0].items() if all(t.get(k) == v for t in texts[1:])}
    if not shared:
        return df, NO_VARIANT
    out = df.copy()
    out["variant"] = [items_label([(k, v) for k, v in items if k not in shared]) for items in per_trial]
    return out, items_label([(k, v) for k, v in per_trial[0] if k in shared])
