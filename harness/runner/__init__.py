"""Trial runner: specs, the trial function, executors and the append-only trial store.

Names are imported lazily so that readers of the store (reports, notebooks) do not pay for
importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "STATUS_FAILED": "harness.runner.spec",
    "STATUS_OK": "harness.runner.spec",
    "TrialResult": "harness.runner.spec",
    "TrialSpec": "harness.runner.spec",
    "TrialStore": "harness.runner.store",
    "load_trials": "harness.runner.store",
    "run_batch": "harness.runner.trial",
    "run_trial": "harness.runner.trial",
    "run_specs": "harness.runner.executor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness.runner' has no attribute {name!r}")
