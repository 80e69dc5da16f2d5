"""The 1D spaces' trial axis: K trials stacked in one network behave as K networks alone."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.methods.context import Streams
from harness.spaces import NonSequentialSpace, OpConfig, SequentialSpace
from harness.tasks.registry import make_task

CFG = OpConfig(channels=4)
OPS = {"sequential": ("lgd", "net", "roll", "noise"), "nonsequential": ("lgd", "net", "roll", "noise", "zero")}
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _space(name):
    return SequentialSpace(n_layers=4) if name == "sequential" else NonSequentialSpace(n_cells=1, n_states=3)


def _task():
    return make_task("blur", {"batch_size": 16, "samples_per_evaluation": 32})


def _singles(space, seeds, build):
    out = []
    for seed in seeds:
        with Streams(seed).seeded_init("init"):
            out.append(build())
    return out


@pytest.mark.parametrize("space_name", ["sequential", "nonsequential"])
def test_stacked_supernet_trains_each_trial_as_alone(space_name):
    """Forward, loss, gradients and two SGD steps of trial t in a K = 3 supernet equal the
    single-trial supernet's, with each trial's own data, mixing weights and noise draws. (SGD: the
    conv bias before BatchNorm gets a gradient of float noise, which Adam would scale up to lr.)"""
    space, task, seeds = _space(space_name), _task(), [3, 5, 8]
    ops = OPS[space_name]
    singles = _singles(space, seeds, lambda: space.supernet(ops, CFG))
    stacked = space.stack_supernets(_singles(space, seeds, lambda: space.supernet(ops, CFG)), CFG)
    alphas = torch.randn(len(seeds), space.n_positions, len(ops), generator=torch.Generator().manual_seed(0))
    weights = torch.softmax(alphas, -1)
    opt_k = torch.optim.SGD(stacked.parameters(), lr=0.1)
    opts = [torch.optim.SGD(s.parameters(), lr=0.1) for s in singles]
    for step in range(2):
        data = [torch.Generator().manual_seed(100 * s + step) for s in seeds]
        noise = [torch.Generator().manual_seed(7 * s + step) for s in seeds]
        batch = task.sample_trials(data, "train")
        losses = task.trial_losses(task.forward(stacked, batch, weights, noise), batch)
        opt_k.zero_grad()
        losses.sum().backward()
        opt_k.step()
        for t, (net, opt) in enumerate(zip(singles, opts)):
            single_batch = task.sample(torch.Generator().manual_seed(100 * seeds[t] + step), "train")
            gen = torch.Generator().manual_seed(7 * seeds[t] + step)
            loss = task.loss(task.forward(net, single_batch, weights[t], gen), single_batch)
            torch.testing.assert_close(losses[t], loss, **TOL)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for t, net in enumerate(singles):
        back = space.unstack_supernet(stacked, t, ops, CFG)
        for (name, a), b in zip(net.state_dict().items(), back.state_dict().values()):
            torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("space_name", ["sequential", "nonsequential"])
def test_stacked_discrete_networks_with_different_genotypes(space_name):
    """Trials whose genotypes differ: each op runs for the trials that chose it; per trial the
    output, gradients and per-trial gradient clipping equal the network alone."""
    space, task, seeds = _space(space_name), _task(), [1, 2, 4, 9]
    ops = OPS[space_name]
    genotypes = [space.random_genotype(ops, torch.Generator().manual_seed(s)) for s in seeds]
    genotypes[3] = genotypes[2]  # two trials with one genotype
    singles = [None] * len(seeds)
    for t, seed in enumerate(seeds):
        with Streams(seed).seeded_init("retrain_init"):
            singles[t] = space.network(genotypes[t], CFG)
    copies = []
    for t, seed in enumerate(seeds):
        with Streams(seed).seeded_init("retrain_init"):
            copies.append(space.network(genotypes[t], CFG))
    stacked = space.stack_networks(copies, genotypes, CFG)
    data = [torch.Generator().manual_seed(s) for s in seeds]
    noise = [torch.Generator().manual_seed(50 + s) for s in seeds]
    batch = task.sample_trials(data)
    losses = task.trial_losses(task.forward(stacked, batch, None, noise), batch)
    losses.sum().backward()
    space.clip_stacked(stacked, 0.05)
    for t, net in enumerate(singles):
        single_batch = task.sample(torch.Generator().manual_seed(seeds[t]))
        loss = task.loss(task.forward(net, single_batch, None, torch.Generator().manual_seed(50 + seeds[t])),
                         single_batch)
        torch.testing.assert_close(losses[t], loss, **TOL)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], 0.05)
    # Each trial's clipped gradients, op by op: stack copies of the single networks holding their grads.
    holders = [copy.deepcopy(net) for net in singles]
    with torch.no_grad():
        for holder, net in zip(holders, singles):
            for p, q in zip(holder.parameters(), net.parameters()):
                p.copy_(q.grad if q.grad is not None else torch.zeros_like(q))
    expected = space.stack_networks(holders, genotypes, CFG)
    for (name, p), q in zip(stacked.named_parameters(), expected.parameters()):
        torch.testing.assert_close(p.grad, q.detach(), rtol=1e-4, atol=1e-6, msg=name)


def test_trial_network_of_one_genotype_is_the_single_network():
    """K = 1: the trial network is the loop's network (same modules, shapes and output)."""
    space, task = SequentialSpace(n_layers=4), _task()
    genotype = ["lgd", "noise", "roll", "net"]
    with Streams(0).seeded_init("retrain_init"):
        single = space.network(genotype, CFG)
    stacked = space.stack_networks([single], [genotype], CFG)
    assert [p.shape for p in stacked.parameters()] == [p.shape for p in single.parameters()]
    batch = task.sample(torch.Generator().manual_seed(0))
    a = task.forward(single, batch, None, torch.Generator().manual_seed(1))
    b = task.forward(stacked, batch, None, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
