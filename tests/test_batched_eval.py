"""BatchedEvalNetwork: K derived networks of different genotypes equal K separate EvalNetworks."""

import copy
import random
import sys
from pathlib import Path

import pytest
import torch

from harness.spaces.darts_cell import (
    OP_NAMES,
    BatchedEvalNetwork,
    EvalConfig,
    EvalNetwork,
    batched_eval_loss,
    eval_loss,
    make_genotype,
    merge_trials,
    per_trial_grad_norm_clip,
    trial_view,
)

OPS = [name for name in OP_NAMES if name != "none"]
TOL = dict(rtol=1e-5, atol=1e-5)


def random_genotype(rng: random.Random):
    cell = lambda: [(rng.choice(OPS), rng.randrange(node + 2)) for node in range(4) for _ in range(2)]
    return make_genotype(cell(), cell())


def genotypes(k: int, seed: int = 0):
    """Random genotypes plus one whose nodes take the same op twice (a trial twice in one group)."""
    rng = random.Random(seed)
    twice = make_genotype([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 2 + [("skip_connect", 2)] * 4,
                          [("skip_connect", 0), ("skip_connect", 1)] + [("dil_conv_5x5", 2), ("max_pool_3x3", 1)] * 3)
    return ([twice] + [random_genotype(rng) for _ in range(k - 1)])[:k]


def config(**kw) -> EvalConfig:
    base = dict(n_cells=5, channels=4, aux_width=8, aux_hidden=16, drop_path_prob=0.0)
    return EvalConfig(**{**base, **kw})


def build(gens, cfg, seed0=0):
    nets = []
    for t, g in enumerate(gens):
        torch.manual_seed(seed0 + t)
        nets.append(EvalNetwork(g, cfg))
    return nets


def data(k: int, n: int = 4, px: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(k, n, 3, px, px, generator=gen), torch.randint(0, 10, (k, n), generator=gen)


def assert_trial_grads(batched, grads: dict, t: int, net, atol: float) -> None:
    """Trial t's rows of the batched gradients (``grads``: name -> grad) equal ``net``'s own."""
    for name, (key, rows, r) in batched._key_map(t).items():
        p = dict(net.named_parameters()).get(name)
        if p is None:
            continue
        assert (grads[key] is None) == (p.grad is None), name  # None: a cell input no edge reads
        if p.grad is not None:
            torch.testing.assert_close(trial_view(grads[key], rows)[r], p.grad, rtol=1e-4, atol=atol, msg=name)


@pytest.mark.parametrize("auxiliary", [True, False])
def test_each_trial_equals_its_eval_network_in_train_and_eval_mode(auxiliary):
    k = 3
    cfg = config(auxiliary=auxiliary)
    nets = build(genotypes(k), cfg)
    batched = BatchedEvalNetwork.from_networks(nets)
    xs, ys = data(k)
    logits, aux = batched(merge_trials(xs))
    assert logits.shape == (k, 4, 10) and (aux is None) == (not auxiliary)
    batched_eval_loss(logits, aux, ys).sum().backward()
    grads = {name: p.grad for name, p in batched.named_parameters()}
    for t, net in enumerate(nets):
        out, out_aux = net(xs[t])
        torch.testing.assert_close(logits[t], out, **TOL)
        if auxiliary:
            torch.testing.assert_close(aux[t], out_aux, **TOL)
        eval_loss(out, out_aux, ys[t]).backward()
        mine = batched.state_dict_of(t)  # parameters and BatchNorm running statistics
        for name, v in net.state_dict().items():
            torch.testing.assert_close(mine[name], v, **TOL, msg=name)
        assert_trial_grads(batched, grads, t, net, atol=1e-5)
    batched.eval()
    logits, aux = batched(merge_trials(xs))
    assert aux is None
    for t, net in enumerate(nets):
        torch.testing.assert_close(logits[t], net.eval()(xs[t])[0], **TOL)


def test_round_trip_shared_input_and_channels_last():
    k = 3
    cfg = config()
    nets = build(genotypes(k, seed=1), cfg)
    batched = BatchedEvalNetwork.from_networks(nets)
    for t, net in enumerate(nets):
        back = batched.unstack(t)
        assert back.genotype == net.genotype
        for (name, a), (_, b) in zip(back.state_dict().items(), net.state_dict().items()):
            assert torch.equal(a, b), name
    again = BatchedEvalNetwork.from_networks([batched.unstack(t) for t in range(k)])
    for (name, a), (_, b) in zip(again.state_dict().items(), batched.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(4, 3, 8, 8)
    cl = copy.deepcopy(batched).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for train in (True, False):  # train: batch statistics and the auxiliary head
        logits, aux = batched.train(train)(x)
        logits_cl, aux_cl = cl.train(train)(x_cl)
        torch.testing.assert_close(logits_cl, logits, **TOL)
        if train:
            torch.testing.assert_close(aux_cl, aux, **TOL)
    torch.testing.assert_close(batched(x.repeat(1, k, 1, 1))[0], logits)  # shared images broadcast


def test_concat_must_be_shared_and_generators_per_trial():
    a = genotypes(2)
    b = a[1]._replace(normal_concat=[2, 3, 4])
    with pytest.raises(ValueError, match="concat"):
        BatchedEvalNetwork([a[0], b], config())
    net = BatchedEvalNetwork(a, config())
    with pytest.raises(ValueError, match="generator"):
        net.set_drop_path(0.2, [torch.Generator()])


def test_per_trial_clip_equals_clip_grad_norm_of_each_network():
    k = 3
    nets = build(genotypes(k), config())
    batched = BatchedEvalNetwork.from_networks(nets)
    xs, ys = data(k)
    batched_eval_loss(*batched(merge_trials(xs)), ys).sum().backward()
    norms = per_trial_grad_norm_clip(batched, 0.5)
    for t, net in enumerate(nets):
        eval_loss(*net(xs[t]), ys[t]).backward()
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        torch.testing.assert_close(norms[t], norm, rtol=1e-5, atol=0)
        assert norm > 0.5  # clipping did act
        grads = {name: p.grad for name, p in batched.named_parameters()}
        assert_trial_grads(batched, grads, t, net, atol=1e-6)


def train(net, xs, ys, steps: int, k: int, seeds, loop: bool = False):
    """A few DARTS retraining steps (SGD 0.025, momentum 0.9, wd 3e-4, clip 5) with drop path 0.2."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    if loop:
        net.set_drop_path(0.2, gens[0])
    else:
        net.set_drop_path(0.2, gens)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    for _ in range(steps):
        opt.zero_grad()
        if loop:
            eval_loss(*net(xs), ys).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        else:
            batched_eval_loss(*net(merge_trials(xs)), ys).sum().backward()
            per_trial_grad_norm_clip(net, 5.0)
        opt.step()
    return net


def test_drop_path_training_does_not_depend_on_batch_mates():
    k, steps = 3, 3
    cfg = config(drop_path_prob=0.2)
    gens = genotypes(k, seed=2)
    xs, ys = data(k)
    together = train(BatchedEvalNetwork.from_networks(build(gens, cfg)), xs, ys, steps, k, seeds=range(10, 10 + k))
    # covered: a cell input some trial never reads (its parameters get no gradient, no weight decay)
    assert any(cell.pre0_unused is not None or cell.pre1_unused is not None for cell in together.cells)
    for t, g in enumerate(gens):
        alone = train(BatchedEvalNetwork.from_networks(build([g], cfg, seed0=t)), xs[t : t + 1], ys[t : t + 1],
                      steps, 1, seeds=[10 + t])
        loop = train(build([g], cfg, seed0=t)[0], xs[t], ys[t], steps, 1, seeds=[10 + t], loop=True)
        mine = together.state_dict_of(t)
        for name, v in alone.state_dict_of(0).items():
            torch.testing.assert_close(mine[name], v, **TOL, msg=name)
        for name, v in loop.state_dict().items():
            torch.testing.assert_close(mine[name], v, **TOL, msg=name)
    x = merge_trials(xs)  # the masks act, and per trial: trial 1's stream leaves trials 0 and 2 alone
    together.set_drop_path(0.2, [torch.Generator().manual_seed(s) for s in (0, 1, 2)])
    a = together(x)[0]
    together.set_drop_path(0.2, [torch.Generator().manual_seed(s) for s in (0, 7, 2)])
    b = together(x)[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) and not torch.allclose(a[1], b[1])

def test_eval_throughput_quick_runs():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import eval_throughput

    assert eval_throughput.main(["--k", "1", "2", "--px", "8", "--cells", "3", "--channels", "2", "--batch", "2",
                                 "--steps", "1", "--formats", "nchw"]) == 0
