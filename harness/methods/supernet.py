"""The supernet side of a search run: how mixed ops mix (``Mixer``), what one run holds
(``SearchRun``) and what discretization rules and diagnostics may ask of the supernet
(``SupernetProbe``). Split from ``search.py``, which keeps the search loop itself."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from harness.methods.context import MethodContext
from harness.methods.discretization import ArgmaxDiscretization, PerturbationSelection
from harness.methods.state import SearchState
from harness.methods.training import check_finite, task_loss
from harness.methods.trial_batch import TrialBatch
from harness.spaces.ops import MixedOp

if TYPE_CHECKING:
    from harness.methods.search import ComposedSearch

PROBE_BATCHES = 4
PROBE_SEED_OFFSET = 2  # probe batches come from the trial's eval seed + 2, their noise from + 3


def mixed_ops(model: torch.nn.Module) -> list[MixedOp]:
    """The network's mixed ops in position order."""
    found = [m for m in model.modules() if isinstance(m, MixedOp)]
    return sorted(found, key=lambda m: m.position)


@dataclass
class Mixer:
    """Replaces the plain weighted sum in every mixed op (installed through ``OpContext.mixer``).

    Applies, per position: op masks (P-DARTS's dropped ops), the mix hooks of perturbation
    components (only while ``state.training``), deactivation of a whole position (D-DARTS's
    ablation: identity in the sequential space, no contribution in the non-sequential one) and
    per-edge multipliers. ``mixed`` is a 1D ``MixedOp`` or a cell edge (``darts_cell.mixing.EdgeView``);
    where an edge changes the shape (a cell's stride-2 edges), its ``skip(u)`` stands for u itself
    in deactivation, extra terms and the all-masked zero."""

    state: SearchState
    hooks: tuple = ()
    op_mask: torch.Tensor | None = None
    deactivated: dict[int, str] = field(default_factory=dict)
    edge_weights: torch.Tensor | None = None

    @property
    def acts(self) -> bool:
        """Whether mixing differs from the plain weighted sum now (a cell space keeps its fused sum if not)."""
        return bool(
            (self.hooks and self.state.training) or self.op_mask is not None or self.deactivated
            or self.edge_weights is not None
        )

    def __call__(self, mixed: MixedOp, u: torch.Tensor, op_ctx, weights: torch.Tensor) -> torch.Tensor:
        pos = mixed.position
        skip = getattr(mixed, "skip", None)
        mode = self.deactivated.get(pos)
        if mode is not None:
            base = u if skip is None else skip(u)
            return base if mode == "identity" else torch.zeros_like(base)
        hooks = self.hooks if self.state.training else ()
        out = None
        for k, (name, op) in enumerate(zip(mixed.names, mixed.ops)):
            if self.op_mask is not None and not bool(self.op_mask[pos, k]):
                continue
            x = u
            for hook in hooks:
                if hasattr(hook, "op_input"):
                    x = hook.op_input(x, name, pos, self.state)
            y = op(x, op_ctx)
            for hook in hooks:
                if hasattr(hook, "op_output"):
                    y = hook.op_output(y, name, pos, self.state)
            term = weights[k] * y
            out = term if out is None else out + term
        base = u if skip is None or not (hooks or out is None) else skip(u)
        for hook in hooks:
            extra = hook.extra_term(base, pos, self.state) if hasattr(hook, "extra_term") else None
            if extra is not None:
                out = extra if out is None else out + extra
        if out is None:
            out = torch.zeros_like(base)
        if self.edge_weights is not None:
            out = out * self.edge_weights[pos]
        return out


@contextlib.contextmanager
def evaluating(model: torch.nn.Module, state: SearchState):
    """Model in eval mode (BatchNorm running statistics) and components deterministic."""
    was_model, was_state = model.training, state.training
    model.eval()
    state.training = False
    try:
        yield
    finally:
        model.train(was_model)
        state.training = was_state


