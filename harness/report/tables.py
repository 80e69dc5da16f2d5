"""Paper-layout tables (ours next to the published numbers) as DataFrames of display strings.

Layouts follow [001]: Table 1/2 (rows = op set x method, columns = Max/Mean/Med per data
set, plus runtime) and Table 3/4 (rows = data set x hp set, columns = Max/Mean/Med for good
vs all ops). We add n and n_failed because a row over 60 ok trials out of 75 is not the
same evidence as 75 out of 75. One table per (epochs, variant) slice, headed with both, and a
caption that says whether the paper's 50-epoch numbers in parentheses are our rows' counterpart.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence

import pandas as pd

from harness.report.paper_tables import HP_TABLE, METHOD_TABLE, PAPER_EPOCHS, PAPER_METRIC, paper_row
from harness.tasks.metrics import find_metric, metric_label

BASELINE_METHODS = ("lg-only", "nets-only", "random", "random-search")
ORDER = {
    "dataset": ["blur", "downsampling"],
    "metric": ["psnr", "accuracy"],
    "space": ["sequential", "nonsequential"],
    "op_set": ["good", "all"],
    "method": ["lg-only", "nets-only", "das", "random", "random-search"],
    "hp_set": [
        "H1",
        "H2",
        "BOHB-one-shot-Blur",
        "BOHB-one-shot-DS",
        "BOHB-Blur",
        "BOHB-Non-Seq-one-shot-Blur",
        "BOHB-Non-Seq-Blur",
    ],
    "variant": ["-"],  # rows without overrides first
}
LABELS = {
    "dataset": {"blur": "Blur", "downsampling": "Downsampling"},
    "op_set": {"good": "good ops.", "all": "all"},
    "method": {
        "lg-only": "Learnable Grad. only",
        "nets-only": "Nets only",
        "das": "DAS",
        "random": "Random",
        "random-search": "Random Search",
    },
}
STAT_COLUMNS = (("max", "Max."), ("mean", "Mean"), ("median", "Med."))
CELL_NAMES = ("Max.", "Mean", "Med.", "n", "failed")
ROW_KEYS = ["op_set", "method", "hp_set"]
SLICE_KEYS = ("epochs", "variant")


def label(column: str, value) -> str:
    return LABELS.get(column, {}).get(value, str(value))


def order_key(column: str, value) -> tuple:
    """Paper order first, then unknown values: numbers by value (epochs 5 < 50), others alphabetically."""
    known = ORDER.get(column, [])
    if value in known:
        return (known.index(value), 0.0, "")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.inf
    return (len(known), number if math.isfinite(number) else math.inf, str(value))


def sort_groups(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    if df.empty:
        return df
    keys = [tuple(order_key(c, row[c]) for c in columns) for _, row in df.iterrows()]
    return df.iloc[sorted(range(len(df)), key=keys.__getitem__)].reset_index(drop=True)


def ordered(column: str, values: Iterable) -> list:
    return sorted(set(values), key=lambda v: order_key(column, v))


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def with_paper(ours, paper, digits: int = 2) -> str:
    text = fmt(ours, digits)
    if paper is not None and isinstance(paper, (int, float)) and math.isfinite(paper):
        text += f" ({paper:.{digits}f})"
    return text


def _cell_stats(row: pd.Series | None, ref: dict | None) -> list[str]:
    ours = [math.nan if row is None else row[k] for k, _ in STAT_COLUMNS]
    cells = [with_paper(v, ref[k] if ref else None) for v, (k, _) in zip(ours, STAT_COLUMNS, strict=True)]
    if row is None:
        return [*cells, "–", "–"]
    return [*cells, str(int(row["n"])), str(int(row["n_failed"]))]


def _lookup(summary: pd.DataFrame, **labels) -> pd.Series | None:
    mask = pd.Series(True, index=summary.index)
    for k, v in labels.items():
        mask &= summary[k] == v
    hit = summary[mask]
    return None if hit.empty else hit.iloc[0]


def paper_slices(summary: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """The summary split by (epochs, variant), in order: one paper-layout table per slice.

    Why: a paper-layout table puts one number per cell; rows at different budgets or with
    different overrides must not share a table where their cells would read as one row.
    """
    keys = sort_groups(summary[list(SLICE_KEYS)].drop_duplicates(), list(SLICE_KEYS))
    out = []
    for _, key in keys.iterrows():
        mask = (summary["epochs"] == key["epochs"]) & (summary["variant"] == key["variant"])
        out.append(({c: key[c] for c in SLICE_KEYS}, summary[mask]))
    return out


def slice_title(labels: dict, hp_sets: Iterable[str]) -> str:
    """``'50 epochs, H1'`` (``'hp sets H1, H2'`` for several), then the overrides if any."""
    hp = ordered("hp_set", hp_sets)
    text = epochs_text(labels["epochs"])
    if hp:  # a slice of baselines only has no search hp set to name
        text += f", {hp[0] if len(hp) == 1 else 'hp sets ' + ', '.join(map(str, hp))}"
    variant = labels.get("variant", "-")
    return f"{text}, overrides {variant}" if has_variant(variant) else text


def paper_table_no(tables: dict[str, int], space: str, metric: str = PAPER_METRIC) -> int | None:
    """The [001] table for a space (``METHOD_TABLE`` or ``HP_TABLE``); None for a metric other
    than the paper's PSNR, whose rows have no published counterpart."""
    return tables.get(space) if metric == PAPER_METRIC else None


