"""The candidate operations of [001] section 4.3 and the op sets.

Every op maps a signal u of shape (B, 1, N) to the same shape and may use the context
(measurement y, operator A, a random generator for the noise op). Details the paper leaves
to its unavailable supplement are fixed here and documented in docs/open_choices.md:

* ``lgd`` (learnable gradient descent, Eq. 6): u - tau * A^T(A u - y) - tau * n(u), tau a
  learnable scalar initialized to ``tau_init``.
* ``net`` (2-layer CNN, Eq. 7): n(u) = conv(1->C) - BatchNorm - ReLU - conv(C->1).
* ``roll``: ``torch.roll`` of u by ``roll_shift`` along every dimension (batch, channel,
  signal), the literal reading of "rolls the inputs in all dimensions"; ``roll_dims:
  signal`` rolls the signal only.
* ``noise``: a plain gradient step with fixed tau plus white Gaussian noise of std
  ``noise_op_std``, drawn from the trial's own generator (also at evaluation).
* ``zero``: the zero signal (non-sequential space only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.registry import Registry
from harness.tasks.base import OpContext  # defined by the task layer, which builds it


@dataclass(frozen=True)
class OpConfig:
    channels: int = 16
    kernel_size: int = 3
    tau_init: float = 0.5
    roll_shift: int = 1
    roll_dims: str = "all"
    noise_op_std: float = 0.1
    noise_op_tau: float = 0.5

    def __post_init__(self) -> None:
        if self.channels < 1 or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError("op options: channels >= 1 and an odd kernel_size are required")
        if self.roll_dims not in ("all", "signal"):
            raise ValueError(f"op option roll_dims must be 'all' or 'signal', got {self.roll_dims!r}")


class TwoLayerCNN(nn.Module):
    """n(u, theta): conv - BN - ReLU - conv."""

    def __init__(self, cfg: OpConfig) -> None:
        super().__init__()
        pad = cfg.kernel_size // 2
        self.conv1 = nn.Conv1d(1, cfg.channels, cfg.kernel_size, padding=pad)
        self.bn = nn.BatchNorm1d(cfg.channels)
        self.conv2 = nn.Conv1d(cfg.channels, 1, cfg.kernel_size, padding=pad)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.bn(self.conv1(u))))


class Op(nn.Module):
    name = ""
    parameter_free = True

    def forward(self, u: torch.Tensor, ctx: OpContext) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class LearnableGradientDescent(Op):
    name = "lgd"
    parameter_free = False

    def __init__(self, cfg: OpConfig) -> None:
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(float(cfg.tau_init)))
        self.net = TwoLayerCNN(cfg)

    def forward(self, u, ctx):
        return u - self.tau * (ctx.data_gradient(u) + self.net(u))


class Net(Op):
    name = "net"
    parameter_free = False

    def __init__(self, cfg: OpConfig) -> None:
        super().__init__()
        self.net = TwoLayerCNN(cfg)

    def forward(self, u, ctx):
        return self.net(u)


class Roll(Op):
    name = "roll"

    def __init__(self, cfg: OpConfig) -> None:
        super().__init__()
        self.shift = cfg.roll_shift
        self.all_dims = cfg.roll_dims == "all"

    def forward(self, u, ctx):
        dims = tuple(range(u.dim())) if self.all_dims else (u.dim() - 1,)
        return torch.roll(u, shifts=(self.shift,) * len(dims), dims=dims)


class Noise(Op):
    name = "noise"

    def __init__(self, cfg: OpConfig) -> None:
        super().__init__()
        self.std = cfg.noise_op_std
        self.tau = cfg.noise_op_tau

    def forward(self, u, ctx):
        noise = torch.randn(u.shape, generator=ctx.generator).to(u.device)
        return u - self.tau * ctx.data_gradient(u) + self.std * noise


class Zero(Op):
    name = "zero"

    def __init__(self, cfg: OpConfig) -> None:
        super().__init__()

    def forward(self, u, ctx):
        return torch.zeros_like(u)


OPS: Registry[type[Op]] = Registry("op")
for _cls in (LearnableGradientDescent, Net, Roll, Noise, Zero):
    OPS.register(_cls.name, _cls)

# Op sets per space kind: the non-sequential space adds 'zero' ([001] section 4.2).
OP_SETS: Registry[dict[str, tuple[str, ...]]] = Registry("op set")
OP_SETS.register("good", {"sequential": ("lgd", "net"), "nonsequential": ("lgd", "net", "zero")})
OP_SETS.register(
    "all",
    {"sequential": ("lgd", "net", "roll", "noise"), "nonsequential": ("lgd", "net", "roll", "noise", "zero")},
)

PARAMETER_FREE_OPS = frozenset(name for name, cls in OPS.items() if cls.parameter_free)


def build_op(name: str, cfg: OpConfig) -> Op:
    return OPS.get(name)(cfg)


class MixedOp(nn.Module):
    """Sum_k w_k o_k(u) over candidate ops; a single candidate is a plain (discrete) op.

    ``position`` is the mixed op's index among the network's positions (the row of alpha it
    uses); networks number their mixed ops in position order.
    """

    def __init__(self, names: tuple[str, ...], cfg: OpConfig, position: int = -1) -> None:
        super().__init__()
        self.names = tuple(names)
        self.position = position
        self.ops = nn.ModuleList(build_op(n, cfg) for n in self.names)

    def forward(self, u: torch.Tensor, ctx: OpContext, weights: torch.Tensor | None = None) -> torch.Tensor:
        if weights is None:
            if len(self.ops) != 1:
                raise ValueError("a mixed op with several candidates needs mixing weights")
            return self.ops[0](u, ctx)
        if ctx.mixer is not None:
            return ctx.mixer(self, u, ctx, weights)
        out = None
        for w, op in zip(weights, self.ops):
            term = w * op(u, ctx)
            out = term if out is None else out + term
        return out