class SupernetProbe:
    """What discretization rules, early stopping and diagnostics may ask of the supernet.

    Scores use ``PROBE_BATCHES`` fixed validation batches (their own seed, derived from the
    trial's evaluation stream), the model in eval mode and deterministic relaxations."""

    def __init__(self, search: ComposedSearch, run: SearchRun) -> None:
        self.search, self.run = search, run
        ctx = run.ctx
        gen = torch.Generator().manual_seed(ctx.streams.seed("eval") + PROBE_SEED_OFFSET)
        self.batches = [ctx.task.sample(gen, "val") for _ in range(PROBE_BATCHES)]
        self.noise_seed = ctx.streams.seed("eval") + PROBE_SEED_OFFSET + 1

    def _loss(self, weights, batch) -> torch.Tensor:
        noise = torch.Generator().manual_seed(self.noise_seed)
        return task_loss(self.run.model, self.run.ctx.task, batch, noise, weights, self.run.mixer)

    @torch.no_grad()
    def score(self, weights: torch.Tensor) -> float:
        with evaluating(self.run.model, self.run.state):
            return sum(float(self._loss(weights, b)) for b in self.batches) / len(self.batches)

    def val_loss(self, alpha: torch.Tensor) -> torch.Tensor:
        """Validation loss on the first probe batch, differentiable in alpha (Hessian diagnostics)."""
        with evaluating(self.run.model, self.run.state):
            weights = self.search.relaxation.weights(self.run.masked(alpha), None)
            return self._loss(weights, self.batches[0])

    def genotype(self, alpha: torch.Tensor):
        rule = self.search.discretization
        if isinstance(rule, PerturbationSelection):
            rule = ArgmaxDiscretization()  # intermediate genotypes must not fine-tune the supernet
        probs = self.search.relaxation.probabilities(self.run.masked(alpha.detach()))
        return rule.genotype(self.run.space, probs, self.run.ctx.ops)

    def finetune(self, weights: torch.Tensor, steps: int) -> None:
        """``steps`` weight steps with fixed mixing weights (DARTS+PT between edge decisions)."""
        run = self.run
        task = run.ctx.task
        run.model.train()
        for _ in range(int(steps)):
            loss = task_loss(run.model, task, task.sample(run.data, "train"), run.noise, weights.detach(), run.mixer)
            check_finite(loss, "while fine-tuning the supernet during discretization")
            if run.w_opt is None:
                return
            run.w_opt.zero_grad(set_to_none=True)
            loss.backward()
            run.w_opt.step()


@dataclass
class SearchRun:
    """Everything one search run of K trials holds (a P-DARTS stage is one run).

    ``alpha`` is (K, positions, ops); ``states`` holds each trial's search state (its own "arch"
    stream); ``batch`` each trial's data and noise streams and failures. K = 1 is the loop: one
    single-trial supernet, and the ``ctx``/``state``/``data``/``noise`` of that trial."""

    ctxs: list[MethodContext]
    space: object
    model: torch.nn.Module
    alpha: torch.Tensor
    states: list[SearchState]
    mixer: Mixer | None
    batch: TrialBatch
    w_opt: torch.optim.Optimizer | None
    op_mask: torch.Tensor | None = None
    history: list[list] | None = None  # per trial
    epochs_run: int = 0
    stopped_early: bool = False
    hessian_per_epoch: list = field(default_factory=list)
    combiner_weights: list[list] = field(default_factory=list)  # per trial
    objectives: list = field(default_factory=list)
    regularizers: list = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.ctxs)

    @property
    def ctx(self) -> MethodContext:
        return self.ctxs[0]

    @property
    def state(self) -> SearchState:
        return self.states[0]

    @property
    def data(self) -> torch.Generator:
        return self.batch.data[0]

    @property
    def noise(self) -> torch.Generator:
        return self.batch.noise_generators[0]

    def masked(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.op_mask is None:
            return alpha
        return alpha.masked_fill(~self.op_mask, float("-inf"))
