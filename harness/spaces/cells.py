"""The DARTS CIFAR cell space as a search space of the harness (``space: darts-cell``).

The networks live in ``harness.spaces.darts_cell`` (with a trial axis); this adapter gives them
the interface the method components use: a flat (positions x ops) alpha, the 14 edges of the
normal cell first, then the 14 of the reduction cell (each cell type's alpha is shared by all
cells of that type, [003] section IV-B1); genotypes in DARTS's format, stored as JSON.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from harness.spaces.darts_cell import (
    PARAMETER_FREE_OPS,
    STEPS,
    BatchedEvalNetwork,
    EvalConfig,
    EvalNetwork,
    SearchConfig,
    SearchNetwork,
    cell_edges,
    count_flops,
    count_params,
    darts_cell,
    genotype_from_json,
    genotype_mask,
    genotype_to_json,
    make_genotype,
    per_trial_grad_norm_clip,
    stack_trials,
    unstack_trial,
)
from harness.spaces.darts_cell.discretize import threshold_cell
from harness.spaces.trial_axis import clip_per_trial

CELL_TYPES = ("normal", "reduce")


class CellSupernet(nn.Module):
    """The supernet of ``trials`` trials: ``forward(images, weights)`` with relaxed weights,
    (positions x ops) for one trial or (trials, positions, ops); logits (N, classes) or (K, N, classes)."""

    def __init__(self, config: SearchConfig, trials: int = 1, net: SearchNetwork | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else SearchNetwork(config, n_trials=trials)
        self.trials = self.net.k
        self.n_edges = config.n_edges

    def forward(self, x: torch.Tensor, weights: torch.Tensor, mixer=None) -> torch.Tensor:
        """A search method's ``mixer`` mixes the edges only while it changes anything (its ``acts``):
        otherwise the cells keep their fused weighted sum."""
        single = weights.dim() == 2
        w = weights.unsqueeze(0) if single else weights
        normal, reduce = w[:, : self.n_edges], w[:, self.n_edges :]
        if mixer is not None and not getattr(mixer, "acts", True):
            mixer = None
        out = self.net(x, normal, reduce, relaxed=True, mixer=mixer)
        return out[0] if single else out


class DartsCellSpace:
    """Search network ``n_cells`` x ``channels`` (8 x 16 in [003] section IV-B2); evaluation
    network ``eval_cells`` x ``eval_channels`` (20 x 36 with an auxiliary head, [003] section IV-B3;
    its loss weight, drop path and the rest of the retraining recipe belong to the task). The CPU
    proxy shrinks both through ``options: space``."""

    name = "darts-cell"
    # "trial-axis": its networks hold K trials, so K seeds of a row run as one computation.
    # "genotype-mask": a genotype runs inside the supernet as 0/1 mixing weights (inherited weights).
    capabilities = frozenset({"cells", "images", "trial-axis", "depth", "multi-channel-states", "genotype-mask"})
    parameter_free = frozenset(PARAMETER_FREE_OPS)

    def __init__(self, n_cells: int = 8, channels: int = 16, eval_cells: int = 20, eval_channels: int = 36,
                 auxiliary: bool = True) -> None:
        if min(n_cells, channels, eval_cells, eval_channels) < 1:
            raise ValueError("space options n_cells, channels, eval_cells and eval_channels must be >= 1")
        self.n_cells, self.channels = n_cells, channels
        self.eval_cells, self.eval_channels = eval_cells, eval_channels
        self.auxiliary = auxiliary
        self.edges = cell_edges()
        self.in_channels, self.n_classes = 3, 10
        self.partial_channels = 1  # PC-DARTS's supernets: see with_partial_channels

    def bind(self, task) -> DartsCellSpace:
        """Size the networks' input and classifier to the task's images and classes."""
        self.in_channels, self.n_classes = int(task.input_shape[0]), int(task.num_classes)
        return self

    @property
    def n_edges(self) -> int:
        """Mixed edges per cell type (alpha rows 0..n-1 normal, n..2n-1 reduction)."""
        return len(self.edges)

    @property
    def n_positions(self) -> int:
        return 2 * len(self.edges)

    # -- the trial axis (harness/spaces/trial_axis.py): build each trial under its own seed, then stack
    def stack_supernets(self, supernets: list[CellSupernet], cfg=None) -> CellSupernet:
        return CellSupernet(supernets[0].net.config, net=stack_trials([s.net for s in supernets]))

    def unstack_supernet(self, network: CellSupernet, trial: int, ops=None, cfg=None) -> CellSupernet:
        single = CellSupernet(network.net.config, net=unstack_trial(network.net, trial))
        return single.to(next(network.parameters()).device)

    def stack_networks(self, networks: list[nn.Module], genotypes=None, cfg=None) -> BatchedEvalNetwork:
        return BatchedEvalNetwork.from_networks(networks)

    def clip_stacked(self, network: BatchedEvalNetwork | CellSupernet, max_norm: float) -> None:
        """Each trial's gradient norm clipped to ``max_norm`` on its own (0: none)."""
        if max_norm <= 0:
            return
        if isinstance(network, CellSupernet):  # every parameter trial-major
            clip_per_trial([p for p in network.parameters() if p.requires_grad], network.trials, max_norm)
        else:
            per_trial_grad_norm_clip(network, max_norm)

    def positions(self) -> list[str]:
        return [f"{cell} {src}->{dst}" for cell in CELL_TYPES for src, dst in self.edges]

    def supernet(self, ops: tuple[str, ...], cfg=None) -> CellSupernet:
        config = SearchConfig(n_cells=self.n_cells, channels=self.channels, n_classes=self.n_classes,
                              in_channels=self.in_channels, op_names=tuple(ops))
        if self.partial_channels > 1:
            config = dataclasses.replace(
                config, ops=dataclasses.replace(config.ops, partial_channels=self.partial_channels))
        return CellSupernet(config)

    # -- variants and structure the method components ask for (by capability, not by name)
    @property
    def depth(self) -> int:
        return self.n_cells

    def with_depth(self, n_cells: int) -> DartsCellSpace:
        """The same space with a search network of ``n_cells`` cells (P-DARTS's stages)."""
        out = copy.copy(self)
        out.n_cells = int(n_cells)
        return out

    def with_partial_channels(self, k: int) -> DartsCellSpace:
        """The same space whose supernet mixes 1/k of each edge's channels (PC-DARTS, M16)."""
        out = copy.copy(self)
        out.partial_channels = int(k)
        return out

    def node_groups(self) -> list[list[int]]:
        """Positions of the edges into each node, cell type by cell type (what edge normalization
        and edge selection group by)."""
        n = self.n_edges
        return [[t * n + e for e, (_, dst) in enumerate(self.edges) if dst == node]
                for t in range(len(CELL_TYPES)) for node in range(2, 2 + STEPS)]

    def threshold_genotype(self, probabilities: torch.Tensor, ops: tuple[str, ...], threshold: float) -> dict:
        """FairDARTS's threshold parsing per cell type (``threshold_cell``), in DARTS's format."""
        n = self.n_edges
        probs = probabilities.detach().float().cpu()
        normal, reduce = threshold_cell(probs[:n], ops, threshold), threshold_cell(probs[n:], ops, threshold)
        return genotype_to_json(make_genotype(normal, reduce))

    def network(self, genotype, cfg=None) -> nn.Module:
        config = EvalConfig(n_cells=self.eval_cells, channels=self.eval_channels, n_classes=self.n_classes,
                            in_channels=self.in_channels, auxiliary=self.auxiliary,
                            drop_path_prob=0.0)  # the task's retraining recipe ramps it
        return EvalNetwork(genotype_from_json(genotype), config)

    def discretize(self, probabilities: torch.Tensor, ops: tuple[str, ...]) -> dict:
        """DARTS's rule per cell type: two strongest incoming edges per node ([002] App. A.3.1)."""
        n = len(self.edges)
        probs = probabilities.detach().float().cpu()
        normal, reduce = darts_cell(probs[:n], ops), darts_cell(probs[n:], ops)
        return genotype_to_json(make_genotype(normal, reduce))

    def genotype_weights(self, genotype, ops: tuple[str, ...]) -> torch.Tensor:
        """The genotype as (positions x ops) 0/1 mixing weights: the supernet then computes the
        derived architecture with inherited weights (edges it does not keep contribute nothing)."""
        normal, reduce = genotype_mask(genotype_from_json(genotype), ops)
        return torch.cat([normal[0], reduce[0]])

    def derived_costs(self, genotype, image_size: int) -> dict[str, float]:
        """Millions of parameters (without the auxiliary head) and of FLOPs of one image through the
        evaluation network (``torch.utils.flop_counter``, which counts depthwise convs exactly)."""
        with torch.random.fork_rng(devices=[]):  # building must not move the trial's global RNG
            network = self.network(genotype)
        return {"params_m": count_params(network) / 1e6, "flops_m": count_flops(network, image_size) / 1e6}

    def random_genotype(self, ops: tuple[str, ...], generator: torch.Generator) -> dict:
        """Uniform over DARTS genotypes: per node two distinct inputs, a non-'none' op on each."""
        choices = [o for o in ops if o != "none"]
        cells = []
        for _ in CELL_TYPES:
            pairs = []
            for node in range(2, 2 + STEPS):  # node n takes inputs 0..n-1
                inputs = torch.randperm(node, generator=generator)[:2].sort().values
                for source in inputs.tolist():
                    pairs.append((choices[int(torch.randint(len(choices), (1,), generator=generator))], source))
            cells.append(pairs)
        return genotype_to_json(make_genotype(*cells))

    def uniform_genotype(self, op: str) -> dict:
        """Every kept edge ``op``, each node fed by its two predecessors' first inputs (0 and 1)."""
        cell = [(op, source) for _node in range(STEPS) for source in (0, 1)]
        return genotype_to_json(make_genotype(cell, cell))

    def flatten(self, genotype) -> list[str]:
        """The normal cell's ops (what DARTS+ counts and the records' parameter-free count use);
        a 'none' pair (threshold parsing's dropped input) is no op."""
        return [op for op, _ in genotype_from_json(genotype).normal if op != "none"]

    def validate(self, genotype) -> None:
        genotype_from_json(genotype)

    def _unflatten(self, flat: list[str]) -> dict:
        raise ValueError("a cell genotype cannot be rebuilt from one op per position; use the space's discretize")
