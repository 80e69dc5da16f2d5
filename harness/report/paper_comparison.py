"""Every published row of [001] Tables 1-4 beside ours, with our median's 95% CI.

Why one table across studies: a reader who asks "does the paper reproduce?" wants every
published median next to ours and the interval ours comes with, not nine study folders. Ours
come from the reference runs' ``summary.csv`` (the report's bootstrap CIs, so the index and the
reports agree). A row of ours is a published row's counterpart only at the paper's budget
(``PAPER_EPOCHS``), in PSNR, and without overrides; our readings of details [001] leaves open
(``ops.*`` options, docs/open_choices.md) are allowed, as in the reports' captions.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report.paper_tables import PAPER_EPOCHS, PAPER_METRIC, paper_tables
from harness.report.tables import fmt, label, split_variant, to_markdown

MATCH_COLUMNS = ("space", "dataset", "op_set", "method")


def counterparts(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of a report summary that [001]'s numbers can stand beside (see module doc)."""
    if summary.empty:
        return summary
    epochs = pd.to_numeric(summary["epochs"], errors="coerce")
    plain = pd.Series([not split_variant(v)[1] for v in summary["variant"]], index=summary.index)
    return summary[(epochs == PAPER_EPOCHS) & (summary["metric"] == PAPER_METRIC) & plain]


def paper_comparison(summaries: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per published row of the tables in ``summaries`` (table number -> our summary).

    A published baseline row (no hp set) takes our baseline row of that (data set, ops,
    method), whatever hp set it was stored under; a DAS row takes the same hp set only.
    ``in_ci`` says whether [001]'s median lies inside our median's 95% CI.
    """
    ref = paper_tables()
    rows = []
    for table, summary in sorted(summaries.items()):
        ours_all = counterparts(summary)
        for _, paper in ref[ref["table"] == table].iterrows():
            mask = pd.Series(True, index=ours_all.index)
            for c in MATCH_COLUMNS:
                mask &= ours_all[c] == paper[c]
            if paper["hp_set"]:
                mask &= ours_all["hp_set"] == paper["hp_set"]
            hit = ours_all[mask]
            ours = hit.sort_values("n", ascending=False).iloc[0] if len(hit) else None
            rows.append(_row(table, paper, ours))
    return pd.DataFrame(rows)


def _row(table: int, paper: pd.Series, ours: pd.Series | None) -> dict:
    row = {"table": table, **{c: paper[c] for c in MATCH_COLUMNS}, "hp_set": paper["hp_set"] or "-"}
    row.update({f"paper_{k}": paper[k] for k in ("max", "mean", "median")})
    keys = ("n", "n_failed", "max", "mean", "median", "median_ci_low", "median_ci_high", "spearman_rho")
    row.update({k: (math.nan if ours is None else ours[k]) for k in keys})
    low, high = row["median_ci_low"], row["median_ci_high"]
    row["in_ci"] = bool(low <= paper["median"] <= high) if ours is not None and math.isfinite(low) else None
    return row


def comparison_markdown(comparison: pd.DataFrame) -> str:
    """The comparison as a markdown table, then how many published medians lie in our CIs."""
    if comparison.empty:
        return "_(no reference run has a summary yet)_\n"
    display = pd.DataFrame({
        "table": comparison["table"],
        "data": [label("dataset", d) for d in comparison["dataset"]],
        "space": comparison["space"],
        "ops": comparison["op_set"],
        "method": [label("method", m) for m in comparison["method"]],
        "hp set": comparison["hp_set"],
        "n (failed)": [_count(n, f) for n, f in zip(comparison["n"], comparison["n_failed"], strict=True)],
        "ours max / mean / median": [_three(r, "") for _, r in comparison.iterrows()],
        "[001] max / mean / median": [_three(r, "paper_") for _, r in comparison.iterrows()],
        "our median 95% CI": [_interval(lo, hi) for lo, hi in
                              zip(comparison["median_ci_low"], comparison["median_ci_high"], strict=True)],
        "[001] median in CI": [{True: "yes", False: "no"}.get(v, "–") for v in comparison["in_ci"]],
        "Spearman ρ": [fmt(v) for v in comparison["spearman_rho"]],
    })
    known = comparison[comparison["in_ci"].notna()]
    lines = [to_markdown(display)]
    for table, part in known.groupby("table"):
        lines.append(f"- Table {table}: [001]'s median lies inside our 95% CI in {int(part['in_ci'].sum())} "
                     f"of {len(part)} rows; ours is higher in {int((part['median'] > part['paper_median']).sum())}.")
    missing = len(comparison) - len(known)
    if missing:
        lines.append(f"- {missing} published row(s) have no finished counterpart of ours yet.")
    return "\n".join(lines) + "\n"


def _count(n, failed) -> str:
    return "–" if not math.isfinite(n) else f"{int(n)} ({int(failed)})"


def _three(row: pd.Series, prefix: str) -> str:
    return " / ".join(fmt(row[f"{prefix}{k}"]) for k in ("max", "mean", "median"))


def _interval(low, high) -> str:
    return "–" if not (math.isfinite(low) and math.isfinite(high)) else f"[{low:.2f}, {high:.2f}]"
