import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.problems.operators import blur_operator
from harness.spaces.costs import op_cost, op_costs
from harness.spaces.ops import OpConfig, OpContext, build_op

ALL_OPS = ("lgd", "net", "roll", "noise", "zero")


@pytest.mark.parametrize("channels,kernel", [(16, 3), (5, 5), (1, 1)])
def test_parameter_counts_match_built_modules(channels, kernel):
    cfg = OpConfig(channels=channels, kernel_size=kernel)
    params, _ = op_costs(ALL_OPS, cfg, 50, 50)
    built = tuple(sum(p.numel() for p in build_op(name, cfg).parameters()) for name in ALL_OPS)
    assert params == built


def test_default_counts_by_hand():
    params, flops = op_costs(("lgd", "net", "noise"), None, 50, 13)
    # CNN: conv1 16*3 + 16, BN 2*16, conv2 16*3 + 1 = 145; lgd adds tau
    assert params == (146, 145, 0)
    # two convs of 50*16*3 multiply-adds each; A u and A^T r with a 13 x 50 matrix
    assert flops == (4800 + 1300, 4800, 1300)


@pytest.mark.parametrize("downsample", [1, 4])
def test_flops_match_torch_flop_counter(downsample):
    """torch's counter reports 2 flops per multiply-add of convs and matmuls; ours is per sample."""
    n, batch = 20, 3
    op_matrix = blur_operator(n, 5, 1.5, downsample=downsample)
    m = op_matrix.shape[0]
    cfg = OpConfig(channels=4, kernel_size=3)
    ctx = OpContext(torch.randn(batch, m), op_matrix, torch.Generator().manual_seed(0))
    _, flops = op_costs(ALL_OPS, cfg, n, m)
    for name, ours in zip(ALL_OPS, flops):
        op = build_op(name, cfg)
        with FlopCounterMode(display=False) as counter:
            op(torch.randn(batch, 1, n), ctx)
        assert counter.get_total_flops() == 2 * batch * ours, name


def test_unknown_op_is_rejected():
    with pytest.raises(Exception, match="unknown op"):
        op_cost("conv", OpConfig(), 50, 50)
