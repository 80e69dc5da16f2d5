"""The DARTS search network (supernet) over K trials and the evaluation network of a genotype.

Search network: stem conv, ``n_cells`` cells (reduction cells at 1/3 and 2/3 of the depth,
each cell type's mixing weights shared by all its cells), global pooling, classifier. The
input is (N, K*3, H, W): every trial may see its own images. Logits are (K, N, classes), and
``trial_cross_entropy`` gives per-trial losses; summing them for ``backward`` gives every trial
exactly its own gradient, and SGD/Adam over the stacked tensors are elementwise, i.e. K
independent optimizers. (Anything that takes a norm over all parameters, like gradient
clipping, must be done per trial: ``trial_view`` gives the (K, ...) view of a parameter.)

Evaluation network: the same stacking of a discrete genotype, plus auxiliary head and drop
path ([003] section IV-B3). It is built for K = 1 (one genotype, one retraining), which is all
retraining needs; its ops are the same trial-axis modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from harness.spaces.darts_cell.cell import DiscreteCell, SearchCell
from harness.spaces.darts_cell.genotype import STEPS, CellEdges, Genotype, cell_edges, genotype_cell
from harness.spaces.darts_cell.ops import OP_NAMES, OpSettings, TrialBatchNorm, TrialConv
from harness.spaces.trial_axis import load_stacked, load_trial

AUX_WEIGHT = 0.4  # auxiliary tower loss weight ([003] section IV-B3; METHODS.md section 0)


def reduction_positions(n_cells: int) -> tuple[int, ...]:
    """Cells floor(n/3) and floor(2n/3) ([003] IV-B1: "at the 1/3 and 2/3"; [002] Algorithm 2's
    euclidean_division(n, 3) and euclidean_division(2n, 3)); one cell for tiny n."""
    return tuple(sorted({n_cells // 3, 2 * n_cells // 3}))


def trial_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-trial mean cross entropy (K,) of logits (K, N, classes); targets (K, N) or shared (N,)."""
    k, n, classes = logits.shape
    if targets.dim() == 1:
        targets = targets.expand(k, n)
    return F.cross_entropy(logits.reshape(k * n, classes), targets.reshape(k * n), reduction="none").view(k, n).mean(1)


