"""P-DARTS ([002] §3.2.1-3.2.2, METHODS.md M28): search in stages of growing depth while
dropping candidate ops, with operation-level dropout after the skip-like ops.

Each stage starts a fresh supernet and alpha (as P-DARTS does) and keeps, per position, the
``ops_kept[s]`` best ops of the previous stage at the corresponding depth (position i of a
stage with n positions maps to position floor(i * n_prev / n) of the previous stage). A space
with ``"depth"`` in its capabilities grows through ``space.with_depth(d)``, capped at the
space's own depth, which the last stage uses; other spaces only drop ops. The dropout decays
linearly within a stage. The epochs are split evenly over the stages (the remainder goes to the
last stage). M28 states none of the stage sizes, kept ops or dropout rates ("not stated"):

* 1D adaptation (CPU note of M28): 4 -> 7 -> 10 layers, 4 -> 3 -> 2 ops, dropout 0.0 / 0.3 /
  0.6, our choice scaled from the P-DARTS pattern; the [001] op set has no skip connection, so
  the dropout acts on the parameter-free ops (roll, noise), which play skip's role.
* DARTS cell space (``"cells"`` capability, ``cell_stage_*``): 5 -> 11 -> 17 cells, 8 -> 5 -> 3
  ops, dropout 0.1 / 0.4 / 0.7 on skip_connect's output, P-DARTS's public CIFAR settings (M28
  only gives "e.g., from 5 cells to 20 cells"); with the default 8-cell search space the depth
  grows 5 -> 8 -> 8 (the space's ``n_cells`` caps it: set it to 17 for P-DARTS's last stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.methods.base import SearchOutcome
from harness.methods.context import MethodContext, TrialDiverged
from harness.methods.perturbations import ParameterFreeDropout
from harness.methods.search import ComposedSearch


@dataclass
class ProgressiveSearch(ComposedSearch):
    stage_layers: tuple[int, ...] = (4, 7, 10)
    stage_ops_kept: tuple[int, ...] = (4, 3, 2)
    stage_dropout: tuple[float, ...] = (0.0, 0.3, 0.6)
    cell_stage_cells: tuple[int, ...] = (5, 11, 17)
    cell_stage_ops_kept: tuple[int, ...] = (8, 5, 3)
    cell_stage_dropout: tuple[float, ...] = (0.1, 0.4, 0.7)

    def __post_init__(self) -> None:
        super().__post_init__()
        for depths, kept, dropout in (
            (self.stage_layers, self.stage_ops_kept, self.stage_dropout),
            (self.cell_stage_cells, self.cell_stage_ops_kept, self.cell_stage_dropout),
        ):
            if not (len(depths) == len(kept) == len(dropout)) or not depths:
                raise ValueError("every stage needs a depth, a number of kept ops and a dropout rate")
            if any(k < 1 for k in kept) or any(n < 1 for n in depths):
                raise ValueError("every stage needs at least one layer (cell) and one kept op")

    def plan(self, space) -> tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]]:
        """(depths, ops kept, dropout) per stage for ``space``."""
        if "cells" in getattr(space, "capabilities", ()):
            return self.cell_stage_cells, self.cell_stage_ops_kept, self.cell_stage_dropout
        return self.stage_layers, self.stage_ops_kept, self.stage_dropout

    def stage_epochs(self, epochs: int, space=None) -> list[int]:
        n = len(self.plan(space)[0])
        base = epochs // n
        return [base] * (n - 1) + [epochs - base * (n - 1)]

    def stage_space(self, ctx: MethodContext, stage: int):
        depths = self.plan(ctx.space)[0]
        space = ctx.space
        if stage == len(depths) - 1 or "depth" not in getattr(space, "capabilities", ()):
            return space
        return space.with_depth(min(depths[stage], space.depth))

    @staticmethod
    def carry_mask(previous: torch.Tensor, n_positions: int, keep: int) -> torch.Tensor:
        """Keep, per new position, the ``keep`` most probable ops of the mapped old position."""
        n_prev, n_ops = previous.shape
        keep = min(keep, n_ops)
        mask = torch.zeros(n_positions, n_ops, dtype=torch.bool, device=previous.device)
        for i in range(n_positions):
            source = min(i * n_prev // n_positions, n_prev - 1)
            mask[i, previous[source].topk(keep).indices] = True
        return mask

    def search_trials(self, ctxs: list[MethodContext]) -> list[tuple[SearchOutcome | None, str]]:
        """Stage by stage over K trials: each trial keeps its own best ops (a (K, positions, ops)
        op mask). An op some trials dropped runs only for the trials that keep it, or, where it holds
        per-trial state (weights, a cell's BatchNorm statistics), for all with weight 0 for the
        others; either way its draws stay the keeping trials' own (``supernet.Mixer``). On a space
        without the trial axis, one trial at a time."""
        ctx, k = ctxs[0], len(ctxs)
        if k > 1 and self.trial_axis_reason(ctx.space):
            return [result for c in ctxs for result in self.search_trials([c])]
        _, kept, dropout = self.plan(ctx.space)
        if ctx.epochs < len(kept):
            raise ValueError(f"P-DARTS needs at least {len(kept)} epochs (one per stage)")
        cells = "cells" in getattr(ctx.space, "capabilities", ())
        previous, stages, reasons = None, [], [""] * k
        for stage, epochs in enumerate(self.stage_epochs(ctx.epochs, ctx.space)):
            space = self.stage_space(ctx, stage)
            mask = None
            if previous is not None:
                masks = torch.stack([self.carry_mask(p, space.n_positions, kept[stage]) for p in previous])
                mask = masks[0] if k == 1 else masks
            hooks = (*self.mix_hooks, ParameterFreeDropout(rate=dropout[stage]))
            run = self.start(ctxs, space, epochs, op_mask=mask, hooks=hooks)
            for t, reason in enumerate(reasons):  # a trial that failed in an earlier stage stays failed
                if reason:
                    run.batch.failures.fail([t], reason)
            self.optimize(run, epochs)
            reasons = list(run.batch.failures.reasons)
            if all(reasons):
                return [(None, reason) for reason in reasons]
            previous = [self.relaxation.probabilities(run.masked(a, t)).detach()
                        for t, a in enumerate(run.alpha.detach())]
            previous = [p.masked_fill(torch.isnan(p), 0.0) for p in previous]
            depth = {"cells": space.n_cells} if cells else {"layers": space.n_positions}
            stages.append({**depth, "epochs": epochs, "ops_kept": kept[stage]})
        results = []
        for outcome, failure in self.finish(run):
            if outcome is not None:
                outcome.extra["stages"] = stages
                outcome.extra["epochs_run"] = sum(s["epochs"] for s in stages[:-1]) + outcome.extra["epochs_run"]
            results.append((outcome, failure))
        return results

    def search(self, ctx: MethodContext) -> SearchOutcome:
        ((outcome, failure),) = self.search_trials([ctx])
        if failure:
            raise TrialDiverged(failure)
        return outcome
