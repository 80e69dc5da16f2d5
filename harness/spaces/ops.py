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

Trial axis (``harness/spaces/trial_axis.py``): every op can hold K trials. Signals are then
(B, K, N), one channel per trial; the CNN is grouped (K groups), ``lgd``'s tau has one entry per
trial, the noise op draws each trial's noise from that trial's own generator, and the roll
leaves the trial channel alone (at K = 1 rolling that size-1 axis is the identity, so the
literal reading is unchanged). A K = 1 op is the single-trial op bit for bit.
"""

from __future__ import annotations

import os
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


# The CNN over K > 1 trials: "auto" (the compiled fused kernel where it builds, else its reference
# ops), "compiled", "reference" (grouped convs inside the kernel's contract) or "modules" (the
# plain grouped Conv1d / BatchNorm1d modules). One trial always runs the plain modules.
CNN_BACKEND = os.environ.get("HARNESS_CNN_BACKEND", "auto")


class TwoLayerCNN(nn.Module):
    """n(u, theta): conv - BN - ReLU - conv, for ``trials`` trials (grouped convs, per-trial BN channels)."""

    def __init__(self, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> None:
        super().__init__()
        # Part of a K-trial network (even when only one of its trials chose this op): the K-trial
        # kernel, so a trial's numbers do not depend on how many batch mates chose the same op.
        self.fused = trials > 1 if fused is None else fused
        pad, k, c = cfg.kernel_size // 2, trials, cfg.channels
        self.conv1 = nn.Conv1d(k, k * c, cfg.kernel_size, padding=pad, groups=k)
        self.bn = nn.BatchNorm1d(k * c)
        self.conv2 = nn.Conv1d(k * c, k, cfg.kernel_size, padding=pad, groups=k)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if not self.fused or CNN_BACKEND == "modules":
            return self.conv2(torch.relu(self.bn(self.conv1(u))))
        return self._fused(u, self.conv2.out_channels)

    def _fused(self, u: torch.Tensor, k: int) -> torch.Tensor:
        """K trials through the fused kernel (``kernels.fused_cnn``, compiled where it builds):
        bitwise independent of the batch mates and of the thread count; same BN contract."""
        from harness.spaces.kernels.fused_cnn import two_layer_cnn

        c, ks = self.conv1.out_channels // k, self.conv1.kernel_size[0]
        bn = self.bn
        out, mean, var = two_layer_cnn(
            u.transpose(0, 1), self.conv1.weight.view(k, c, ks), self.conv1.bias.view(k, c), bn.weight.view(k, c),
            bn.bias.view(k, c), self.conv2.weight, self.conv2.bias, training=self.training,
            running_mean=bn.running_mean.view(k, c), running_var=bn.running_var.view(k, c), eps=bn.eps,
            backend=CNN_BACKEND,
        )
        if self.training:
            with torch.no_grad():
                bn.running_mean.mul_(1 - bn.momentum).add_(bn.momentum * mean.reshape(-1))
                bn.running_var.mul_(1 - bn.momentum).add_(bn.momentum * var.reshape(-1))
                bn.num_batches_tracked.add_(1)
        return out.transpose(0, 1)


class Op(nn.Module):
    name = ""
    parameter_free = True

    def __init__(self, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> None:
        super().__init__()
        self.trials = trials

    def forward(self, u: torch.Tensor, ctx: OpContext) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class LearnableGradientDescent(Op):
    name = "lgd"
    parameter_free = False

    def __init__(self, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> None:
        super().__init__(cfg, trials)
        # A 0-d step size at K = 1 (the single-trial op), one per trial otherwise.
        tau = torch.tensor(float(cfg.tau_init))
        self.tau = nn.Parameter(tau if trials == 1 else tau.repeat(trials))
        self.net = TwoLayerCNN(cfg, trials, fused)

    def forward(self, u, ctx):
        tau = self.tau if self.tau.dim() == 0 else self.tau.view(1, -1, 1)
        return u - tau * (ctx.data_gradient(u) + self.net(u))


class Net(Op):
    name = "net"
    parameter_free = False

    def __init__(self, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> None:
        super().__init__(cfg, trials)
        self.net = TwoLayerCNN(cfg, trials, fused)

    def forward(self, u, ctx):
        return self.net(u)


class Roll(Op):
    name = "roll"

    def __init__(self, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> None:
        super().__init__(cfg, trials)
        self.shift = cfg.roll_shift
        self.all_dims = cfg.roll_dims == "all"

    def forward(self, u, ctx):
        # Batch and signal; the channel axis holds the trials (size 1 in the literal (B, 1, N) reading).
        dims = (0, u.dim() - 1) if self.all_dims else (u.dim() - 1,)
        return torch.roll(u, shifts=(self.shift,) * len(dims), dims=dims)


class Noise(Op):
    name = "noise"

    def __init__(self, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> None:
        super().__init__(cfg, trials)
        self.std = cfg.noise_op_std
        self.tau = cfg.noise_op_tau

    def forward(self, u, ctx):
        noise = trial_randn(u.shape, ctx.generator).to(u.device)
        return u - self.tau * ctx.data_gradient(u) + self.std * noise


class Zero(Op):
    name = "zero"

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


def build_op(name: str, cfg: OpConfig, trials: int = 1, fused: bool | None = None) -> Op:
    """Op ``name`` over ``trials`` trials; ``fused``: whether it belongs to a K-trial network
    (default: trials > 1)."""
    return OPS.get(name)(cfg, trials, fused)


def trial_randn(shape, generator) -> torch.Tensor:
    """Gaussian noise of ``shape`` (B, K, N) on the CPU: from one generator, or, given a list of K
    generators, channel k from generator k (each trial's draws are its own, as alone)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator)
    b, k, *rest = shape
    if len(generator) != k:
        raise ValueError(f"{len(generator)} noise generators for {k} trials")
    return torch.cat([torch.randn((b, 1, *rest), generator=g) for g in generator], dim=1)


class MixedOp(nn.Module):
    """Sum_k w_k o_k(u) over candidate ops; a single candidate is a plain (discrete) op.

    ``position`` is the mixed op's index among the network's positions (the row of alpha it
    uses); networks number their mixed ops in position order.

    Over K trials: with mixing weights every trial holds every candidate, and a position's
    weights are (K, n_ops) (or (n_ops,) for a single trial). A discrete layer whose trials chose
    different ops has ``owners``: ``owners[j]`` lists the trials holding candidate j, and each op
    runs only for its owners (so an op nobody chose draws no noise and updates no statistics).
    """

    def __init__(self, names: tuple[str, ...], cfg: OpConfig, position: int = -1, trials: int = 1,
                 owners: list[list[int]] | None = None) -> None:
        super().__init__()
        self.names = tuple(names)
        self.position = position
        self.trials = trials
        self.owners = owners
        sizes = [trials] * len(self.names) if owners is None else [len(o) for o in owners]
        self.ops = nn.ModuleList(build_op(n, cfg, size, trials > 1) for n, size in zip(self.names, sizes))

    def forward(self, u: torch.Tensor, ctx: OpContext, weights: torch.Tensor | None = None) -> torch.Tensor:
        if weights is None:
            if self.owners is not None:
                return self._by_owner(u, ctx)
            if len(self.ops) != 1:
                raise ValueError("a mixed op with several candidates needs mixing weights")
            return self.ops[0](u, ctx)
        if ctx.mixer is not None:
            return ctx.mixer(self, u, ctx, weights)
        out = None
        for k, op in enumerate(self.ops):
            term = trial_weight(weights[..., k], u) * op(u, ctx)
            out = term if out is None else out + term
        return out

    def _by_owner(self, u: torch.Tensor, ctx: OpContext) -> torch.Tensor:
        out = torch.zeros_like(u)
        for owners, op in zip(self.owners, self.ops):
            index = torch.tensor(owners, dtype=torch.long, device=u.device)
            out = out.index_copy(1, index, op(u.index_select(1, index), ctx.select(owners)))
        return out


def trial_weight(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A mixing weight, scalar (one trial) or one per trial (K,), shaped to scale ``like``, whose dim 1
    holds K equal trial blocks ((B, K, N) in 1D, (N, K*C, H, W) in a cell)."""
    if weight.dim() == 0:
        return weight
    block = like.shape[1] // weight.shape[0]
    per_block = weight if block == 1 else weight.repeat_interleave(block)
    return per_block.view(1, -1, *([1] * (like.dim() - 2)))
