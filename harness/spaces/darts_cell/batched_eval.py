"""K derived networks with different genotypes, retrained as one computation (issue 12).

Why: retraining dominates a proxy trial's cost, and a small K = 1 ``EvalNetwork`` step on a CPU
pays per-kernel overhead. The stem, the cells' preprocessing, the auxiliary head and the
classifier are trial-axis modules (K groups, see ``ops``) as in ``SearchNetwork``. Inside a
cell the trials differ in ops and inputs, so at each node the (trial, edge) pairs are grouped
by (op, stride) and each group runs one trial-axis op built for the group's size (grouping per
edge slot instead was measured up to ~10% slower at 16 px: more, smaller groups).

Trial k computes exactly ``EvalNetwork(genotypes[k])`` with the same parameters: the same ops,
the same drop-path draws (a generator per trial, drawn in that network's order, so a trial's
stream does not depend on its batch mates) and per-channel BatchNorm statistics. Parameters
are stacked along dim 0 (trial-major in trial-axis modules, pair-major in a group), so SGD,
momentum and weight decay over them are K independent optimizers; anything that takes a norm
over a network's parameters must be per trial: ``per_trial_grad_norm_clip``.

When it pays (benchmarks/eval_throughput.py; 5 cells, C = 8, batch 32, channels-last, 1
thread): vs K separate networks, K = 16 ran 1.5x the trial-steps/s at 8 px and 1.3x at 16 px,
but at 32 px K = 4-16 were 8-30% slower: the K-fold tensors fall out of cache and every
group input is a copy. Channels-last helps a trial alone and a batch (pools, depthwise convs ~2x faster).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.spaces.darts_cell.cell import _out_size, _preprocess
from harness.spaces.darts_cell.genotype import Genotype, genotype_cell
from harness.spaces.darts_cell.networks import (
    AUX_WEIGHT,
    CellSpec,
    EvalConfig,
    EvalNetwork,
    TrialLinear,
    _as_trial_input,
    _build_cells,
    _stem,
    forward_cells,
    trial_cross_entropy,
)
from harness.spaces.darts_cell.ops import (
    Identity,
    OpSettings,
    TrialBatchNorm,
    TrialConv,
    _is_channels_last,
    build_op,
)
from harness.spaces.trial_axis import trial_view

GenotypeLike = Genotype | tuple[CellSpec, CellSpec]


def _cells_of(genotype: GenotypeLike) -> tuple[CellSpec, CellSpec]:
    if isinstance(genotype, Genotype):
        return genotype_cell(genotype, "normal"), genotype_cell(genotype, "reduce")
    return genotype


def _cat(parts: list[torch.Tensor], cl: bool) -> torch.Tensor:
    """Concatenate (N, C_i, H, W) tensors along channels, keeping channels-last if ``cl``."""
    if len(parts) == 1:
        return parts[0]
    if cl:
        return torch.cat([p.permute(0, 2, 3, 1) for p in parts], 3).permute(0, 3, 1, 2)
    return torch.cat(parts, 1)


def _unbind(x: torch.Tensor, k: int, cl: bool) -> tuple[torch.Tensor, ...]:
    """(N, K*C, H, W) -> K per-trial (N, C, H, W) views. Unbinding the NHWC (channels-last) or
    NCHW 5-D view, not ``split``: the backward then stacks the pieces' gradients (zeros for
    unused ones) in the tensor's own layout, where ``split`` would fill NCHW zeros and hand an
    NCHW gradient to every channels-last kernel behind it (2x slower BatchNorm backward)."""
    n, kc, h, w = x.shape
    if cl:
        return tuple(p.permute(0, 3, 1, 2) for p in x.permute(0, 2, 3, 1).reshape(n, h, w, k, kc // k).unbind(3))
    return x.reshape(n, k, kc // k, h, w).unbind(1)


def _pick(x: torch.Tensor, k: int, trials: list[int], cl: bool) -> torch.Tensor:
    """The channels of ``trials`` from (N, K*C, H, W), in its layout (see ``_unbind``)."""
    n, kc, h, w = x.shape
    idx = torch.tensor(trials, device=x.device)
    if cl:
        picked = x.permute(0, 2, 3, 1).reshape(n, h, w, k, -1).index_select(3, idx)
        return picked.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    return x.reshape(n, k, -1, h, w).index_select(1, idx).reshape(n, -1, h, w)


class BatchedDiscreteCell(nn.Module):
    """K derived cells (one per trial, shared concat) as grouped trial-axis ops; see the module doc.

    States are lists of K per-trial tensors: a group's input is one ``cat`` of its pairs' states
    (its backward is free views) and its output is unbound into per-trial views that are summed
    per node in edge order, as ``DiscreteCell`` sums them. (Stacked (N, K*C) states with
    index_select gathers and index_add scatters measured 1-5% slower, and are more code.)
    A cell input that a trial's edges never read is preprocessed by ``pre{i}_unused`` (no
    gradient, BN statistics only), so its parameters get no gradient and no weight decay, as in
    that trial's ``EvalNetwork``. ``rows`` maps each module's dim-0 rows to (trial, the
    EvalNetwork module name)."""

    def __init__(
        self, specs: Sequence[CellSpec], c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
        settings: OpSettings, drop_identity: bool = False,
    ) -> None:
        super().__init__()
        k = len(specs)
        concats = {tuple(int(i) for i in concat) for _, concat in specs}
        if len(concats) != 1:
            raise ValueError(f"batched trials must share the cell's concat list, got {sorted(concats)}")
        self.k, self.c, self.reduction, self.concat = k, c, reduction, list(concats.pop())
        self.edges = [[(op, int(s), int(n)) for op, s, n in edges] for edges, _ in specs]
        self.n_nodes = max([n for edges in self.edges for _, _, n in edges] + self.concat + [1]) - 1
        self.drop_identity = drop_identity
        self.drop_p, self.generators = 0.0, None
        self.rows: dict[str, list[tuple[int, str]]] = {}
        self.live: list[list[int]] = []
        for i in (0, 1):
            live = [t for t, edges in enumerate(self.edges) if any(s == i for _, s, _ in edges)]
            self.live.append(live)
            for name, trials in ((f"pre{i}", live), (f"pre{i}_unused", [t for t in range(k) if t not in live])):
                setattr(self, name, _preprocess(len(trials), c_pp, c_p, c, reduction_prev, settings)[i]
                        if trials else None)
                self.rows[name] = [(t, f"pre{i}") for t in trials]
        self.groups: list[list[list[tuple[int, int, int]]]] = []  # node -> group -> (source, trial, edge)
        self.where: list[dict[int, tuple[int, int, int]]] = [{} for _ in range(k)]  # trial: edge -> (node, g, r)
        self.ops = nn.ModuleList()
        for node in range(2, self.n_nodes + 2):
            keyed: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
            for t, edges in enumerate(self.edges):
                for e, (op, s, n) in enumerate(edges):
                    if n == node:
                        keyed.setdefault((op, 2 if reduction and s < 2 else 1), []).append((s, t, e))
            self.groups.append(list(keyed.values()))
            self.ops.append(nn.ModuleList(build_op(op, len(pairs), c, stride, settings)
                                          for (op, stride), pairs in keyed.items()))
            for g, pairs in enumerate(keyed.values()):
                self.rows[f"ops.{node - 2}.{g}"] = [(t, f"ops.{e}") for _, t, e in pairs]
                for r, (_, t, e) in enumerate(pairs):
                    self.where[t][e] = (node - 2, g, r)

    def _masks(self, node: int, n: int, ref: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        """Drop-path keep masks (N, 1, 1, 1) per (group, row), drawn per trial in EvalNetwork's
        order (edges into ``node`` in edge-list order) from that trial's generator."""
        masks = {}
        keep = 1.0 - self.drop_p
        for t, edges in enumerate(self.edges):
            gen = None if self.generators is None else self.generators[t]
            for e, (_, _, target) in enumerate(edges):
                _, g, r = self.where[t][e]
                if target != node or (not self.drop_identity and isinstance(self.ops[node - 2][g], Identity)):
                    continue
                masks[g, r] = ref.new_empty(n, 1, 1, 1).bernoulli_(keep, generator=gen)
        return masks

    def _pre(self, i: int, x: torch.Tensor, cl: bool) -> torch.Tensor | None:
        """Cell input i preprocessed for the trials that read it, stacked (N, len(live)*C, H, W);
        the others' preprocessing still runs in training mode for its BN statistics, as in
        EvalNetwork, but without gradient."""
        live, k = self.live[i], self.k
        if len(live) < k and self.training:
            with torch.no_grad():
                getattr(self, f"pre{i}_unused")(_pick(x, k, [t for t in range(k) if t not in live], cl))
        return getattr(self, f"pre{i}")(x if len(live) == k else _pick(x, k, live, cl)) if live else None

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        k, c = self.k, self.c
        cl = _is_channels_last(s1)
        stacked = [self._pre(0, s0, cl), self._pre(1, s1, cl)]
        states: list[list] = []  # state -> trial -> (N, C, H, W); inputs 0 and 1 are views of stacked
        relu: dict[tuple[int, int], torch.Tensor] = {}
        for y, live in zip(stacked, self.live):
            states.append(dict(zip(live, _unbind(y, len(live), cl))) if live else {})
        n, h, w = s1.shape[0], *_out_size(s1, self.reduction)
        drop = self.training and self.drop_p > 0

        def source(s: int, t: int, relu_first: bool) -> torch.Tensor:  # relu once per state, as DiscreteCell
            if relu_first and (s, t) not in relu:
                if s < 2:  # one dense relu over the stacked input, not one per strided view
                    relu.update({(s, u): r for u, r in zip(self.live[s], _unbind(torch.relu(stacked[s]),
                                                                                 len(self.live[s]), cl))})
                else:
                    relu[s, t] = torch.relu(states[s][t])
            return relu[s, t] if relu_first else states[s][t]

        for node in range(2, self.n_nodes + 2):
            masks = self._masks(node, n, s1) if drop else {}
            into: list[list[tuple[int, torch.Tensor]]] = [[] for _ in range(k)]  # trial -> (edge, output)
            for g, (pairs, op) in enumerate(zip(self.groups[node - 2], self.ops[node - 2])):
                y = op.body(_cat([source(s, t, op.leading_relu) for s, t, _ in pairs], cl))
                if masks and (g, 0) in masks:  # one pass: y * (mask / keep), per (sample, channel)
                    m = torch.cat([masks[g, r] for r in range(len(pairs))], 1) / (1.0 - self.drop_p)
                    y = y * m.repeat_interleave(c, 1)
                for (_, t, e), part in zip(pairs, _unbind(y, len(pairs), cl)):
                    into[t].append((e, part))
            node_states = []
            for parts in into:  # sum in edge order, as DiscreteCell does
                parts.sort(key=lambda item: item[0])
                acc = parts[0][1] if parts else s1.new_zeros(n, c, h, w)  # no kept inputs: zeros
                for _, part in parts[1:]:
                    acc = acc + part
                node_states.append(acc)
            states.append(node_states)
        return _cat([states[i][t] for t in range(k) for i in self.concat], cl)


