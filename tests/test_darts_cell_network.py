"""DARTS cell space, networks: hand-computed cells, the trial axis, mask mode, evaluation network."""

import copy

import pytest
import torch
import torch.nn.functional as F

from harness.spaces.darts_cell import (
    OP_NAMES,
    EvalConfig,
    EvalNetwork,
    SearchConfig,
    SearchNetwork,
    edge_index,
    eval_loss,
    genotype_mask,
    make_genotype,
    merge_trials,
    reduction_positions,
    stack_trials,
    trial_cross_entropy,
    trial_view,
    unstack_trial,
)

OPS = {name: i for i, name in enumerate(OP_NAMES)}


def bn(x, module=None):
    """Training-mode BatchNorm with batch statistics (affine if the module has parameters)."""
    w = None if module is None or module.weight is None else module.weight
    b = None if module is None or module.bias is None else module.bias
    return F.batch_norm(x, None, None, w, b, True, 0.0, 1e-5)


def relu_conv_bn(x, op):
    return bn(F.conv2d(F.relu(x), op.conv.weight), op.bn)


def dil_block(x, op, dilation, relu=True):
    c = x.shape[1]
    k = op.depthwise.weight.shape[-1]
    h = F.relu(x) if relu else x
    h = F.conv2d(h, op.depthwise.weight, None, 1, dilation * (k - 1) // 2, dilation, c)
    return bn(F.conv2d(h, op.pointwise.weight), op.bn)


def sep_conv(x, op):
    return dil_block(dil_block(x, op.first, 1), op.second, 1)


def pool_bn(y, op):
    return y if op.bn is None else bn(y)


# node -> [(source, {op: weight})]: mixtures on some edges, single ops on others, 'none' elsewhere.
CELL = {
    2: [(0, {"skip_connect": 0.25, "max_pool_3x3": 0.75}), (1, {"avg_pool_3x3": 1.0})],
    3: [(2, {"sep_conv_3x3": 1.0}), (1, {"dil_conv_3x3": 0.5})],
    4: [(0, {"sep_conv_5x5": 1.0}), (3, {"skip_connect": 1.0})],
    5: [(4, {"dil_conv_5x5": 1.0}), (2, {"max_pool_3x3": 0.1, "avg_pool_3x3": 0.2})],
}


def cell_weights() -> torch.Tensor:
    w = torch.zeros(1, 14, 8)
    for node, edges in CELL.items():
        for source, ops in edges:
            for name, value in ops.items():
                w[0, edge_index(node, source), OPS[name]] = value
    return w


def hand_search_cell(cell, s0, s1):
    """The cell of CELL computed with functional ops and the cell's own weights."""
    states = [relu_conv_bn(s0, cell.pre0), relu_conv_bn(s1, cell.pre1)]
    for node in range(2, 6):
        total = 0
        for source, ops in CELL[node]:
            x = states[source]
            mods = cell.ops[edge_index(node, source)]
            slot = {name: i for i, name in enumerate(n for n in OP_NAMES if n != "none")}
            for name, weight in ops.items():
                op = mods[slot[name]]
                if name == "skip_connect":
                    y = x
                elif name == "max_pool_3x3":
                    y = pool_bn(F.max_pool2d(x, 3, 1, 1), op)
                elif name == "avg_pool_3x3":
                    y = pool_bn(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), op)
                elif name.startswith("sep_conv"):
                    y = sep_conv(x, op)
                else:
                    y = dil_block(x, op, 2)
                total = total + weight * y
        states.append(total)
    return torch.cat(states[2:], 1)


