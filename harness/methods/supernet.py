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
from harness.methods.state import SearchState, TrialStates
from harness.methods.training import check_finite, task_loss
from harness.methods.trial_batch import TrialBatch
from harness.spaces.ops import MixedOp, trial_weight
from harness.spaces.stacking import mixed_ops  # noqa: F401  (re-exported: the methods' one import of it)

if TYPE_CHECKING:
    from harness.methods.search import ComposedSearch

PROBE_BATCHES = 4
PROBE_SEED_OFFSET = 2  # probe batches come from the trial's eval seed + 2, their noise from + 3


def probe_seeds(ctx: MethodContext) -> tuple[int, int]:
    """(seed of a trial's probe batches, seed of their fixed noise), from its evaluation stream."""
    seed = ctx.streams.seed("eval") + PROBE_SEED_OFFSET
    return seed, seed + 1


@dataclass
class Mixer:
    """Replaces the plain weighted sum in every mixed op (installed through ``OpContext.mixer``).

    Applies, per position: op masks (P-DARTS's dropped ops), the mix hooks of perturbation
    components (only while ``state.training``), deactivation of a whole position (D-DARTS's
    ablation: identity in the sequential space, no contribution in the non-sequential one) and
    per-edge multipliers. ``mixed`` is a 1D ``MixedOp`` or a cell edge (``darts_cell.mixing.EdgeView``);
    where an edge changes the shape (a cell's stride-2 edges), its ``skip(u)`` stands for u itself
    in deactivation, extra terms and the all-masked zero.

    Over K trials ``state`` is a ``TrialStates`` and a position's weights are (K, ops): each trial's
    weight scales its block of the trial axis (dim 1), and hooks draw per trial."""

    state: SearchState | TrialStates
    hooks: tuple = ()
    op_mask: torch.Tensor | None = None
    deactivated: dict[int, str] = field(default_factory=dict)
    edge_weights: torch.Tensor | None = None

    def _owners(self, pos: int, k: int) -> list[int] | None:
        """None where every trial keeps op k at ``pos``, else the trials that keep it (a (K, positions,
        ops) mask over K trials: P-DARTS's stages drop different ops per trial)."""
        if self.op_mask is None:
            return None
        if self.op_mask.dim() == 2:
            return None if bool(self.op_mask[pos, k]) else []
        keep = self.op_mask[:, pos, k]
        return None if bool(keep.all()) else torch.nonzero(keep).flatten().tolist()

    @staticmethod
    def _term(op, name: str, u: torch.Tensor, op_ctx, pos: int, weight: torch.Tensor, state, hooks,
              owners: list[int] | None = None) -> torch.Tensor:
        """weight * op(u), with the hooks on the op's input and output; with ``owners``, the op runs
        for every trial but the hooks act on (and draw for) the owners' trial blocks only."""
        index = None if owners is None else torch.tensor(owners, device=u.device)
        hook_state = state if owners is None else state.select(owners)

        def hooked(x: torch.Tensor, method: str) -> torch.Tensor:
            applied = [hook for hook in hooks if hasattr(hook, method)]
            if not applied:
                return x
            part = x if index is None else select_blocks(x, index, weight.shape[0])
            for hook in applied:
                part = getattr(hook, method)(part, name, pos, hook_state)
            return part if index is None else replace_blocks(x, part, index, weight.shape[0])

        y = hooked(op(hooked(u, "op_input"), op_ctx), "op_output")
        return trial_weight(weight, y) * y

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
            owners = self._owners(pos, k)
            if owners is not None and not owners:
                continue
            weight = weights[k] if weights.dim() == 1 else weights[:, k]
            if owners is None:
                term = self._term(op, name, u, op_ctx, pos, weight, self.state, hooks)
            elif _holds_state(op):
                # An op with per-trial weights or statistics (a cell's pooling BatchNorm) cannot be
                # cut by trial: it runs for every trial, a trial that dropped it mixes it with weight
                # exactly 0 (softmax of -inf), and the hooks draw for the trials that keep it only.
                term = self._term(op, name, u, op_ctx, pos, weight, self.state, hooks, owners)
            else:  # some trials dropped the op: it runs for the others only (their draws, as alone)
                index = torch.tensor(owners, device=u.device)
                owner_ctx = None if op_ctx is None else op_ctx.select(owners)  # a cell's ops take no context
                part = self._term(op, name, select_blocks(u, index, weights.shape[0]), owner_ctx, pos,
                                  weights[index, k], self.state.select(owners), hooks)
                term = scatter_blocks(part, index, weights.shape[0])
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


