"""Paper-layout tables (ours next to the published numbers) as DataFrames of display strings.

Layouts follow [001]: Table 1/2 (rows = op set x method, columns = Max/Mean/Med per data
set, plus runtime) and Table 3/4 (rows = data set x hp set, columns = Max/Mean/Med for good
vs all ops). We add n and n_failed because a row over 60 ok trials out of 75 is not the
same evidence as 75 out of 75.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence

import pandas as pd

from harness.report.paper_tables import HP_TABLE, METHOD_TABLE, paper_row

BASELINE_METHODS = ("lg-only", "nets-only", "random", "random-search")
ORDER = {
    "dataset": ["blur", "downsampling"],
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


def label(column: str, value) -> str:
    return LABELS.get(column, {}).get(value, str(value))


def order_key(column: str, value) -> tuple:
    """Paper order first, then unknown values alphabetically."""
    known = ORDER.get(column, [])
    return (known.index(value), "") if value in known else (len(known), str(value))


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


def method_table(summary: pd.DataFrame, runtime: pd.DataFrame, space: str) -> pd.DataFrame:
    """Table 1/2 layout for one search space from a ``describe_scores`` table by GROUP_COLUMNS.

    ``runtime`` is ``describe_scores`` by (space, op_set, method, hp_set): one mean runtime
    per row over all data sets, as in the paper.
    """
    sub = summary[summary["space"] == space]
    table_no = METHOD_TABLE.get(space)
    datasets = ordered("dataset", sub["dataset"])
    rows_keys = sort_groups(sub[ROW_KEYS].drop_duplicates(), ROW_KEYS)
    show_hp = bool((rows_keys.groupby(["op_set", "method"]).size() > 1).any())
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
        rt = _lookup(runtime, space=space, op_set=key["op_set"], method=key["method"], hp_set=key["hp_set"])
        ref = paper_row(table_no, datasets[0], *key[ROW_KEYS]) if table_no else None
        ref_rt = ref.get("runtime_s") if ref else None
        ours_rt = rt["runtime_mean_s"] if rt is not None else math.nan
        cells["runtime s"] = with_paper(ours_rt, ref_rt, digits=0)
        out.append(cells)
    return pd.DataFrame(out)


def hp_table(summary: pd.DataFrame, space: str) -> pd.DataFrame:
    """Table 3/4 layout (search methods only): rows data set x hp set, good vs all ops."""
    sub = summary[(summary["space"] == space) & ~summary["method"].isin(BASELINE_METHODS)]
    table_no = HP_TABLE.get(space)
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
                "pairs": int(r["n_pairs"]),
                "Spearman ρ [95% CI]": f"{fmt(r['spearman_rho'])} [{fmt(r['spearman_ci_low'])}, "
                f"{fmt(r['spearman_ci_high'])}]",
                "p (ρ)": fmt(r["spearman_p"], 3),
                "Pearson r [95% CI]": f"{fmt(r['pearson_r'])} [{fmt(r['pearson_ci_low'])}, "
                f"{fmt(r['pearson_ci_high'])}]",
                "slope": fmt(r["slope"]),
                "Kendall τ": fmt(r["kendall_tau"]),
                "note": r["spearman_note"] or r["pearson_note"],
            }
        )
    return pd.DataFrame(rows)


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
    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
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
