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

import copy
import math
from dataclasses import dataclass, field

import torch

from harness.methods.base import SearchOutcome
from harness.methods.checkpoint import generator_states, restore_generators, to_cpu
from harness.methods.context import MethodContext
from harness.methods.discretization import ArgmaxDiscretization, PerturbationSelection
from harness.methods.estimators import FirstOrder
from harness.methods.relaxation import SoftmaxRelaxation
from harness.methods.schedules import alpha_lr_factor, cosine, natural_exp_cosine, param_lr_factor
from harness.methods.state import SearchState
from harness.methods.supernet import Mixer, SearchRun, SupernetProbe, evaluating, mixed_ops
from harness.methods.training import (
    check_finite,
    clip_gradients,
    evaluate_metrics,
    make_weight_optimizer,
    set_lr,
    task_loss,
    train_network,
)
from harness.spaces import PARAMETER_FREE_OPS
from harness.tasks.base import Batch

ALPHA_INIT_SCALE = 1e-3  # alpha ~ 1e-3 * N(0, 1), as in DARTS
INHERITED_PREFIX = "inherited_"  # one-shot metrics of the derived genotype with the supernet's weights
PARAM_LR_SCHEDULES = ("constant", "cosine", "natural-exp-cosine")
HESSIAN_MODES = ("none", "end", "epochs")


def alpha_optimizer(alpha: torch.Tensor, hp) -> torch.optim.Optimizer:
    """The hyperparameter set's alpha optimizer: Adam with DARTS's betas (0.5, 0.999), or plain SGD.
    Both act elementwise, so one optimizer over K stacked trials' alphas is K independent ones."""
    if hp.alpha_optimizer == "adam":
        return torch.optim.Adam([alpha], lr=hp.alpha_lr, betas=(0.5, 0.999), weight_decay=hp.alpha_weight_decay)
    return torch.optim.SGD([alpha], lr=hp.alpha_lr, weight_decay=hp.alpha_weight_decay)


