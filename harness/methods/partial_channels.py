"""PC-DARTS ([002] section 3.2.3, Eq. 3.33; METHODS.md M16): partial channels and edge normalization.

A space with multi-channel states (``"multi-channel-states"`` in its capabilities: the DARTS cell
space) builds a supernet whose edges mix only 1/k of their channels (``with_partial_channels``;
the first C/k with a channel shuffle after each edge, as PC-DARTS's code does). The edge weights
beta_ij are architecture parameters: they ride along alpha as its last column, updated by the
same estimator and optimizer, and the relaxation (``EdgeNormalizedSoftmax``) multiplies each
edge's softmax by the softmax of beta over the node's incoming edges. The trial record keeps the
(positions x ops) alpha; beta goes to ``extra["edge_betas"]`` / ``extra["edge_beta_history"]``.

k = 4 is our choice (M16: "The value of K is not stated"; PC-DARTS's CIFAR setting). beta starts
at 1e-3 N(0, 1) like alpha, drawn from its own seed (derived from the trial's init stream) so
alpha's draws stay those of every other method.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext
from harness.methods.relaxation import EdgeNormalizedSoftmax
from harness.methods.search import ALPHA_INIT_SCALE, ComposedSearch
from harness.methods.supernet import SearchRun

NEEDS = "multi-channel-states"


@dataclass
class PartialChannelSearch(ComposedSearch):
    channel_fraction: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channel_fraction < 1:
            raise ValueError(f"channel_fraction must be >= 1, got {self.channel_fraction}")

    def start(
        self, ctxs: list[MethodContext], space, epochs: int, op_mask: torch.Tensor | None = None,
        hooks: tuple | None = None,
    ) -> SearchRun:
        if NEEDS not in getattr(space, "capabilities", ()):
            raise ValueError(f"{self.name} needs a space with {NEEDS} (the DARTS cell space), "
                             f"not {getattr(space, 'name', space)!r}")
        if op_mask is not None:
            raise ValueError(f"{self.name} keeps beta in alpha's last column and takes no op mask")
        space = space.with_partial_channels(self.channel_fraction)
        # The groups are the space's: set per trial (each trial builds its own method instance).
        self.relaxation = EdgeNormalizedSoftmax(space.node_groups())
        run = super().start(ctxs, space, epochs, op_mask, hooks)
        betas = []
        for ctx in ctxs:
            gen = torch.Generator().manual_seed(ctx.streams.seed("init") + 1)
            betas.append(ALPHA_INIT_SCALE * torch.randn(space.n_positions, 1, generator=gen))
        beta = torch.stack(betas).to(run.alpha.device)
        run.alpha = torch.cat([run.alpha.detach(), beta], dim=2).requires_grad_(True)
        if run.history is not None:
            run.history = [[a.detach().cpu().tolist()] for a in run.alpha]
        return run

    def finish(self, run: SearchRun) -> list[tuple[SearchOutcome | None, str]]:
        return [(None if outcome is None else self._split_beta(outcome), failure)
                for outcome, failure in super().finish(run)]

    @staticmethod
    def _split_beta(outcome: SearchOutcome) -> SearchOutcome:
        outcome.extra["edge_betas"] = [row[-1] for row in outcome.final_alphas]
        outcome.final_alphas = [row[:-1] for row in outcome.final_alphas]
        if outcome.alpha_history is not None:
            outcome.extra["edge_beta_history"] = [[row[-1] for row in a] for a in outcome.alpha_history]
            outcome.alpha_history = [[row[:-1] for row in a] for a in outcome.alpha_history]
        return outcome
