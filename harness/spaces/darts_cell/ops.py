"""The 8 candidate ops of the DARTS CIFAR space, written for a leading trial axis of K seeds.

Why a trial axis: a proxy-sized DARTS step on a CPU is dominated by per-kernel overhead, so K
seeds are run as one computation. Features of K trials are one tensor (N, K*C, H, W) whose
channels are trial-major (channel k*C + c is channel c of trial k). Then

* a depthwise conv over K trials is a depthwise conv with K*C channels,
* a pointwise (or any dense) conv is a grouped conv with K groups,
* BatchNorm and pooling are per channel already,

so no op ever mixes trials. Every parameter and buffer is stacked trial-major along dim 0
(``tensor.view(K, -1, ...)`` is the per-trial view), which is what ``networks.stack_trials``
relies on. With K = 1 every conv has its plain group count, i.e. it is the plain network.

Op definitions ([003] section IV-B1): ReLU-Conv-BN order; each separable conv applied twice.
Details the papers do not state are fields of ``OpSettings`` and marked "not stated".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.spaces.darts_cell.depthwise import depthwise_conv2d

# The 8 ops of [003] section IV-B1 and [004] section 3.1 (the 7 of [002] section 2.7 plus 'none').
# Their order (the last axis of alpha) is not stated; this one is ours and fixed.
OP_NAMES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
# "unparameterized (i.e., skip/pooling) operations" ([002] section 3.2.2); 'none' has no
# parameters either. skip_connect is parameter-free in normal cells only (it is a
# factorized reduce with 1x1 convs in reduction cells, cf. the skip FLOPs of [003] IV-B2).
PARAMETER_FREE_OPS = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})


@dataclass(frozen=True)
class OpSettings:
    """Op details the papers leave open (each default "not stated", our choice) and one
    implementation switch that does not change results."""

    bn_affine: bool = True  # not stated; search networks pass False (see SearchConfig)
    bn_momentum: float = 0.1  # not stated (PyTorch's default)
    bn_eps: float = 1e-5  # not stated (PyTorch's default)
    dilation: int = 2  # not stated: the dilation of dil_conv_*
    pool_count_include_pad: bool = False  # not stated: avg_pool_3x3 averages real pixels only
    pool_bn: bool = False  # not stated: a BatchNorm after each pooling op (SearchConfig turns it on)
    fast_depthwise: bool = True  # implementation only: depthwise.depthwise_conv2d's faster backward
    # Search cells only: PC-DARTS's partial channels ([002] Eq. 3.33, METHODS.md M16). Each mixed
    # edge runs its ops on the first 1/k of its input's channels and passes the rest by (1: all).
    partial_channels: int = 1

    def __post_init__(self) -> None:
        if self.dilation < 1 or self.bn_eps <= 0 or not 0 <= self.bn_momentum <= 1 or self.partial_channels < 1:
            raise ValueError("op settings: dilation >= 1, bn_eps > 0, bn_momentum in [0, 1] and "
                             "partial_channels >= 1 are required")


def merge_trials(x: torch.Tensor) -> torch.Tensor:
    """(K, N, C, H, W) per-trial batches -> (N, K*C, H, W), trial-major channels."""
    k, n, c, h, w = x.shape
    return x.permute(1, 0, 2, 3, 4).reshape(n, k * c, h, w)


def split_trials(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, K*C, H, W) -> (K, N, C, H, W) (a view where the layout allows)."""
    n, kc, h, w = x.shape
    return x.reshape(n, k, kc // k, h, w).transpose(0, 1)


def cat_per_trial(parts: list[torch.Tensor], k: int) -> torch.Tensor:
    """Concatenate channel blocks within each trial: trial k's output is [part0_k, part1_k, ...]."""
    n, _, h, w = parts[0].shape
    if all(_is_channels_last(p) for p in parts):  # stay in NHWC: no layout conversions downstream
        nhwc = [p.permute(0, 2, 3, 1).reshape(n, h, w, k, -1) for p in parts]
        return torch.cat(nhwc, dim=4).reshape(n, h, w, -1).permute(0, 3, 1, 2)
    if k == 1:
        return torch.cat(parts, dim=1)
    return torch.cat([p.reshape(n, k, -1, h, w) for p in parts], dim=2).reshape(n, -1, h, w)


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.shape[1] > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class TrialConv(nn.Module):
    """K trials' convs as one grouped conv; weight (K*C_out, C_in/groups, kh, kw), trial-major."""

    def __init__(
        self, k: int, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
        dilation: int = 1, depthwise: bool = False, fast_depthwise: bool = False,
    ) -> None:
        super().__init__()
        if depthwise and c_in != c_out:
            raise ValueError("a depthwise conv keeps its channel count")
        self.k, self.stride, self.padding, self.dilation = k, stride, padding, dilation
        self.fast = depthwise and fast_depthwise
        self.groups = k * (c_in if depthwise else 1)
        per_group_in = 1 if depthwise else c_in
        self.weight = nn.Parameter(torch.empty(k * c_out, per_group_in, kernel, kernel))
        # Each trial's block is initialised as nn.Conv2d initialises a plain conv (same fan-in).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast:
            return depthwise_conv2d(x, self.weight, self.stride, self.padding, self.dilation)
        return F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)


