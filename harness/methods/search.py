"""ComposedSearch: the one differentiable-search loop that every method preset configures.

Plain DARTS / DAS ([001] M03, METHODS.md §0) is the default composition: softmax relaxation,
first-order estimator, argmax discretization, no regularizer, perturbation or early stop.
A method changes only the components it names (docs/method_components.md):

* each step: one weight step on a fresh training batch, with mixing weights from the
  (possibly perturbed, possibly sampled) relaxation of alpha and the mix hooks active;
  then, unless alpha is in warm-up, one alpha step on a fresh validation batch: the
  estimator's gradient, scaled and combined with regularizer penalties, optional extra
  objectives (combined by a multi-objective combiner) and the D-DARTS ablation term;
* each epoch: alpha snapshot, optional Hessian diagnostics and the early-stopping check;
* at the end: one-shot validation PSNR of the supernet, the dominant Hessian eigenvalue of
  the validation loss w.r.t. alpha, and the genotype from the discretization rule.

Random draws of components use the trial's "arch" stream, so plain DAS (which draws none)
gives exactly the numbers it gave before components existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.methods.base import SearchOutcome
from harness.methods.checkpoint import generator_states, restore_generators, to_cpu
from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.discretization import ArgmaxDiscretization
from harness.methods.early_stopping import TrialStopping
from harness.methods.estimators import FirstOrder
from harness.methods.relaxation import SoftmaxRelaxation
from harness.methods.schedules import alpha_lr_factor, cosine, natural_exp_cosine, param_lr_factor
from harness.methods.search_finish import SearchFinish
from harness.methods.search_steps import SearchSteps
from harness.methods.state import SearchState, TrialStates
from harness.methods.supernet import Mixer, SearchRun, SupernetProbe, evaluating
from harness.methods.training import (
    make_weight_optimizer,
    set_lr,
)
from harness.methods.trial_batch import TrialBatch
from harness.spaces import PARAMETER_FREE_OPS
from harness.spaces.trial_axis import trial_slices

ALPHA_INIT_SCALE = 1e-3  # alpha ~ 1e-3 * N(0, 1), as in DARTS
PARAM_LR_SCHEDULES = ("constant", "cosine", "natural-exp-cosine")
HESSIAN_MODES = ("none", "end", "epochs")
# What a search checkpoint holds; one of another layout is not resumed (the search starts over).
# 2: early stopping, frozen trials and per-epoch eigenvalues per trial.
CHECKPOINT_LAYOUT = 2


def alpha_optimizer(alpha: torch.Tensor, hp) -> torch.optim.Optimizer:
    """The hyperparameter set's alpha optimizer: Adam with DARTS's betas (0.5, 0.999), or plain SGD.
    Both act elementwise, so one optimizer over K stacked trials' alphas is K independent ones."""
    if hp.alpha_optimizer == "adam":
        return torch.optim.Adam([alpha], lr=hp.alpha_lr, betas=(0.5, 0.999), weight_decay=hp.alpha_weight_decay)
    return torch.optim.SGD([alpha], lr=hp.alpha_lr, weight_decay=hp.alpha_weight_decay)