def test_search_cell_matches_a_hand_computed_cell():
    torch.manual_seed(0)
    net = SearchNetwork(SearchConfig(n_cells=1, channels=4, reduction_cells=()), n_trials=1)
    x = torch.randn(3, 3, 6, 6)
    s = bn(F.conv2d(x, net.stem[0].weight, None, 1, 1), net.stem[1])
    w = cell_weights()
    out = net.cells[0](s, s, w)
    torch.testing.assert_close(out, hand_search_cell(net.cells[0], s, s), rtol=1e-5, atol=1e-5)
    logits = net(x, w, torch.zeros(1, 14, 8), relaxed=True)
    ref = F.linear(out.mean((2, 3)), net.classifier.weight, net.classifier.bias)
    torch.testing.assert_close(logits[0], ref, rtol=1e-5, atol=1e-5)


def test_reduction_cell_matches_hand_computed_strided_ops():
    torch.manual_seed(0)
    net = SearchNetwork(SearchConfig(n_cells=1, channels=4, reduction_cells=(0,)), n_trials=1)
    cell = net.cells[0]
    assert cell.reduction
    s = torch.randn(2, 12, 8, 8)
    w = torch.zeros(1, 14, 8)
    w[0, edge_index(2, 0), OPS["skip_connect"]] = 1.0  # factorized reduce
    w[0, edge_index(2, 1), OPS["max_pool_3x3"]] = 0.5
    w[0, edge_index(3, 1), OPS["sep_conv_3x3"]] = 1.0
    w[0, edge_index(3, 2), OPS["dil_conv_5x5"]] = 2.0  # weights need not sum to 1 when relaxed
    slot = {name: i for i, name in enumerate(n for n in OP_NAMES if n != "none")}
    s0, s1 = relu_conv_bn(s, cell.pre0), relu_conv_bn(s, cell.pre1)
    fr = cell.ops[edge_index(2, 0)][slot["skip_connect"]]
    r = F.relu(s0)
    halves = [F.conv2d(r, fr.conv_a.weight, None, 2), F.conv2d(r[:, :, 1:, 1:], fr.conv_b.weight, None, 2)]
    reduced = bn(torch.cat(halves, 1))
    n2 = reduced + 0.5 * bn(F.max_pool2d(s1, 3, 2, 1))
    sep = cell.ops[edge_index(3, 1)][slot["sep_conv_3x3"]]
    h = F.conv2d(F.relu(s1), sep.first.depthwise.weight, None, 2, 1, 1, s1.shape[1])
    h = bn(F.conv2d(h, sep.first.pointwise.weight))
    dil = cell.ops[edge_index(3, 2)][slot["dil_conv_5x5"]]
    n3 = dil_block(h, sep.second, 1) + 2.0 * dil_block(n2, dil, 2)
    out = cell(s, s, w)
    assert out.shape == (2, 4 * 8, 4, 4)  # channels double at a reduction: 4 nodes x 8
    torch.testing.assert_close(out[:, :16], torch.cat([n2, n3], 1), rtol=1e-5, atol=1e-5)
    assert torch.equal(out[:, 16:], torch.zeros_like(out[:, 16:]))  # nodes 4, 5 have no weight


def test_softmax_alphas_equal_relaxed_softmax_weights_and_large_alphas_select_one_op():
    torch.manual_seed(0)
    net = SearchNetwork(SearchConfig(n_cells=3, channels=4), n_trials=1)
    x = torch.randn(2, 3, 8, 8)
    a, b = torch.randn(1, 14, 8), torch.randn(1, 14, 8)
    torch.testing.assert_close(net(x, a, b), net(x, a.softmax(-1), b.softmax(-1), relaxed=True))
    with pytest.raises(ValueError, match="must be"):
        net(x, torch.zeros(2, 14, 8), b)


