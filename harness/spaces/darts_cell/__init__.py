"""The DARTS CIFAR cell space with a leading trial axis of K seeds (see ``ops`` for the layout).

Not registered in ``harness.spaces.SPACES`` yet; depends on torch only.
"""

from __future__ import annotations

from harness.spaces.darts_cell.batched_eval import (
    BatchedEvalNetwork,
    batched_eval_loss,
    per_trial_grad_norm_clip,
)
from harness.spaces.darts_cell.costs import count_flops, count_params, derived_costs
from harness.spaces.darts_cell.discretize import (
    FAIRDARTS_THRESHOLD,
    count_parameter_free,
    darts_cell,
    discretize_darts,
    discretize_threshold,
)
from harness.spaces.darts_cell.genotype import (
    STEPS,
    Genotype,
    cell_edges,
    edge_index,
    edges_to_mask,
    genotype_cell,
    genotype_from_json,
    genotype_from_str,
    genotype_mask,
    genotype_to_json,
    genotype_to_str,
    make_genotype,
    mask_to_edges,
)
from harness.spaces.darts_cell.networks import (
    AUX_WEIGHT,
    EvalConfig,
    EvalNetwork,
    SearchConfig,
    SearchNetwork,
    eval_loss,
    reduction_positions,
    stack_trials,
    trial_cross_entropy,
    unstack_trial,
)
from harness.spaces.darts_cell.ops import OP_NAMES, PARAMETER_FREE_OPS, OpSettings, merge_trials, split_trials
from harness.spaces.trial_axis import trial_view

__all__ = [
    "AUX_WEIGHT",
    "FAIRDARTS_THRESHOLD",
    "OP_NAMES",
    "PARAMETER_FREE_OPS",
    "STEPS",
    "BatchedEvalNetwork",
    "EvalConfig",
    "EvalNetwork",
    "Genotype",
    "OpSettings",
    "SearchConfig",
    "SearchNetwork",
    "batched_eval_loss",
    "cell_edges",
    "count_flops",
    "count_parameter_free",
    "count_params",
    "darts_cell",
    "derived_costs",
    "discretize_darts",
    "discretize_threshold",
    "edge_index",
    "edges_to_mask",
    "eval_loss",
    "genotype_cell",
    "genotype_from_json",
    "genotype_from_str",
    "genotype_mask",
    "genotype_to_json",
    "genotype_to_str",
    "make_genotype",
    "mask_to_edges",
    "merge_trials",
    "per_trial_grad_norm_clip",
    "reduction_positions",
    "split_trials",
    "stack_trials",
    "trial_cross_entropy",
    "trial_view",
    "unstack_trial",
]
