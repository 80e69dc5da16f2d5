"""Discretization rules: from final architecture parameters to a genotype."""

from __future__ import annotations

import torch


class ArgmaxDiscretization:
    """Keep the highest-probability op at every position ([001] sections 2 and 4.2)."""

    name = "argmax"

    def genotype(self, space, probabilities: torch.Tensor, ops: tuple[str, ...]):
        return space.discretize(probabilities, ops)