@dataclass
class ComposedSearch:
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
        if self.needs:
            raise ValueError(f"method {self.name!r} cannot run on the 1D problems: it needs {self.needs}")
        run = self.start(ctx, ctx.space, ctx.epochs)
        self.optimize(run, ctx.epochs)
        return self.finish(run)

    def start(
        self, ctx: MethodContext, space, epochs: int, op_mask: torch.Tensor | None = None, hooks: tuple | None = None
    ) -> SearchRun:
        streams = ctx.streams
        with streams.seeded_init("init"):
            model = space.supernet(ctx.ops, ctx.op_config).to(ctx.device)
            alpha = (ALPHA_INIT_SCALE * torch.randn(space.n_positions, len(ctx.ops))).to(ctx.device)
        if self.init_op is not None:
            if self.init_op not in ctx.ops:
                raise ValueError(f"init_op {self.init_op!r} is not a candidate op ({', '.join(ctx.ops)})")
            alpha[:, ctx.ops.index(self.init_op)] += self.init_value
        alpha.requires_grad_(True)
        state = SearchState(
            epochs=epochs,
            steps_per_epoch=ctx.task.batches_per_epoch,
            generator=streams.generator("arch"),
            ops=tuple(ctx.ops),
            parameter_free=torch.tensor([op in PARAMETER_FREE_OPS for op in ctx.ops], device=ctx.device),
            space=space,
            device=ctx.device,
        )
        if self.pretrained_ops:
            self._load_pretrained(model, ctx, space)
        weights = [p for p in model.parameters() if p.requires_grad]
        w_opt = None
        if weights:
            hp = ctx.hp
            w_opt = make_weight_optimizer(weights, hp.param_optimizer, hp.param_lr,
                                          hp.param_weight_decay * self.weight_decay_factor, hp.param_momentum)
        mixer = Mixer(state, tuple(self.mix_hooks if hooks is None else hooks), op_mask)
        # Objectives and penalties that depend on the trial (per-op costs need problem and op sizes).
        def built(components):
            return [c.build(ctx, space) if hasattr(c, "build") else c for c in components]

        return SearchRun(
            objectives=built(self.objective_penalties),
            regularizers=built(self.regularizers),
            ctx=ctx,
            space=space,
            model=model,
            alpha=alpha,
            state=state,
            mixer=mixer,
            data=streams.generator("data"),
            noise=streams.generator("noise_op"),
            w_opt=w_opt,
            op_mask=op_mask,
            history=[alpha.detach().cpu().tolist()] if ctx.record_alpha_history else None,
        )

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
        ctx, state, model, alpha = run.ctx, run.state, run.model, run.alpha
        task, hp = ctx.task, ctx.hp
        a_opt = alpha_optimizer(alpha, ctx.hp)
        weights = [p for p in model.parameters() if p.requires_grad]
        probe = SupernetProbe(self, run)
        if self.early_stopping is not None:
            self.early_stopping.reset()
        if self.pretrained_ops:
            model.eval()  # frozen, pre-trained ops keep their BatchNorm statistics
        else:
            model.train()
        steps = task.batches_per_epoch
        checkpoint = ctx.checkpoint
        phase = checkpoint.phase("search") if checkpoint is not None else None
        first = self._restore(run, a_opt, checkpoint.resume(phase)) if checkpoint is not None else 0
        for epoch in range(first, epochs):
            state.epoch = epoch
            if run.w_opt is not None:
                set_lr(run.w_opt, self._param_lr(epoch, epochs, ctx))
            a_factor = alpha_lr_factor(
                epoch, epochs, hp.alpha_warmup, hp.warmup_epochs, hp.alpha_scheduler, hp.linear_end_factor
            )
            set_lr(a_opt, hp.alpha_lr * a_factor)
            for step in range(steps):
                state.step = step
                batch = self._weight_step(run, weights, epoch, step) if run.w_opt is not None else None
                if a_factor == 0.0 or (step + 1) % self.weight_steps_per_alpha_step:
                    continue
                grad = self._alpha_gradient(run, weights, batch)
                if not torch.isfinite(grad).all():
                    check_finite(grad.sum(), f"in search (alpha step), epoch {epoch} step {step}")
                a_opt.zero_grad(set_to_none=True)
                alpha.grad = grad
                a_opt.step()
            run.epochs_run = epoch + 1
            snapshot = alpha.detach().clone()
            state.alpha_history.append(snapshot)
            if run.history is not None:
                run.history.append(snapshot.cpu().tolist())
            if self.hessian == "epochs":
                run.hessian_per_epoch.append(self._dominant_eigenvalue(probe, snapshot, state))
            stop = False
            if self.early_stopping is not None:
                with evaluating(model, state):
                    stop = self.early_stopping.observe(epoch, snapshot, state, probe)
                run.stopped_early = stop and epoch + 1 < epochs
            if checkpoint is not None:
                last = stop or epoch + 1 == epochs
                checkpoint.save(phase, self._checkpoint_state(run, a_opt, epoch, stop), final=last)
            if stop:
                break

    # Everything the next epoch of a search depends on (harness.methods.checkpoint). Component
    # state beyond this is a function of the epoch and the streams, except early stopping's.
    def _checkpoint_state(self, run: SearchRun, a_opt, epoch: int, stopped: bool) -> dict:
        state = run.state
        return to_cpu({
            "epoch": epoch, "stopped": stopped, "model": run.model.state_dict(), "alpha": run.alpha.detach(),
            "w_opt": run.w_opt.state_dict() if run.w_opt is not None else None, "a_opt": a_opt.state_dict(),
            "generators": generator_states({"data": run.data, "noise": run.noise, "arch": state.generator}),
            "history": run.history, "alpha_history": list(state.alpha_history), "epochs_run": run.epochs_run,
            "stopped_early": run.stopped_early, "hessian_per_epoch": list(run.hessian_per_epoch),
            "combiner_weights": list(run.combiner_weights),
            "early_stopping": copy.deepcopy(vars(self.early_stopping)) if self.early_stopping is not None else None,
        })

    def _restore(self, run: SearchRun, a_opt, saved: dict | None) -> int:
        """Load a checkpointed epoch into ``run``; the first epoch still to run (0 without one)."""
        if saved is None:
            return 0
        device = run.alpha.device
        run.model.load_state_dict(saved["model"])
        with torch.no_grad():
            run.alpha.copy_(saved["alpha"].to(device))
        if run.w_opt is not None:
            run.w_opt.load_state_dict(saved["w_opt"])
        a_opt.load_state_dict(saved["a_opt"])
        restore_generators({"data": run.data, "noise": run.noise, "arch": run.state.generator}, saved["generators"])
        run.history = saved["history"]
        run.state.alpha_history = [a.to(device) for a in saved["alpha_history"]]
        run.epochs_run, run.stopped_early = saved["epochs_run"], saved["stopped_early"]
        run.hessian_per_epoch, run.combiner_weights = saved["hessian_per_epoch"], saved["combiner_weights"]
        if self.early_stopping is not None and saved["early_stopping"] is not None:
            vars(self.early_stopping).update(saved["early_stopping"])
        run.state.epoch = saved["epoch"]
        return run.state.epochs if saved["stopped"] else saved["epoch"] + 1

    def _loss(self, run: SearchRun, alpha_for_mix: torch.Tensor, batch) -> torch.Tensor:
        weights = self.relaxation.weights(run.masked(alpha_for_mix), run.state)
        return task_loss(run.model, run.ctx.task, batch, run.noise, weights, run.mixer)

    def _weight_step(self, run: SearchRun, weights: list, epoch: int, step: int) -> tuple:
        """One weight step on a fresh training batch; returns the batch (the alpha step's L_train)."""
        batch = run.ctx.task.sample(run.data, "train")
        mix_alpha = run.alpha.detach()
        if self.weight_perturbation is not None:
            replay = self._replayer(run)

            def train_loss(a):
                replay()
                return self._loss(run, a, batch)

            mix_alpha = self.weight_perturbation.perturb(mix_alpha, train_loss, run.state)
            replay()
        loss = self._loss(run, mix_alpha.detach(), batch)
        check_finite(loss, f"in search (weight step), epoch {epoch} step {step}")
        run.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(weights, run.ctx.hp.grad_clip)
        run.w_opt.step()
        return batch

    @staticmethod
    def _replayer(run: SearchRun):
        """Every loss evaluation of one step must see the same random draws (relaxation
        samples, perturbations, the noise op's noise): finite differences and PGD compare
        losses, and fresh noise in each would swamp the differences."""
        saved = [(g, g.get_state()) for g in (run.state.generator, run.noise) if g is not None]

        def replay() -> None:
            for generator, snapshot in saved:
                generator.set_state(snapshot)

        return replay

    def _alpha_gradient(self, run: SearchRun, weights: list, batch: tuple | None) -> torch.Tensor:
        """L_train uses the weight step's batch (as DARTS does); L_val a fresh validation batch."""
        ctx, state, alpha = run.ctx, run.state, run.alpha
        train_batch = batch if batch is not None else ctx.task.sample(run.data, "train")
        val_batch = ctx.task.sample(run.data, "val")
        replay = self._replayer(run)

        def train_loss(a, b=train_batch):
            replay()
            return self._loss(run, a, b)

        def val_loss(a, b=val_batch):
            replay()
            return self._loss(run, a, b)

        xi = ctx.hp.param_lr
        grad = self.estimator.alpha_gradient(alpha, weights, train_loss, val_loss, xi, state)
        for reg in run.regularizers:
            grad = grad * getattr(reg, "loss_scale", 1.0)
        if self.combiner is not None:
            grads = [grad]
            if self.adversarial_epsilon is not None:
                grads.append(self._adversarial_gradient(run, weights, train_loss, val_batch, xi, replay))
            for objective in run.objectives:
                a = alpha.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(objective.penalty(a, state), [a])
                grads.append(g)
            grad, gammas = self.combiner.combine(grads)
            run.combiner_weights.append([float(g) for g in gammas])
        if run.regularizers:
            a = alpha.detach().requires_grad_(True)
            penalty = sum(reg.penalty(a, state) for reg in run.regularizers)
            (g,) = torch.autograd.grad(penalty, [a], allow_unused=True)
            if g is not None:
                grad = grad + g
        if self.ablation_weight:
            grad = grad + self.ablation_weight * self._ablation_gradient(run, val_batch, replay)
        return grad.detach()

    def _adversarial_gradient(self, run, weights, train_loss, val_batch: Batch, xi, replay) -> torch.Tensor:
        from harness.methods.perturbations import fgsm_measurement

        def loss_of_input(inputs):
            replay()
            return self._loss(run, run.alpha.detach(), Batch(inputs, val_batch.targets))

        adversarial = Batch(fgsm_measurement(val_batch.inputs, loss_of_input, self.adversarial_epsilon),
                            val_batch.targets)

        def adv_val_loss(a):
            replay()
            return self._loss(run, a, adversarial)

        return self.estimator.alpha_gradient(run.alpha, weights, train_loss, adv_val_loss, xi, run.state)

    def _ablation_gradient(self, run: SearchRun, val_batch: Batch, replay) -> torch.Tensor:
        """Gradient rows of D-DARTS's ablation loss ([002] Eqs 4.2-4.5), row i from cell i's own loss.

        M_i = L(C) - L(C without cell i), L_AB^i = (M_i - mean M) / mean M. Cell i is
        deactivated (identity in the sequential space, removed edge otherwise), so L(C without i)
        does not depend on alpha_i and d L_AB^i / d alpha_i = g_i / m - M_i * s_i / (n m^2),
        with g = grad L(C), s = grad sum_j M_j and m = mean M: two backward passes, not n.
        Each of the 10 layers of the sequential space is a "cell" (METHODS.md M45, CPU note)."""
        a = run.alpha.detach().requires_grad_(True)
        n = a.shape[0]
        mode = "identity" if "layers" in getattr(run.space, "capabilities", ()) else "zero"
        full = self._replayed_loss(run, a, val_batch, replay)
        contributions = []
        for i in range(n):
            run.mixer.deactivated = {i: mode}
            try:
                contributions.append(full - self._replayed_loss(run, a, val_batch, replay))
            finally:
                run.mixer.deactivated = {}
        m_all = torch.stack(contributions)
        mean = m_all.mean()
        if abs(float(mean.detach())) < 1e-12:
            return torch.zeros_like(a)
        g_full, g_sum = (
            torch.autograd.grad(full, [a], retain_graph=True)[0],
            torch.autograd.grad(m_all.sum(), [a])[0],
        )
        m_det = m_all.detach().unsqueeze(1)
        return g_full / mean.detach() - m_det * g_sum / (n * mean.detach() ** 2)

    def _replayed_loss(self, run, a, batch: Batch, replay) -> torch.Tensor:
        replay()
        return self._loss(run, a, batch)

    def _dominant_eigenvalue(self, probe: SupernetProbe, alpha: torch.Tensor, state: SearchState) -> float:
        from harness.methods.hessian import dominant_eigenvalue

        # The power iteration's start vector has its own fixed seed: diagnostics must not
        # advance the trial's streams (a run with diagnostics equals one without).
        gen = torch.Generator().manual_seed(12345 + state.epoch)
        try:
            return float(
                dominant_eigenvalue(
                    probe.val_loss, alpha.detach(), method="auto", iterations=self.hessian_iterations, generator=gen
                )
            )
        except (RuntimeError, ValueError):
            return math.nan

    # ----------------------------------------------------------------------------- finish
    def finish(self, run: SearchRun) -> SearchOutcome:
        ctx, state = run.ctx, run.state
        rollback = getattr(self.early_stopping, "rollback_alpha", None) if self.early_stopping else None
        final = (rollback if rollback is not None else run.alpha).detach()
        if not torch.isfinite(final).all():
            check_finite(final.sum(), "in the final architecture parameters")
        with evaluating(run.model, state):
            mix = self.relaxation.weights(run.masked(final), None)
            oneshot_metrics = evaluate_metrics(run.model, ctx, mix, run.mixer)
        probe = SupernetProbe(self, run)
        extra: dict = {"epochs_run": run.epochs_run, "stopped_early": run.stopped_early}
        if self.hessian != "none":
            extra["hessian_eigenvalue"] = self._dominant_eigenvalue(probe, final, state)
        if run.hessian_per_epoch:
            extra["hessian_eigenvalue_per_epoch"] = run.hessian_per_epoch
        if self.early_stopping is not None:
            extra["early_stopping_signal"] = [float(v) for v in self.early_stopping.signal]
        if run.combiner_weights:
            extra["combiner_weights_mean"] = torch.tensor(run.combiner_weights).mean(0).tolist()
        probs = self.relaxation.probabilities(run.masked(final))
        if isinstance(self.discretization, PerturbationSelection):
            genotype = self.discretization.genotype(run.space, probs, ctx.ops, probe)
        else:
            genotype = self.discretization.genotype(run.space, probs, ctx.ops)
        if "genotype-mask" in getattr(run.space, "capabilities", ()):
            # The derived architecture inside the supernet, with the supernet's weights (issue 12).
            with evaluating(run.model, state):
                mask = run.space.genotype_weights(genotype, ctx.ops).to(final.device)
                inherited = evaluate_metrics(run.model, ctx, mask, run.mixer)
            oneshot_metrics.update({f"{INHERITED_PREFIX}{k}": v for k, v in inherited.items()})
        return SearchOutcome(
            genotype=genotype,
            oneshot_score=oneshot_metrics[ctx.task.primary],
            oneshot_metrics=oneshot_metrics,
            final_alphas=final.cpu().tolist(),
            alpha_history=run.history,
            extra=extra,
        )

    # ------------------------------------------------------------------------- DAS-single
    def _load_pretrained(self, model, ctx: MethodContext, space) -> None:
        """[001] §5.4: train the all-lgd and all-net networks, copy their layers into the
        supernet's lgd / net candidates and freeze every weight (roll and noise have none)."""
        if "layers" not in getattr(space, "capabilities", ()):
            raise ValueError("DAS-single's pre-trained ops are defined for a space of layers (the sequential one) only")
        epochs = ctx.epochs if self.pretrain_epochs is None else int(self.pretrain_epochs)
        targets = mixed_ops(model)
        for index, op in enumerate(("lgd", "net")):
            if op not in ctx.ops:
                continue
            child = ctx.streams.child(index)
            with child.seeded_init("retrain_init"):
                network = space.network(space.uniform_genotype(op), ctx.op_config).to(ctx.device)
            sub_ctx = MethodContext(**{**ctx.__dict__, "epochs": epochs, "streams": child})
            train_network(network, sub_ctx, child.generator("retrain_data"), child.generator("noise_op"), split="train")
            k = ctx.ops.index(op)
            for target, source in zip(targets, mixed_ops(network)):
                target.ops[k].load_state_dict(source.ops[0].state_dict())
        for p in model.parameters():
            p.requires_grad_(False)