def test_derived_cell_matches_a_hand_computed_cell_and_the_supernet_mask_mode():
    genotype = make_genotype(
        [("skip_connect", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 2), ("dil_conv_3x3", 1),
         ("sep_conv_5x5", 0), ("skip_connect", 3), ("dil_conv_5x5", 4), ("avg_pool_3x3", 2)],
        [("max_pool_3x3", 0), ("skip_connect", 1)] * 4,
    )
    torch.manual_seed(0)
    cfg = EvalConfig(n_cells=1, channels=4, reduction_cells=(), auxiliary=False, drop_path_prob=0.0)
    net = EvalNetwork(genotype, cfg)
    x = torch.randn(3, 3, 6, 6)
    s = bn(F.conv2d(x, net.stem[0].weight, None, 1, 1), net.stem[1])
    cell = net.cells[0]
    states = [relu_conv_bn(s, cell.pre0), relu_conv_bn(s, cell.pre1)]
    ops = list(cell.ops)
    states.append(states[0] + F.max_pool2d(states[1], 3, 1, 1))  # eval cells: no BN after pools
    states.append(sep_conv(states[2], ops[2]) + dil_block(states[1], ops[3], 2))
    states.append(sep_conv(states[0], ops[4]) + states[3])
    states.append(dil_block(states[4], ops[6], 2) + F.avg_pool2d(states[2], 3, 1, 1, count_include_pad=False))
    torch.testing.assert_close(cell(s, s), torch.cat(states[2:], 1), rtol=1e-5, atol=1e-5)
    logits, aux = net(x)
    assert aux is None and logits.shape == (3, 10)

    # the supernet with the genotype's mask computes exactly the derived cell with its own weights
    sup = SearchNetwork(SearchConfig(n_cells=2, channels=4), n_trials=1)
    x = torch.randn(3, 3, 8, 8)
    normal, reduce = genotype_mask(genotype)
    masked = sup(x, normal, reduce, relaxed=True)
    full = sup(x, normal.clone().requires_grad_(), reduce, relaxed=True)  # computes every op, weight 0
    torch.testing.assert_close(masked, full, rtol=1e-5, atol=1e-6)


def named(name):
    return lambda message: f"{name}: {message}"


def small_config():
    return SearchConfig(n_cells=3, channels=4)  # reductions at cells 1 and 2


def trial_inputs(k, n=4, px=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(k, n, 3, px, px, generator=gen)
    ys = torch.randint(0, 10, (k, n), generator=gen)
    return xs, ys


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_k_batched_trials_equal_k_separate_networks(dtype):
    k = 3
    singles = []
    for seed in range(k):
        torch.manual_seed(seed)
        singles.append(SearchNetwork(small_config(), n_trials=1))
    batched = stack_trials(singles).to(dtype)
    singles = [net.to(dtype) for net in singles]
    xs, ys = trial_inputs(k)
    xs = xs.to(dtype)
    gen = torch.Generator().manual_seed(5)
    alphas = [torch.randn(k, 14, 8, generator=gen, dtype=dtype).requires_grad_() for _ in range(2)]
    logits = batched(merge_trials(xs), *alphas)
    trial_cross_entropy(logits, ys).sum().backward()
    # float32: outputs to 1e-6, gradients (accumulated through 3 cells) to ~5e-6; float64: exact to round-off
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    gtol = dict(rtol=1e-4, atol=5e-6) if dtype == torch.float32 else tol
    params = dict(batched.named_parameters())
    buffers = dict(batched.named_buffers())
    for t, net in enumerate(singles):
        a = [alpha.detach()[t : t + 1].clone().requires_grad_() for alpha in alphas]
        out = net(xs[t], *a)
        torch.testing.assert_close(logits[t], out[0], **tol)
        trial_cross_entropy(out, ys[t : t + 1]).sum().backward()
        for mine, theirs in zip(alphas, a):
            torch.testing.assert_close(mine.grad[t], theirs.grad[0], **gtol)
        for name, p in net.named_parameters():
            torch.testing.assert_close(trial_view(params[name].grad, k)[t], p.grad, **gtol, msg=named(name))
        for name, b in net.named_buffers():  # BatchNorm running statistics
            torch.testing.assert_close(trial_view(buffers[name], k)[t], b, **tol, msg=named(name))


def test_trials_do_not_interact():
    torch.manual_seed(0)
    k = 3
    net = SearchNetwork(small_config(), n_trials=k)
    untouched = copy.deepcopy(net)
    xs, ys = trial_inputs(k)
    alphas = [torch.randn(k, 14, 8) for _ in range(2)]
    ref = untouched(merge_trials(xs), *alphas)
    with torch.no_grad():  # change everything of trial 1: parameters, images, alphas
        for p in net.parameters():
            trial_view(p, k)[1].add_(torch.randn_like(trial_view(p, k)[1]))
        xs[1] += 10 * torch.randn_like(xs[1])
        alphas[0][1] += 5
    out = net(merge_trials(xs), *alphas)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[2], ref[2])
    assert not torch.allclose(out[1], ref[1])
    for a, b in zip(net.buffers(), untouched.buffers()):  # BatchNorm statistics of trials 0 and 2
        assert torch.equal(trial_view(a, k)[0], trial_view(b, k)[0])
        assert torch.equal(trial_view(a, k)[2], trial_view(b, k)[2])


