"""The steps of ``ComposedSearch`` over K trials: mixing weights, losses, the weight step and the
architecture gradient with its per-trial penalties, objectives and combination (split from
``search.py``; a mixin, the fields it reads are ComposedSearch's)."""

from __future__ import annotations

import torch

from harness.methods.supernet import SearchRun
from harness.methods.training import clip_gradients
from harness.tasks.base import Batch


class SearchSteps:
    def _mixing_weights(self, run: SearchRun, alpha: torch.Tensor, states: list | None) -> torch.Tensor:
        """The relaxation's weights of every trial: (positions, ops) for one trial, else (K, positions, ops).
        Each trial's weights come from its own state (its own random draws)."""
        if run.k == 1:
            return self.relaxation.weights(run.masked(alpha[0]), None if states is None else states[0])
        return torch.stack([self.relaxation.weights(run.masked(a, t), None if states is None else s)
                            for t, (a, s) in enumerate(zip(alpha, states or [None] * run.k))])

    def _loss(self, run: SearchRun, alpha_for_mix: torch.Tensor, batch, where: str = "") -> torch.Tensor:
        """The summed loss of the live trials with mixing weights from ``alpha_for_mix`` (K, positions, ops)."""
        weights = self._mixing_weights(run, alpha_for_mix, run.states)
        return run.batch.loss(run.model, batch, weights, run.mixer, where)

    def _weight_step(self, run: SearchRun, weights: list, epoch: int, step: int):
        """One weight step on a fresh training batch; returns the batch (the alpha step's L_train)."""
        batch = run.batch.sample("train")
        mix_alpha = run.alpha.detach()
        if self.weight_perturbation is not None:
            replay = self._replayer(run)

            def train_loss(a):
                replay()
                return self._loss(run, a, batch)

            mix_alpha = self.weight_perturbation.perturb(mix_alpha, train_loss, run.states)
            replay()
        loss = self._loss(run, mix_alpha.detach(), batch, f"in search (weight step), epoch {epoch} step {step}")
        if not run.batch.failures.any_alive:
            return batch
        run.w_opt.zero_grad(set_to_none=True)
        loss.backward()
        if run.k == 1:
            clip_gradients(weights, run.ctx.hp.grad_clip)
        else:
            run.space.clip_stacked(run.model, run.ctx.hp.grad_clip)
        run.w_opt.step()
        return batch

    @staticmethod
    def _replayer(run: SearchRun):
        """Every loss evaluation of one step must see the same random draws (relaxation
        samples, perturbations, the noise op's noise): finite differences and PGD compare
        losses, and fresh noise in each would swamp the differences."""
        generators = [s.generator for s in run.states] + list(run.batch.noise_generators)
        saved = [(g, g.get_state()) for g in generators if g is not None]

        def replay() -> None:
            for generator, snapshot in saved:
                generator.set_state(snapshot)

        return replay

    def _alpha_gradient(self, run: SearchRun, weights: list, batch) -> torch.Tensor:
        """L_train uses the weight step's batch (as DARTS does); L_val a fresh validation batch.
        Per trial: regularizer penalties, objectives and the multi-objective combination."""
        ctx, alpha = run.ctx, run.alpha
        train_batch = batch if batch is not None else run.batch.sample("train")
        val_batch = run.batch.sample("val")
        replay = self._replayer(run)

        def train_loss(a, b=train_batch):
            replay()
            return self._loss(run, a, b)

        def val_loss(a, b=val_batch):
            replay()
            return self._loss(run, a, b)

        xi = ctx.hp.param_lr
        grad = self.estimator.alpha_gradient(alpha, weights, train_loss, val_loss, xi, run.state)
        for reg in run.regularizers:
            grad = grad * getattr(reg, "loss_scale", 1.0)
        if self.combiner is not None:
            adversarial = None
            if self.adversarial_epsilon is not None:
                adversarial = self._adversarial_gradient(run, weights, train_loss, val_batch, xi, replay)
            combined = []
            for t, state in enumerate(run.states):
                grads = [grad[t]] if adversarial is None else [grad[t], adversarial[t]]
                for objective in run.objectives:
                    a = alpha[t].detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(objective.penalty(a, state), [a])
                    grads.append(g)
                g, gammas = self.combiner.combine(grads)
                combined.append(g)
                run.combiner_weights[t].append([float(x) for x in gammas])
            grad = torch.stack(combined)
        if run.regularizers:
            penalized = []
            for t, state in enumerate(run.states):
                a = alpha[t].detach().requires_grad_(True)
                penalty = sum(reg.penalty(a, state) for reg in run.regularizers)
                (g,) = torch.autograd.grad(penalty, [a], allow_unused=True)
                penalized.append(grad[t] if g is None else grad[t] + g)
            grad = torch.stack(penalized)
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
        """Gradient rows of D-DARTS's ablation loss ([002] Eqs 4.2-4.5), row i from cell i's own loss,
        for every trial (K, positions, ops).

        M_i = L(C) - L(C without cell i), L_AB^i = (M_i - mean M) / mean M. Cell i is
        deactivated (identity in the sequential space, removed edge otherwise), so L(C without i)
        does not depend on alpha_i and d L_AB^i / d alpha_i = g_i / m - M_i * s_i / (n m^2),
        with g = grad L(C), s = grad sum_j M_j and m = mean M: two backward passes, not n (per
        trial: the trials' losses are independent, so each block of the summed gradient is its own).
        Each of the 10 layers of the sequential space is a "cell" (METHODS.md M45, CPU note)."""
        a = run.alpha.detach().requires_grad_(True)
        n = a.shape[1]
        mode = "identity" if "layers" in getattr(run.space, "capabilities", ()) else "zero"
        full = self._replayed_losses(run, a, val_batch, replay)
        contributions = []
        for i in range(n):
            run.mixer.deactivated = {i: mode}
            try:
                contributions.append(full - self._replayed_losses(run, a, val_batch, replay))
            finally:
                run.mixer.deactivated = {}
        m_all = torch.stack(contributions)  # (positions, K)
        mean = m_all.mean(0).detach().view(-1, 1, 1)
        g_full, g_sum = (
            torch.autograd.grad(full.sum(), [a], retain_graph=True)[0],
            torch.autograd.grad(m_all.sum(), [a])[0],
        )
        m_det = m_all.detach().t().unsqueeze(2)
        out = g_full / mean - m_det * g_sum / (n * mean ** 2)
        return torch.where(mean.abs() < 1e-12, torch.zeros_like(out), out)

    def _replayed_losses(self, run, a, batch: Batch, replay) -> torch.Tensor:
        """Every trial's loss (K,) with mixing weights from ``a``, 0 for a trial no longer running."""
        replay()
        weights = self._mixing_weights(run, a, run.states)
        losses = run.batch.losses(run.batch.output(run.model, batch, weights, run.mixer), batch)
        return torch.where(run.batch.failures.active, losses, torch.zeros_like(losses))
