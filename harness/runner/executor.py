"""Executors: run trial specs in this process, in local worker processes (joblib/loky) or on a
Dask cluster (``harness.runner.dask_executor``), with progress and ETA.

Results come back to the calling process, which appends each one to the trial store as soon
as it arrives (and only once per trial id), so a killed study loses at most the trials that were
still running. Every worker imports the study's plugins (``harness.runner.plugins``) first.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from harness.runner.checkpoints import checkpoint_folder, clean_temporaries, discard_stored
from harness.runner.plugins import Plugins
from harness.runner.spec import STATUS_FAILED, RowSpec, TrialResult, TrialSpec
from harness.runner.store import TrialStore

EXECUTORS = ("local", "dask")


def _worker_init(threads: int, parent_pid: int | None = None) -> None:
    import torch

    torch.set_num_threads(threads)
    if parent_pid is not None and parent_pid != os.getpid():
        _watch_parent(parent_pid)


_WATCHED: set[int] = set()
PARENT_POLL_S = 1.0


def _watch_parent(pid: int) -> None:
    """A worker whose study process died (e.g. killed -9) exits within a second instead of
    computing trials nobody will store. One daemon thread per worker process."""
    if pid in _WATCHED:
        return
    _WATCHED.add(pid)

    def watch() -> None:
        while process_alive(pid):
            time.sleep(PARENT_POLL_S)
        os._exit(3)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a killed process that nobody has reaped yet (a zombie) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we can tell
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def run_chunk(
    specs: list[TrialSpec], threads: int, batched: bool = True, parent_pid: int | None = None,
    device: str | None = None, checkpoint_dir: str | None = None, plugins: Plugins = Plugins(),
) -> list[TrialResult]:
    """One batch in a worker process (loky or Dask) or here: ``threads`` torch threads, the study's
    plugins imported first; ``device`` None lets ``build_context`` pick (a GPU where there is one)."""
    _worker_init(threads, parent_pid)
    plugins.load()
    from harness.runner.trial import run_batch

    return run_batch(specs, device=device, batched=batched, checkpoint_dir=checkpoint_dir)


def _chunks(specs: list[TrialSpec], size: int) -> list[list[TrialSpec]]:
    return [specs[i : i + size] for i in range(0, len(specs), size)]


# Seeds per batch on a CPU: the fused kernel's sweet spot measured for the 1D problems (K = 32);
# on a GPU a batch can hold far more trials.
CPU_MAX_BATCH = 32
GPU_MAX_BATCH = 256
BYTES_PER_TRIAL = 64 * 2**20  # generous per-trial working set of a batched DAS step (reference backend)


def auto_batch_size(workers: int) -> int:
    """Largest K that fits the machine: capped by the per-device default and by half of the free
    memory shared among the workers."""
    import torch

    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return max(1, min(GPU_MAX_BATCH, int(0.5 * free / BYTES_PER_TRIAL)))
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return CPU_MAX_BATCH
    return max(1, min(CPU_MAX_BATCH, int(0.5 * free / max(workers, 1) / BYTES_PER_TRIAL)))


def plan_batches(
    specs: list[TrialSpec], workers: int, max_batch: int, batchable: Callable[[TrialSpec], bool] | None = None
) -> list[list[TrialSpec]]:
    """Group specs that differ only in seed and cut each group into batches of at most
    ``max_batch``, as many as a multiple of ``workers`` when the group is big enough, so every
    worker gets an equal share of a large row. A row that ``batchable`` rejects (its method runs
    alone, ``batching_reason``) goes one trial per batch: a batch returns its results only when all of
    them are done, so loop trials grouped together would wait unstored for their batch mates."""
    groups: dict[RowSpec, list[TrialSpec]] = {}  # trials of one row differ only in seed
    for spec in specs:
        groups.setdefault(spec.row, []).append(spec)
    batches = []
    for group in groups.values():
        if batchable is not None and not batchable(group[0]):
            batches.extend([spec] for spec in group)
            continue
        n = len(group)
        count = math.ceil(n / max(max_batch, 1))
        if workers > 1 and n >= 2 * workers:
            count = workers * math.ceil(count / workers)
        sizes = [n // count + (1 if i < n % count else 0) for i in range(count)]
        starts = [sum(sizes[:i]) for i in range(count)]
        batches.extend(group[a : a + size] for a, size in zip(starts, sizes) if size)
    return batches


def batch_device(device: str | None, index: int) -> str | None:
    """The device of the ``index``-th batch on this machine: with several GPUs and ``device`` None
    or "cuda", batches go round-robin over them (one GPU per worker when workers = GPUs); an
    explicit "cuda:N" or "cpu" is kept."""
    if device not in (None, "cuda"):
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{index % count}" if count > 1 else device


def iter_results(
    specs: list[TrialSpec],
    workers: int = 1,
    threads_per_worker: int = 1,
    batch_size: int | None = None,
    device: str | None = None,
    checkpoint_dir: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    plugins: Plugins = Plugins(),
) -> Iterator[TrialResult]:
    """Yield results as they finish. ``workers`` <= 1 runs in this process (local executor). The
    trials of a row are planned into batches of ``batch_size`` seeds at most (None: automatic)
    that run as one computation; ``batch_size`` 1 runs every trial alone. ``device``: where trials
    run (None: a GPU when present, else the CPU). ``executor``: "local" (this process or loky
    workers) or "dask" (``scheduler`` an address, or None for a LocalCluster of ``workers``)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    batched = batch_size != 1
    if not batched:
        chunks = _chunks(specs, 1)
    else:
        from harness.runner.trial import batching_reason

        chunks = plan_batches(specs, max(workers, 1), batch_size or auto_batch_size(workers),
                              lambda spec: not batching_reason(spec))
    if executor == "dask":
        from harness.runner.dask_executor import iter_dask_results

        yield from iter_dask_results(chunks, workers, threads_per_worker, batched, device, checkpoint_dir, plugins,
                                     scheduler)
        return
    if workers <= 1:
        for i, chunk in enumerate(chunks):
            yield from run_chunk(chunk, threads_per_worker, batched, None, batch_device(device, i), checkpoint_dir,
                                  plugins)
        return
    from joblib import delayed

    me = os.getpid()
    jobs = (delayed(run_chunk)(chunk, threads_per_worker, batched, me, batch_device(device, i), checkpoint_dir,
                                plugins) for i, chunk in enumerate(chunks))
    for chunk_results in as_completed(jobs, workers):
        yield from chunk_results


