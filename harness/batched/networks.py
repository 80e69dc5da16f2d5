"""K independent sequential networks (supernets or discrete networks) as one computation.

Why: one 1D trial is far too small to keep a CPU busy; its time goes to per-call overhead of
tiny kernels. Here the parameters of K trials are stacked along a leading seed axis and every
layer runs once for all seeds. Nothing mixes seeds: each seed's loss, gradients, BatchNorm
statistics, optimizer state and random draws are its own, so a trial gives (within float
tolerance) the result it gives alone in the loop engine.

Parameters are taken from the loop engine's own networks, each built under its trial's seed,
so initialization is the loop's bit for bit. Discrete networks whose genotypes differ are run
by grouping, per layer, the seeds that chose each op (no op runs for a seed that did not choose
it, so unused ops neither draw random numbers nor update BatchNorm statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.batched.fused_cnn import two_layer_cnn
from harness.spaces.ops import OpConfig
from harness.spaces.sequential import SequentialNetwork

CNN_KEYS = ("w1", "b1", "gamma", "beta", "w2", "b2")
BN_MOMENTUM = 0.1


@dataclass
class OpGroup:
    """One candidate op of one layer, for the seeds (indices into the batch) that hold it."""

    name: str
    seeds: torch.Tensor  # long (S,)
    all_seeds: bool
    params: dict  # name -> stacked leaf tensor (S, ...)
    running_mean: torch.Tensor | None = None  # (S, C)
    running_var: torch.Tensor | None = None


def _cnn_params(net) -> dict:
    return {
        "w1": net.conv1.weight.detach()[:, 0, :],  # (C, k)
        "b1": net.conv1.bias.detach(),
        "gamma": net.bn.weight.detach(),
        "beta": net.bn.bias.detach(),
        "w2": net.conv2.weight.detach()[0],  # (C, k)
        "b2": net.conv2.bias.detach()[0],
    }


class BatchedSequential:
    """Stacked parameters of K loop ``SequentialNetwork`` s (same op config and depth)."""

    def __init__(self, networks: list[SequentialNetwork], op_config: OpConfig, device: torch.device) -> None:
        self.k = len(networks)
        self.n_layers = len(networks[0].layers)
        self.config = op_config
        self.device = device
        self.supernet = any(len(layer.names) > 1 for layer in networks[0].layers)
        self.layers: list[list[OpGroup]] = []
        for layer_index in range(self.n_layers):
            layers = [net.layers[layer_index] for net in networks]
            names: list[str] = []
            for layer in layers:
                names.extend(n for n in layer.names if n not in names)
            groups = []
            for name in names:
                owners = [
                    (s, layer.ops[layer.names.index(name)]) for s, layer in enumerate(layers) if name in layer.names
                ]
                seeds = torch.tensor([s for s, _ in owners], dtype=torch.long, device=device)
                group = OpGroup(name, seeds, len(owners) == self.k, {})
                modules = [op for _, op in owners]
                if name in ("lgd", "net"):
                    stacked = [_cnn_params(m.net) for m in modules]
                    for key in CNN_KEYS:
                        group.params[key] = torch.stack([p[key] for p in stacked]).to(device).clone()
                    group.running_mean = torch.stack([m.net.bn.running_mean for m in modules]).to(device).clone()
                    group.running_var = torch.stack([m.net.bn.running_var for m in modules]).to(device).clone()
                if name == "lgd":
                    group.params["tau"] = torch.stack([m.tau.detach() for m in modules]).to(device).clone()
                for p in group.params.values():
                    p.requires_grad_(True)
                groups.append(group)
            self.layers.append(groups)
        self.op_names = tuple(networks[0].layers[0].names) if self.supernet else None

    def subset(self, seeds: list[int]) -> BatchedSequential:
        """A frozen copy holding only ``seeds`` (batch positions), e.g. for per-trial diagnostics."""
        index = torch.tensor(seeds, dtype=torch.long, device=self.device)
        copy = object.__new__(BatchedSequential)
        copy.__dict__.update(self.__dict__)
        copy.k = len(seeds)
        copy.layers = []
        for groups in self.layers:
            new_groups = []
            for g in groups:
                if not g.all_seeds:
                    raise ValueError("subset() needs every op to hold every seed (a supernet or a shared genotype)")
                new_groups.append(
                    OpGroup(
                        g.name, torch.arange(len(seeds), device=self.device), True,
                        {k: v.detach().index_select(0, index) for k, v in g.params.items()},
                        None if g.running_mean is None else g.running_mean.index_select(0, index),
                        None if g.running_var is None else g.running_var.index_select(0, index),
                    )
                )
            copy.layers.append(new_groups)
        return copy

    def parameters(self) -> list[torch.Tensor]:
        """In a fixed order: layer by layer, op by op (the loop's module order within a layer)."""
        return [p for groups in self.layers for g in groups for p in g.params.values()]

    # ----------------------------------------------------------------------------- forward
    def forward(
        self,
        u0: torch.Tensor,
        y: torch.Tensor,
        operator,
        noise_generators: list[torch.Generator],
        weights: torch.Tensor | None,
        training: bool,
        backend: str = "auto",
    ) -> torch.Tensor:
        """u0: (K, B, N), y: (K, B, M); ``weights`` (K, L, n_ops) mixing weights for a supernet."""
        u = u0
        for layer_index, groups in enumerate(self.layers):
            out = None
            for op_index, group in enumerate(groups):
                if group.all_seeds:
                    value = self._apply(group, u, y, operator, noise_generators, training, backend)
                    if weights is not None:
                        value = weights[:, layer_index, op_index].view(-1, 1, 1) * value
                    out = value if out is None else out + value
                else:
                    sub = self._apply(
                        group, u.index_select(0, group.seeds), y.index_select(0, group.seeds),
                        operator, [noise_generators[int(s)] for s in group.seeds], training, backend,
                    )
                    base = torch.zeros_like(u) if out is None else out
                    out = base.index_add(0, group.seeds, sub)
            u = out
        return u0 + u

    def _apply(self, group: OpGroup, u, y, operator, generators, training: bool, backend: str) -> torch.Tensor:
        cfg = self.config
        name = group.name
        if name == "roll":
            if cfg.roll_dims == "all":  # the loop rolls (B, 1, N) along batch, channel and signal
                return torch.roll(u, shifts=(cfg.roll_shift, cfg.roll_shift), dims=(1, 2))
            return torch.roll(u, shifts=cfg.roll_shift, dims=2)
        if name == "noise":
            noise = torch.stack([torch.randn((u.shape[1], 1, u.shape[2]), generator=g)[:, 0] for g in generators])
            return u - cfg.noise_op_tau * _data_gradient(u, y, operator) + cfg.noise_op_std * noise.to(u.device)
        if name in ("lgd", "net"):
            cnn = self._cnn(group, u, training, backend)
            if name == "net":
                return cnn
            tau = group.params["tau"].view(-1, 1, 1)
            return u - tau * (_data_gradient(u, y, operator) + cnn)
        raise ValueError(f"the batched engine has no op {name!r}")

    def _cnn(self, group: OpGroup, u: torch.Tensor, training: bool, backend: str) -> torch.Tensor:
        p = group.params
        out, mean, var = two_layer_cnn(
            u, p["w1"], p["b1"], p["gamma"], p["beta"], p["w2"], p["b2"], training=training,
            running_mean=group.running_mean, running_var=group.running_var, backend=backend,
        )
        if training:
            with torch.no_grad():
                group.running_mean.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean)
                group.running_var.mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * var)
        return out


def _data_gradient(u: torch.Tensor, y: torch.Tensor, operator) -> torch.Tensor:
    """A^T (A u - y) for u (K, B, N), y (K, B, M); A is shared by all seeds."""
    return operator.adjoint(operator.forward(u) - y)
