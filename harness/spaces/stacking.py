"""K-trial networks of the 1D spaces from K single-trial ones (the trial axis, trial_axis.py).

Each trial's network is built alone under its trial's seed (so its initial values are the single trial's
bit for bit) and its parameters are stacked into one K-trial network: a supernet into a supernet
over K trials, discrete networks into one network whose layers run each op for the trials that
chose it. ``unstack_supernet`` takes one trial back out (per-trial diagnostics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.spaces.ops import MixedOp, OpConfig
from harness.spaces.trial_axis import load_stacked, load_trial, per_trial


def mixed_ops(network: nn.Module) -> list[MixedOp]:
    """The network's mixed ops in position order."""
    return sorted((m for m in network.modules() if isinstance(m, MixedOp)), key=lambda m: m.position)


def _plain_leaves(network: nn.Module) -> dict[str, nn.Module]:
    """Leaf modules outside the mixed ops (the non-sequential cells' merge convs), by name."""
    inside = {id(m) for mixed in mixed_ops(network) for m in mixed.modules()}
    return {name: m for name, m in network.named_modules()
            if id(m) not in inside and not list(m.children()) and m.state_dict()}


def owned_ops(chosen: Sequence[str]) -> tuple[tuple[str, ...], list[list[int]] | None]:
    """A discrete position over K trials: its distinct ops (in order of first choice) and which
    trials hold each; no owners when every trial chose the same op."""
    names = tuple(dict.fromkeys(chosen))
    if len(names) == 1:
        return names, None
    return names, [[t for t, name in enumerate(chosen) if name == n] for n in names]


class TrialStacking:
    """What a 1D space offers for the trial axis; the space defines ``supernet(ops, cfg, trials)``
    and ``trial_network(genotypes, cfg)``."""

    def stack_supernets(self, supernets: Sequence[nn.Module], cfg: OpConfig) -> nn.Module:
        ops = mixed_ops(supernets[0])[0].names
        stacked = self.supernet(ops, cfg, trials=len(supernets))
        load_stacked(stacked, supernets)
        return stacked

    def stack_networks(self, networks: Sequence[nn.Module], genotypes: Sequence, cfg: OpConfig) -> nn.Module:
        """One network over the trials of ``networks`` (built from ``genotypes``, which may differ)."""
        stacked = self.trial_network(list(genotypes), cfg)
        sources = [mixed_ops(n) for n in networks]
        for position, target in enumerate(mixed_ops(stacked)):
            if target.owners is None:
                load_stacked(target, [s[position] for s in sources])
                continue
            for op, owners in zip(target.ops, target.owners):
                load_stacked(op, [sources[t][position].ops[0] for t in owners])
        leaves = [_plain_leaves(n) for n in networks]
        for name, module in _plain_leaves(stacked).items():
            load_stacked(module, [found[name] for found in leaves])
        return stacked

    def unstack_supernet(self, stacked: nn.Module, trial: int, ops: tuple[str, ...], cfg: OpConfig) -> nn.Module:
        single = self.supernet(ops, cfg)
        load_trial(single, stacked, stacked.trials, trial)
        return single

    @staticmethod
    def clip_stacked(network: nn.Module, max_norm: float) -> None:
        """Gradient clipping per trial (each trial's own norm over the ops it holds)."""
        if max_norm <= 0:
            return
        k = network.trials
        owned = [(p, index) for p, index in _owned_parameters(network) if p.requires_grad and p.grad is not None]
        if not owned:
            return
        squares = torch.zeros(k, dtype=owned[0][0].grad.dtype, device=owned[0][0].grad.device)
        for p, index in owned:
            squares.index_add_(0, index.to(squares.device), p.grad.reshape(len(index), -1).pow(2).sum(1))
        coef = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
        for p, index in owned:
            p.grad.mul_(per_trial(coef[index.to(coef.device)], p.grad, len(index)))


def _owned_parameters(network: nn.Module):
    """(parameter, the trials it belongs to, as an index tensor) for every parameter."""
    everyone = torch.arange(network.trials)
    for mixed in mixed_ops(network):
        for j, op in enumerate(mixed.ops):
            index = everyone if mixed.owners is None else torch.tensor(mixed.owners[j])
            for p in op.parameters():
                yield p, index
    for leaf in _plain_leaves(network).values():
        for p in leaf.parameters():
            yield p, everyone
