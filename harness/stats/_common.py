"""Shared helpers: grouping by a row's full identity, picking usable scores, seeded bootstrap CIs.

Every statistic in this package is computed on the ``ok`` trials of a group only; failed
trials are counted separately so that they never enter a statistic silently. Groups are keyed
by everything that defines a row (``GROUP_COLUMNS``), so rows that differ only in epochs or
in their overrides/options (``variant``) are never pooled, and neither are scores of different
metrics (``metric``: PSNR of the 1D tasks, accuracy of the image tasks).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.tasks.metrics import Metric, find_metric

GROUP_COLUMNS: tuple[str, ...] = ("dataset", "metric", "space", "op_set", "method", "hp_set", "epochs", "variant")
# Older exports and hand-built frames lack these; a missing one is a single '-' group.
OPTIONAL_GROUP_COLUMNS: tuple[str, ...] = ("metric", "epochs", "variant")
METRIC = "metric"
STATUS_OK = "ok"
MISSING_LABEL = "-"
CI_METHODS = ("BCa", "percentile", "basic")

# Smallest sample that gets a bootstrap CI. With n values, even the widest distribution-free
# interval for a median, [min, max], covers it with probability only 1 - 2 * 0.5**n: 0.9375 at
# n = 5, 0.969 at n = 6. Below 6 no interval built from the sample can honestly claim 95%, and
# a bootstrap interval is narrower still, so we give none (for any statistic, not just the median).
MIN_N_CI = 6

# Above this many resampled values at once, scipy's bootstrap works in batches (bounded memory).
_BATCH_ELEMENTS = 4_000_000

Statistic = Callable[..., np.ndarray]


def as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def iter_groups(df: pd.DataFrame, by: str | Sequence[str] | None) -> Iterator[tuple[dict, pd.DataFrame]]:
    """Yield ``(labels, group)``; missing labels become ``'-'`` so no group is dropped.

    An absent ``epochs`` or ``variant`` column (old exports) is one ``'-'`` group; any other
    absent grouping column is a KeyError, since guessing it would pool different rows.
    """
    cols = as_list(by)
    if df is None or len(df) == 0:
        return
    if not cols:
        yield {}, df
        return
    missing = [c for c in cols if c not in df.columns and c not in OPTIONAL_GROUP_COLUMNS]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in the trials table; have {list(df.columns)}")
    keyed = df.copy()
    for c in cols:
        if c == METRIC:
            keyed[c] = metric_labels(df)
        elif c not in keyed.columns:
            keyed[c] = MISSING_LABEL
        elif keyed[c].isna().any():
            keyed[c] = keyed[c].astype(object).where(keyed[c].notna(), MISSING_LABEL)
    for key, group in keyed.groupby(cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(cols, key, strict=True)), group


def mixed_settings(df: pd.DataFrame, ignore: Sequence[str] = ()) -> str:
    """Which row settings (epochs, variant) ``df`` mixes, as text; '' when it is one setting.

    For statistics that pool over a coarser grouping than ``GROUP_COLUMNS``: they must refuse.
    """
    parts = []
    for c in OPTIONAL_GROUP_COLUMNS:
        if c in ignore or c not in df.columns:
            continue
        column = metric_labels(df) if c == METRIC else df[c].astype(object).where(df[c].notna(), MISSING_LABEL)
        values = column.unique()
        if len(values) > 1:
            parts.append(f"{c} {', '.join(sorted(str(v) for v in values))}")
    return "mixes " + "; ".join(parts) if parts else ""


def metric_labels(df: pd.DataFrame) -> pd.Series:
    """Each trial's metric name, ``'-'`` where none is recorded.

    A failed trial takes the metric of its data set's ok trials when they name exactly one: a
    trial that failed before its task was built carries the runner's default metric, and it
    must be counted in its own row rather than form a row of another metric.
    """
    if METRIC not in df.columns:
        return pd.Series(MISSING_LABEL, index=df.index, dtype=object)
    names = df[METRIC].astype(object).where(df[METRIC].notna(), MISSING_LABEL)
    if "dataset" not in df.columns or "status" not in df.columns:
        return names
    ok = pd.Series(ok_mask(df), index=df.index)
    per_dataset = names[ok].groupby(df.loc[ok, "dataset"]).unique()
    single = {d: m[0] for d, m in per_dataset.items() if len(m) == 1}
    fill = df["dataset"].map(single)
    return names.where(ok | fill.isna(), fill)


def group_metric(df: pd.DataFrame) -> Metric:
    """The ``Metric`` of a group's scores (one metric per group: ``metric`` is a grouping column);
    a generic higher-is-better score where the trials name none or several."""
    names = metric_labels(df).unique()
    return find_metric(names[0] if len(names) == 1 else None)


def ok_mask(df: pd.DataFrame) -> np.ndarray:
    if "status" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return (df["status"] == STATUS_OK).to_numpy(dtype=bool)


def n_failed(df: pd.DataFrame) -> int:
    return int((~ok_mask(df)).sum())


def numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def ok_values(df: pd.DataFrame, column: str) -> np.ndarray:
    """Finite values of ``column`` among the ok trials (failed trials never enter), ascending.

    Why sorted: a bootstrap resamples positions, so the same trials in another order would get
    another CI. In canonical order a group's CI depends on its values only, not on the batches
    that stored them or on trials copied from another run (the H1 rows of Tables 1 and 3).
    """
    if column not in df.columns:
        return np.array([], dtype=float)
    values = numeric(df.loc[ok_mask(df), column])
    return np.sort(values[np.isfinite(values)])


def ok_pairs(df: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Paired finite (x, y) values among the ok trials, sorted by x then y (as ``ok_values``)."""
    if x not in df.columns or y not in df.columns:
        return np.array([], dtype=float), np.array([], dtype=float)
    ok = df.loc[ok_mask(df)]
    xs, ys = numeric(ok[x]), numeric(ok[y])
    keep = np.isfinite(xs) & np.isfinite(ys)
    order = np.lexsort((ys[keep], xs[keep]))
    return xs[keep][order], ys[keep][order]


