"""DARTS cell space, op level: the faster depthwise backward, the trial layout, K = 1 = plain ops."""

import pytest
import torch
import torch.nn.functional as F

import harness.spaces.darts_cell.depthwise as dw
from harness.spaces.darts_cell.ops import (
    OP_NAMES,
    FactorizedReduce,
    OpSettings,
    TrialBatchNorm,
    TrialConv,
    build_op,
    cat_per_trial,
    merge_trials,
    split_trials,
)

CASES = [(k, d, s) for k in (3, 5) for d in (1, 2) for s in (1, 2)] + [(3, 3, 2), (5, 1, 3)]


@pytest.mark.parametrize("plane_limit", [0, 64, 10**6])
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_gradients_equal_pytorchs_in_float64(plane_limit, channels_last, monkeypatch):
    monkeypatch.setattr(dw, "PLANE_LIMIT", plane_limit)  # 0: PyTorch's backward throughout
    monkeypatch.setattr(dw, "MIN_PLANE_WORK", 0)  # our backward even for these small tensors
    gen = torch.Generator().manual_seed(0)
    for (groups, px) in ((6, 8), (4, 5), (3, 2)):
        for k, d, s in CASES:
            pad = d * (k - 1) // 2
            x = torch.randn(3, groups, px, px, dtype=torch.float64, generator=gen)
            w = torch.randn(groups, 1, k, k, dtype=torch.float64, generator=gen)
            if channels_last:
                x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
            x.requires_grad_()
            w.requires_grad_()
            y = dw.depthwise_conv2d(x, w, s, pad, d)
            small = y.shape[-1] * y.shape[-2] <= plane_limit
            assert dw.uses_plane_backward(x, w, s, pad, d) == (small and (k, d, s) != (3, 1, 1))
            g = torch.randn(y.shape, dtype=torch.float64, generator=gen)
            ours = torch.autograd.grad(y, (x, w), g)
            ref_y = F.conv2d(x, w, None, s, pad, d, groups)
            ref = torch.autograd.grad(ref_y, (x, w), g)
            torch.testing.assert_close(y, ref_y, rtol=1e-12, atol=1e-12)
            for a, b in zip(ours, ref):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=f"k={k} d={d} s={s} px={px}")


def test_depthwise_float32_matches_pytorch(monkeypatch):
    monkeypatch.setattr(dw, "MIN_PLANE_WORK", 0)
    gen = torch.Generator().manual_seed(1)
    for k, d, s in CASES[:8]:
        x = torch.randn(4, 16, 8, 8, generator=gen, requires_grad=True)
        w = torch.randn(16, 1, k, k, generator=gen, requires_grad=True)
        pad = d * (k - 1) // 2
        y = dw.depthwise_conv2d(x, w, s, pad, d)
        g = torch.randn(y.shape, generator=gen)
        ours = torch.autograd.grad(y, (x, w), g)
        ref = torch.autograd.grad(F.conv2d(x, w, None, s, pad, d, 16), (x, w), g)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_merge_and_split_trials_are_inverse_and_trial_major():
    x = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).view(2, 3, 4, 2, 2)  # (K, N, C, H, W)
    merged = merge_trials(x)
    assert merged.shape == (3, 8, 2, 2)
    assert torch.equal(merged[:, 4:8], x[1])  # trial 1 owns channels C..2C-1
    assert torch.equal(split_trials(merged, 2), x)


@pytest.mark.parametrize("channels_last", [False, True])
def test_cat_per_trial_keeps_each_trials_channels_together(channels_last):
    a = torch.randn(2, 2 * 3, 4, 4)  # K=2, 3 channels each
    b = torch.randn(2, 2 * 5, 4, 4)
    if channels_last:
        a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    out = cat_per_trial([a, b], 2)
    assert out.shape == (2, 16, 4, 4)
    assert torch.equal(out[:, :8], torch.cat([a[:, :3], b[:, :5]], 1))
    assert torch.equal(out[:, 8:], torch.cat([a[:, 3:], b[:, 5:]], 1))


def test_k1_modules_are_the_plain_pytorch_modules():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 6)
    conv = TrialConv(1, 5, 7, 3, padding=1)
    plain = torch.nn.Conv2d(5, 7, 3, padding=1, bias=False)
    plain.weight.data.copy_(conv.weight.data)
    assert torch.equal(conv(x), plain(x))
    dwc = TrialConv(1, 5, 5, 5, padding=4, dilation=2, depthwise=True, fast_depthwise=True)
    assert torch.equal(dwc(x), F.conv2d(x, dwc.weight, None, 1, 4, 2, 5))
    bn = TrialBatchNorm(1, 5, OpSettings(bn_affine=True))
    ref = torch.nn.BatchNorm2d(5)
    torch.testing.assert_close(bn(x), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=0, atol=0)


def test_trial_conv_is_k_independent_convs():
    torch.manual_seed(0)
    conv = TrialConv(3, 4, 6, 3, padding=1)
    x = torch.randn(2, 12, 5, 5)
    out = conv(x)
    for t in range(3):
        ref = F.conv2d(x[:, 4 * t : 4 * t + 4], conv.weight[6 * t : 6 * t + 6], None, 1, 1)
        torch.testing.assert_close(out[:, 6 * t : 6 * t + 6], ref)


def test_every_op_keeps_or_halves_the_shape_and_factorized_reduce_needs_even_sizes():
    x = torch.randn(2, 3 * 4, 8, 8)  # K=3, C=4
    for name in OP_NAMES:
        for stride in (1, 2):
            op = build_op(name, 3, 4, stride, OpSettings())
            assert op(x).shape == (2, 12, 8 // stride, 8 // stride), name
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(1, 4, 4, OpSettings())(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="unknown DARTS op"):
        build_op("conv_7x1_1x7", 1, 4, 1, OpSettings())
