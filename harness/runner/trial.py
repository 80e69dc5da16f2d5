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
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
    """One trial in the loop engine; with ``checkpoint_dir`` it saves every epoch there and
    resumes from what an earlier, killed run of it saved."""
    start = time.perf_counter()
    result = TrialResult(spec=spec, status=STATUS_FAILED, metric=primary_metric(spec.dataset))
    try:
        method, ctx = build_context(spec, device)
        ctx.checkpoint = for_trial(checkpoint_dir, spec.trial_id)
        result.metric = ctx.task.primary
        result.extra["op_names"] = list(ctx.ops)
        result.extra["positions"] = ctx.space.positions()
        result.extra["engine"] = "loop"
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
    """The loop's rule, for every engine: a diverged trial gives its reason, anything else the
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


ENGINES = ("auto", "batched", "loop")




def engine_for(spec: TrialSpec, engine: str = "auto") -> tuple[str, str]:
    """('batched' | 'loop', why it is the loop) for a spec under the requested engine."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "loop":
        return "loop", "the loop engine was requested"
    from harness.batched.engine import unsupported_reason

    try:
        method, ctx = build_context(spec, "cpu")
    except Exception as exc:  # the trial itself will record this failure
        return "loop", f"the trial cannot be built ({exc})"
    reason = unsupported_reason(method, ctx)
    return ("loop", reason) if reason else ("batched", "")


def run_batch(
    specs: list[TrialSpec], device: torch.device | str | None = None, engine: str = "loop", checkpoint_dir=None
) -> list[TrialResult]:
    """The runner's batch interface. ``engine="loop"``: trials one after another. ``"batched"`` or
    ``"auto"``: specs that differ only in seed run as one computation where the method supports it
    (``harness.batched``), the rest in the loop."""
    if engine == "loop" or len(specs) <= 1 and engine == "auto":
        return [run_trial(s, device, checkpoint_dir) for s in specs]
    groups: dict[RowSpec, list[TrialSpec]] = {}  # trials of one row differ only in seed
    for spec in specs:
        groups.setdefault(spec.row, []).append(spec)
    done: dict[str, TrialResult] = {}
    for group in groups.values():
        kind, _ = engine_for(group[0], engine)
        if kind == "batched":
            results = _run_batched(group, device, checkpoint_dir)
        else:
            results = [run_trial(s, device, checkpoint_dir) for s in group]
        done.update((r.spec.trial_id, r) for r in results)
    return [done[s.trial_id] for s in specs]


