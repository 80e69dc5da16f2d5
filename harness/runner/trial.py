"""Run one trial: search (or pick) an architecture, retrain it from scratch, score both.

``run_trial`` never raises for a trial's own failure: divergence (non-finite loss) and
exceptions are returned as a failed ``TrialResult`` with the reason, so a study counts them.
"""

from __future__ import annotations

import math
import time
import traceback

import torch

from harness.methods import TrialDiverged, make_method, resolve_hp_set
from harness.methods.context import MethodContext, Streams
from harness.methods.training import train_and_evaluate
from harness.problems import make_problem
from harness.runner.spec import STATUS_FAILED, STATUS_OK, TrialResult, TrialSpec
from harness.spaces import PARAMETER_FREE_OPS, SPACES, OpConfig, op_names

OPTION_GROUPS = ("problem", "ops", "space", "method")


def split_options(options: dict) -> dict[str, dict]:
    """Validate the option groups of a spec: {'problem': {...}, 'ops': {...}, ...}."""
    unknown = sorted(set(options) - set(OPTION_GROUPS))
    if unknown:
        raise ValueError(f"unknown option group(s) {', '.join(unknown)}; known: {', '.join(OPTION_GROUPS)}")
    return {g: dict(options.get(g) or {}) for g in OPTION_GROUPS}


def make_op_config(options: dict) -> OpConfig:
    try:
        return OpConfig(**options)
    except TypeError as exc:
        known = ", ".join(OpConfig.__dataclass_fields__)
        raise ValueError(f"bad op option(s) {sorted(options)}; known: {known}") from exc


def build_context(spec: TrialSpec, device: torch.device | str | None = None) -> tuple[object, MethodContext]:
    """Resolve every name in the spec (raises ValueError/KeyError with a helpful message)."""
    opts = split_options(spec.options_dict)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    method = make_method(spec.method, opts["method"])
    space_name = SPACES.canonical(spec.space)
    if getattr(method, "needs", ""):
        raise ValueError(f"method {spec.method!r} cannot run on the 1D problems: it needs {method.needs}")
    if space_name not in method.spaces:
        raise ValueError(f"method {spec.method!r} does not run on space {spec.space!r} (runs on {method.spaces})")
    space = SPACES.get(spec.space)(**opts["space"])
    ctx = MethodContext(
        problem=make_problem(spec.dataset, opts["problem"], device=device),
        space=space,
        ops=op_names(spec.op_set, space_name),
        op_config=make_op_config(opts["ops"]),
        hp=resolve_hp_set(spec.hp_set, spec.hp_overrides_dict),
        epochs=int(spec.epochs),
        streams=Streams(spec.seed),
        device=device,
    )
    return method, ctx


def run_trial(spec: TrialSpec, device: torch.device | str | None = None) -> TrialResult:
    start = time.perf_counter()
    result = TrialResult(spec=spec, status=STATUS_FAILED)
    try:
        method, ctx = build_context(spec, device)
        result.extra["op_names"] = list(ctx.ops)
        result.extra["positions"] = ctx.space.positions()
        outcome = method.search(ctx)
        result.search_runtime_s = time.perf_counter() - start
        result.genotype = outcome.genotype
        result.oneshot_score = outcome.oneshot_score
        result.final_alphas = outcome.final_alphas
        result.alpha_history = outcome.alpha_history
        result.extra.update(outcome.extra)
        result.n_param_free_ops = sum(op in PARAMETER_FREE_OPS for op in ctx.space.flatten(outcome.genotype))
        if outcome.arch_score is None:
            retrain_start = time.perf_counter()
            result.arch_score = train_and_evaluate(outcome.genotype, ctx)
            result.retrain_runtime_s = time.perf_counter() - retrain_start
        else:
            result.arch_score = outcome.arch_score
            result.retrain_runtime_s = 0.0
        if not math.isfinite(result.arch_score):
            raise TrialDiverged(f"diverged: non-finite architecture score ({result.arch_score})")
        result.status = STATUS_OK
    except TrialDiverged as exc:
        result.failure_reason = str(exc)
    except Exception as exc:  # recorded, counted and reported; never silently dropped
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        result.failure_reason = f"exception: {last}"
        result.extra["traceback"] = traceback.format_exc(limit=8)
    result.runtime_s = time.perf_counter() - start
    return result


def run_batch(specs: list[TrialSpec], device: torch.device | str | None = None) -> list[TrialResult]:
    """The runner's batch interface: trials run one after another here; a vectorized engine
    can execute a batch of same-config, different-seed specs as one computation instead."""
    return [run_trial(s, device) for s in specs]
