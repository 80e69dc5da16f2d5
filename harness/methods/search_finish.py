"""The end of ``ComposedSearch`` over K trials: one-shot metrics, diagnostics, discretization and
the per-trial outcomes, plus DAS-single's pre-trained ops (split from ``search.py``; a mixin, the
fields it reads are ComposedSearch's)."""

from __future__ import annotations

import math

import torch

from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext
from harness.methods.discretization import PerturbationSelection
from harness.methods.hessian import dominant_eigenvalues
from harness.methods.retrain import RetrainJob, train_trials
from harness.methods.state import SearchState
from harness.methods.supernet import SearchRun, SupernetProbe, evaluating, mixed_ops, probe_seeds
from harness.methods.training import evaluate_metrics, evaluate_trial_metrics
from harness.methods.trial_finish import load_candidates, probed_genotypes
from harness.spaces.trial_axis import load_trial_slices

HESSIAN_SEED = 12345  # the power iteration's start vector: its own seed, + the epoch
INHERITED_PREFIX = "inherited_"  # one-shot metrics of the derived genotype with the supernet's weights


class SearchFinish:
    def _dominant_eigenvalue(self, probe: SupernetProbe, alpha: torch.Tensor, state: SearchState) -> float:
        from harness.methods.hessian import dominant_eigenvalue

        # The power iteration's start vector has its own fixed seed: diagnostics must not
        # advance the trial's streams (a run with diagnostics equals one without).
        gen = torch.Generator().manual_seed(HESSIAN_SEED + state.epoch)
        try:
            return float(
                dominant_eigenvalue(
                    probe.val_loss, alpha.detach(), method="auto", iterations=self.hessian_iterations, generator=gen
                )
            )
        except (RuntimeError, ValueError):
            return math.nan

    # ----------------------------------------------------------------------------- finish
    def finish(self, run: SearchRun) -> list[tuple[SearchOutcome | None, str]]:
        """Per trial: the one-shot metrics, diagnostics and genotype, or the trial's failure."""
        ctx, failures = run.ctx, run.batch.failures
        final = self._final_alpha(run)
        for t in range(run.k):
            if not bool(torch.isfinite(final[t]).all()):
                failures.fail([t], f"diverged: non-finite loss ({float(final[t].sum())}) "
                                   "in the final architecture parameters")
        if not bool(failures.succeeded.any()):
            return [(None, reason) for reason in failures.reasons]
        live = failures.succeeded.view(-1, 1, 1)
        final = torch.where(live, final, torch.zeros_like(final))  # failed trials' NaNs stay out of the batch
        oneshot = self._evaluate(run, self._mixing_weights(run, final, None))
        # Diagnostics before discretization: DARTS+PT's rule fine-tunes the supernet.
        eigenvalues = self._final_eigenvalues(run, final)
        extras = [None if failures.reasons[t] else self._extra(run, t, eigenvalues) for t in range(run.k)]
        probs = [self.relaxation.probabilities(run.masked(a, t)) for t, a in enumerate(final)]
        if not isinstance(self.discretization, PerturbationSelection):
            genotypes = [self.discretization.genotype(run.space, p, c.ops) for p, c in zip(probs, run.ctxs)]
        elif run.k == 1:
            genotypes = [self.discretization.genotype(run.space, probs[0], ctx.ops, SupernetProbe(self, run))]
        else:  # the K trials' rule at once, on their own scores (trial_finish.SupernetTrialProbe)
            genotypes = probed_genotypes(self, run, probs)
        if "genotype-mask" in getattr(run.space, "capabilities", ()):
            # The derived architecture inside the supernet, with the supernet's weights (issue 12).
            masks = torch.stack([run.space.genotype_weights(g, c.ops) for g, c in zip(genotypes, run.ctxs)])
            inherited = self._evaluate(run, masks.to(final.device) if run.k > 1 else masks[0].to(final.device))
            for metrics, extra in zip(oneshot, inherited):
                metrics.update({f"{INHERITED_PREFIX}{k}": v for k, v in extra.items()})
        results = []
        for t, c in enumerate(run.ctxs):
            if failures.reasons[t]:
                results.append((None, failures.reasons[t]))
                continue
            results.append((SearchOutcome(
                genotype=genotypes[t],
                oneshot_score=oneshot[t][c.task.primary],
                oneshot_metrics=oneshot[t],
                final_alphas=final[t].cpu().tolist(),
                alpha_history=None if run.history is None else run.history[t],
                extra=extras[t],
            ), ""))
        return results

    @staticmethod
    def _final_alpha(run: SearchRun) -> torch.Tensor:
        """Every trial's alpha to discretize: the last, or, for a trial that stopped early, the one it
        stopped with (its weights go back into the supernet too), or its rule's rollback alpha."""
        final = run.alpha.detach().clone()
        for t, frozen in run.frozen.items():
            load_trial_slices(run.model, run.k, t, frozen["model"])
            final[t] = frozen["alpha"]
        for t, rule in enumerate(run.stopping.rules if run.stopping is not None else ()):
            if getattr(rule, "rollback_alpha", None) is not None:
                final[t] = rule.rollback_alpha
        return final

    def _evaluate(self, run: SearchRun, weights: torch.Tensor) -> list[dict[str, float]]:
        """Every trial's validation metrics of the supernet mixed by ``weights`` (its one-shot score)."""
        if run.k == 1:
            with evaluating(run.model, run.state):
                return [evaluate_metrics(run.model, run.ctx, weights, run.mixer)]
        return evaluate_trial_metrics(run.model, run.ctxs, weights, "val")

    def _extra(self, run: SearchRun, trial: int, eigenvalues: list[float] | None) -> dict:
        epochs_run, stopped_early = run.trial_epochs(trial)
        extra: dict = {"epochs_run": epochs_run, "stopped_early": stopped_early}
        if eigenvalues is not None:
            extra["hessian_eigenvalue"] = eigenvalues[trial]
        if run.hessian_per_epoch[trial]:
            extra["hessian_eigenvalue_per_epoch"] = run.hessian_per_epoch[trial]
        if run.stopping is not None:
            extra["early_stopping_signal"] = [float(v) for v in run.stopping.rules[trial].signal]
        if run.combiner_weights[trial]:
            extra["combiner_weights_mean"] = torch.tensor(run.combiner_weights[trial]).mean(0).tolist()
        return extra

    def _final_eigenvalues(self, run: SearchRun, final: torch.Tensor) -> list[float] | None:
        return None if self.hessian == "none" else self._eigenvalues(run, final)

    def _eigenvalues(self, run: SearchRun, alphas: torch.Tensor, method: str = "auto", iterations: int | None = None,
                     generators: list | None = None) -> list[float]:
        """Every trial's dominant eigenvalue of its validation loss on its first probe batch (eval
        mode, fixed noise) w.r.t. its alpha (K, ...). The diagnostic's power iteration starts from one
        vector of its own seed; DARTS-ES passes its trials' own streams (as its rule alone does)."""
        iterations = self.hessian_iterations if iterations is None else iterations
        if run.k == 1:
            return [self._dominant_eigenvalue(SupernetProbe(self, run), alphas[0], run.state)]
        ctxs = run.ctxs
        seeds = [probe_seeds(c) for c in ctxs]
        batch = run.ctx.task.sample_trials([torch.Generator().manual_seed(b) for b, _ in seeds], "val")
        noise_seeds = [noise_seed for _, noise_seed in seeds]

        def probe_loss(a: torch.Tensor) -> torch.Tensor:
            with evaluating(run.model, run.state):
                noise = [torch.Generator().manual_seed(seed) for seed in noise_seeds]
                weights = self._mixing_weights(run, a, None)
                return run.batch.losses(run.batch.output(run.model, batch, weights, None, noise), batch).sum()

        gen = torch.Generator().manual_seed(HESSIAN_SEED + run.state.epoch) if generators is None else generators
        alphas = torch.where(torch.isfinite(alphas), alphas, torch.zeros_like(alphas))  # failed trials' NaNs
        # Double backward through the fused kernel's reference ops costs ~25x a first-order pass
        # (docs/engine.md, "Diagnostics"): there K trials take products by differences.
        fused = "fused-kernel" in getattr(run.space, "capabilities", ())
        try:
            return dominant_eigenvalues(probe_loss, alphas, method, iterations, gen,
                                        products="difference" if fused else "exact")
        except (RuntimeError, ValueError):
            return [math.nan] * run.k

    # ------------------------------------------------------------------------- DAS-single
    def _load_pretrained(self, model, ctxs: list[MethodContext], space) -> list[str]:
        """[001] §5.4: train the all-lgd and all-net networks, copy their layers into the
        supernet's lgd / net candidates and freeze every weight (roll and noise have none).

        Each trial pre-trains on its ``index``-th child streams (init, data, noise). K >= 2 trials
        pre-train as one stacked network (``retrain.train_trials``), whose layers are already the
        K-trial supernet's candidates' layout; with the compiled kernel a trial's weights are
        bitwise independent of its batch mates, and a lone trial of a study runs beside its shadow
        copy, so a record does not depend on the batching. A trial whose pre-training diverges
        fails alone: its candidates are NaN and the reasons returned (per trial, "" for none) fail
        it from the start of the search. One trial alone (K = 1) trains its plain network and raises."""
        if "layers" not in getattr(space, "capabilities", ()):
            raise ValueError("DAS-single's pre-trained ops are defined for a space of layers (the sequential one) only")
        k, ops = len(ctxs), ctxs[0].ops
        reasons = [""] * k
        targets = mixed_ops(model)
        for index, op in enumerate(("lgd", "net")):
            if op not in ops:
                continue
            jobs = [self._pretraining_job(ctx, space, op, index) for ctx in ctxs]
            network, failures = train_trials(jobs, split="train")
            failed = failures.reasons
            reasons = [r or f for r, f in zip(reasons, failed)]
            load_candidates(targets, ops.index(op), mixed_ops(network), failed)
        for p in model.parameters():
            p.requires_grad_(False)
        return reasons

    def _pretraining_job(self, ctx: MethodContext, space, op: str, index: int) -> RetrainJob:
        """The all-``op`` network of one trial, on its ``index``-th child streams, for the
        pre-training epochs (the trial's unless ``pretrain_epochs``). Its training saves into the
        trial's (over K trials the batch's) checkpoint, as a phase in a fixed order."""
        epochs = ctx.epochs if self.pretrain_epochs is None else int(self.pretrain_epochs)
        child = ctx.streams.child(index)
        sub_ctx = MethodContext(**{**ctx.__dict__, "epochs": epochs, "streams": child})
        return RetrainJob(ctx=sub_ctx, genotype=space.uniform_genotype(op), streams=child)