def rng_key(labels: dict) -> tuple:
    """A group's labels as its RNG key: all but the metric, which names the unit of the values
    (fixed by the row's data set), so adding the column left every stored study's CIs as they were."""
    return tuple(v for k, v in labels.items() if k != METRIC)


def group_rng(seed: int, labels: dict | tuple | str = ()) -> np.random.Generator:
    """An RNG per group, so a group's bootstrap does not change when other groups are added.

    A dict of labels is keyed by ``rng_key``; build tuple keys from ``rng_key`` too."""
    values = rng_key(labels) if isinstance(labels, dict) else labels
    if isinstance(values, tuple):  # np.int64(2) and 2 must name the same group
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
    return np.random.default_rng([int(seed), zlib.crc32(repr(values).encode())])


def as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def resolve_statistic(statistic: str | Statistic) -> Statistic:
    if callable(statistic):
        return statistic
    table = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min, "std": _std}
    if statistic not in table:
        raise ValueError(f"unknown statistic {statistic!r}; use one of {sorted(table)} or a callable")
    return table[statistic]


def _std(a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(a, axis=axis, ddof=1)


def check_ci_method(method: str) -> str:
    if method not in CI_METHODS:
        raise ValueError(f"unknown CI method {method!r}; use one of {CI_METHODS}")
    return method


def bootstrap_batch(n: int, n_samples: int = 1) -> int:
    """Resamples per scipy batch: at most about ``_BATCH_ELEMENTS`` values in memory."""
    return max(1, _BATCH_ELEMENTS // max(n * n_samples, 1))


def percentile_interval(boot: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite resampled statistics (NaN ones, e.g. a correlation of
    a constant resample, are left out)."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return np.nan, np.nan
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return float(low), float(high)


def _scipy_bootstrap(samples: tuple, statistic: Statistic, rng, **kw) -> tuple[Any, str]:
    """scipy's bootstrap with its warnings caught: ``(result, '')`` or ``(None, reason)``."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("always")
        try:
            res = stats.bootstrap(samples, statistic, vectorized=True, rng=rng, **kw)
        except ValueError as err:  # e.g. a sample scipy cannot resample; never raise from a table
            return None, f"no bootstrap CI ({err})"
    degenerate = any(issubclass(w.category, stats.DegenerateDataWarning) for w in caught)
    return res, "degenerate" if degenerate else ""


def bootstrap_interval(
    samples: Sequence[np.ndarray],
    statistic: str | Statistic,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    method: str = "BCa",
    paired: bool = False,
    rng: np.random.Generator | int = 0,
    min_n: int = MIN_N_CI,
) -> tuple[float, float, str]:
    """``scipy.stats.bootstrap`` CI of ``statistic(*samples, axis=-1)`` as ``(low, high, note)``.

    Below ``min_n`` values in a sample: NaN and a note. Where BCa is undefined (a degenerate
    bootstrap distribution, e.g. constant data) the percentile interval of the same resamples
    is given instead, and where some resamples have no value (a constant resample has no
    correlation) the percentile interval of the others; the note says which. Never raises.
    """
    method = check_ci_method(method)
    samples = [np.asarray(s, dtype=float) for s in samples]
    n = min(s.size for s in samples)
    if n < min_n:
        return np.nan, np.nan, f"too few trials for a bootstrap CI (n={n} < {min_n})"
    if n_boot < 1:
        return np.nan, np.nan, ""
    func = resolve_statistic(statistic)
    batch = bootstrap_batch(max(s.size for s in samples), 1 if paired else len(samples))
    kw: dict[str, Any] = dict(n_resamples=n_boot, batch=batch, confidence_level=ci, paired=paired)
    res, reason = _scipy_bootstrap(tuple(samples), func, as_rng(rng), method=method, **kw)
    if res is None:
        return np.nan, np.nan, reason
    low, high = (float(v) for v in res.confidence_interval)
    boot = np.asarray(res.bootstrap_distribution, dtype=float)
    defined = boot[np.isfinite(boot)]
    if defined.size == 0:
        return np.nan, np.nan, "no bootstrap CI: the statistic is undefined on every resample"
    # All resampled statistics equal up to rounding (e.g. the mean of constant data): BCa's bias
    # correction then only amplifies rounding noise, even where scipy returns numbers.
    flat = np.ptp(defined) <= 16 * np.finfo(float).eps * np.abs(defined).max()
    if np.isfinite(low) and np.isfinite(high) and not reason and not (flat and method == "BCa"):
        return low, high, ""
    if defined.size < boot.size:
        low, high = percentile_interval(boot, ci)
        return low, high, f"percentile CI over the {defined.size} of {boot.size} resamples where it is defined"
    if method == "percentile":
        return low, high, ""
    # The percentile interval of the same resamples (n_resamples=0 adds none to them).
    kw.update(n_resamples=0, bootstrap_result=res)
    again, _ = _scipy_bootstrap(tuple(samples), func, None, method="percentile", **kw)
    low, high = (float(v) for v in again.confidence_interval) if again is not None else (np.nan, np.nan)
    return low, high, f"{method} undefined for these data (degenerate): percentile CI"


def bootstrap_distribution(
    values: np.ndarray,
    statistic: str | Statistic = "median",
    *,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """The statistic on ``n_boot`` resamples (with replacement) of ``values``, as scipy draws them."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or n_boot < 1:  # scipy needs two values to resample
        return np.array([], dtype=float)
    kw = dict(n_resamples=n_boot, batch=bootstrap_batch(values.size), method="percentile")
    res, _ = _scipy_bootstrap((values,), resolve_statistic(statistic), as_rng(rng), **kw)
    return np.array([], dtype=float) if res is None else np.asarray(res.bootstrap_distribution, dtype=float)


def bootstrap_ci(
    values: np.ndarray,
    statistic: str | Statistic = "median",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | int = 0,
    min_n: int = MIN_N_CI,
    method: str = "BCa",
) -> tuple[float, float]:
    """Seeded bootstrap CI of one sample, ``(low, high)``; ``bootstrap_interval`` also says why
    it is NaN or which interval it fell back to."""
    low, high, _ = bootstrap_interval((values,), statistic, n_boot=n_boot, ci=ci, method=method, rng=rng, min_n=min_n)
    return low, high


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