class TrialLinear(nn.Module):
    """K linear classifiers, weight (K*out, in), bias (K*out,); x (N, K*in) -> (K, N, out)."""

    def __init__(self, k: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.k, self.c_out = k, c_out
        plain = [nn.Linear(c_in, c_out) for _ in range(k)]  # each trial initialised as nn.Linear
        self.weight = nn.Parameter(torch.cat([m.weight.detach() for m in plain]))
        self.bias = nn.Parameter(torch.cat([m.bias.detach() for m in plain]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k == 1:
            return F.linear(x, self.weight, self.bias).unsqueeze(0)
        n = x.shape[0]
        xk = x.view(n, self.k, -1).transpose(0, 1)  # (K, N, in)
        w = self.weight.view(self.k, self.c_out, -1)
        return torch.baddbmm(self.bias.view(self.k, 1, self.c_out), xk, w.transpose(1, 2))


def _stem(k: int, c_in: int, c_out: int, settings: OpSettings) -> nn.Sequential:
    # 3x3 conv + BN: not stated in the papers (our choice; affine BN).
    return nn.Sequential(TrialConv(k, c_in, c_out, 3, 1, 1), TrialBatchNorm(k, c_out, settings, affine=True))


def _as_trial_input(x: torch.Tensor, k: int, in_channels: int) -> torch.Tensor:
    """(N, K*in, H, W) as is; (N, in, H, W) is shared by all trials."""
    if x.shape[1] == k * in_channels:
        return x
    if x.shape[1] == in_channels:
        return x.repeat(1, k, 1, 1)
    raise ValueError(f"input has {x.shape[1]} channels; expected {in_channels} or {k} x {in_channels}")


@dataclass(frozen=True)
class SearchConfig:
    n_cells: int = 8  # [003] IV-B2: "A small network of 8 cells"
    channels: int = 16  # [003] IV-B2: "initial channels as 16"
    n_classes: int = 10
    in_channels: int = 3
    steps: int = STEPS  # [003] IV-B1: four intermediate nodes
    op_names: tuple[str, ...] = OP_NAMES
    reduction_cells: tuple[int, ...] | None = None  # None: reduction_positions(n_cells)
    stem_multiplier: int = 3  # not stated: stem width = 3 x channels
    channel_growth: int = 2  # not stated: channels multiply by this at each reduction cell
    # not stated: non-affine BN in the supernet's ops (scale is left to alpha) and BN after pools
    # (so pooling outputs are on the normalised scale of the conv outputs they are mixed with).
    ops: OpSettings = field(default_factory=lambda: OpSettings(bn_affine=False, pool_bn=True))

    def reductions(self) -> tuple[int, ...]:
        return reduction_positions(self.n_cells) if self.reduction_cells is None else tuple(self.reduction_cells)

    @property
    def n_edges(self) -> int:
        return len(cell_edges(self.steps))


def _build_cells(k: int, n_cells: int, c: int, stem_c: int, reductions, growth: int, make_cell):
    """Stack cells, tracking the channel counts of the two previous outputs."""
    cells, c_pp, c_p, c_cur, reduction_prev = nn.ModuleList(), stem_c, stem_c, c, False
    for i in range(n_cells):
        reduction = i in reductions
        if reduction:
            c_cur *= growth
        cell, multiplier = make_cell(i, c_pp, c_p, c_cur, reduction, reduction_prev)
        cells.append(cell)
        c_pp, c_p, reduction_prev = c_p, multiplier * c_cur, reduction
    return cells, c_p


class SearchNetwork(nn.Module):
    """The DARTS supernet for K trials; ``forward(x, normal, reduce)`` with (K, 14, n_ops) alphas."""

    def __init__(self, config: SearchConfig = SearchConfig(), n_trials: int = 1) -> None:
        super().__init__()
        self.config, self.k = config, int(n_trials)
        k, cfg = self.k, config
        stem_c = cfg.stem_multiplier * cfg.channels
        self.stem = _stem(k, cfg.in_channels, stem_c, cfg.ops)

        def make(i, c_pp, c_p, c, reduction, reduction_prev):
            cell = SearchCell(k, c_pp, c_p, c, reduction, reduction_prev, cfg.op_names, cfg.ops, cfg.steps)
            return cell, cfg.steps

        self.cells, c_final = _build_cells(
            k, cfg.n_cells, cfg.channels, stem_c, cfg.reductions(), cfg.channel_growth, make
        )
        self.classifier = TrialLinear(k, c_final, cfg.n_classes)

    def forward(
        self, x: torch.Tensor, normal: torch.Tensor, reduce: torch.Tensor, *, relaxed: bool = False, mixer=None
    ) -> torch.Tensor:
        """Logits (K, N, classes). ``normal``/``reduce``: (K, n_edges, n_ops) alphas, softmaxed
        over ops here ([002] Eq. 2.7); with ``relaxed=True`` they are used as given (Gumbel or
        sigmoid weights, or a genotype's 0/1 mask from ``genotype_mask``). Ops whose weight is 0
        for every trial are skipped when the weights need no gradient (mask mode is then the
        derived network's cost). ``mixer`` (see ``mixing.EdgeView``) mixes every edge,
        numbered as a flat alpha: the normal cell's edges, then the reduction cell's."""
        k = self.k
        for name, w in (("normal", normal), ("reduce", reduce)):
            if w.dim() != 3 or w.shape[0] != k or w.shape[1:] != (self.config.n_edges, len(self.config.op_names)):
                raise ValueError(f"{name} weights must be (K={k}, {self.config.n_edges}, "
                                 f"{len(self.config.op_names)}), got {tuple(w.shape)}")
        if not relaxed:
            normal, reduce = normal.softmax(-1), reduce.softmax(-1)
        active = {id(w): (None if w.requires_grad else (w != 0).any(0).tolist()) for w in (normal, reduce)}
        s0 = s1 = self.stem(_as_trial_input(x, k, self.config.in_channels))
        for cell in self.cells:
            w = reduce if cell.reduction else normal
            if mixer is None:
                s0, s1 = s1, cell(s0, s1, w, active[id(w)])
            else:
                first = self.config.n_edges if cell.reduction else 0
                s0, s1 = s1, cell(s0, s1, w, active[id(w)], mixer=mixer, first_position=first)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier at 2/3 depth (weight AUX_WEIGHT in the loss, [003] IV-B3).

    Its layout is not stated: ReLU, average pool to 2x2 (any input size), 1x1 conv to
    ``width`` channels, BN, ReLU, 2x2 conv to ``hidden`` channels, BN, ReLU, linear.
    """

    def __init__(self, c_in: int, n_classes: int, settings: OpSettings, width: int = 128, hidden: int = 768) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AdaptiveAvgPool2d(2),
            TrialConv(1, c_in, width, 1), TrialBatchNorm(1, width, settings, affine=True), nn.ReLU(),
            TrialConv(1, width, hidden, 2), TrialBatchNorm(1, hidden, settings, affine=True), nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@dataclass(frozen=True)
class EvalConfig:
    n_cells: int = 20  # [003] IV-B3: "a large network of 20 cells"
    channels: int = 36  # [003] IV-B3: "the initial number of channels 36"
    n_classes: int = 10
    in_channels: int = 3
    auxiliary: bool = True  # [003] IV-B3: "auxiliary towers of weight 0.4"
    drop_path_prob: float = 0.2  # [003] IV-B3: "the dropout probability 0.2"
    reduction_cells: tuple[int, ...] | None = None  # None: reduction_positions(n_cells)
    auxiliary_cell: int | None = None  # None: cell floor(2n/3), i.e. 2/3 depth (the exact index is not stated)
    stem_multiplier: int = 3  # not stated
    channel_growth: int = 2  # not stated
    aux_width: int = 128  # not stated
    aux_hidden: int = 768  # not stated
    drop_identity: bool = False  # not stated: drop path also on identity edges
    ops: OpSettings = field(default_factory=OpSettings)  # affine BN, no BN after pools (not stated)

    def reductions(self) -> tuple[int, ...]:
        return reduction_positions(self.n_cells) if self.reduction_cells is None else tuple(self.reduction_cells)

    def aux_position(self) -> int:
        return 2 * self.n_cells // 3 if self.auxiliary_cell is None else self.auxiliary_cell


CellSpec = tuple[CellEdges, Sequence[int]]


class EvalNetwork(nn.Module):
    """The network of one derived architecture (K = 1). ``forward`` gives (logits (N, classes),
    auxiliary logits or None); the auxiliary head runs in training mode only."""

    def __init__(self, genotype: Genotype | tuple[CellSpec, CellSpec], config: EvalConfig = EvalConfig()) -> None:
        super().__init__()
        self.config = config
        cfg = config
        if isinstance(genotype, Genotype):
            normal, reduce = genotype_cell(genotype, "normal"), genotype_cell(genotype, "reduce")
        else:
            normal, reduce = genotype
        self.genotype = genotype
        stem_c = cfg.stem_multiplier * cfg.channels
        self.stem = _stem(1, cfg.in_channels, stem_c, cfg.ops)
        aux_at, aux_c = cfg.aux_position(), None
        channels_after: list[int] = []

        def make(i, c_pp, c_p, c, reduction, reduction_prev):
            edges, concat = reduce if reduction else normal
            cell = DiscreteCell(edges, concat, 1, c_pp, c_p, c, reduction, reduction_prev, cfg.ops, cfg.drop_identity)
            channels_after.append(len(concat) * c)
            return cell, len(concat)

        self.cells, c_final = _build_cells(1, cfg.n_cells, cfg.channels, stem_c, cfg.reductions(),
                                           cfg.channel_growth, make)
        if cfg.auxiliary:
            if not 0 <= aux_at < cfg.n_cells:
                raise ValueError(f"auxiliary cell {aux_at} outside 0..{cfg.n_cells - 1}")
            aux_c = channels_after[aux_at]
        self.aux_at = aux_at
        self.auxiliary = AuxiliaryHead(aux_c, cfg.n_classes, cfg.ops, cfg.aux_width, cfg.aux_hidden) if aux_c else None
        self.classifier = nn.Linear(c_final, cfg.n_classes)
        self.set_drop_path(cfg.drop_path_prob)

    def set_drop_path(self, p: float, generator: torch.Generator | None = None) -> None:
        """Drop-path probability (callers may ramp it over epochs; a schedule is not stated)."""
        if not 0 <= p < 1:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        for cell in self.cells:
            cell.drop_path.p, cell.drop_path.generator = float(p), generator

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return forward_cells(self, self.stem(x))


def forward_cells(net: nn.Module, stem_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The evaluation network after its stem, shared by ``EvalNetwork`` and the K-trial
    ``BatchedEvalNetwork``: cells in sequence, the auxiliary head (training mode only) after cell
    ``aux_at``, global pooling and the classifier."""
    s0 = s1 = stem_out
    aux = None
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, cell(s0, s1)
        if i == net.aux_at and net.auxiliary is not None and net.training:
            aux = net.auxiliary(s1)
    return net.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1)), aux


def eval_loss(logits: torch.Tensor, aux: torch.Tensor | None, targets: torch.Tensor,
              aux_weight: float = AUX_WEIGHT) -> torch.Tensor:
    """Cross entropy plus ``aux_weight`` times the auxiliary head's ([003] IV-B3: weight 0.4)."""
    loss = F.cross_entropy(logits, targets)
    return loss if aux is None else loss + aux_weight * F.cross_entropy(aux, targets)


def stack_trials(networks: Sequence[SearchNetwork]) -> SearchNetwork:
    """One K-trial network holding the given networks' parameters and BN statistics, trial by
    trial (each may itself hold several trials): build trials under their own seeds, then stack."""
    config = networks[0].config
    if any(net.config != config for net in networks):
        raise ValueError("stacked networks must share one SearchConfig")
    out = SearchNetwork(config, n_trials=sum(net.k for net in networks))
    load_stacked(out, networks)
    return out


def unstack_trial(network: SearchNetwork, trial: int) -> SearchNetwork:
    """A K = 1 copy of trial ``trial`` (parameters and BN statistics)."""
    out = SearchNetwork(network.config, n_trials=1)
    load_trial(out, network, network.k, trial)
    return out

