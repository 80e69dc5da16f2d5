"""Results reach the parent the moment a worker finishes them, even after a run of quick calls.

joblib's automatic batching groups calls once quick ones came back (for example trials resumed
from a finished checkpoint); a group is delivered only when its last call ends. The handshake
below cannot complete under grouping: each slow call waits for the parent to have received the
previous one, so grouped delivery makes every waiting call give up."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from joblib import delayed

from harness.runner.executor import as_completed

QUICK_CALLS = 1000
CHAINED_CALLS = 6
PATIENCE_S = 5.0


def _quick(index: int) -> tuple[int, bool]:
    time.sleep(0.001)
    return index, True


def _chained(index: int, folder: str) -> tuple[int, bool]:
    """Wait until the parent says it received call ``index - 1``; report whether it did in time."""
    released = Path(folder) / f"received-{index - 1}"
    deadline = time.monotonic() + PATIENCE_S
    while index > QUICK_CALLS and not released.exists():
        if time.monotonic() > deadline:
            return index, False
        time.sleep(0.01)
    return index, True


def test_each_result_arrives_when_its_call_finishes(tmp_path):
    quick = (delayed(_quick)(i) for i in range(QUICK_CALLS))
    chained = (delayed(_chained)(QUICK_CALLS + i, str(tmp_path)) for i in range(CHAINED_CALLS))
    jobs = itertools.chain(quick, chained)  # a lazy stream, as iter_results hands it over
    received = {}
    for index, in_time in as_completed(jobs, workers=2):
        received[index] = in_time
        (tmp_path / f"received-{index}").touch()
    assert len(received) == QUICK_CALLS + CHAINED_CALLS
    late = [i for i, ok in received.items() if not ok]
    assert late == [], f"calls {late} waited {PATIENCE_S} s for an earlier result that was held back"
