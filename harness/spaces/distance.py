"""DARTOpti's architecture distance M (M46; thesis section 4.1.5, Eqs 4.6-4.8, Algorithm 3).

* edge: a binary vector over the candidate ops (one-hot for our genotypes; an edge given as a
  tuple or set of op names is multi-hot, as FairDARTS-style "edge" parsing can keep two ops);
* edge distance: weighted Hamming distance, Algorithm 3: mean over the K entries of
  (w_k if the vectors differ at k else 0); w_k = 1 by default, or per-op scores (Table 4.1);
* cell distance: symmetrised Hausdorff distance between the cells' *sets* of edge vectors,
  M_H(X, Y) = max(sup_x inf_y d(x, y), sup_y inf_x d(x, y)) (Eqs 4.6-4.7). As in the thesis the
  edge order inside a cell does not enter: cells with the same set of edge vectors are at 0;
* architecture distance: mean of M_H over the cells at the same position (Eq. 4.8).

Genotypes: sequential (a list of op names, one per layer) = one single-edge cell per layer, so M
is the mean per-layer edge distance; non-sequential (a list of cells, each a list of op names
per edge) uses its cells as they are; a DARTS cell genotype (its JSON form, ``{"normal": [[op,
input], ...], "reduce": ...}``) is two cells, normal and reduction, each the set of its kept
edges' op vectors. The edges' input nodes do not enter, as the edge order does not in the thesis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _weights(ops: Sequence[str], op_weights) -> np.ndarray:
    if op_weights is None:
        return np.ones(len(ops))
    if isinstance(op_weights, Mapping):
        missing = [op for op in ops if op not in op_weights]
        if missing:
            raise ValueError(f"op_weights has no weight for {missing}")
        w = np.array([float(op_weights[op]) for op in ops])
    else:
        w = np.asarray(op_weights, dtype=float).reshape(-1)
        if w.size != len(ops):
            raise ValueError(f"op_weights has {w.size} entries for {len(ops)} ops")
    if np.any(w < 0):
        raise ValueError("op_weights must be >= 0 for M to be a distance")
    return w


def _edge_vector(edge, index: Mapping[str, int]) -> np.ndarray:
    names = [edge] if isinstance(edge, str) else list(edge)
    vec = np.zeros(len(index), dtype=bool)
    for name in names:
        if name not in index:
            raise ValueError(f"op {name!r} is not among the candidate ops {tuple(index)}")
        vec[index[name]] = True
    return vec


def _is_edge(x) -> bool:
    """An op name, or a tuple / set of op names (multi-hot); cells are lists."""
    return isinstance(x, (str, tuple, set, frozenset))


def genotype_cells(genotype, ops: Sequence[str]) -> list[np.ndarray]:
    """The genotype as a list of cells, each a bool array (edges, K) of edge vectors."""
    index = {op: k for k, op in enumerate(ops)}
    if isinstance(genotype, Mapping) and "normal" in genotype and "reduce" in genotype:
        genotype = [[edge[0] for edge in genotype[cell]] for cell in ("normal", "reduce")]
    if not isinstance(genotype, (list, tuple)) or len(genotype) == 0:
        raise ValueError(f"a genotype is a non-empty list, got {genotype!r}")
    if all(_is_edge(g) for g in genotype):  # sequential: one single-edge cell per layer
        return [_edge_vector(g, index)[None, :] for g in genotype]
    cells = []
    for cell in genotype:
        if not isinstance(cell, list) or len(cell) == 0:
            raise ValueError(f"mixed or empty cells in genotype {genotype!r}")
        cells.append(np.stack([_edge_vector(e, index) for e in cell]))
    return cells


def edge_distances(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(|x|, |y|) weighted Hamming distances between rows of x and y (Algorithm 3)."""
    differ = x[:, None, :] != y[None, :, :]
    return (differ * weights).mean(axis=-1)


def cell_distance(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """Symmetrised Hausdorff distance M_H between two cells' edge-vector sets (Eqs 4.6-4.7)."""
    d = edge_distances(x, y, weights)
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))


def architecture_distance(a, b, ops: Sequence[str], op_weights=None) -> float:
    """DARTOpti's M(A, B) = mean_i M_H(C_i^A, C_i^B) (Eq. 4.8).

    ``op_weights``: None (1 per op), a sequence aligned with ``ops`` or a mapping op -> weight.
    """
    w = _weights(ops, op_weights)
    ca, cb = genotype_cells(a, ops), genotype_cells(b, ops)
    if len(ca) != len(cb):
        raise ValueError(f"genotypes have {len(ca)} and {len(cb)} cells")
    return float(np.mean([cell_distance(x, y, w) for x, y in zip(ca, cb)]))


def pairwise_distances(genotypes: Sequence, ops: Sequence[str], op_weights=None) -> np.ndarray:
    """Symmetric (n, n) matrix of architecture distances, zero diagonal."""
    n = len(genotypes)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = architecture_distance(genotypes[i], genotypes[j], ops, op_weights)
    return out