def test_unstack_then_stack_round_trips_and_shared_images_broadcast():
    torch.manual_seed(0)
    net = SearchNetwork(small_config(), n_trials=2)
    again = stack_trials([unstack_trial(net, 0), unstack_trial(net, 1)])
    for (name, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(2, 3, 8, 8)
    w = torch.zeros(2, 14, 8)
    torch.testing.assert_close(net(x, w, w), net(x.repeat(1, 2, 1, 1), w, w))


def test_channels_last_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    net = SearchNetwork(small_config(), n_trials=2)
    xs, ys = trial_inputs(2)
    x = merge_trials(xs)
    alphas = [torch.randn(2, 14, 8, requires_grad=True) for _ in range(2)]
    out = net(x, *alphas)
    grads = torch.autograd.grad(trial_cross_entropy(out, ys).sum(), alphas)
    net_cl = stack_trials([unstack_trial(net, 0), unstack_trial(net, 1)]).to(memory_format=torch.channels_last)
    out_cl = net_cl(x.contiguous(memory_format=torch.channels_last), *alphas)
    grads_cl = torch.autograd.grad(trial_cross_entropy(out_cl, ys).sum(), alphas)
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-5)
    for a, b in zip(grads_cl, grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_reduction_positions_and_evaluation_network_defaults():
    assert reduction_positions(8) == (2, 5)  # [002] Algorithm 2: n // 3 and 2n // 3
    assert reduction_positions(20) == (6, 13)
    assert reduction_positions(5) == (1, 3)
    cfg = EvalConfig()
    assert (cfg.n_cells, cfg.channels, cfg.drop_path_prob, cfg.aux_position()) == (20, 36, 0.2, 13)


def test_evaluation_network_auxiliary_head_and_drop_path():
    genotype = make_genotype([("sep_conv_3x3", 0), ("skip_connect", 1)] * 4, [("max_pool_3x3", 0)] * 8)
    torch.manual_seed(0)
    net = EvalNetwork(genotype, EvalConfig(n_cells=5, channels=4, drop_path_prob=0.5))
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    gen = torch.Generator().manual_seed(1)
    net.set_drop_path(0.5, gen)
    logits, aux = net(x)
    assert aux.shape == (4, 10) and logits.shape == (4, 10)
    expected = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    torch.testing.assert_close(eval_loss(logits, aux, y), expected)
    net.set_drop_path(0.0)
    no_drop, _ = net(x)
    assert not torch.allclose(no_drop, logits)  # paths were dropped (training mode)
    net.eval()
    net.set_drop_path(0.5)
    out, aux = net(x)
    assert aux is None
    net.set_drop_path(0.0)
    torch.testing.assert_close(out, net(x)[0])  # no drop path at evaluation
    with pytest.raises(ValueError):
        net.set_drop_path(1.0)