@dataclass
class ComposedSearch(SearchSteps, SearchFinish):
    """A differentiable-search method as a composition of components (see module docstring)."""

    name: str = "darts"
    entry: str = "M01"
    spaces: tuple[str, ...] = ("sequential", "nonsequential")
    description: str = "DARTS, first order"
    # Non-empty for presets whose mechanism the 1D problems cannot exercise: what it needs.
    needs: str = ""
    relaxation: object = field(default_factory=SoftmaxRelaxation)
    estimator: object = field(default_factory=FirstOrder)
    regularizers: tuple = ()
    weight_perturbation: object | None = None
    mix_hooks: tuple = ()
    discretization: object = field(default_factory=ArgmaxDiscretization)
    early_stopping: object | None = None
    # Extra objectives for a multi-objective combiner (E2RNAS): alpha-only penalties whose
    # gradients are combined with the validation-loss gradient instead of added to it.
    combiner: object | None = None
    objective_penalties: tuple = ()
    # E2RNAS's adversarial objective in 1D: validation loss on an FGSM-perturbed measurement.
    adversarial_epsilon: float | None = None
    # D-DARTS ablation loss weight (w_AB); 0 disables it.
    ablation_weight: float = 0.0
    param_lr_schedule: str = "constant"
    param_lr_min_factor: float = 0.0
    weight_decay_factor: float = 1.0  # R-DARTS's increased L2 (factors 1, 3, 9, 27, 81)
    weight_steps_per_alpha_step: int = 1  # iDARTS takes several weight steps per alpha step
    # DAS-single: pre-train the all-lgd and all-net networks, freeze them, search alpha only.
    pretrained_ops: bool = False
    pretrain_epochs: int | None = None  # None: the trial's epochs
    # DARTOpti: start alpha from a hand-designed genotype (every position this op).
    init_op: str | None = None
    init_value: float = 1.0
    hessian: str = "end"
    hessian_iterations: int = 20
    default_hp_set: str = "H1"

    def __post_init__(self) -> None:
        if self.param_lr_schedule not in PARAM_LR_SCHEDULES:
            raise ValueError(f"param_lr_schedule must be one of {PARAM_LR_SCHEDULES}, got {self.param_lr_schedule!r}")
        if self.hessian not in HESSIAN_MODES:
            raise ValueError(f"hessian must be one of {HESSIAN_MODES}, got {self.hessian!r}")
        if self.weight_steps_per_alpha_step < 1:
            raise ValueError("weight_steps_per_alpha_step must be >= 1")

    # ----------------------------------------------------------------------------- search
    def search(self, ctx: MethodContext) -> SearchOutcome:
        ((outcome, failure),) = self.search_trials([ctx])
        if failure:
            raise TrialDiverged(failure)
        return outcome

    def search_trials(self, ctxs: list[MethodContext]) -> list[tuple[SearchOutcome | None, str]]:
        """The search of every trial in ``ctxs`` (one row, different seeds) as one computation:
        per trial its outcome, or its failure reason."""
        if self.needs:
            raise ValueError(f"method {self.name!r} cannot run on the 1D problems: it needs {self.needs}")
        ctx = ctxs[0]
        run = self.start(ctxs, ctx.space, ctx.epochs)
        self.optimize(run, ctx.epochs)
        return self.finish(run)

    def trial_axis_reason(self, space) -> str:
        """Empty when several trials of this method run as one computation on ``space``, else why
        each trial runs alone (K = 1 of the same engine): a space without the trial axis. A
        component that cannot act per trial on some space overrides this with its reason."""
        if "trial-axis" not in getattr(space, "capabilities", ()):
            return f"space {getattr(space, 'name', space)!r} has no trial axis"
        return ""

    def start(
        self, ctxs: list[MethodContext], space, epochs: int, op_mask: torch.Tensor | None = None,
        hooks: tuple | None = None,
    ) -> SearchRun:
        ctx, k = ctxs[0], len(ctxs)
        if k > 1 and self.trial_axis_reason(space):
            raise ValueError(f"{self.name}: {self.trial_axis_reason(space)}")
        supernets, alphas = [], []
        for c in ctxs:
            with c.streams.seeded_init("init"):
                supernets.append(space.supernet(c.ops, c.op_config))
                alphas.append(ALPHA_INIT_SCALE * torch.randn(space.n_positions, len(c.ops)))
        model = (supernets[0] if k == 1 else space.stack_supernets(supernets, ctx.op_config)).to(ctx.device)
        alpha = torch.stack(alphas).to(ctx.device)
        if self.init_op is not None:
            if self.init_op not in ctx.ops:
                raise ValueError(f"init_op {self.init_op!r} is not a candidate op ({', '.join(ctx.ops)})")
            alpha[:, :, ctx.ops.index(self.init_op)] += self.init_value
        alpha.requires_grad_(True)
        parameter_free = torch.tensor([op in PARAMETER_FREE_OPS for op in ctx.ops], device=ctx.device)
        states = [
            SearchState(epochs=epochs, steps_per_epoch=ctx.task.batches_per_epoch,
                        generator=c.streams.generator("arch"), ops=tuple(ctx.ops),
                        parameter_free=parameter_free, space=space, device=ctx.device)
            for c in ctxs
        ]
        pretrain_failures = self._load_pretrained(model, ctxs, space) if self.pretrained_ops else []
        weights = [p for p in model.parameters() if p.requires_grad]
        w_opt = None
        if weights:
            hp = ctx.hp
            w_opt = make_weight_optimizer(weights, hp.param_optimizer, hp.param_lr,
                                          hp.param_weight_decay * self.weight_decay_factor, hp.param_momentum)
        # The mixer is the seam for hooks, masks and deactivation. K trials without any keep the
        # fused weighted sum of their mixed ops.
        hooks = tuple(self.mix_hooks if hooks is None else hooks)
        mixer = None
        if k == 1:
            mixer = Mixer(states[0], hooks, op_mask)
        elif hooks or op_mask is not None or self.ablation_weight:
            mixer = Mixer(TrialStates(states), hooks, op_mask)

        # Objectives and penalties that depend on the trial (per-op costs need problem and op sizes).
        def built(components):
            return [c.build(ctx, space) if hasattr(c, "build") else c for c in components]

        run = SearchRun(
            objectives=built(self.objective_penalties),
            regularizers=built(self.regularizers),
            ctxs=list(ctxs),
            space=space,
            model=model,
            alpha=alpha,
            states=states,
            mixer=mixer,
            batch=TrialBatch(ctxs),
            w_opt=w_opt,
            op_mask=op_mask,
            history=[[a.detach().cpu().tolist()] for a in alpha] if ctx.record_alpha_history else None,
            combiner_weights=[[] for _ in ctxs],
            hessian_per_epoch=[[] for _ in ctxs],
        )
        for t, reason in enumerate(pretrain_failures):  # a trial whose pre-training diverged fails alone
            if reason:
                run.batch.failures.fail([t], reason)
        return run

    def _param_lr(self, epoch: int, epochs: int, ctx: MethodContext) -> float:
        hp = ctx.hp
        lr = hp.param_lr * param_lr_factor(epoch, hp.param_warmup, hp.warmup_epochs)
        # The floor: the preset's factor of the set's lr, or the set's own minimum (DARTS-CIFAR: 0.001).
        low = max(self.param_lr_min_factor, hp.param_lr_min / hp.param_lr)
        if self.param_lr_schedule == "cosine":
            lr *= cosine(epoch / max(epochs, 1), 1.0, low)
        elif self.param_lr_schedule == "natural-exp-cosine":
            lr *= natural_exp_cosine(epoch / max(epochs, 1), 1.0, low)
        return lr

    def optimize(self, run: SearchRun, epochs: int) -> None:
        ctx, model, alpha, failures = run.ctx, run.model, run.alpha, run.batch.failures
        task, hp = ctx.task, ctx.hp
        a_opt = alpha_optimizer(alpha, ctx.hp)
        weights = [p for p in model.parameters() if p.requires_grad]
        probe = SupernetProbe(self, run)
        if self.early_stopping is not None:
            run.stopping = TrialStopping(self.early_stopping, run.k)
        if self.pretrained_ops:
            model.eval()  # frozen, pre-trained ops keep their BatchNorm statistics
        else:
            model.train()
        steps = task.batches_per_epoch
        checkpoint = ctx.checkpoint
        phase = checkpoint.phase("search") if checkpoint is not None else None
        first = self._restore(run, a_opt, checkpoint.resume(phase)) if checkpoint is not None else 0
        for epoch in range(first, epochs):
            for state in run.states:
                state.epoch = epoch
            if run.w_opt is not None:
                set_lr(run.w_opt, self._param_lr(epoch, epochs, ctx))
            a_factor = alpha_lr_factor(
                epoch, epochs, hp.alpha_warmup, hp.warmup_epochs, hp.alpha_scheduler, hp.linear_end_factor
            )
            set_lr(a_opt, hp.alpha_lr * a_factor)
            for step in range(steps):
                for state in run.states:
                    state.step = step
                batch = self._weight_step(run, weights, epoch, step) if run.w_opt is not None else None
                if not failures.any_alive:
                    return
                if a_factor == 0.0 or (step + 1) % self.weight_steps_per_alpha_step:
                    continue
                grad = self._alpha_gradient(run, weights, batch)
                self._fail_non_finite(run, grad, f"in search (alpha step), epoch {epoch} step {step}")
                if not failures.any_alive:
                    return
                a_opt.zero_grad(set_to_none=True)
                alpha.grad = torch.where(failures.active.view(-1, 1, 1), grad, torch.zeros_like(grad))
                a_opt.step()
            run.epochs_run = epoch + 1
            live = torch.nonzero(failures.active).flatten().tolist()
            snapshots = alpha.detach().clone()
            for t in live:
                run.states[t].alpha_history.append(snapshots[t])
                if run.history is not None:
                    run.history[t].append(snapshots[t].cpu().tolist())
            if self.hessian == "epochs":
                values = self._eigenvalues(run, snapshots)
                for t in live:
                    run.hessian_per_epoch[t].append(values[t])
            if run.stopping is not None:
                self._observe_stopping(run, epoch, snapshots, probe, live)
            stop = not failures.any_alive  # every trial stopped early (or failed)
            if checkpoint is not None:
                last = stop or epoch + 1 == epochs
                checkpoint.save(phase, self._checkpoint_state(run, a_opt, epoch, stop), final=last)
            if stop:
                break

    def _observe_stopping(self, run: SearchRun, epoch: int, snapshots: torch.Tensor, probe, live: list[int]) -> None:
        """The early-stopping rule of every live trial; a trial that stops keeps its weights and
        alpha of this epoch (``run.frozen``) and leaves the batch: its batch mates go on."""
        rule = run.stopping.rules[0]

        def eigenvalues(alphas: torch.Tensor, generators: list) -> list[float]:
            return self._eigenvalues(run, alphas, rule.method, rule.iterations, generators)

        with evaluating(run.model, run.state):
            stopped = run.stopping.observe(epoch, snapshots, run.states, probe, live, eigenvalues)
        if run.k > 1:
            for t in stopped:
                run.frozen[t] = {"alpha": snapshots[t], "model": trial_slices(run.model, run.k, t)}
        run.batch.failures.stop(stopped)

    @staticmethod
    def _fail_non_finite(run: SearchRun, grad: torch.Tensor, where: str) -> None:
        failures = run.batch.failures
        bad = ~torch.isfinite(grad).flatten(1).all(dim=1) & failures.active
        for t in torch.nonzero(bad).flatten().tolist():
            failures.fail([t], f"diverged: non-finite loss ({float(grad[t].sum())}) {where}")

    # Everything the next epoch of a search depends on (harness.methods.checkpoint). Component
    # state beyond this is a function of the epoch and the streams, except early stopping's.
    def _checkpoint_state(self, run: SearchRun, a_opt, epoch: int, stopped: bool) -> dict:
        return to_cpu({
            "layout": CHECKPOINT_LAYOUT, "trials": run.k, "epoch": epoch, "stopped": stopped,
            "model": run.model.state_dict(),
            "alpha": run.alpha.detach(), "w_opt": run.w_opt.state_dict() if run.w_opt is not None else None,
            "a_opt": a_opt.state_dict(), "batch_generators": run.batch.generator_states(),
            "arch_generators": generator_states({str(t): s.generator for t, s in enumerate(run.states)}),
            "failures": run.batch.failures.state(), "history": run.history,
            "alpha_history": [list(s.alpha_history) for s in run.states], "epochs_run": run.epochs_run,
            "hessian_per_epoch": [list(h) for h in run.hessian_per_epoch],
            "combiner_weights": [list(w) for w in run.combiner_weights],
            "stopping": run.stopping.state() if run.stopping is not None else None, "frozen": dict(run.frozen),
        })

    def _restore(self, run: SearchRun, a_opt, saved: dict | None) -> int:
        """Load a checkpointed epoch into ``run``; the first epoch still to run (0 without one, or
        with a checkpoint of another layout, e.g. written before early stopping was per trial)."""
        if saved is None or saved.get("trials") != run.k or saved.get("layout") != CHECKPOINT_LAYOUT:
            return 0
        device = run.alpha.device
        run.model.load_state_dict(saved["model"])
        with torch.no_grad():
            run.alpha.copy_(saved["alpha"].to(device))
        if run.w_opt is not None:
            run.w_opt.load_state_dict(saved["w_opt"])
        a_opt.load_state_dict(saved["a_opt"])
        run.batch.restore_generators(saved["batch_generators"])
        restore_generators({str(t): s.generator for t, s in enumerate(run.states)}, saved["arch_generators"])
        run.batch.failures.load(saved["failures"])
        run.history = saved["history"]
        for state, history in zip(run.states, saved["alpha_history"]):
            state.alpha_history = [a.to(device) for a in history]
            state.epoch = saved["epoch"]
        run.epochs_run, run.frozen = saved["epochs_run"], saved.get("frozen", {})
        run.hessian_per_epoch, run.combiner_weights = saved["hessian_per_epoch"], saved["combiner_weights"]
        if run.stopping is not None and saved.get("stopping") is not None:
            run.stopping.load(saved["stopping"])
        return run.states[0].epochs if saved["stopped"] else saved["epoch"] + 1
