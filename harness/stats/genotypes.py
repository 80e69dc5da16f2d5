"""What the searches chose: op frequencies per position and softmaxed alpha trajectories.

Whether DAS filters out harmful ops (roll, noise) is visible in how often they survive
discretization at each layer or edge, and in how the op probabilities move over epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.stats._common import GROUP_COLUMNS, as_list, iter_groups, ok_mask

FREQ_COLUMNS = ["position_index", "position", "op", "count", "n_genotypes", "freq"]
CELL_TYPES = ("normal", "reduce")
NOT_KEPT = "not kept"  # an edge of a DARTS cell that the discretization dropped


def flatten_genotype(genotype) -> list[str]:
    """Op names in position order: a sequential list as is, a list of cells concatenated, a
    DARTS cell genotype as one op per edge of both cells (``cell_ops``)."""
    if genotype is None or isinstance(genotype, float):
        return []
    if isinstance(genotype, dict) and all(c in genotype for c in CELL_TYPES):
        return cell_ops(genotype)
    if isinstance(genotype, dict):
        genotype = list(genotype.values())
    out: list[str] = []
    for item in genotype:
        out.extend(flatten_genotype(item) if isinstance(item, (list, tuple, dict)) else [str(item)])
    return out


def cell_ops(genotype: dict) -> list[str]:
    """A DARTS-format genotype (``{'normal': [[op, source], ...], 'reduce': ...}``, two kept inputs
    per intermediate node in node order) as the op on every edge ``source -> node`` of the normal,
    then the reduction cell, in the darts-cell space's position order (``'normal 0->2'``, ...);
    edges the discretization dropped read ``NOT_KEPT``."""
    out: list[str] = []
    for cell in CELL_TYPES:
        pairs = genotype[cell]
        kept = {(int(source), 2 + k // 2): str(op) for k, (op, source) in enumerate(pairs)}
        nodes = range(2, 2 + (len(pairs) + 1) // 2)
        out.extend(kept.get((source, node), NOT_KEPT) for node in nodes for source in range(node))
    return out


def position_labels(record: dict | pd.Series, n_positions: int) -> list[str]:
    """``extra['positions']`` when it fits, else ``'pos i'``."""
    extra = record.get("extra") if hasattr(record, "get") else None
    labels = extra.get("positions") if isinstance(extra, dict) else None
    if isinstance(labels, list) and len(labels) == n_positions:
        return [str(x) for x in labels]
    return [f"pos {i}" for i in range(n_positions)]


def op_frequencies(
    df: pd.DataFrame,
    by: str | Sequence[str] = GROUP_COLUMNS,
    *,
    include_failed: bool = False,
) -> pd.DataFrame:
    """Long table: per group, position and op, how many genotypes chose the op there.

    Failed trials are left out unless ``include_failed``; ``n_genotypes`` is the count used.
    """
    cols = as_list(by)
    rows = []
    if "genotype" not in df.columns:
        return pd.DataFrame(columns=cols + FREQ_COLUMNS)
    for labels, g in iter_groups(df, cols):
        if not include_failed:
            g = g[ok_mask(g)]
        counts: dict[tuple[int, str], dict[str, int]] = {}
        n_geno = 0
        for _, rec in g.iterrows():
            ops = flatten_genotype(rec["genotype"])
            if not ops:
                continue
            n_geno += 1
            for i, (pos, op) in enumerate(zip(position_labels(rec, len(ops)), ops, strict=True)):
                slot = counts.setdefault((i, pos), {})
                slot[op] = slot.get(op, 0) + 1
        for (i, pos), slot in sorted(counts.items()):
            for op, k in sorted(slot.items()):
                rows.append({**labels, "position_index": i, "position": pos, "op": op, "count": k})
                rows[-1].update(n_genotypes=n_geno, freq=k / n_geno)
    return pd.DataFrame(rows, columns=cols + FREQ_COLUMNS)


def softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    z = np.exp(a - a.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def alpha_probabilities(record: dict | pd.Series) -> tuple[np.ndarray, list[str], list[str]] | None:
    """Softmax of ``alpha_history`` as (epochs, positions, ops), with op and position labels.

    None for trials without a history (baselines) or with ragged rows.
    """
    history = record.get("alpha_history")
    if history is None or isinstance(history, float) or len(history) == 0:
        return None
    try:
        raw = np.asarray(history, dtype=float)
    except ValueError:
        return None
    if raw.ndim != 3:
        return None
    extra = record.get("extra")
    ops = extra.get("op_names") if isinstance(extra, dict) else None
    if not isinstance(ops, list) or len(ops) != raw.shape[2]:
        ops = [f"op {k}" for k in range(raw.shape[2])]
    return softmax(raw, axis=2), [str(o) for o in ops], position_labels(record, raw.shape[1])