OPEN_CHOICE_PREFIXES = ("ops.",)  # option groups whose every value [001] leaves unstated


def paper_caption(labels: dict, table_no: int | None, metric: str | None = None, shared: str = "-") -> str:
    """Says what the cells are (with ``metric``), what the parenthesized paper numbers are, and
    whether they are our rows' counterpart (``shared``: settings of every trial, also overrides)."""
    cells = ""
    if metric is not None:
        cells = f"Cells: architecture {metric_label(metric)}, {find_metric(metric).direction_text}. "
    if table_no is None:
        what = "this space" if metric in (None, PAPER_METRIC) else find_metric(metric).display_name
        return f"{cells}Ours: {epochs_text(labels['epochs'])}. [001] has no table for {what}."
    ours = f"{cells}Ours: {epochs_text(labels['epochs'])}; "
    ours += f"in parentheses [001] Table {table_no}, at {PAPER_EPOCHS} epochs"
    differs = []
    if not _same_epochs(labels["epochs"]):
        differs.append(f"our search ran {epochs_text(labels['epochs'])}, not {PAPER_EPOCHS}")
    readings, overrides = split_variant(shared, labels.get("variant"))
    if overrides:
        differs.append(f"our rows override {', '.join(overrides)}, the paper used the plain hp set")
    reading = f" With our readings of details [001] leaves open: {', '.join(readings)}." if readings else ""
    if differs:
        return f"{ours}. Not directly comparable: {'; '.join(differs)}.{reading}"
    return f"{ours}, same budget and hp set (no overrides).{reading}"


def split_variant(*variants) -> tuple[list[str], list[str]]:
    """The items of row variants as (readings, overrides): op options are details [001] leaves
    open (docs/open_choices.md), not overrides of a setting the paper states."""
    items = [item for v in variants if has_variant(v) for item in re.split(r", (?=[A-Za-z_][\w.]*=)", v)]
    readings = [item for item in items if item.startswith(OPEN_CHOICE_PREFIXES)]
    return readings, [item for item in items if item not in readings]


def epochs_text(epochs) -> str:
    """``'50 epochs'``; ``'? epochs'`` when a record did not say."""
    try:
        return f"{int(epochs)} epochs"
    except (TypeError, ValueError):
        return "? epochs"


def has_variant(variant) -> bool:
    """Whether a row has overrides (``variant`` is '-' or empty without)."""
    return isinstance(variant, str) and variant.strip() not in ("", "-")


def _same_epochs(epochs) -> bool:
    try:
        return int(epochs) == PAPER_EPOCHS
    except (TypeError, ValueError):
        return False