def _holds_state(op) -> bool:
    """Whether ``op`` (or the module a cell edge calls, ``darts_cell.mixing._Call.module``) has
    parameters or buffers, i.e. per-trial state that a subset of the trial axis cannot run alone."""
    module = getattr(op, "module", op)
    return isinstance(module, torch.nn.Module) and (
        any(True for _ in module.parameters()) or any(True for _ in module.buffers()))


def select_blocks(x: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """The trial blocks ``index`` of dim 1 of ``x``, which holds K equal blocks."""
    blocks = x.reshape(x.shape[0], k, x.shape[1] // k, *x.shape[2:])
    return blocks.index_select(1, index).reshape(x.shape[0], -1, *x.shape[2:])


def replace_blocks(x: torch.Tensor, part: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` with its trial blocks ``index`` (dim 1 holds K equal blocks) replaced by ``part``."""
    blocks = x.reshape(x.shape[0], k, x.shape[1] // k, *x.shape[2:])
    new = part.reshape(part.shape[0], len(index), x.shape[1] // k, *part.shape[2:])
    return blocks.index_copy(1, index, new).reshape(x.shape)


def scatter_blocks(part: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """``part`` (trial blocks ``index``) placed into zeros of K blocks along dim 1."""
    width = part.shape[1] // len(index)
    blocks = part.reshape(part.shape[0], len(index), width, *part.shape[2:])
    full = part.new_zeros(part.shape[0], k, width, *part.shape[2:]).index_copy(1, index, blocks)
    return full.reshape(part.shape[0], k * width, *part.shape[2:])


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


# Where a diverging fine-tuning of DARTS+PT fails its trial (one trial alone, or K at once).
FINETUNE_WHERE = "while fine-tuning the supernet during discretization"


class SupernetProbe:
    """What discretization rules, early stopping and diagnostics may ask of the supernet.

    Scores use ``PROBE_BATCHES`` fixed validation batches (their own seed, derived from the
    trial's evaluation stream), the model in eval mode and deterministic relaxations."""

    def __init__(self, search: ComposedSearch, run: SearchRun) -> None:
        self.search, self.run = search, run
        self._batches: list | None = None
        self.batch_seed, self.noise_seed = probe_seeds(run.ctx)

    @property
    def batches(self) -> list:
        """Drawn when first scored: over K trials only ``genotype`` is asked of a probe."""
        if self.run.k != 1:
            raise ValueError("the supernet probe scores one trial's supernet; this run holds K > 1 trials")
        if self._batches is None:
            ctx = self.run.ctx
            gen = torch.Generator().manual_seed(self.batch_seed)
            self._batches = [ctx.task.sample(gen, "val") for _ in range(PROBE_BATCHES)]
        return self._batches

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
            check_finite(loss, FINETUNE_WHERE)
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
    epochs_run: int = 0  # epochs the batch ran (a trial that stopped early ran fewer: ``trial_epochs``)
    stopping: object | None = None  # early_stopping.TrialStopping
    frozen: dict[int, dict] = field(default_factory=dict)  # trial -> its alpha and weights when it stopped
    hessian_per_epoch: list[list[float]] = field(default_factory=list)  # per trial
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

    def trial_epochs(self, trial: int) -> tuple[int, bool]:
        """(epochs run, stopped early) of one trial."""
        stopped_at = None if self.stopping is None else self.stopping.stopped_at[trial]
        if stopped_at is None:
            return self.epochs_run, False
        return stopped_at + 1, stopped_at + 1 < self.states[trial].epochs

    def masked(self, alpha: torch.Tensor, trial: int = 0) -> torch.Tensor:
        """alpha with the ops the op mask drops at -inf; a (K, positions, ops) mask holds one mask
        per trial, and one trial's (positions, ops) alpha takes trial ``trial``'s."""
        if self.op_mask is None:
            return alpha
        mask = self.op_mask[trial] if self.op_mask.dim() == 3 and alpha.dim() == 2 else self.op_mask
        return alpha.masked_fill(~mask, float("-inf"))