def _run_batched(specs: list[TrialSpec], device, checkpoint_dir=None) -> list[TrialResult]:
    from harness.batched.engine import FixedJob, search_das, train_fixed
    from harness.methods import ComposedSearch, SearchOutcome
    from harness.methods.baselines import RandomArchitecture, RandomSearch, SingleOp

    start = time.perf_counter()
    results = [TrialResult(spec=s, status=STATUS_FAILED) for s in specs]
    live, ctxs = [], []
    for result in results:
        try:
            method, ctx = build_context(result.spec, device)
        except Exception as exc:
            _record_exception(result, exc)
            continue
        result.extra.update(op_names=list(ctx.ops), positions=ctx.space.positions(), engine="batched")
        result.metric = ctx.task.primary
        live.append(result)
        ctxs.append(ctx)
    k = len(live)
    if not k:
        return results
    for result in live:
        result.extra["batch_size"] = k
    search_s = retrain_s = 0.0
    if "trial-axis" in getattr(ctxs[0].space, "capabilities", ()):
        from harness.runner.trial_axis import run_trial_axis

        ctxs[0].checkpoint = for_batch(checkpoint_dir, [r.spec.trial_id for r in live])
        if k > 1:
            run_trial_axis(method, live, ctxs, start)
            return results
        # K = 1 networks use ungrouped convolutions, whose float rounding differs from the grouped
        # ones of any K >= 2; a lone trial (the last of a resumed row) therefore runs beside a
        # shadow copy of itself, so its result does not depend on how the runner batched it.
        _, shadow_ctx = build_context(live[0].spec, device)
        shadow = TrialResult(spec=live[0].spec, status=STATUS_FAILED, metric=live[0].metric)
        run_trial_axis(method, [live[0], shadow], [ctxs[0], shadow_ctx], start)
        lone = live[0]
        lone.runtime_s, lone.search_runtime_s, lone.retrain_runtime_s = (
            2 * lone.runtime_s, 2 * lone.search_runtime_s, 2 * lone.retrain_runtime_s)
        lone.extra["shadow_copy"] = True
        return results
    try:
        if isinstance(method, ComposedSearch):
            searched = search_das(ctxs)
            search_s = time.perf_counter() - start
            jobs, owners = [], []
            for result, ctx, found in zip(live, ctxs, searched):
                if found.failure:
                    result.failure_reason = found.failure
                    continue
                _take_outcome(result, found.outcome, ctx)
                jobs.append(FixedJob(ctx, found.outcome.genotype, ctx.streams))
                owners.append(result)
            t = time.perf_counter()
            for result, fixed in zip(owners, train_fixed(jobs) if jobs else []):
                result.arch_score, result.failure_reason = fixed.score, fixed.failure
            retrain_s = time.perf_counter() - t
        elif isinstance(method, RandomSearch):
            _random_search_batched(method, live, ctxs)
            retrain_s = time.perf_counter() - start
        else:
            if isinstance(method, SingleOp):
                genotypes = [ctx.space.uniform_genotype(method.op) for ctx in ctxs]
            elif isinstance(method, RandomArchitecture):
                genotypes = [ctx.space.random_genotype(ctx.ops, ctx.streams.generator("arch")) for ctx in ctxs]
            else:  # engine_for() only sends supported methods here
                raise TypeError(f"no batched implementation for {type(method).__name__}")
            for result, ctx, genotype in zip(live, ctxs, genotypes):
                _take_outcome(result, SearchOutcome(genotype=genotype), ctx)
            jobs = [FixedJob(c, g, c.streams) for c, g in zip(ctxs, genotypes)]
            for result, fixed in zip(live, train_fixed(jobs)):
                result.arch_score, result.failure_reason = fixed.score, fixed.failure
            retrain_s = time.perf_counter() - start
        finish_each(live, ctxs)
    except Exception as exc:  # noqa: BLE001
        fail_unfinished(live, exc)
    share_runtimes(live, start, search_s, retrain_s)
    return results


def _random_search_batched(method, live: list[TrialResult], ctxs: list[MethodContext]) -> None:
    """Random search's k candidates of every trial, trained as one batch (same streams as the loop)."""
    from harness.batched.engine import FixedJob, train_fixed
    from harness.methods.baselines import best_candidate, random_candidates

    jobs = [FixedJob(ctx, genotype, child) for ctx in ctxs for genotype, child in random_candidates(ctx, method.k)]
    outcomes = train_fixed(jobs)
    for t, (result, ctx) in enumerate(zip(live, ctxs)):
        candidates = []
        for i in range(method.k):
            job, fixed = jobs[t * method.k + i], outcomes[t * method.k + i]
            score = fixed.score if not fixed.failure else math.nan
            candidates.append({"genotype": job.genotype, "score": score, "failure_reason": fixed.failure})
        try:
            best = best_candidate(candidates, ctx.task.primary)
        except TrialDiverged as exc:
            result.failure_reason = str(exc)
            continue
        result.genotype, result.arch_score = best["genotype"], best["score"]
        result.n_param_free_ops = sum(op in PARAMETER_FREE_OPS for op in ctx.space.flatten(best["genotype"]))
        finite = [c for c in candidates if math.isfinite(c["score"])]
        result.extra.update(candidates=candidates, n_failed_candidates=method.k - len(finite))
