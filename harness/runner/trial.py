"""Run one trial: search (or pick) an architecture, retrain it from scratch, score both.

``run_trial`` never raises for a trial's own failure: divergence (non-finite loss) and
exceptions are returned as a failed ``TrialResult`` with the reason, so a study counts them.
"""

from __future__ import annotations

import math
import os
import time
import traceback

import torch

from harness.methods import TrialDiverged, make_method, resolve_hp_set
from harness.methods.context import MethodContext, Streams
from harness.methods.training import arch_metrics, retrain_and_score
from harness.runner.checkpoints import for_batch, for_trial
from harness.runner.provenance import trial_provenance
from harness.runner.spec import STATUS_FAILED, STATUS_OK, RowSpec, TrialResult, TrialSpec
from harness.runner.typed import OPTION_GROUPS
from harness.spaces import PARAMETER_FREE_OPS, SPACES, OpConfig, op_names
from harness.tasks.registry import make_task, primary_metric


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
    deterministic_kernels()  # every trial, loop or batched, is built here
    device = resolve_device(device)
    method = make_method(spec.method, opts["method"])
    space_name = SPACES.canonical(spec.space)
    if getattr(method, "needs", ""):
        raise ValueError(f"method {spec.method!r} cannot run on the 1D problems: it needs {method.needs}")
    if space_name not in method.spaces:
        raise ValueError(f"method {spec.method!r} does not run on space {spec.space!r} (runs on {method.spaces})")
    space = SPACES.get(spec.space)(**opts["space"])
    task = make_task(spec.dataset, opts["problem"], device=device)
    if hasattr(space, "bind"):  # a space that sizes its networks to the task's inputs and classes
        space.bind(task)
    ctx = MethodContext(
        task=task,
        space=space,
        ops=op_names(spec.op_set, space_name),
        op_config=make_op_config(opts["ops"]),
        hp=resolve_hp_set(spec.hp_set, spec.hp_overrides_dict),
        epochs=int(spec.epochs),
        streams=Streams(spec.seed),
        device=device,
    )
    return method, ctx


def resolve_device(device: torch.device | str | None) -> torch.device:
    """The device a trial runs on: the one asked for, else the GPU where there is one."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _provenance(device: torch.device | str | None, batch_trials: int) -> dict:
    """``trial_provenance`` on the device the trial runs on; never raises (a bad device name fails
    the trial in ``build_context``, with its reason)."""
    try:
        device = resolve_device(device)
    except Exception:  # noqa: BLE001 - recorded by the trial itself
        pass
    return trial_provenance(device, batch_trials)


def deterministic_kernels() -> None:
    """Same seed, same result, on a GPU too: cuDNN and cuBLAS otherwise pick kernels whose
    floating-point reduction order varies from run to run (seen on an H200: 9.5736122 vs
    9.5736146 dB for one seed). No effect on CPU results. Ops without a deterministic CUDA
    kernel still run, with a warning (``warn_only``)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def run_trial(spec: TrialSpec, device: torch.device | str | None = None, checkpoint_dir=None) -> TrialResult:
    """One trial alone (K = 1 of the engine: the single-trial networks); with ``checkpoint_dir``
    it saves every epoch there and resumes from what an earlier, killed run of it saved."""
    start = time.perf_counter()
    result = TrialResult(spec=spec, status=STATUS_FAILED, metric=primary_metric(spec.dataset))
    result.provenance = _provenance(device, 1)
    try:
        method, ctx = build_context(spec, device)
        ctx.checkpoint = for_trial(checkpoint_dir, spec.trial_id)
        result.metric = ctx.task.primary
        result.extra["op_names"] = list(ctx.ops)
        result.extra["positions"] = ctx.space.positions()
        outcome = method.search(ctx)
        result.search_runtime_s = time.perf_counter() - start
        _take_outcome(result, outcome, ctx)
        if outcome.arch_score is None:
            retrain_start = time.perf_counter()
            scores = retrain_and_score(outcome.genotype, ctx)
            result.arch_metrics = arch_metrics(scores)
            result.arch_score = scores["test"][ctx.task.primary]
            result.retrain_runtime_s = time.perf_counter() - retrain_start
        else:
            result.arch_score = outcome.arch_score
            result.retrain_runtime_s = 0.0
        add_costs(result, ctx)
        _finish(result)
    except Exception as exc:  # recorded, counted and reported; never silently dropped
        _record_failure(result, exc)
    note_resumed(result, locals().get("ctx"))
    result.runtime_s = time.perf_counter() - start
    return result


