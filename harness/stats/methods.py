"""Method comparison: rank methods by median architecture score and ask each the paper's question.

For every (dataset, metric, space, op set) the search methods are ranked by the median of their
retrained-architecture score (best first in the metric's direction: highest PSNR or accuracy,
lowest ``params_m``), with the bootstrap CI of that median, next to the Spearman
correlation between one-shot and architecture scores (does the supernet's ranking predict
the retrained one?) and per-method diagnostics: the median dominant Hessian eigenvalue of the
validation loss w.r.t. alpha at the end of search, the mean number of parameter-free ops
chosen, and the mean pairwise architecture distance (DARTOpti M46) between the genotypes
different seeds found (0: every seed found the same architecture).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.spaces.distance import pairwise_distances
from harness.stats._common import GROUP_COLUMNS, MISSING_LABEL, as_list, iter_groups, ok_mask
from harness.stats.describe import summary_table
from harness.tasks.metrics import find_metric

RANK_WITHIN = ("dataset", "metric", "space", "op_set")


def _ops_of(group: pd.DataFrame) -> list[str] | None:
    for extra in group.get("extra", pd.Series(dtype=object)):
        if isinstance(extra, dict) and extra.get("op_names"):
            return list(extra["op_names"])
    return None


def seed_diversity(group: pd.DataFrame) -> float:
    """Mean pairwise architecture distance between the ok trials' genotypes (NaN below 2)."""
    ok = group[ok_mask(group)]
    genotypes = [g for g in ok.get("genotype", pd.Series(dtype=object)) if isinstance(g, (list, dict)) and g]
    ops = _ops_of(group)
    if len(genotypes) < 2 or not ops:
        return float("nan")
    matrix = pairwise_distances(genotypes, ops)
    upper = matrix[np.triu_indices(len(genotypes), k=1)]
    return float(upper.mean())


def diagnostics(df: pd.DataFrame, by: str | Sequence[str] = GROUP_COLUMNS) -> pd.DataFrame:
    """Per group: Hessian eigenvalue (median), parameter-free ops (mean), seed diversity, epochs run."""
    cols = as_list(by)
    rows = []
    for labels, group in iter_groups(df, cols):
        ok = group[ok_mask(group)]
        row = dict(labels)
        for column, out, how in (
            ("hessian_eigenvalue", "hessian_median", "median"),
            ("n_param_free_ops", "param_free_mean", "mean"),
            ("epochs_run", "epochs_run_mean", "mean"),
        ):
            values = pd.to_numeric(ok[column], errors="coerce").dropna() if column in ok else pd.Series(dtype=float)
            row[out] = float(getattr(values, how)()) if len(values) else float("nan")
        row["seed_distance_mean"] = seed_diversity(group)
        rows.append(row)
    columns = [*cols, "hessian_median", "param_free_mean", "epochs_run_mean", "seed_distance_mean"]
    return pd.DataFrame(rows, columns=columns)


def method_ranking(
    df: pd.DataFrame,
    *,
    summary: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    include_baselines: bool = True,
    baselines: Sequence[str] = ("lg-only", "nets-only", "random", "random-search"),
    ci_method: str = "BCa",
) -> pd.DataFrame:
    """One row per row of the study (``GROUP_COLUMNS``: dataset, metric, space, op set, method,
    hp set, epochs, variant), ranked within (dataset, metric, space, op set) by the median
    architecture score (1 = best in the metric's direction; failed trials are counted in
    ``n_failed``). ``best`` is the best trial's score (``max``, or ``min`` for a lower-is-better
    metric). ``summary`` must be a ``summary_table`` by ``GROUP_COLUMNS``."""
    if summary is None:
        summary = summary_table(df, GROUP_COLUMNS, n_boot=n_boot, seed=seed, ci_method=ci_method)
    table = summary.merge(diagnostics(df, GROUP_COLUMNS), on=list(GROUP_COLUMNS), how="left")
    table["baseline"] = table["method"].isin(list(baselines))
    if not include_baselines:
        table = table[~table["baseline"]]
    table = table.copy()
    if "metric" not in table.columns:
        table["metric"] = MISSING_LABEL
    higher = table["metric"].map(lambda m: find_metric(m).direction == "max").astype(bool)
    table["best"] = table["max"].where(higher, table["min"])
    goodness = table["median"].where(higher, -table["median"])  # rank 1 = best in either direction
    table["rank"] = (
        goodness.groupby([table[c] for c in RANK_WITHIN], dropna=False)
        .rank(ascending=False, method="min")
        .astype("Int64")
    )
    keep = [
        *RANK_WITHIN,
        "rank",
        "method",
        "hp_set",
        "epochs",
        "variant",
        "baseline",
        "n",
        "n_failed",
        "median",
        "median_ci_low",
        "median_ci_high",
        "median_ci_note",
        "mean",
        "best",
        "max",
        "std",
        "oneshot_median",
        "spearman_rho",
        "spearman_p",
        "spearman_ci_low",
        "spearman_ci_high",
        "spearman_note",
        "hessian_median",
        "param_free_mean",
        "seed_distance_mean",
        "epochs_run_mean",
        "runtime_mean_s",
    ]
    keep = [c for c in keep if c in table.columns]
    return table.sort_values([*RANK_WITHIN, "rank", "method"], na_position="last")[keep].reset_index(drop=True)
