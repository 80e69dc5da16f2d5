"""The DARTS CIFAR cell space as a search space of the harness (``space: darts-cell``).

The networks live in ``harness.spaces.darts_cell`` (with a trial axis); this adapter gives them
the interface the method components use: a flat (positions x ops) alpha, the 14 edges of the
normal cell first, then the 14 of the reduction cell (each cell type's alpha is shared by all
cells of that type, [003] section IV-B1); genotypes in DARTS's format, stored as JSON.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.spaces.darts_cell import (
    PARAMETER_FREE_OPS,
    STEPS,
    EvalConfig,
    EvalNetwork,
    SearchConfig,
    SearchNetwork,
    cell_edges,
    darts_cell,
    genotype_from_json,
    genotype_to_json,
    make_genotype,
)

CELL_TYPES = ("normal", "reduce")


class CellSupernet(nn.Module):
    """One trial's supernet: ``forward(images, weights)`` with relaxed weights (positions x ops)."""

    def __init__(self, config: SearchConfig) -> None:
        super().__init__()
        self.net = SearchNetwork(config, n_trials=1)
        self.n_edges = config.n_edges

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        normal, reduce = weights[: self.n_edges].unsqueeze(0), weights[self.n_edges :].unsqueeze(0)
        return self.net(x, normal, reduce, relaxed=True)[0]


class DartsCellSpace:
    """Search network ``n_cells`` x ``channels`` (8 x 16 in [003] section IV-B2); evaluation
    network ``eval_cells`` x ``eval_channels`` (20 x 36, auxiliary head 0.4, drop path 0.2, [003]
    section IV-B3). The CPU proxy shrinks both through ``options: space``."""

    name = "darts-cell"
    capabilities = frozenset({"cells", "images"})
    parameter_free = frozenset(PARAMETER_FREE_OPS)

    def __init__(self, n_cells: int = 8, channels: int = 16, eval_cells: int = 20, eval_channels: int = 36,
                 auxiliary: bool = True, drop_path_prob: float = 0.2) -> None:
        if min(n_cells, channels, eval_cells, eval_channels) < 1:
            raise ValueError("space options n_cells, channels, eval_cells and eval_channels must be >= 1")
        self.n_cells, self.channels = n_cells, channels
        self.eval_cells, self.eval_channels = eval_cells, eval_channels
        self.auxiliary, self.drop_path_prob = auxiliary, drop_path_prob
        self.edges = cell_edges()
        self.in_channels, self.n_classes = 3, 10

    def bind(self, task) -> DartsCellSpace:
        """Size the networks' input and classifier to the task's images and classes."""
        self.in_channels, self.n_classes = int(task.input_shape[0]), int(task.num_classes)
        return self

    @property
    def n_positions(self) -> int:
        return 2 * len(self.edges)

    def positions(self) -> list[str]:
        return [f"{cell} {src}->{dst}" for cell in CELL_TYPES for src, dst in self.edges]

    def supernet(self, ops: tuple[str, ...], cfg=None) -> CellSupernet:
        return CellSupernet(SearchConfig(n_cells=self.n_cells, channels=self.channels, n_classes=self.n_classes,
                                         in_channels=self.in_channels, op_names=tuple(ops)))

    def network(self, genotype, cfg=None) -> nn.Module:
        config = EvalConfig(n_cells=self.eval_cells, channels=self.eval_channels, n_classes=self.n_classes,
                            in_channels=self.in_channels, auxiliary=self.auxiliary,
                            drop_path_prob=self.drop_path_prob)
        return EvalNetwork(genotype_from_json(genotype), config)

    def discretize(self, probabilities: torch.Tensor, ops: tuple[str, ...]) -> dict:
        """DARTS's rule per cell type: two strongest incoming edges per node ([002] App. A.3.1)."""
        n = len(self.edges)
        probs = probabilities.detach().float().cpu()
        normal, reduce = darts_cell(probs[:n], ops), darts_cell(probs[n:], ops)
        return genotype_to_json(make_genotype(normal, reduce))

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
        """The normal cell's ops (what DARTS+ counts and the records' parameter-free count use)."""
        return [op for op, _ in genotype_from_json(genotype).normal]

    def validate(self, genotype) -> None:
        genotype_from_json(genotype)

    def _unflatten(self, flat: list[str]) -> dict:
        raise ValueError("a cell genotype cannot be rebuilt from one op per position; use the space's discretize")
