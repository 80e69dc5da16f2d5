"""Sequential space ([001] Fig. 1): L mixed layers whose output is added to the input.

out = u0 + layer_L(... layer_1(u0)); genotype = one op name per layer.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.spaces.ops import MixedOp, OpConfig, OpContext
from harness.spaces.stacking import TrialStacking, owned_ops


class SequentialNetwork(nn.Module):
    """Supernet when layers have several candidates, a discrete network when each has one.

    Over K trials (``trials``; harness/spaces/trial_axis.py) signals are (B, K, N) and mixing
    weights (K, L, n_ops); ``owners`` per layer for a discrete network whose trials differ."""

    def __init__(self, layer_candidates: list[tuple[str, ...]], cfg: OpConfig, trials: int = 1,
                 owners: list[list[list[int]] | None] | None = None) -> None:
        super().__init__()
        owners = owners or [None] * len(layer_candidates)
        self.trials = trials
        self.layers = nn.ModuleList(
            MixedOp(c, cfg, position=i, trials=trials, owners=o)
            for i, (c, o) in enumerate(zip(layer_candidates, owners))
        )

    def forward(self, u0: torch.Tensor, ctx: OpContext, weights: torch.Tensor | None = None):
        u = u0
        for i, layer in enumerate(self.layers):
            u = layer(u, ctx, None if weights is None else weights[..., i, :])
        return u0 + u


class SequentialSpace(TrialStacking):
    name = "sequential"
    # "layers": every position is a layer (a deactivated one is the identity); "depth": with_depth.
    capabilities = frozenset({"signal-1d", "layers", "depth", "trial-axis", "fused-kernel"})

    def __init__(self, n_layers: int = 10) -> None:
        self.n_layers = n_layers

    @property
    def depth(self) -> int:
        return self.n_layers

    def with_depth(self, n_layers: int) -> SequentialSpace:
        """The space with ``n_layers`` layers (P-DARTS's stages)."""
        return SequentialSpace(n_layers=n_layers)

    @property
    def n_positions(self) -> int:
        return self.n_layers

    def positions(self) -> list[str]:
        return [f"layer {i}" for i in range(self.n_layers)]

    def supernet(self, ops: tuple[str, ...], cfg: OpConfig, trials: int = 1) -> SequentialNetwork:
        return SequentialNetwork([tuple(ops)] * self.n_layers, cfg, trials)

    def network(self, genotype: list[str], cfg: OpConfig) -> SequentialNetwork:
        self.validate(genotype)
        return SequentialNetwork([(name,) for name in genotype], cfg)

    def trial_network(self, genotypes: list[list[str]], cfg: OpConfig) -> SequentialNetwork:
        """The empty K-trial network of ``genotypes`` (one per trial; see ``TrialStacking``)."""
        candidates, owners = zip(*(owned_ops([g[i] for g in genotypes]) for i in range(self.n_layers)))
        return SequentialNetwork(list(candidates), cfg, len(genotypes), list(owners))

    def discretize(self, alphas: torch.Tensor, ops: tuple[str, ...]) -> list[str]:
        """argmax of alpha per layer ([001] section 2)."""
        return [ops[int(i)] for i in alphas.argmax(dim=-1)]

    def random_genotype(self, ops: tuple[str, ...], generator: torch.Generator) -> list[str]:
        idx = torch.randint(len(ops), (self.n_layers,), generator=generator)
        return [ops[int(i)] for i in idx]

    def uniform_genotype(self, op: str) -> list[str]:
        return [op] * self.n_layers

    def flatten(self, genotype: list[str]) -> list[str]:
        return list(genotype)

    def validate(self, genotype) -> None:
        if not isinstance(genotype, list) or len(genotype) != self.n_layers:
            raise ValueError(f"a sequential genotype is a list of {self.n_layers} op names, got {genotype!r}")
