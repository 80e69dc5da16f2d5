"""Relaxations: how architecture parameters alpha (positions x ops) become mixing weights.

Plain DARTS / DAS ([001] Eq. 2): w = softmax(alpha) per position. Later methods add
sigmoid, Gumbel-softmax or partial-channel relaxations here as further classes.
"""

from __future__ import annotations

import torch


class SoftmaxRelaxation:
    name = "softmax"

    def weights(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.softmax(alpha, dim=-1)

    def probabilities(self, alpha: torch.Tensor) -> torch.Tensor:
        """What discretization ranks; for softmax the same as the mixing weights."""
        return torch.softmax(alpha, dim=-1)
