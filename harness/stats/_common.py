"""Shared helpers: grouping, picking usable scores, seeded percentile bootstrap.

Every statistic in this package is computed on the ``ok`` trials of a group only; failed
trials are counted separately so that they never enter a statistic silently.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

GROUP_COLUMNS: tuple[str, ...] = ("dataset", "space", "op_set", "method", "hp_set")
STATUS_OK = "ok"
MISSING_LABEL = "-"
# Above this many bootstrap values at once, resample in chunks to bound memory.
_CHUNK_ELEMENTS = 4_000_000

Statistic = Callable[..., np.ndarray]


def as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def iter_groups(df: pd.DataFrame, by: str | Sequence[str] | None) -> Iterator[tuple[dict, pd.DataFrame]]:
    """Yield ``(labels, group)``; missing labels become ``'-'`` so no group is dropped."""
    cols = as_list(by)
    if df is None or len(df) == 0:
        return
    if not cols:
        yield {}, df
        return
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in the trials table; have {list(df.columns)}")
    keyed = df.copy()
    for c in cols:
        if keyed[c].isna().any():
            keyed[c] = keyed[c].astype(object).where(keyed[c].notna(), MISSING_LABEL)
    for key, group in keyed.groupby(cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(cols, key, strict=True)), group


def ok_mask(df: pd.DataFrame) -> np.ndarray:
    if "status" not in df.columns:
        return np.ones(len(df), dtype=bool)
    return (df["status"] == STATUS_OK).to_numpy(dtype=bool)


def n_failed(df: pd.DataFrame) -> int:
    return int((~ok_mask(df)).sum())


def numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def ok_values(df: pd.DataFrame, column: str) -> np.ndarray:
    """Finite values of ``column`` among the ok trials (failed trials never enter)."""
    if column not in df.columns:
        return np.array([], dtype=float)
    values = numeric(df.loc[ok_mask(df), column])
    return values[np.isfinite(values)]


def ok_pairs(df: pd.DataFrame, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """Paired finite (x, y) values among the ok trials."""
    if x not in df.columns or y not in df.columns:
        return np.array([], dtype=float), np.array([], dtype=float)
    ok = df.loc[ok_mask(df)]
    xs, ys = numeric(ok[x]), numeric(ok[y])
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def group_rng(seed: int, labels: dict | tuple | str = ()) -> np.random.Generator:
    """An RNG per group, so a group's bootstrap does not change when other groups are added."""
    key = repr(tuple(labels.values()) if isinstance(labels, dict) else labels)
    return np.random.default_rng([int(seed), zlib.crc32(key.encode())])


def resolve_statistic(statistic: str | Statistic) -> Statistic:
    if callable(statistic):
        return statistic
    table = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min, "std": _std}
    if statistic not in table:
        raise ValueError(f"unknown statistic {statistic!r}; use one of {sorted(table)} or a callable")
    return table[statistic]


def _std(a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.std(a, axis=axis, ddof=1)


def percentile_interval(boot: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval, ignoring NaN resamples (e.g. a constant resample)."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return np.nan, np.nan
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_indices(rng: np.random.Generator, n: int, n_boot: int) -> Iterator[np.ndarray]:
    """Resample indices, ``(rows, n)`` per chunk; one chunk unless n_boot * n is large."""
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n))


def bootstrap_distribution(
    values: np.ndarray,
    statistic: str | Statistic = "median",
    *,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """The statistic on ``n_boot`` resamples (with replacement) of ``values``."""
    values = np.asarray(values, dtype=float)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    func = resolve_statistic(statistic)
    if values.size == 0 or n_boot < 1:
        return np.array([], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        parts = [func(values[idx], axis=1) for idx in bootstrap_indices(rng, values.size, n_boot)]
    return np.concatenate(parts).astype(float)


def bootstrap_ci(
    values: np.ndarray,
    statistic: str | Statistic = "median",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator | int = 0,
    min_n: int = 3,
) -> tuple[float, float]:
    """Seeded percentile-bootstrap CI; ``(nan, nan)`` below ``min_n`` values."""
    values = np.asarray(values, dtype=float)
    if values.size < min_n:
        return np.nan, np.nan
    return percentile_interval(bootstrap_distribution(values, statistic, n_boot=n_boot, rng=rng), ci)


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)
