"""Search cells (14 mixed edges) and discrete cells, both over K trials.

A cell has two input nodes (the two previous cells' outputs, each preprocessed to C
channels), ``steps`` intermediate nodes, each the sum of its incoming edges, and outputs the
concatenation of the intermediate nodes ([003] section IV-B1; [002] section 2.7). A mixed edge
computes sum_o w_o * o(x) ([002] Eq. 2.7) with per-trial weights w of shape (K, n_ops).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.spaces.darts_cell.genotype import CellEdges, cell_edges
from harness.spaces.darts_cell.mixing import EdgeView, bypass, channel_shuffle, split_channels
from harness.spaces.darts_cell.ops import (
    CandidateOp,
    FactorizedReduce,
    Identity,
    OpSettings,
    ReLUConvBN,
    build_op,
    cat_per_trial,
)


def _preprocess(k: int, c_pp: int, c_p: int, c: int, reduction_prev: bool, settings: OpSettings):
    """Bring the two inputs to C channels and the same size; the form is not stated in the papers:
    1x1 ReLU-conv-BN, and a factorized reduce for input 0 when the previous cell halved the size."""
    pre0 = FactorizedReduce(k, c_pp, c, settings) if reduction_prev else ReLUConvBN(k, c_pp, c, 1, 1, settings)
    return pre0, ReLUConvBN(k, c_p, c, 1, 1, settings)


def _apply(op: CandidateOp, x: torch.Tensor, relu_cache: dict[int, torch.Tensor], key: int) -> torch.Tensor:
    """op(x), sharing relu(x) among all ReLU-first ops reading the same node (same result, fewer kernels)."""
    if not op.leading_relu:
        return op(x)
    if key not in relu_cache:
        relu_cache[key] = torch.relu(x)
    return op.body(relu_cache[key])


def _out_size(x: torch.Tensor, reduction: bool) -> tuple[int, int]:
    h, w = x.shape[-2:]
    return ((h + 1) // 2, (w + 1) // 2) if reduction else (h, w)


class SearchCell(nn.Module):
    """A cell whose every edge is a mixed op over ``op_names`` (14 edges for 4 steps).

    With ``settings.partial_channels`` k > 1 (PC-DARTS) the ops are built for C/k channels and
    each edge mixes only that part (``mixing``); a ``mixer`` replaces the weighted sum (over K trials
    it gets the edge's (K, ops) weights)."""

    def __init__(
        self, k: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
        op_names: Sequence[str], settings: OpSettings, steps: int,
    ) -> None:
        super().__init__()
        self.k, self.c, self.reduction, self.steps = k, c, reduction, steps
        self.op_names = tuple(op_names)
        self.partial = settings.partial_channels
        if c % self.partial:
            raise ValueError(f"partial channels: 1/{self.partial} of a cell's {c} channels is no whole number")
        self.pre0, self.pre1 = _preprocess(k, c_pp, c_p, c, reduction_prev, settings)
        self.edges = cell_edges(steps)
        # 'none' is never built: its term w * 0 is 0 in value and in every gradient.
        self.op_slots = [o for o, name in enumerate(self.op_names) if name != "none"]
        self.ops = nn.ModuleList(
            nn.ModuleList(
                build_op(self.op_names[o], k, c // self.partial, self._stride(source), settings)
                for o in self.op_slots
            )
            for source, _ in self.edges
        )
        self._views: dict[int, list[EdgeView]] = {}  # by first position; plain objects, not submodules

    def _stride(self, source: int) -> int:
        return 2 if self.reduction and source < 2 else 1

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, active: list[list[bool]] | None = None,
        mixer=None, first_position: int = 0,
    ) -> torch.Tensor:
        """``weights`` (K, n_edges, n_ops) mixing weights (already relaxed); ``active[e][o]`` False
        skips op o on edge e (only valid where its weight is 0 for every trial and needs no gradient).
        ``mixer(view, x, None, weights)`` mixes edge e as position ``first_position + e``."""
        if mixer is not None or self.partial > 1:
            return self._forward_edges(s0, s1, weights, active, mixer, first_position)
        k, c = self.k, self.c
        # (n_edges, n_ops, K*C): each trial's weight repeated over its C channels.
        wch = weights.permute(1, 2, 0).repeat_interleave(c, dim=2)
        states = [self.pre0(s0), self.pre1(s1)]
        relu_cache: dict[int, torch.Tensor] = {}
        edge = 0
        for node in range(2, self.steps + 2):
            acc = None
            for source in range(node):
                for slot, o in enumerate(self.op_slots):
                    if active is not None and not active[edge][o]:
                        continue
                    y = _apply(self.ops[edge][slot], states[source], relu_cache, source)
                    w = wch[edge, o].view(1, -1, 1, 1)
                    acc = y * w if acc is None else torch.addcmul(acc, y, w)
                edge += 1
            if acc is None:  # every incoming op masked off
                ref = states[1]
                acc = ref.new_zeros(ref.shape[0], ref.shape[1], *_out_size(ref, self.reduction))
            states.append(acc)
        return cat_per_trial(states[2:], k)

    def views(self, first_position: int) -> list[EdgeView]:
        """The edges as a mixer sees them, positions from ``first_position``."""
        if first_position not in self._views:
            self._views[first_position] = [
                EdgeView(first_position + e, self.op_names,
                         {self.op_names[o]: op for o, op in zip(self.op_slots, self.ops[e])}, self._stride(source))
                for e, (source, _) in enumerate(self.edges)
            ]
        return self._views[first_position]

    def _forward_edges(self, s0, s1, weights, active, mixer, first_position: int) -> torch.Tensor:
        """Edge by edge: the path of mixers and of partial channels (a node sums its edges' outputs)."""
        views = self.views(first_position) if mixer is not None else None
        states = [self.pre0(s0), self.pre1(s1)]
        relu_cache: dict[int, torch.Tensor] = {}
        edge = 0
        for node in range(2, self.steps + 2):
            acc = None
            for source in range(node):
                x, rest = states[source], None
                if self.partial > 1:
                    x, rest = split_channels(x, self.k, self.partial)
                if mixer is not None:
                    y = mixer(views[edge], x, None, weights[0, edge] if self.k == 1 else weights[:, edge])
                else:
                    y = self._weighted_sum(x, edge, source, weights, active, relu_cache)
                if rest is not None:
                    scale = weights[:, edge].sum(-1).repeat_interleave(rest.shape[1] // self.k).view(1, -1, 1, 1)
                    y = cat_per_trial([y, bypass(rest, self._stride(source)) * scale], self.k)
                    y = channel_shuffle(y, self.k, self.partial)
                acc = y if acc is None else acc + y
                edge += 1
            states.append(acc)
        return cat_per_trial(states[2:], self.k)

    def _weighted_sum(self, x, edge: int, source: int, weights, active, relu_cache) -> torch.Tensor:
        width = x.shape[1] // self.k
        out = None
        for slot, o in enumerate(self.op_slots):
            if active is not None and not active[edge][o]:
                continue
            y = _apply(self.ops[edge][slot], x, relu_cache, source)
            w = weights[:, edge, o].repeat_interleave(width).view(1, -1, 1, 1)
            out = y * w if out is None else torch.addcmul(out, y, w)
        if out is None:  # every op of the edge masked off
            out = x.new_zeros(x.shape[0], x.shape[1], *_out_size(x, self._stride(source) == 2))
        return out


class DropPath(nn.Module):
    """Zero a whole edge output per sample with probability p, scale survivors by 1/(1-p).

    [003] IV-B3 gives the probability (0.2) as "dropout probability"; per-sample whole-path
    dropping and the 1/(1-p) scaling are not stated (our choice). Trials are not mixed because
    the evaluation network has K = 1.
    """

    def __init__(self) -> None:
        super().__init__()
        self.p = 0.0
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep, generator=self.generator)
        return x * mask / keep


class DiscreteCell(nn.Module):
    """A derived cell: one op per kept (op, input, node) triple; K = 1 is what retraining needs,
    but the ops are the same trial-axis modules, so K > 1 works for cells with one genotype."""

    def __init__(
        self, edges: CellEdges, concat: Sequence[int], k: int, c_pp: int, c_p: int, c: int, reduction: bool,
        reduction_prev: bool, settings: OpSettings, drop_identity: bool = False,
    ) -> None:
        super().__init__()
        self.k, self.c, self.reduction = k, c, reduction
        self.pre0, self.pre1 = _preprocess(k, c_pp, c_p, c, reduction_prev, settings)
        self.edges = [(op, int(source), int(node)) for op, source, node in edges]
        self.concat = [int(i) for i in concat]
        self.n_nodes = max([node for _, _, node in self.edges] + self.concat + [1]) - 1
        self.ops = nn.ModuleList(
            build_op(op, k, c, 2 if reduction and source < 2 else 1, settings) for op, source, _ in self.edges
        )
        self.drop_path = DropPath()
        # not stated whether identity edges are dropped; default: no (they carry the residual path).
        self.drop_identity = drop_identity

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        relu_cache: dict[int, torch.Tensor] = {}
        for node in range(2, self.n_nodes + 2):
            acc = None
            for (_, source, target), op in zip(self.edges, self.ops):
                if target != node:
                    continue
                y = _apply(op, states[source], relu_cache, source)
                if self.drop_identity or not isinstance(op, Identity):
                    y = self.drop_path(y)
                acc = y if acc is None else acc + y
            if acc is None:  # a node without kept inputs (possible under threshold parsing) is zero
                ref = states[1]
                acc = ref.new_zeros(ref.shape[0], ref.shape[1], *_out_size(ref, self.reduction))
            states.append(acc)
        return cat_per_trial([states[i] for i in self.concat], self.k)
