"""The search cell's seam for search methods: an edge as a ``Mixer`` sees it, and partial channels.

The 1D spaces hand every ``MixedOp`` to ``OpContext.mixer``; a search cell hands each mixed edge
as an ``EdgeView`` with the same attributes (``position``, ``names``, ``ops`` called as
``op(x, ctx)``), so one ``Mixer`` (``harness.methods.search``) implements op masks, the mix
hooks of perturbation methods and deactivation on both kinds of space. Over K trials a mixer
sees an edge's (K, ops) weights and the (N, K*C, H, W) input.

PC-DARTS ([002] Eq. 3.33, METHODS.md M16) mixes only a 1/k channel subset of an edge's input and
passes the rest by. As in PC-DARTS's public code the subset is the first C/k channels and the
edge output is channel-shuffled (k groups), so the next edge reading the node sees other
channels; a stride-2 edge pools the bypassed channels 2x2 (max). Why the bypass is scaled by
the edge's total weight: PC-DARTS multiplies a whole edge output, bypass included, by its edge
normalization weight; its relaxation gives e_ij * softmax(alpha_ij), whose sum over ops is
e_ij (for a plain softmax the sum is 1 and the bypass passes unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from harness.spaces.darts_cell.ops import CandidateOp, Zero


def bypass(x: torch.Tensor, stride: int) -> torch.Tensor:
    """``x`` at the edge's output size without parameters: itself, or 2x2 max pooling at stride 2
    (PC-DARTS's bypass; ceil mode gives the ops' (H + 1) // 2 for odd sizes)."""
    return x if stride == 1 else F.max_pool2d(x, 2, 2, ceil_mode=True)


def split_channels(x: torch.Tensor, k: int, fraction: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(first C/fraction channels, the rest) of every trial's block of (N, K*C, H, W)."""
    n, kc, h, w = x.shape
    c = kc // k
    blocks = x.reshape(n, k, c, h, w)
    part = c // fraction
    return blocks[:, :, :part].reshape(n, k * part, h, w), blocks[:, :, part:].reshape(n, k * (c - part), h, w)


def channel_shuffle(x: torch.Tensor, k: int, groups: int) -> torch.Tensor:
    """PC-DARTS's shuffle within each trial's C channels: channel g * C/groups + i moves to i * groups + g."""
    n, kc, h, w = x.shape
    c = kc // k
    return x.reshape(n, k, groups, c // groups, h, w).transpose(2, 3).reshape(n, kc, h, w)


class EdgeView:
    """One mixed edge of a search cell in the ``MixedOp`` form a ``Mixer`` uses.

    ``names`` holds every candidate, 'none' included, aligned with the edge's weights (and with
    a mixer's op mask); 'none' is a zero of the output's size (the cell itself never builds it).
    ``skip(u)`` is u brought to the output size without parameters (``bypass``): what a mixer
    uses where a method adds u itself (DARTS-'s auxiliary skip, deactivation).
    """

    def __init__(self, position: int, names: Sequence[str], built: dict[str, CandidateOp], stride: int) -> None:
        self.position, self.names, self.stride = position, tuple(names), stride
        self.ops = [_Call(built[name] if name in built else Zero(stride)) for name in self.names]

    def skip(self, u: torch.Tensor) -> torch.Tensor:
        return bypass(u, self.stride)


class _Call:
    """``op(x, ctx)`` -> ``op(x)``: a cell op called as a 1D op is (an object, not a closure, so a
    copied or pickled network keeps calling its own modules)."""

    def __init__(self, module: CandidateOp) -> None:
        self.module = module  # what a mixer asks for per-trial state (parameters, BatchNorm statistics)

    def __call__(self, x: torch.Tensor, ctx: object = None) -> torch.Tensor:
        return self.module(x)