def note_resumed(result: TrialResult, ctx) -> None:
    """Record which phases resumed from a checkpoint, and after which epoch (runtimes then count
    only this run's part of the trial)."""
    checkpoint = getattr(ctx, "checkpoint", None)
    if checkpoint is not None and checkpoint.resumed:
        result.extra["resumed_after_epoch"] = dict(checkpoint.resumed)


def _take_outcome(result: TrialResult, outcome, ctx: MethodContext) -> None:
    result.genotype = outcome.genotype
    result.oneshot_score = outcome.oneshot_score
    result.oneshot_metrics = dict(outcome.oneshot_metrics)
    result.arch_metrics = dict(outcome.arch_metrics)
    result.final_alphas = outcome.final_alphas
    result.alpha_history = outcome.alpha_history
    result.extra.update(outcome.extra)
    result.n_param_free_ops = sum(op in PARAMETER_FREE_OPS for op in ctx.space.flatten(outcome.genotype))


def add_costs(result: TrialResult, ctx: MethodContext) -> None:
    """Params and FLOPs of the derived network among its metrics, where the space can count them."""
    counter = getattr(ctx.space, "derived_costs", None)
    if counter is not None and result.genotype is not None:
        result.arch_metrics.update(counter(result.genotype, int(ctx.task.input_shape[-1])))


def _finish(result: TrialResult) -> None:
    if not math.isfinite(result.arch_score):
        raise TrialDiverged(f"diverged: non-finite architecture score ({result.arch_score})")
    # Engines that compute only the primary metric still fill the dicts with it.
    result.arch_metrics = result.arch_metrics or {result.metric: result.arch_score}
    if not result.oneshot_metrics and math.isfinite(result.oneshot_score):
        result.oneshot_metrics = {result.metric: result.oneshot_score}
    result.status = STATUS_OK


def _record_exception(result: TrialResult, exc: Exception) -> None:
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    result.failure_reason = f"exception: {last}"
    result.extra["traceback"] = traceback.format_exc(limit=8)


def _record_failure(result: TrialResult, exc: Exception) -> None:
    """One rule for a trial alone and in a batch: a diverged trial gives its reason, anything else the
    exception with its traceback."""
    if isinstance(exc, TrialDiverged):
        result.failure_reason = str(exc)
    else:
        _record_exception(result, exc)


def finish_each(live: list[TrialResult], ctxs: list[MethodContext]) -> None:
    """Close every trial of a batch that has not failed yet: costs, then the finiteness check.
    A failure here fails that trial alone, as it would in the loop."""
    for result, ctx in zip(live, ctxs):
        if result.failure_reason:
            continue
        try:
            add_costs(result, ctx)
            _finish(result)
        except Exception as exc:  # noqa: BLE001 - recorded per trial
            _record_failure(result, exc)


def fail_unfinished(live: list[TrialResult], exc: Exception) -> None:
    """A bug in a batch fails its unfinished trials with the reason, never the study."""
    for result in live:
        if result.status != STATUS_OK:
            _record_exception(result, exc)


def share_runtimes(live: list[TrialResult], start: float, search_s: float, retrain_s: float | None = None) -> None:
    """Per-trial runtimes are the batch's wall time shared equally; batch_wall_s keeps the total.
    ``retrain_s`` None: everything after the search."""
    wall = time.perf_counter() - start
    k = len(live)
    retrain_s = wall - search_s if retrain_s is None else retrain_s
    for result in live:
        result.runtime_s, result.search_runtime_s, result.retrain_runtime_s = wall / k, search_s / k, retrain_s / k
        result.extra["batch_wall_s"] = wall


