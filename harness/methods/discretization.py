"""Discretization rules: from final architecture parameters to a genotype.

``genotype(space, probabilities, ops, probe=None)``: ``probabilities`` is the relaxation's
(P, K) ranking tensor, positions in the space's flat order; ``probe`` (a SupernetProbe, see
docs/method_components.md) is used only by rules that query the supernet (DARTS+PT).
"""

from __future__ import annotations

from typing import Protocol

import torch


class Probe(Protocol):
    """The part of SupernetProbe that discretization uses."""

    def score(self, weights: torch.Tensor) -> float: ...

    def finetune(self, weights: torch.Tensor, steps: int) -> None: ...


class TrialProbe(Protocol):
    """A probe of K trials' supernets at once: weights (K, positions, ops), one score per trial."""

    def scores(self, weights: torch.Tensor) -> list[float]: ...

    def finetune(self, weights: torch.Tensor, steps: int) -> None: ...


class _OneTrial:
    """A single trial's ``Probe`` as a ``TrialProbe`` of K = 1."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def scores(self, weights: torch.Tensor) -> list[float]:
        return [self.probe.score(weights[0])]

    def finetune(self, weights: torch.Tensor, steps: int) -> None:
        self.probe.finetune(weights[0], steps)


def _check(space, probabilities: torch.Tensor, ops: tuple[str, ...]) -> None:
    expected = (space.n_positions, len(ops))
    if tuple(probabilities.shape) != expected:
        raise ValueError(
            f"probabilities must have shape {expected} (positions x ops), got {tuple(probabilities.shape)}"
        )


def _cells(space) -> bool:
    """A DARTS cell space: two inputs per node, genotypes in DARTS's format."""
    return "cells" in getattr(space, "capabilities", ())


def _from_flat(space, flat: list[str]):
    """The space's genotype from one op name per position (flat order)."""
    unflatten = getattr(space, "_unflatten", None)
    return unflatten(flat) if unflatten is not None else list(flat)


class ArgmaxDiscretization:
    """Keep the highest-probability op at every position ([001] sections 2 and 4.2)."""

    name = "argmax"

    def genotype(self, space, probabilities: torch.Tensor, ops: tuple[str, ...], probe: Probe | None = None):
        return space.discretize(probabilities, ops)


class TopKEdges:
    """DARTS cell rule (METHODS.md section 0; [002] App. A.3.1): per computed node keep the k
    incoming edges whose strongest non-zero op is largest, with that op; other edges become 'zero'.

    Non-sequential space only (edges need a target node), and 'zero' must be a candidate.
    Ties keep the earlier edge. Nodes with at most k incoming edges keep all of them.
    """

    name = "top-k-edges"

    def __init__(self, k: int = 2) -> None:
        if k < 1:
            raise ValueError(f"TopKEdges needs k >= 1, got {k!r}")
        self.k = k

    def genotype(self, space, probabilities: torch.Tensor, ops: tuple[str, ...], probe: Probe | None = None):
        edge_list = getattr(space, "edge_list", None)
        if edge_list is None or not hasattr(space, "n_cells"):
            raise ValueError(
                f"TopKEdges keeps k incoming edges per node and needs the non-sequential space, "
                f"got {getattr(space, 'name', type(space).__name__)!r}"
            )
        if "zero" not in ops:
            raise ValueError(f"TopKEdges marks dropped edges 'zero', which is not a candidate op: {ops}")
        _check(space, probabilities, ops)
        probs = probabilities.detach().float().cpu()
        nonzero = [i for i, name in enumerate(ops) if name != "zero"]
        strength, best = probs[:, nonzero].max(dim=-1)
        n_edges = len(edge_list)
        flat = ["zero"] * space.n_positions
        for c in range(space.n_cells):
            for target in sorted({t for _, t in edge_list}):
                incoming = [c * n_edges + e for e, (_, t) in enumerate(edge_list) if t == target]
                # stable sort on -strength: ties keep the earlier edge
                ranked = sorted(incoming, key=lambda p: -float(strength[p]))
                for p in ranked[: self.k]:
                    flat[p] = ops[nonzero[int(best[p])]]
        return _from_flat(space, flat)


class ThresholdDiscretization:
    """FairDARTS / D-DARTS "sparse" parsing (M08, M45): at most one op per position, kept only
    if its probability exceeds ``threshold`` (0.85: D-DARTS' sigma_t).

    Among the non-zero ops above the threshold the most probable is kept. A position with none
    becomes 'zero' (the edge is dropped) where 'zero' is a candidate; the sequential space has
    no 'zero' and a layer cannot be dropped, so it falls back to the argmax (our choice). In the
    DARTS cell space: the space's ``threshold_genotype`` (at most two kept edges per node).
    """

    name = "threshold"

    def __init__(self, threshold: float = 0.85) -> None:
        self.threshold = threshold

    def genotype(self, space, probabilities: torch.Tensor, ops: tuple[str, ...], probe: Probe | None = None):
        _check(space, probabilities, ops)
        if _cells(space):  # DARTS's format: at most two kept inputs per node, 'none' pairs for the rest
            return space.threshold_genotype(probabilities, ops, self.threshold)
        probs = probabilities.detach().float().cpu()
        has_zero = "zero" in ops
        nonzero = [i for i, name in enumerate(ops) if name != "zero"]
        above = probs > self.threshold  # compared in the tensor's dtype: 0.85 is not above 0.85
        flat = []
        for row, row_above in zip(probs, above):
            candidates = [i for i in nonzero if bool(row_above[i])]
            if candidates:
                flat.append(ops[max(candidates, key=lambda i: float(row[i]))])
            elif has_zero:
                flat.append("zero")
            else:
                flat.append(ops[int(row.argmax())])
        return _from_flat(space, flat)