class TrialAuxiliaryHead(nn.Module):
    """``AuxiliaryHead`` for K trials (same layout and state-dict names, trial-axis modules).

    Its two convs see 2x2 inputs, so they are per-trial matmuls; run as ``bmm`` (grouped convs
    with K groups of 768 outputs took ~2x the time of K separate heads, forward plus backward)."""

    def __init__(self, k: int, c_in: int, n_classes: int, settings: OpSettings, width: int, hidden: int) -> None:
        super().__init__()
        self.k = k
        self.features = nn.Sequential(
            nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            TrialConv(k, c_in, width, 1), TrialBatchNorm(k, width, settings, affine=True), nn.ReLU(),
            TrialConv(k, width, hidden, 2), TrialBatchNorm(k, hidden, settings, affine=True), nn.ReLU(),
        )
        self.classifier = TrialLinear(k, hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, n = self.k, x.shape[0]
        conv1, bn1, conv2, bn2 = self.features[2], self.features[3], self.features[5], self.features[6]
        x = F.adaptive_avg_pool2d(torch.relu(x), 2)  # (N, K*c_in, 2, 2)
        xk = x.reshape(n, k, -1, 4).permute(1, 0, 3, 2).reshape(k, n * 4, -1)  # (K, N*4 pixels, c_in)
        w1 = conv1.weight.reshape(k, -1, xk.shape[-1])  # (K, width, c_in)
        h = torch.bmm(xk, w1.transpose(1, 2)).transpose(0, 1).reshape(n * 4, -1)  # (N*4, K*width)
        h = torch.relu(bn1(h))  # BN over the N*4 rows: the 2x2 conv output's statistics
        w2 = conv2.weight  # (K*hidden, width, 2, 2): match its memory order (c, i, j) or (i, j, c)
        if w2.is_contiguous():
            hk = h.view(n, 4, k, -1).permute(2, 0, 3, 1).reshape(k, n, -1)
            w2k = w2.view(k, w2.shape[0] // k, -1)
        else:
            hk = h.view(n, 4, k, -1).permute(2, 0, 1, 3).reshape(k, n, -1)
            w2k = w2.permute(0, 2, 3, 1).reshape(k, w2.shape[0] // k, -1)
        y = torch.bmm(hk, w2k.transpose(1, 2)).transpose(0, 1).reshape(n, -1)  # (N, K*hidden)
        return self.classifier(torch.relu(bn2(y)))


class BatchedEvalNetwork(nn.Module):
    """K ``EvalNetwork``s of different genotypes (shared config and concat lists) as one network.

    ``forward(x)`` takes (N, K*C_in, H, W) or shared (N, C_in, H, W) images and returns logits
    (K, N, classes) and auxiliary logits (K, N, classes) in training mode (else None).
    """

    def __init__(
        self, genotypes: Sequence[GenotypeLike], config: EvalConfig = EvalConfig()) -> None:
        super().__init__()
        if not genotypes:
            raise ValueError("at least one genotype is needed")
        self.config, self.genotypes, self.k = config, list(genotypes), len(genotypes)
        cfg, k = config, self.k
        cells = [_cells_of(g) for g in self.genotypes]
        stem_c = cfg.stem_multiplier * cfg.channels
        self.stem = _stem(k, cfg.in_channels, stem_c, cfg.ops)
        channels_after: list[int] = []

        def make(i, c_pp, c_p, c, reduction, reduction_prev):
            specs = [cell[1] if reduction else cell[0] for cell in cells]
            cell = BatchedDiscreteCell(specs, c_pp, c_p, c, reduction, reduction_prev, cfg.ops, cfg.drop_identity)
            channels_after.append(len(cell.concat) * c)
            return cell, len(cell.concat)

        self.cells, c_final = _build_cells(k, cfg.n_cells, cfg.channels, stem_c, cfg.reductions(),
                                           cfg.channel_growth, make)
        self.aux_at, self.auxiliary = cfg.aux_position(), None
        if cfg.auxiliary:
            if not 0 <= self.aux_at < cfg.n_cells:
                raise ValueError(f"auxiliary cell {self.aux_at} outside 0..{cfg.n_cells - 1}")
            self.auxiliary = TrialAuxiliaryHead(k, channels_after[self.aux_at], cfg.n_classes, cfg.ops,
                                                cfg.aux_width, cfg.aux_hidden)
        self.classifier = TrialLinear(k, c_final, cfg.n_classes)
        self.set_drop_path(cfg.drop_path_prob)

    def set_drop_path(self, p: float, generators: Sequence[torch.Generator] | None = None) -> None:
        """Drop-path probability; ``generators`` (one per trial) make trial k's draws those of an
        ``EvalNetwork`` given ``generators[k]``, independent of the batch (None: the global RNG)."""
        if not 0 <= p < 1:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        if generators is not None and len(generators) != self.k:
            raise ValueError(f"need one generator per trial ({self.k}), got {len(generators)}")
        for cell in self.cells:
            cell.drop_p, cell.generators = float(p), None if generators is None else list(generators)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return forward_cells(self, self.stem(_as_trial_input(x, self.k, self.config.in_channels)))

    # --- trial bookkeeping: which rows of which tensor belong to which trial ---

    def _cell_rows(self, key: str) -> tuple[list[tuple[int, str]], str, str] | None:
        """For a cell key: (rows as (trial, EvalNetwork module), "cells.i", the key's tail)."""
        parts = key.split(".")
        if parts[0] != "cells":
            return None
        cut = 5 if parts[2] == "ops" else 3
        return self.cells[int(parts[1])].rows[".".join(parts[2:cut])], ".".join(parts[:2]), ".".join(parts[cut:])

    def _key_map(self, trial: int) -> dict[str, tuple[str, int, int]]:
        """EvalNetwork state-dict key -> (our key, rows along dim 0, trial's row)."""
        out = {}
        for key in self.state_dict():
            found = self._cell_rows(key)
            if found is None:
                out[key] = (key, self.k, trial)
                continue
            rows, cell, tail = found
            for r, (t, module) in enumerate(rows):
                if t == trial:
                    out[f"{cell}.{module}.{tail}"] = (key, len(rows), r)
        return out

    def state_dict_of(self, trial: int) -> dict[str, torch.Tensor]:
        """Trial ``trial``'s parameters and BN statistics under ``EvalNetwork``'s keys (copies)."""
        state = self.state_dict()
        return {ek: trial_view(state[key], rows)[r].clone() for ek, (key, rows, r) in self._key_map(trial).items()}

    def unstack(self, trial: int) -> EvalNetwork:
        """The ``EvalNetwork`` of trial ``trial`` (same parameters, statistics and drop-path p)."""
        with torch.random.fork_rng(devices=[]):  # building must not move the caller's RNG
            net = EvalNetwork(self.genotypes[trial], self.config)
        net.load_state_dict(self.state_dict_of(trial))
        net.set_drop_path(self.cells[0].drop_p if len(self.cells) else 0.0)
        return net.train(self.training)

    @classmethod
    def from_networks(cls, networks: Sequence[EvalNetwork]) -> BatchedEvalNetwork:
        """Stack separately built K = 1 networks (each under its own seed, so trial k starts as
        the single-trial network k); inverse of ``unstack``."""
        config = networks[0].config
        if any(net.config != config for net in networks):
            raise ValueError("stacked networks must share one EvalConfig")
        with torch.random.fork_rng(devices=[]):
            out = cls([net.genotype for net in networks], config)
        rows: dict[str, dict[int, torch.Tensor]] = {}
        for t, net in enumerate(networks):
            theirs = net.state_dict()
            for ek, (key, _, r) in out._key_map(t).items():
                rows.setdefault(key, {})[r] = theirs[ek]
        out.load_state_dict({key: torch.cat([got[r] for r in range(len(got))]) for key, got in rows.items()})
        if len(networks[0].cells):
            out.set_drop_path(networks[0].cells[0].drop_path.p)
        return out.train(networks[0].training)

    def trial_rows(self) -> dict[str, torch.Tensor]:
        """Parameter name -> the trial of each of its dim-0 row blocks (cached: the layout is fixed)."""
        if not hasattr(self, "_trial_rows"):
            self._trial_rows = {}
            for name, _ in self.named_parameters():
                found = self._cell_rows(name)
                trials = range(self.k) if found is None else [t for t, _ in found[0]]
                self._trial_rows[name] = torch.tensor(list(trials))
        return self._trial_rows


def per_trial_grad_norm_clip(net: BatchedEvalNetwork, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` per trial: scale each trial's gradients by max_norm / (its own global
    norm + 1e-6) where that is < 1 (DARTS clips each network at 5). Returns the (K,) norms."""
    rows = net.trial_rows()
    views, norms, index = [], [], []
    for name, p in net.named_parameters():
        if p.grad is not None:
            idx = rows[name].to(p.grad.device)
            v = trial_view(p.grad, len(idx))
            views.append((v, idx))
            norms.append(torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim()))))
            index.append(idx)
    if not views:
        return torch.zeros(net.k)
    sq = norms[0].new_zeros(net.k).index_add_(0, torch.cat(index), torch.cat(norms).square())
    total = sq.sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    if bool((coef < 1).any()):  # scaling by exactly 1 changes nothing
        for v, idx in views:
            v.mul_(coef[idx].view(-1, *[1] * (v.dim() - 1)))
    return total


def batched_eval_loss(logits: torch.Tensor, aux: torch.Tensor | None, targets: torch.Tensor,
                      aux_weight: float = AUX_WEIGHT) -> torch.Tensor:
    """Per-trial (K,) ``eval_loss``: cross entropy plus ``aux_weight`` times the auxiliary head's;
    targets (K, N) or shared (N,). Sum it for ``backward``: each trial gets its own gradient."""
    loss = trial_cross_entropy(logits, targets)
    return loss if aux is None else loss + aux_weight * trial_cross_entropy(aux, targets)


__all__ = ["BatchedDiscreteCell", "BatchedEvalNetwork", "batched_eval_loss", "per_trial_grad_norm_clip"]