class TrialBatchNorm(nn.Module):
    """BatchNorm over K*C channels: per channel, hence per trial, statistics and parameters."""

    def __init__(self, k: int, c: int, settings: OpSettings, affine: bool | None = None) -> None:
        super().__init__()
        affine = settings.bn_affine if affine is None else affine
        self.momentum, self.eps = settings.bn_momentum, settings.bn_eps
        self.weight = nn.Parameter(torch.ones(k * c)) if affine else None
        self.bias = nn.Parameter(torch.zeros(k * c)) if affine else None
        self.register_buffer("running_mean", torch.zeros(k * c))
        self.register_buffer("running_var", torch.ones(k * c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
        )


class CandidateOp(nn.Module):
    """An op; ``leading_relu`` ops start with ReLU, so a cell can share relu(x) across edges."""

    leading_relu = False

    def body(self, relu_x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(torch.relu(x)) if self.leading_relu else self.body(x)


class Zero(CandidateOp):
    """'none': the zero map (downsampled in reduction cells). Mixed ops skip it: w * 0 = 0."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x[:, :, :: self.stride, :: self.stride])


class Identity(CandidateOp):
    def body(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Pool(CandidateOp):
    """3x3 max or average pooling, per channel; padding 1 keeps the size at stride 1."""

    def __init__(self, kind: str, k: int, c: int, stride: int, settings: OpSettings) -> None:
        super().__init__()
        self.kind, self.stride = kind, stride
        self.count_include_pad = settings.pool_count_include_pad
        self.bn = TrialBatchNorm(k, c, settings, affine=False) if settings.pool_bn else None

    def body(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            y = F.max_pool2d(x, 3, self.stride, 1)
        else:
            y = F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=self.count_include_pad)
        return y if self.bn is None else self.bn(y)


class ReLUConvBN(CandidateOp):
    """ReLU - conv (kernel x kernel) - BN: the cells' 1x1 input preprocessing."""

    leading_relu = True

    def __init__(self, k: int, c_in: int, c_out: int, kernel: int, stride: int, settings: OpSettings) -> None:
        super().__init__()
        self.conv = TrialConv(k, c_in, c_out, kernel, stride, kernel // 2)
        self.bn = TrialBatchNorm(k, c_out, settings)

    def body(self, r: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(r))


class DilConv(CandidateOp):
    """ReLU - depthwise (dilated) conv - pointwise conv - BN ([003] IV-B1: ReLU-Conv-BN)."""

    leading_relu = True

    def __init__(
        self, k: int, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, settings: OpSettings
    ) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2  # "same" size at stride 1 (not stated)
        self.depthwise = TrialConv(
            k, c_in, c_in, kernel, stride, pad, dilation, depthwise=True, fast_depthwise=settings.fast_depthwise
        )
        self.pointwise = TrialConv(k, c_in, c_out, 1)
        self.bn = TrialBatchNorm(k, c_out, settings)

    def body(self, r: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(r)))


class SepConv(CandidateOp):
    """A separable conv "applied twice" ([003] IV-B1): two undilated DilConv blocks, stride on the first."""

    leading_relu = True

    def __init__(self, k: int, c_in: int, c_out: int, kernel: int, stride: int, settings: OpSettings) -> None:
        super().__init__()
        self.first = DilConv(k, c_in, c_in, kernel, stride, 1, settings)
        self.second = DilConv(k, c_in, c_out, kernel, 1, 1, settings)

    def body(self, r: torch.Tensor) -> torch.Tensor:
        return self.second(self.first.body(r))


class FactorizedReduce(CandidateOp):
    """ReLU - two stride-2 1x1 convs (the second on the input shifted by one pixel) - concat - BN.

    skip_connect in reduction cells and the preprocessing after a reduction; halves H and W
    with parameters. The construction is not stated in the papers (the skip FLOPs formula of
    [003] IV-B2, C^2HW + 2CHW, implies 1x1 convs); this one is ours. Needs even H and W.
    """

    leading_relu = True

    def __init__(self, k: int, c_in: int, c_out: int, settings: OpSettings) -> None:
        super().__init__()
        self.k = k
        half = c_out // 2
        self.conv_a = TrialConv(k, c_in, half, 1, stride=2)
        self.conv_b = TrialConv(k, c_in, c_out - half, 1, stride=2)
        self.bn = TrialBatchNorm(k, c_out, settings)

    def body(self, r: torch.Tensor) -> torch.Tensor:
        if r.shape[-1] % 2 or r.shape[-2] % 2:
            raise ValueError(f"a factorized reduce needs even height and width, got {tuple(r.shape[-2:])}")
        return self.bn(cat_per_trial([self.conv_a(r), self.conv_b(r[:, :, 1:, 1:])], self.k))


def build_op(name: str, k: int, c: int, stride: int, settings: OpSettings) -> CandidateOp:
    """The candidate op ``name`` on C channels (C -> C) for K trials."""
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return Pool("max", k, c, stride, settings)
    if name == "avg_pool_3x3":
        return Pool("avg", k, c, stride, settings)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(k, c, c, settings)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(k, c, c, int(name[-1]), stride, settings)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(k, c, c, int(name[-1]), stride, settings.dilation, settings)
    raise ValueError(f"unknown DARTS op {name!r}; known: {', '.join(OP_NAMES)}")