def as_completed(jobs: Iterable, workers: int) -> Iterator:
    """Run joblib ``delayed`` calls in ``workers`` loky processes; yield each result the moment
    its call finishes. One call per dispatch (``batch_size=1``): joblib's automatic batching
    groups calls after a run of quick ones (trials resumed from a finished checkpoint), and a
    group comes back only when its last call ends, which left finished trials unstored for as
    long as a whole group of trials took."""
    from joblib import Parallel

    parallel = Parallel(n_jobs=workers, return_as="generator_unordered", backend="loky", batch_size=1)
    yield from parallel(jobs)


def run_specs(
    specs: Iterable[TrialSpec],
    workers: int = 1,
    store: TrialStore | None = None,
    progress: bool = True,
    threads_per_worker: int = 1,
    on_result: Callable[[TrialResult], None] | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    plugins: Plugins = Plugins(),
    callbacks: Callable[[dict], None] | None = None,
) -> list[TrialResult]:
    """Run ``specs``; append every result to ``store`` the moment it arrives. With a store, trials
    save checkpoints in its folder every epoch (and resume from them); a trial's checkpoint goes
    once the trial is stored. A trial id that comes back twice (a batch that Dask reran after its
    worker died just as it returned) is stored once. ``callbacks`` (``harness.runner.callbacks``)
    gets each record exactly as stored, after it is stored, here in the study process."""
    specs = list(specs)
    results = []
    folder = checkpoint_folder(store.path.parent) if store is not None else None
    clean_temporaries(folder)
    stored: set[str] = set()
    bar = progress_bar(len(specs), progress, desc="trials", unit="trial")
    try:
        for result in iter_results(specs, workers, threads_per_worker, batch_size, device,
                                   None if folder is None else str(folder), executor, scheduler, plugins):
            if result.spec.trial_id in stored:
                continue
            stored.add(result.spec.trial_id)
            record = result.to_record()
            if store is not None:
                store.append_record(record)
                discard_stored(folder, stored)
            results.append(result)
            if on_result is not None:
                on_result(result)
            if callbacks is not None:
                callbacks(record)
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
