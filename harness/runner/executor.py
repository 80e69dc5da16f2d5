"""Executors: run trial specs in this process or in worker processes, with progress and ETA.

Results come back to the calling process, which appends each one to the trial store as soon
as it arrives, so a killed study loses at most the trials that were still running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator

from harness.runner.spec import STATUS_FAILED, TrialResult, TrialSpec
from harness.runner.store import TrialStore


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_chunk(specs: list[TrialSpec], threads: int) -> list[TrialResult]:
    _worker_init(threads)
    from harness.runner.trial import run_batch

    return run_batch(specs)


def _chunks(specs: list[TrialSpec], size: int) -> list[list[TrialSpec]]:
    return [specs[i : i + size] for i in range(0, len(specs), size)]


def iter_results(
    specs: list[TrialSpec], workers: int = 1, threads_per_worker: int = 1, batch_size: int = 1
) -> Iterator[TrialResult]:
    """Yield results as they finish. ``workers`` <= 1 runs in this process."""
    chunks = _chunks(specs, max(1, batch_size))
    if workers <= 1:
        for chunk in chunks:
            yield from _run_chunk(chunk, threads_per_worker)
        return
    from joblib import Parallel, delayed

    # return_as="generator_unordered" hands back each batch as soon as a worker finishes it.
    parallel = Parallel(n_jobs=workers, return_as="generator_unordered", backend="loky")
    for chunk_results in parallel(delayed(_run_chunk)(chunk, threads_per_worker) for chunk in chunks):
        yield from chunk_results


def run_specs(
    specs: Iterable[TrialSpec],
    workers: int = 1,
    store: TrialStore | None = None,
    progress: bool = True,
    threads_per_worker: int = 1,
    on_result: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    """Run ``specs``; append every result to ``store`` the moment it arrives."""
    specs = list(specs)
    results = []
    bar = progress_bar(len(specs), progress, desc="trials", unit="trial")
    try:
        for result in iter_results(specs, workers, threads_per_worker):
            if store is not None:
                store.append(result)
            results.append(result)
            if on_result is not None:
                on_result(result)
            failed = sum(r.status == STATUS_FAILED for r in results)
            bar.set_postfix_str(f"failed={failed} last={result.spec.method}/{result.spec.op_set}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return results


def progress_bar(total: int, enabled: bool, desc: str, unit: str):
    """A tqdm bar with ETA on stderr; under CI it refreshes only every 30 s to keep logs short."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if os.environ.get("CI") is None else 30,
    )
