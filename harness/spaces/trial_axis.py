"""The trial axis of every space's networks: K trials stacked in one module.

Convention (shared by the 1D spaces and the DARTS cell space): a K-trial module holds each
parameter and buffer *trial-major* along dim 0 (trial t owns rows t*n/K .. (t+1)*n/K - 1), and
its activations carry the trials on the channel axis, so a per-trial conv is a grouped conv with
K groups and a per-trial BatchNorm is one BatchNorm over K x C channels. Each trial is built
alone under its own seed and then stacked, so its initial values are the K = 1 module's bit for
bit; a K = 1 module is exactly the single-trial (loop) module.

A 0-d per-trial parameter (the 1D ``lgd`` step size) stacks to shape (K,); BatchNorm's
``num_batches_tracked`` counter is shared (all trials take the same steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

SHARED_KEYS = ("num_batches_tracked",)


def trial_view(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """The (K, ...) per-trial view of a stacked (trial-major along dim 0) parameter or buffer."""
    return tensor.view(k, tensor.shape[0] // k, *tensor.shape[1:])


def per_trial(values: torch.Tensor, like: torch.Tensor, k: int) -> torch.Tensor:
    """(K,) values broadcast to a trial-major tensor ``like`` (each trial's rows get its value)."""
    if like.dim() == 0:  # a single trial's scalar parameter
        return values.reshape(())
    return values.view(k, *([1] * (like.dim() - 1))).repeat_interleave(like.shape[0] // k, dim=0)


def shared_key(key: str) -> bool:
    """Whether a state key is one value for all trials (BatchNorm's step counter), not per trial."""
    return key.rsplit(".", 1)[-1] in SHARED_KEYS


def stack_state_dicts(states: Sequence[dict]) -> dict:
    """The state of a K-trial module from the states of its K single-trial modules, in order."""
    if len(states) == 1:  # a one-trial module is the single-trial module
        return {key: value.clone() for key, value in states[0].items()}
    out = {}
    for key, first in states[0].items():
        values = [s[key] for s in states]
        if shared_key(key):
            out[key] = first.clone()
        elif first.dim() == 0:
            out[key] = torch.stack(values)
        else:
            out[key] = torch.cat(values)
    return out


def load_stacked(target: nn.Module, sources: Sequence[nn.Module]) -> None:
    """Load ``target`` (a module over len(sources) trials) with the stacked states of ``sources``."""
    target.load_state_dict(stack_state_dicts([s.state_dict() for s in sources]))


def load_trial(target: nn.Module, source: nn.Module, k: int, trial: int) -> None:
    """Load the single-trial ``target`` with trial ``trial`` of the K-trial ``source``."""
    wanted = target.state_dict()
    state = {}
    for key, value in source.state_dict().items():
        if shared_key(key):
            state[key] = value.clone()
        else:
            state[key] = trial_view(value, k)[trial].reshape(wanted[key].shape).clone()
    target.load_state_dict(state)


def clip_per_trial(params: list[torch.Tensor], k: int, max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for each trial's own slices of trial-major parameters."""
    if max_norm <= 0:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    squares = torch.stack([g.reshape(k, -1).pow(2).sum(1) for g in grads]).sum(0)
    coef = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(per_trial(coef, g, k))


def trial_slices(module: nn.Module, k: int, trial: int) -> dict[str, torch.Tensor]:
    """A copy of trial ``trial``'s slice of every per-trial parameter and buffer of a K-trial module."""
    state = module.state_dict()
    return {key: trial_view(value, k)[trial].clone() for key, value in state.items() if not shared_key(key)}


@torch.no_grad()
def load_trial_slices(module: nn.Module, k: int, trial: int, slices: dict[str, torch.Tensor]) -> None:
    """Write ``trial_slices`` back into trial ``trial`` of the K-trial ``module``, leaving its batch mates."""
    for key, value in module.state_dict().items():
        if key in slices:
            target = trial_view(value, k)[trial]
            target.copy_(slices[key].reshape(target.shape))