def batching_reason(spec: TrialSpec) -> str:
    """Empty when the trials of ``spec``'s row run as one computation (K seeds on the trial axis),
    else why each of them runs alone (K = 1 of the same engine)."""
    from harness.methods import ComposedSearch
    from harness.methods.baselines import RandomArchitecture, RandomSearch, SingleOp

    try:
        method, ctx = build_context(spec, "cpu")
    except Exception as exc:  # the trial itself will record this failure
        return f"the trial cannot be built ({exc})"
    if isinstance(method, ComposedSearch):
        return method.trial_axis_reason(ctx.space)
    if not isinstance(method, (SingleOp, RandomArchitecture, RandomSearch)):
        return f"method {getattr(method, 'name', method)!r} has no trial-axis implementation"
    if "trial-axis" not in getattr(ctx.space, "capabilities", ()):
        return f"space {spec.space!r} has no trial axis"
    return ""


def run_batch(
    specs: list[TrialSpec], device: torch.device | str | None = None, batched: bool = True, checkpoint_dir=None
) -> list[TrialResult]:
    """The runner's batch interface: the trials of each row (specs that differ only in seed) run as
    one computation where their method allows it (``batching_reason``), the rest one by one;
    ``batched=False`` runs every trial alone."""
    if not batched:
        return [run_trial(s, device, checkpoint_dir) for s in specs]
    groups: dict[RowSpec, list[TrialSpec]] = {}  # trials of one row differ only in seed
    for spec in specs:
        groups.setdefault(spec.row, []).append(spec)
    done: dict[str, TrialResult] = {}
    for group in groups.values():
        if batching_reason(group[0]):
            results = [run_trial(s, device, checkpoint_dir) for s in group]
        else:
            results = run_trials(group, device, checkpoint_dir)
        done.update((r.spec.trial_id, r) for r in results)
    return [done[s.trial_id] for s in specs]


def run_trials(specs: list[TrialSpec], device=None, checkpoint_dir=None) -> list[TrialResult]:
    """The trials of one row as one computation (``harness.runner.trial_axis``)."""
    from harness.runner.trial_axis import run_trial_axis

    start = time.perf_counter()
    results = [TrialResult(spec=s, status=STATUS_FAILED) for s in specs]
    live, ctxs = [], []
    for result in results:
        try:
            method, ctx = build_context(result.spec, device)
        except Exception as exc:
            _record_exception(result, exc)
            continue
        result.extra.update(op_names=list(ctx.ops), positions=ctx.space.positions())
        result.metric = ctx.task.primary
        live.append(result)
        ctxs.append(ctx)
    k = len(live)
    # K of the computation: a lone trial runs beside its shadow copy (below), so K = 2 for it too.
    prov = _provenance(device, max(k, 2))
    for result in results:
        result.provenance = dict(prov)
    if not k:
        return results
    for result in live:
        result.extra["batch_size"] = k
    ctxs[0].checkpoint = for_batch(checkpoint_dir, [r.spec.trial_id for r in live])
    if k > 1:
        run_trial_axis(method, live, ctxs, start)
        return results
    # One trial alone runs the single-trial modules, whose float rounding differs from the K-trial
    # ones (grouped convolutions, the fused CNN kernel); a lone trial (the last of a resumed row)
    # therefore runs beside a shadow copy of itself, so its result does not depend on how the
    # runner batched it.
    _, shadow_ctx = build_context(live[0].spec, device)
    shadow = TrialResult(spec=live[0].spec, status=STATUS_FAILED, metric=live[0].metric)
    run_trial_axis(method, [live[0], shadow], [ctxs[0], shadow_ctx], start)
    lone = live[0]
    lone.runtime_s, lone.search_runtime_s, lone.retrain_runtime_s = (
        2 * lone.runtime_s, 2 * lone.search_runtime_s, 2 * lone.retrain_runtime_s)
    lone.extra["shadow_copy"] = True
    return results