class PerturbationSelection:
    """DARTS+PT (M27, [002] Eq. 3.29): choose each position's op by how much masking it hurts.

    Starting from the mixing weights ``probabilities``, positions are visited in ``order``
    ("sequential", or "random" from ``seed``). At a position every candidate is masked in turn
    (its weight set to 0, the others unchanged, as in DARTS-PT) and the supernet scored with
    ``probe.score`` (validation loss); the op whose removal raises the loss most is kept and the
    position fixed to its one-hot. ``probe.finetune(weights, finetune_steps)`` then re-adapts the
    supernet weights before the next decision (not after the last: it cannot change the choice).
    finetune_steps 10: our choice (M27: not stated; DARTS-PT tunes epochs, our searches are short).
    Costs K probe scores per position.

    DARTS cell space (``"cells"``): 'none' is no candidate (a kept edge holds an op), and after
    the ops the topology is chosen by perturbation too (M27 does not state how; our choice, one
    pass per node): each incoming edge is masked whole and the two whose removal raises the loss
    most are kept; the genotype is DARTS's rule on the resulting one-hot weights.
    """

    name = "perturbation"

    def __init__(self, finetune_steps: int = 10, order: str = "sequential", seed: int = 0) -> None:
        if order not in ("sequential", "random"):
            raise ValueError(f"PerturbationSelection order must be 'sequential' or 'random', got {order!r}")
        if finetune_steps < 0:
            raise ValueError("finetune_steps must be >= 0")
        self.finetune_steps = finetune_steps
        self.order = order
        self.seed = seed

    def visiting_order(self, n_positions: int, generator: torch.Generator | None = None) -> list[int]:
        if self.order == "sequential":
            return list(range(n_positions))
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        return [int(i) for i in torch.randperm(n_positions, generator=generator)]

    def genotype(
        self,
        space,
        probabilities: torch.Tensor,
        ops: tuple[str, ...],
        probe: Probe | None = None,
        generator: torch.Generator | None = None,
    ):
        if probe is None:
            raise ValueError("PerturbationSelection scores the supernet and needs a probe")
        return self.trial_genotypes(space, [probabilities], ops, _OneTrial(probe), generator)[0]

    def trial_genotypes(self, space, probabilities: list[torch.Tensor], ops: tuple[str, ...], probe: TrialProbe,
                        generator: torch.Generator | None = None) -> list:
        """The rule for K trials at once (``probabilities``: one (P, ops) tensor per trial): every
        probe scores all K supernets, each masked at the same position (the visiting order is the
        rule's, not the trial's), each trial decides on its own scores, and the fine-tuning between
        decisions trains the K supernets as one."""
        for p in probabilities:
            _check(space, p, ops)
        k = len(probabilities)
        weights = torch.stack([p.detach() for p in probabilities]).clone()
        flat: list[list[str]] = [[""] * space.n_positions for _ in range(k)]
        order = self.visiting_order(space.n_positions, generator)
        groups = space.node_groups() if _cells(space) else []
        decisions = len(order) + len(groups)
        candidates = [c for c, name in enumerate(ops) if name != "none"]  # only the cell space has 'none'
        for n, p in enumerate(order):
            losses = {}
            for c in candidates:
                masked = weights.clone()
                masked[:, p, c] = 0.0
                losses[c] = probe.scores(masked)
            for t in range(k):
                chosen = max(candidates, key=lambda c: losses[c][t])  # ties: the earlier op
                flat[t][p] = ops[chosen]
                weights[t, p] = 0.0
                weights[t, p, chosen] = 1.0
            self._finetune(probe, weights, n + 1 < decisions)
        for n, group in enumerate(groups, start=len(order)):
            losses = {}
            for p in group:
                masked = weights.clone()
                masked[:, p] = 0.0
                losses[p] = probe.scores(masked)
            for t in range(k):
                kept = sorted(group, key=lambda p: -losses[p][t])[:2]  # stable: ties keep the lower input
                for p in group:
                    if p not in kept:
                        weights[t, p] = 0.0
            self._finetune(probe, weights, n + 1 < decisions)
        return [space.discretize(weights[t], ops) if groups else _from_flat(space, flat[t]) for t in range(k)]

    def _finetune(self, probe: TrialProbe, weights: torch.Tensor, more_to_decide: bool) -> None:
        if self.finetune_steps > 0 and more_to_decide:
            probe.finetune(weights.clone(), self.finetune_steps)


class CellEdgesOrArgmax:
    """DARTS's rule: top-k incoming edges per node in cells, argmax per layer in sequences (the
    DARTS cell space's own discretization is already the top-2 rule)."""

    name = "top-k-edges-or-argmax"

    def __init__(self, k: int = 2) -> None:
        self.cells, self.layers = TopKEdges(k), ArgmaxDiscretization()

    def genotype(self, space, probabilities, ops, probe=None):
        prunable = "zero-edges" in getattr(space, "capabilities", ()) and "zero" in ops
        return (self.cells if prunable else self.layers).genotype(space, probabilities, ops)
