"""Non-sequential (DARTS-like) space ([001] section 4.2, Fig. 2).

A cell has an input state s_0 and ``n_states`` computed states; s_i = sum_{j<i} o_ji(s_j)
over all forward connections (5 states: 1+2+3+4+5 = 15 edges, the paper's "up to 15
operational connections"). The last two states are concatenated and merged by a 1D conv
(2 -> 1 channels). ``n_cells`` cells run in succession (2 x 5 = 10 nodes) and, as in the
sequential space, the result is added to the input u0. The genotype is one op per edge
(argmax, 'zero' included), per cell, in the edge order of ``edges()``.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.spaces.ops import MixedOp, OpConfig, OpContext
from harness.spaces.stacking import TrialStacking, owned_ops


def edges(n_states: int) -> list[tuple[int, int]]:
    """(source, target) pairs ordered by target, then source."""
    return [(j, i) for i in range(1, n_states + 1) for j in range(i)]


class Cell(nn.Module):
    def __init__(
        self, edge_candidates: list[tuple[str, ...]], n_states: int, cfg: OpConfig, first_position: int = 0,
        trials: int = 1, owners: list | None = None,
    ) -> None:
        super().__init__()
        self.n_states = n_states
        self.edge_list = edges(n_states)
        owners = owners or [None] * len(edge_candidates)
        self.edge_ops = nn.ModuleList(
            MixedOp(c, cfg, position=first_position + k, trials=trials, owners=o)
            for k, (c, o) in enumerate(zip(edge_candidates, owners))
        )
        # Per trial: its last two states (2 channels) -> 1 channel; K trials are K groups.
        self.merge = nn.Conv1d(2 * trials, trials, cfg.kernel_size, padding=cfg.kernel_size // 2, groups=trials)

    def forward(self, s0, ctx: OpContext, weights: torch.Tensor | None = None):
        states = [s0]
        k = 0
        for i in range(1, self.n_states + 1):
            acc = None
            for j in range(i):
                op = self.edge_ops[k]
                if op.names == ("zero",):
                    k += 1  # a discrete zero edge contributes nothing
                    continue
                term = op(states[j], ctx, None if weights is None else weights[..., k, :])
                acc = term if acc is None else acc + term
                k += 1
            states.append(torch.zeros_like(s0) if acc is None else acc)
        b, trials, n = s0.shape  # interleave per trial: [s_-2, s_-1] of trial 0, of trial 1, ...
        return self.merge(torch.stack(states[-2:], dim=2).reshape(b, 2 * trials, n))


class NonSequentialNetwork(nn.Module):
    def __init__(self, cell_candidates: list[list[tuple[str, ...]]], n_states: int, cfg: OpConfig,
                 trials: int = 1, owners: list[list] | None = None) -> None:
        super().__init__()
        self.trials = trials
        owners = owners or [None] * len(cell_candidates)
        self.cells = nn.ModuleList(
            Cell(c, n_states, cfg, first_position=i * len(c), trials=trials, owners=o)
            for i, (c, o) in enumerate(zip(cell_candidates, owners))
        )

    def forward(self, u0, ctx: OpContext, weights: torch.Tensor | None = None):
        """``weights``: mixing weights (positions, ops) or (trials, positions, ops), positions cell by cell."""
        u = u0
        n_edges = len(self.cells[0].edge_list)
        for c, cell in enumerate(self.cells):
            cell_weights = None if weights is None else weights[..., c * n_edges : (c + 1) * n_edges, :]
            u = cell(u, ctx, cell_weights)
        return u0 + u


class NonSequentialSpace(TrialStacking):
    name = "nonsequential"
    # "zero-edges": one op per edge, 'zero' drops an edge (so top-k-edges pruning applies).
    capabilities = frozenset({"signal-1d", "zero-edges", "trial-axis", "fused-kernel"})

    def __init__(self, n_cells: int = 2, n_states: int = 5) -> None:
        self.n_cells = n_cells
        self.n_states = n_states
        self.edge_list = edges(n_states)

    @property
    def n_positions(self) -> int:
        return self.n_cells * len(self.edge_list)

    def positions(self) -> list[str]:
        return [f"cell {c} edge {j}->{i}" for c in range(self.n_cells) for j, i in self.edge_list]

    def supernet(self, ops: tuple[str, ...], cfg: OpConfig, trials: int = 1) -> NonSequentialNetwork:
        cells = [[tuple(ops)] * len(self.edge_list) for _ in range(self.n_cells)]
        return NonSequentialNetwork(cells, self.n_states, cfg, trials)

    def trial_network(self, genotypes: list[list[list[str]]], cfg: OpConfig) -> NonSequentialNetwork:
        """The empty K-trial network of ``genotypes`` (one per trial; see ``TrialStacking``)."""
        flat = [self.flatten(g) for g in genotypes]
        pairs = [owned_ops([f[p] for f in flat]) for p in range(self.n_positions)]
        n = len(self.edge_list)
        cells = [[pairs[c * n + e][0] for e in range(n)] for c in range(self.n_cells)]
        owners = [[pairs[c * n + e][1] for e in range(n)] for c in range(self.n_cells)]
        return NonSequentialNetwork(cells, self.n_states, cfg, len(genotypes), owners)

    def network(self, genotype: list[list[str]], cfg: OpConfig) -> NonSequentialNetwork:
        self.validate(genotype)
        return NonSequentialNetwork([[(n,) for n in cell] for cell in genotype], self.n_states, cfg)

    def discretize(self, alphas: torch.Tensor, ops: tuple[str, ...]) -> list[list[str]]:
        """Highest-probability op on every connection ([001] section 4.2)."""
        flat = [ops[int(i)] for i in alphas.argmax(dim=-1)]
        return self._unflatten(flat)

    def random_genotype(self, ops: tuple[str, ...], generator: torch.Generator) -> list[list[str]]:
        idx = torch.randint(len(ops), (self.n_positions,), generator=generator)
        return self._unflatten([ops[int(i)] for i in idx])

    def uniform_genotype(self, op: str) -> list[list[str]]:
        return self._unflatten([op] * self.n_positions)

    def flatten(self, genotype: list[list[str]]) -> list[str]:
        return [name for cell in genotype for name in cell]

    def _unflatten(self, flat: list[str]) -> list[list[str]]:
        n = len(self.edge_list)
        return [flat[c * n : (c + 1) * n] for c in range(self.n_cells)]

    def validate(self, genotype) -> None:
        ok = (
            isinstance(genotype, list)
            and len(genotype) == self.n_cells
            and all(isinstance(c, list) and len(c) == len(self.edge_list) for c in genotype)
        )
        if not ok:
            raise ValueError(
                f"a non-sequential genotype is {self.n_cells} lists of {len(self.edge_list)} op names, "
                f"got {genotype!r}"
            )
