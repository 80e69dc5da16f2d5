"""The Dask executor: batches of trials as Dask tasks on a ``distributed`` cluster.

One batch (a row's seeds planned by ``plan_batches``) is one task, submitted when a worker
thread is free. Results come back to the client (the study process) as each task finishes, and
the client alone appends them to the trial store: workers never write the store, so a cluster
needs no shared filesystem for it.

* ``scheduler=None`` starts a ``LocalCluster`` of ``workers`` single-threaded processes;
  an address (``tcp://host:8786``) connects to a running ``dask scheduler``.
* Devices: ``device=None`` lets each worker use its GPU when it has one; ``cuda``/``cuda:N``
  submits every batch with the resource ``GPU=1``, so it runs only on workers started with
  ``--resources GPU=1`` (one batch per GPU at a time).
* Faults: a batch whose worker dies is rescheduled by Dask; once it has killed
  ``distributed.scheduler.allowed-failures`` + 1 workers (``MAX_ATTEMPTS`` on our LocalCluster;
  the scheduler's setting, default 4 attempts, on a cluster of yours) its trials are stored as
  failed with the reason. A batch that raises is stored failed likewise; nothing is dropped.
* Ctrl-C (or any exit of the consumer) cancels the tasks not yet done and closes the client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from harness.runner.plugins import Plugins
from harness.runner.spec import STATUS_FAILED, TrialResult, TrialSpec

MAX_ATTEMPTS = 3  # workers a batch may kill on our LocalCluster before its trials fail
CONNECT_TIMEOUT_S = 30


class DaskSetupError(RuntimeError):
    """The cluster cannot serve the study (no scheduler at the address, no GPU worker, ...)."""


def _run_dask_batch(specs: list[TrialSpec], threads: int, batched: bool, device: str | None,
                    checkpoint_dir: str | None, plugins: Plugins) -> list[TrialResult]:
    """A Dask task: the local executor's ``run_chunk`` on this worker, after undoing the nanny's
    malloc setting."""
    from harness.runner.executor import run_chunk

    _heap_friendly_malloc()
    return run_chunk(specs, threads, batched, None, device, checkpoint_dir, plugins)


_MALLOC_TUNED: list[bool] = []
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its dynamic threshold (64-bit)


def _heap_friendly_malloc() -> None:
    """Undo the Dask nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` for this worker process (glibc only).

    Setting that variable also freezes glibc's mmap threshold at 128 KiB, so every tensor above
    it (a K = 16 batch's activations are ~400 KiB) is mmap'ed and unmapped on each use, paying
    page faults: measured, a 64-trial study ran at 0.56 of the local executor's speed. Here the
    thresholds are set to where glibc's dynamic rule would take them in a loky worker."""
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED.append(True)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to undo
        pass


def _needs_gpu(device: str | None) -> bool:
    return device is not None and device.startswith("cuda")


def connect(scheduler: str | None, workers: int, device: str | None):
    """(client, cluster or None): a client of the scheduler at ``scheduler``, or of a new LocalCluster
    of ``workers`` single-threaded processes (``MAX_ATTEMPTS`` attempts per task; ``GPU=1`` each for a
    cuda ``device``). Shared by studies and tuning (``harness.tune.dask_workers``)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT_S), None
        except (OSError, TimeoutError) as exc:
            raise DaskSetupError(f"no Dask scheduler answers at {scheduler}: {exc}") from None
    resources = {"GPU": 1} if _needs_gpu(device) else None
    with dask.config.set({"distributed.scheduler.allowed-failures": MAX_ATTEMPTS - 1}):
        cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                               dashboard_address=":0", resources=resources, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _check_gpu_workers(client) -> None:
    workers = client.scheduler_info()["workers"].values()
    if not any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers):
        raise DaskSetupError(
            "--device cuda on Dask runs batches only on workers with the resource GPU; start them with "
            "`dask worker ADDRESS --resources GPU=1` (one per GPU), or use --device auto")


def iter_dask_results(chunks: list[list[TrialSpec]], workers: int, threads: int, batched: bool,
                      device: str | None, checkpoint_dir: str | None, plugins: Plugins,
                      scheduler: str | None = None) -> Iterator[TrialResult]:
    """Yield the results of every batch in ``chunks`` as its task finishes.

    Batches are handed out as worker threads free up (at most one per thread in flight, counted
    again at every completion, so workers that join later get work): a batch goes to whichever
    worker is idle next, as with the local executor. Submitting every batch at once let the
    scheduler queue a row's costly search batches behind each other on one worker while another
    ran the cheap baseline batches (measured: 0.84 of the local throughput on DAS + Random)."""
    from distributed import as_completed

    client, cluster = connect(scheduler, workers, device)
    futures: dict = {}
    try:
        resources = None
        if _needs_gpu(device):
            _check_gpu_workers(client)
            resources = {"GPU": 1}
        run_id = uuid.uuid4().hex[:8]
        waiting = list(enumerate(chunks))
        done = as_completed()

        def submit_while_idle() -> None:
            slots = max(1, sum(client.nthreads().values()))
            while waiting and len(futures) < slots:
                i, chunk = waiting.pop(0)
                future = client.submit(_run_dask_batch, chunk, threads, batched, device, checkpoint_dir, plugins,
                                       key=f"harness-batch-{run_id}-{i}", pure=False, resources=resources)
                futures[future.key] = (future, chunk)
                done.add(future)

        submit_while_idle()
        for future in done:
            _, chunk = futures.pop(future.key)
            submit_while_idle()
            try:
                results = future.result()
            except Exception as exc:  # KilledWorker after too many attempts, or the task raised
                results = failed_batch(chunk, failure_reason(exc))
            yield from results
    finally:
        pending = [f for f, _ in futures.values()]
        if pending:
            client.cancel(pending)
        client.close()
        if cluster is not None:
            cluster.close()


def failure_reason(exc: BaseException) -> str:
    """Why a Dask task gave no result, for a failed trial or evaluation."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (f"its Dask worker died on every attempt (KilledWorker: {exc}); e.g. out of memory, or a crash "
                "in native code")
    return f"it raised on a Dask worker: {type(exc).__name__}: {exc}"


def failed_batch(chunk: list[TrialSpec], reason: str) -> list[TrialResult]:
    return [TrialResult(spec=spec, status=STATUS_FAILED, failure_reason=reason) for spec in chunk]