def method_table(summary: pd.DataFrame, runtime: pd.DataFrame, space: str, metric: str = PAPER_METRIC) -> pd.DataFrame:
    """Table 1/2 layout for one search space and one ``paper_slices`` slice of one metric's summary.

    ``runtime`` is ``describe_scores`` by (metric, space, op_set, method, hp_set, epochs,
    variant): one mean runtime per row over all data sets, as in the paper. Paper numbers only
    for PSNR rows.
    """
    sub = summary[summary["space"] == space]
    table_no = paper_table_no(METHOD_TABLE, space, metric)
    datasets = ordered("dataset", sub["dataset"])
    rows_keys = sort_groups(sub[ROW_KEYS].drop_duplicates(), ROW_KEYS)
    show_hp = bool((rows_keys.groupby(["op_set", "method"]).size() > 1).any())
    same = {c: sub[c].iloc[0] for c in SLICE_KEYS} if len(sub) else {}
    out = []
    for _, key in rows_keys.iterrows():
        cells = {"op set": label("op_set", key["op_set"]), "method": label("method", key["method"])}
        if show_hp:
            cells["hp set"] = key["hp_set"]
        for d in datasets:
            row = _lookup(sub, dataset=d, op_set=key["op_set"], method=key["method"], hp_set=key["hp_set"])
            ref = paper_row(table_no, d, key["op_set"], key["method"], key["hp_set"]) if table_no else None
            for name, value in zip(CELL_NAMES, _cell_stats(row, ref), strict=True):
                cells[f"{label('dataset', d)} {name}"] = value
        rt = _lookup(runtime, space=space, **key[ROW_KEYS].to_dict(), **same)
        ref = paper_row(table_no, datasets[0], *key[ROW_KEYS]) if table_no else None
        ref_rt = ref.get("runtime_s") if ref else None
        ours_rt = rt["runtime_mean_s"] if rt is not None else math.nan
        cells["runtime s"] = with_paper(ours_rt, ref_rt, digits=0)
        out.append(cells)
    return pd.DataFrame(out)


def hp_table(summary: pd.DataFrame, space: str, metric: str = PAPER_METRIC) -> pd.DataFrame:
    """Table 3/4 layout (search methods only) for one slice: rows data set x hp set, good vs all ops."""
    sub = summary[(summary["space"] == space) & ~summary["method"].isin(BASELINE_METHODS)]
    table_no = paper_table_no(HP_TABLE, space, metric)
    op_sets = ordered("op_set", sub["op_set"])
    key_cols = ["dataset", "method", "hp_set"]
    keys = sort_groups(sub[key_cols].drop_duplicates(), key_cols)
    show_method = keys["method"].nunique() > 1
    out = []
    for _, key in keys.iterrows():
        cells = {"data": label("dataset", key["dataset"])}
        if show_method:
            cells["method"] = label("method", key["method"])
        cells["hyperparameters"] = key["hp_set"]
        for o in op_sets:
            row = _lookup(sub, dataset=key["dataset"], op_set=o, method=key["method"], hp_set=key["hp_set"])
            ref = paper_row(table_no, key["dataset"], o, key["method"], key["hp_set"]) if table_no else None
            name = "Good Ops." if o == "good" else "All" if o == "all" else o
            for stat, value in zip(CELL_NAMES, _cell_stats(row, ref), strict=True):
                cells[f"{name} {stat}"] = value
        out.append(cells)
    return pd.DataFrame(out)


def correlation_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Spearman/Pearson/Kendall with CIs for groups that have one-shot scores."""
    sub = summary[summary["n_pairs"].fillna(0) > 0]
    rows = []
    for _, r in sub.iterrows():
        rows.append(
            {
                "data": label("dataset", r["dataset"]),
                "space": r["space"],
                "ops": r["op_set"],
                "method": label("method", r["method"]),
                "hp set": r["hp_set"],
                "epochs": r.get("epochs", "-"),
                "variant": r.get("variant", "-"),
                "pairs": int(r["n_pairs"]),
                "Spearman ρ [95% CI]": f"{fmt(r['spearman_rho'])} [{fmt(r['spearman_ci_low'])}, "
                f"{fmt(r['spearman_ci_high'])}]",
                "p (ρ)": fmt(r["spearman_p"], 3),
                "Pearson r [95% CI]": f"{fmt(r['pearson_r'])} [{fmt(r['pearson_ci_low'])}, "
                f"{fmt(r['pearson_ci_high'])}]",
                "slope": fmt(r["slope"]),
                "Kendall τ": fmt(r["kendall_tau"]),
                "note": _note(r.get("spearman_note")) or _note(r.get("pearson_note")),
            }
        )
    return pd.DataFrame(rows)


def _note(value) -> str:
    """A ``*_note`` cell as text: NaN (no note, or a column the stats did not fill) is empty."""
    return value if isinstance(value, str) else ""


def display_numbers(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Round floats for display; leave other cells alone."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = [fmt(v, digits) for v in out[c]]
    return out


def to_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(_md_cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _text(value) -> str:
    if value is None:
        return "–"
    return (fmt(value) if isinstance(value, float) else str(value)).replace("\n", " ")


def _md_cell(value) -> str:
    return _text(value).replace("|", "\\|")


def to_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
