"""Deriving discrete cells from alphas or op probabilities, per trial.

* ``discretize_darts``: DARTS's rule. Per intermediate node keep the two strongest incoming
  edges, an edge's strength being its strongest non-'none' op weight, and take that op
  ([002] section 2.7: "a maximum of 2 edges"; [002] App. A.3.1: "selecting the two best
  incoming operations per node, similar to DARTS"). Ranking uses softmax(alpha) per edge
  ([002] Eq. 2.7), which ranks edges differently from raw alphas.
* ``discretize_threshold``: FairDARTS-style parsing: keep every op whose sigmoid weight is
  above a threshold (0.85 in [002] section 4.2.1), optionally at most 2 ("edge") or 1
  ("sparse") ops per edge ([002] section 4.2.1), optionally at most n per node (ColorNAS keeps
  "the two best incoming operations per node" with threshold 0.7, [002] App. A.3.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.spaces.darts_cell.genotype import STEPS, Genotype, cell_edges, genotype_cell, make_genotype
from harness.spaces.darts_cell.ops import OP_NAMES, PARAMETER_FREE_OPS

FAIRDARTS_THRESHOLD = 0.85  # [002] section 4.2.1: "a threshold of 0.85"


def _as_trials(w: torch.Tensor) -> torch.Tensor:
    w = w.detach().float().cpu()
    return w.unsqueeze(0) if w.dim() == 2 else w


def darts_cell(weights: torch.Tensor, op_names: Sequence[str] = OP_NAMES, steps: int = STEPS) -> list[tuple[str, int]]:
    """One trial's (n_edges, n_ops) op weights -> DARTS (op, input) pairs, two per node.

    Within a node the stronger edge comes first; ties go to the lower input index and, within
    an edge, to the earlier op in ``op_names`` (tie-breaking is not stated; this is ours).
    """
    names = list(op_names)
    candidates = [o for o, n in enumerate(names) if n != "none"]
    if not candidates:
        raise ValueError("no op other than 'none' to choose from")
    if weights.shape != (len(cell_edges(steps)), len(names)):
        raise ValueError(f"weights must be ({len(cell_edges(steps))}, {len(names)}), got {tuple(weights.shape)}")
    w = weights[:, candidates]
    best_w, best_o = w.max(dim=1)  # max returns the first maximal index
    pairs: list[tuple[str, int]] = []
    start = 0
    for node in range(2, steps + 2):
        rows = list(range(start, start + node))
        ranked = sorted(rows, key=lambda e: -float(best_w[e]))  # stable: ties keep input order
        for e in ranked[:2]:
            pairs.append((names[candidates[int(best_o[e])]], e - start))
        start += node
    return pairs


def discretize_darts(
    normal: torch.Tensor,
    reduce: torch.Tensor,
    *,
    op_names: Sequence[str] = OP_NAMES,
    apply_softmax: bool = True,
) -> list[Genotype]:
    """K genotypes from (K, n_edges, n_ops) alphas (softmaxed over ops here) or, with
    ``apply_softmax=False``, from probabilities; a single (n_edges, n_ops) pair gives K = 1."""
    normal, reduce = _as_trials(normal), _as_trials(reduce)
    if normal.shape != reduce.shape:
        raise ValueError(f"normal {tuple(normal.shape)} and reduce {tuple(reduce.shape)} differ in shape")
    if apply_softmax:
        normal, reduce = normal.softmax(-1), reduce.softmax(-1)
    steps = _steps(normal.shape[1])
    return [
        make_genotype(darts_cell(n, op_names, steps), darts_cell(r, op_names, steps)) for n, r in zip(normal, reduce)
    ]


def _steps(n_edges: int) -> int:
    for steps in range(1, 16):
        if len(cell_edges(steps)) == n_edges:
            return steps
    raise ValueError(f"{n_edges} edges is no cell of two inputs and full edges")


def discretize_threshold(
    alpha: torch.Tensor,
    *,
    threshold: float = FAIRDARTS_THRESHOLD,
    op_names: Sequence[str] = OP_NAMES,
    apply_sigmoid: bool = True,
    max_ops_per_edge: int | None = None,
    max_ops_per_node: int | None = None,
) -> torch.Tensor:
    """Boolean mask (K, n_edges, n_ops) of the kept ops of one cell type: sigmoid(alpha) >
    ``threshold`` ("above", strictly), 'none' never kept, then the strongest
    ``max_ops_per_edge`` per edge and ``max_ops_per_node`` per node. Feed it to
    ``genotype.mask_to_edges`` for an ``EvalNetwork`` or, as float, to a supernet."""
    w = _as_trials(alpha)
    if apply_sigmoid:
        w = torch.sigmoid(w)
    names = list(op_names)
    keep = w > threshold
    if "none" in names:
        keep[..., names.index("none")] = False
    if max_ops_per_edge is not None:
        keep = _top_n(w, keep, max_ops_per_edge)
    if max_ops_per_node is not None:
        start = 0
        for node in range(2, _steps(w.shape[1]) + 2):
            rows = slice(start, start + node)
            k, _, n_ops = w[:, rows].shape
            block = _top_n(w[:, rows].reshape(k, node * n_ops), keep[:, rows].reshape(k, node * n_ops),
                           max_ops_per_node)
            keep[:, rows] = block.view(k, node, n_ops)
            start += node
    return keep


def threshold_cell(
    weights: torch.Tensor, op_names: Sequence[str] = OP_NAMES, threshold: float = FAIRDARTS_THRESHOLD
) -> list[tuple[str, int]]:
    """One trial's (n_edges, n_ops) probabilities -> DARTS (op, input) pairs by FairDARTS's parsing.

    ``discretize_threshold`` "sparse" (at most one op per edge, [002] section 4.2.1) and at most
    two kept edges per node (DARTS's format has two inputs per node). Why 'none' pairs: a node
    with fewer kept inputs keeps fewer edges (FairDARTS's cells are irregular), which the format
    writes as ('none', 0), an edge that adds zero; the kept ones come first, strongest first.
    """
    keep = discretize_threshold(weights, threshold=threshold, op_names=op_names, apply_sigmoid=False,
                                max_ops_per_edge=1, max_ops_per_node=2)[0]
    w = _as_trials(weights)[0]
    pairs: list[tuple[str, int]] = []
    start = 0
    for node in range(2, _steps(w.shape[0]) + 2):
        kept = [(float(w[e, o]), e - start, op_names[o])
                for e in range(start, start + node) for o in range(len(op_names)) if bool(keep[e, o])]
        kept.sort(key=lambda t: -t[0])  # stable: ties keep the lower input
        pairs += [(name, source) for _, source, name in kept] + [("none", 0)] * (2 - len(kept))
        start += node
    return pairs


def _top_n(score: torch.Tensor, keep: torch.Tensor, n: int) -> torch.Tensor:
    """``keep`` restricted to the n largest kept scores along the last axis."""
    if n < 1:
        raise ValueError("a per-edge or per-node op limit must be >= 1")
    masked = score.masked_fill(~keep, float("-inf"))
    index = masked.topk(min(n, score.shape[-1]), dim=-1).indices
    return torch.zeros_like(keep).scatter_(-1, index, True) & keep


def count_parameter_free(
    cells: Genotype | Sequence[Genotype] | torch.Tensor, op_names: Sequence[str] = OP_NAMES
) -> int | list[int] | torch.Tensor:
    """Parameter-free ops (skip, pools; [002] section 3.2.2) in the NORMAL cell: an int for one
    genotype, a list for several, a (K,) tensor for a (K, n_edges, n_ops) normal-cell mask."""
    free = [n for n in PARAMETER_FREE_OPS if n != "none"]
    if isinstance(cells, Genotype):
        return sum(1 for op, _, _ in genotype_cell(cells, "normal")[0] if op in free)
    if isinstance(cells, torch.Tensor):
        mask = _as_trials(cells).bool()
        cols = [i for i, n in enumerate(op_names) if n in free]
        return mask[..., cols].sum(dim=(1, 2))
    return [count_parameter_free(g, op_names) for g in cells]
