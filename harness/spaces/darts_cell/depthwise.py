"""Depthwise convolution with a faster CPU backward (same values as ``F.conv2d``).

Why: with oneDNN on CPU the forward of a depthwise conv is fast for every kernel, but its
backward is fast only for undilated, stride-1 3x3 kernels; for the 5x5, dilated and stride-2
convs of the DARTS space it was 5-30x slower than the forward on our 2-core CPU and dominated
a search step. Both gradients are rewritten as forward convolutions:

* stride s > 1 reduces to stride 1: y = y1[::s] for the stride-1 output y1, so grad y1 is
  grad y with zeros in between;
* grad input (stride 1) is the depthwise conv of grad y1 with the flipped kernel;
* grad weight is, per (sample, channel) plane, the correlation of the padded input with
  grad y: depthwise forward convs over all N*C planes with the grad planes as "kernels",
  summed over samples; strides and dilations are split into stride-1 undilated phases
  (polyphase), because oneDNN is slow for dilated large kernels.

This pays off only for big batches of small planes (K-trial networks past the first
reduction); undilated stride-1 3x3 kernels, output planes over PLANE_LIMIT pixels and outputs
under MIN_PLANE_WORK elements are plain ``F.conv2d`` with PyTorch's backward.

Channels never mix, so neither do trials. ``tests/test_darts_cell_ops.py`` checks both
gradients against PyTorch's in float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Largest output plane (pixels) for our backward: in our measurements on this 2-core CPU it
# beat oneDNN's weight gradient for planes up to 8x8 and lost at 32x32.
PLANE_LIMIT = 64
# Smallest output (elements) for our backward: below it, the custom function's per-call
# overhead and its several small convs made K = 1 proxy steps ~20% slower.
MIN_PLANE_WORK = 1 << 16


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride: int, padding: int, dilation: int):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conf
        k = weight.shape[-1]
        reach = dilation * (k - 1)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad1 = grad  # the gradient of the stride-1 output
            if stride > 1:
                full = x.shape[-2] + 2 * padding - reach, x.shape[-1] + 2 * padding - reach
                grad1 = grad.new_zeros(grad.shape[0], grad.shape[1], *full)
                grad1[:, :, ::stride, ::stride] = grad
            grad_x = F.conv2d(grad1, weight.flip(2, 3), None, 1, reach - padding, dilation, x.shape[1])
        if ctx.needs_input_grad[1]:
            grad_w = _plane_correlation(x, grad, k, stride, padding, dilation)
            if grad_w is None:
                grad_w = _aten_backward(grad, x, weight, stride, padding, dilation, (False, True))[1]
            elif weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
                grad_w = grad_w.to(weight.dtype).contiguous(memory_format=torch.channels_last)
        return grad_x, grad_w, None, None, None


def _aten_backward(grad, x, weight, stride, padding, dilation, mask):
    return torch.ops.aten.convolution_backward(
        grad, x, weight, None, [stride] * 2, [padding] * 2, [dilation] * 2, False, [0, 0], x.shape[1],
        [bool(mask[0]), bool(mask[1]), False],
    )


def _phases(stride: int, dilation: int, k: int) -> list[tuple[slice, slice, slice]] | None:
    """Split one axis of sum_h x_pad[s h + d i] g[h] into stride-1, undilated correlations.

    Returns (x slice, g slice, tap slice) triples with corr[m] = sum_u x[x slice][u + m]
    g[g slice][u] contributing to taps i = tap slice[m]; None if s and d share no simple form.
    """
    common = math.gcd(stride, dilation)
    s, d = stride // common, dilation // common
    if s == 1:  # h = d u + e: x_pad[c d (u + i) + c e] g[d u + e], every tap i
        return [(slice(common * e, None, common * d), slice(e, None, d), slice(0, k)) for e in range(d)]
    if d == 1:  # i = s a + r: x_pad[c s (h + a) + c r] g[h], taps r, r + s, ...
        return [(slice(common * r, None, common * s), slice(None), slice(r, k, s)) for r in range(min(s, k))]
    return None


def _plane_correlation(x, grad, k: int, stride: int, padding: int, dilation: int) -> torch.Tensor | None:
    """grad_w[c, i, j] = sum_{n,h,w} x_pad[n, c, s h + d i, s w + d j] grad[n, c, h, w], as depthwise
    forward convs over the N*C planes with grad planes as kernels (None: use PyTorch's)."""
    phases = _phases(stride, dilation, k)
    if phases is None:
        return None
    n, c = x.shape[:2]
    xp = F.pad(x, (padding,) * 4)
    out = x.new_zeros(c, k, k)
    for xs_h, gs_h, taps_h in phases:
        for xs_w, gs_w, taps_w in phases:
            g = grad[:, :, gs_h, gs_w]
            if g.numel() == 0:
                continue
            nh, nw = len(range(k)[taps_h]), len(range(k)[taps_w])
            xs = xp[:, :, xs_h, xs_w][:, :, : g.shape[-2] + nh - 1, : g.shape[-1] + nw - 1]
            planes = xs.contiguous().view(1, n * c, xs.shape[-2], xs.shape[-1])
            kernels = g.contiguous().view(n * c, 1, g.shape[-2], g.shape[-1])
            corr = _conv_planes(planes, kernels)
            out[:, taps_h, taps_w] += corr.view(n, c, nh, nw).sum(0)
    return out.unsqueeze(1)


def _conv_planes(planes: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Depthwise valid correlation of (1, P, h, w) planes with (P, 1, kh, kw) kernels. PyTorch's
    dispatch sends batch-1 convs with tiny kernels to a per-group loop; call oneDNN directly."""
    if planes.is_mkldnn or not torch.backends.mkldnn.is_available() or planes.dtype != torch.float32:
        return F.conv2d(planes, kernels, None, 1, 0, 1, planes.shape[1])
    return torch.ops.aten.mkldnn_convolution(planes, kernels, None, [0, 0], [1, 1], [1, 1], planes.shape[1])


def uses_plane_backward(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int) -> bool:
    """Whether ``depthwise_conv2d`` takes the backward above (else it is plain ``F.conv2d``)."""
    k = weight.shape[-1]
    reach = dilation * (k - 1)
    if (k == 3 and dilation == 1 and stride == 1) or reach < padding:
        return False
    ho = (x.shape[-2] + 2 * padding - reach - 1) // stride + 1
    wo = (x.shape[-1] + 2 * padding - reach - 1) // stride + 1
    return ho * wo <= PLANE_LIMIT and x.shape[0] * x.shape[1] * ho * wo >= MIN_PLANE_WORK


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, dilation, groups=C)``, with the backward
    above where it pays off (a custom autograd function costs ~50 us per call on small tensors)."""
    if not uses_plane_backward(x, weight, stride, padding, dilation):
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])
    return _DepthwiseConv.apply(x, weight, stride, padding, dilation)
