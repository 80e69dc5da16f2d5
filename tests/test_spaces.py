import pytest
import torch

from harness.problems import make_problem
from harness.spaces import (
    OP_SETS,
    OPS,
    PARAMETER_FREE_OPS,
    NonSequentialSpace,
    OpConfig,
    OpContext,
    SequentialSpace,
    op_names,
)
from harness.spaces.nonsequential import edges
from harness.spaces.ops import MixedOp

CFG = OpConfig(channels=4)


def _ctx(problem, batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = problem.sample(batch, g)
    return x, y, OpContext(y, problem.operator, g)


@pytest.mark.parametrize("dataset", ["blur", "downsampling"])
@pytest.mark.parametrize("name", ["lgd", "net", "roll", "noise", "zero"])
def test_op_shapes(dataset, name):
    problem = make_problem(dataset)
    _, y, ctx = _ctx(problem)
    u = problem.network_input(y)
    out = OPS.get(name)(CFG)(u, ctx)
    assert out.shape == u.shape == (6, 1, 50)


def test_lgd_without_net_is_a_gradient_step():
    problem = make_problem("blur")
    _, y, ctx = _ctx(problem)
    op = OPS.get("lgd")(CFG)
    for p in op.net.conv2.parameters():
        torch.nn.init.zeros_(p)  # n(u) = 0
    u = torch.randn(6, 1, 50)
    expected = u - 0.5 * (((u.squeeze(1) @ problem.operator.matrix.T) - y) @ problem.operator.matrix).unsqueeze(1)
    torch.testing.assert_close(op(u, ctx), expected)


def test_roll_all_dims_and_signal_only():
    u = torch.arange(12.0).view(3, 1, 4)
    ctx = OpContext(None, None, None)
    torch.testing.assert_close(OPS.get("roll")(OpConfig())(u, ctx), torch.roll(u, (1, 1, 1), (0, 1, 2)))
    torch.testing.assert_close(OPS.get("roll")(OpConfig(roll_dims="signal"))(u, ctx), torch.roll(u, 1, 2))


def test_noise_op_uses_the_given_generator():
    problem = make_problem("blur")
    _, y, _ = _ctx(problem)
    op = OPS.get("noise")(CFG)
    u = torch.zeros(6, 1, 50)
    a = op(u, OpContext(y, problem.operator, torch.Generator().manual_seed(5)))
    b = op(u, OpContext(y, problem.operator, torch.Generator().manual_seed(5)))
    c = op(u, OpContext(y, problem.operator, torch.Generator().manual_seed(6)))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_op_sets():
    assert op_names("good", "sequential") == ("lgd", "net")
    assert op_names("all", "sequential") == ("lgd", "net", "roll", "noise")
    assert "zero" in op_names("good", "nonsequential") and "zero" in op_names("all", "nonsequential")
    assert PARAMETER_FREE_OPS == {"roll", "noise", "zero", "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"}
    assert set(OP_SETS.names()) == {"good", "all", "darts"}
    assert len(op_names("darts", "darts-cell")) == 8 and op_names("darts", "darts-cell")[0] == "none"
    with pytest.raises(ValueError, match="op set 'good' is not defined for space 'darts-cell'; use darts"):
        op_names("good", "darts-cell")


def test_mixed_op_is_weighted_sum():
    problem = make_problem("blur")
    _, y, _ = _ctx(problem)
    mixed = MixedOp(("lgd", "net", "roll", "zero"), CFG)
    u = torch.randn(6, 1, 50)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4])
    ctx = OpContext(y, problem.operator, None)
    expected = sum(wk * op(u, ctx) for wk, op in zip(w, mixed.ops))
    torch.testing.assert_close(mixed(u, ctx, w), expected)
    # one-hot weights select a single op
    torch.testing.assert_close(mixed(u, ctx, torch.tensor([0.0, 1.0, 0.0, 0.0])), mixed.ops[1](u, ctx))


def test_sequential_supernet_and_discretization():
    space = SequentialSpace()
    problem = make_problem("blur")
    _, y, ctx = _ctx(problem)
    ops = op_names("all", "sequential")
    net = space.supernet(ops, CFG)
    assert len(net.layers) == 10
    w = torch.softmax(torch.zeros(10, 4), -1)
    out = net(problem.network_input(y), ctx, w)
    assert out.shape == (6, 1, 50)
    alphas = torch.zeros(10, 4)
    alphas[:, 2] = 1.0
    alphas[3, 0] = 5.0
    genotype = space.discretize(alphas, ops)
    assert genotype == ["roll"] * 3 + ["lgd"] + ["roll"] * 6
    fixed = space.network(genotype, CFG)
    assert all(len(layer.ops) == 1 for layer in fixed.layers)
    assert fixed(problem.network_input(y), ctx).shape == (6, 1, 50)


def test_sequential_residual_connection():
    space = SequentialSpace(n_layers=3)
    net = space.network(["zero", "zero", "zero"], CFG)
    u0 = torch.randn(2, 1, 50)
    torch.testing.assert_close(net(u0, OpContext(None, None, None)), u0)


def test_nonsequential_structure():
    assert len(edges(5)) == 15  # the paper's "up to 15 operational connections"
    space = NonSequentialSpace()
    assert space.n_positions == 30
    problem = make_problem("blur")
    _, y, ctx = _ctx(problem)
    ops = op_names("all", "nonsequential")
    net = space.supernet(ops, CFG)
    out = net(problem.network_input(y), ctx, torch.softmax(torch.zeros(30, 5), -1))
    assert out.shape == (6, 1, 50)
    alphas = torch.zeros(30, 5)
    alphas[:, 4] = 1.0  # zero everywhere
    alphas[0, 1] = 2.0  # cell 0, edge 0->1: net
    genotype = space.discretize(alphas, ops)
    assert len(genotype) == 2 and len(genotype[0]) == 15
    assert genotype[0][0] == "net" and genotype[1] == ["zero"] * 15
    fixed = space.network(genotype, CFG)
    assert fixed(problem.network_input(y), ctx).shape == (6, 1, 50)


def test_nonsequential_cell_sums_incoming_edges():
    """With every edge a learned-free op, states follow s_i = sum_{j<i} o(s_j)."""
    space = NonSequentialSpace(n_cells=1, n_states=3)
    net = space.network([["roll"] * 6], OpConfig(roll_dims="signal"))
    cell = net.cells[0]
    u0 = torch.randn(2, 1, 8)
    ctx = OpContext(None, None, None)
    r = lambda t: torch.roll(t, 1, 2)
    s1 = r(u0)
    s2 = r(u0) + r(s1)
    s3 = r(u0) + r(s1) + r(s2)
    expected = cell.merge(torch.cat([s2, s3], 1))
    torch.testing.assert_close(cell(u0, ctx), expected)


def test_random_genotypes_are_reproducible_and_cover_ops():
    space = SequentialSpace()
    ops = op_names("all", "sequential")
    a = space.random_genotype(ops, torch.Generator().manual_seed(0))
    b = space.random_genotype(ops, torch.Generator().manual_seed(0))
    assert a == b
    seen = set()
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        seen.update(space.random_genotype(ops, g))
    assert seen == set(ops)


def test_bad_genotype_is_rejected():
    with pytest.raises(ValueError, match="sequential genotype"):
        SequentialSpace().network(["lgd"] * 3, CFG)
    with pytest.raises(KeyError, match="unknown op"):
        SequentialSpace(n_layers=1).network(["conv"], CFG)
