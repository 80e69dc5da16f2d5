"""Trial callbacks: user code called with every trial record the moment it is stored.

A callback is any callable ``callback(record: dict) -> None``. ``run_specs`` calls it in the study
process (never in a worker), once per stored record, *after* the record is durably in the trial
store, with the exact dict that was written (one line of ``trials.jsonl``: trial id, row fields,
seed, status, scores, genotype, provenance, ...). Callbacks run one at a time in the order given.

A callback is a view of the study, not part of it: one that raises must neither lose a trial nor
stop the study. ``SafeCallbacks`` catches the exception, logs one warning per callback (its first
failure, with the reason) and keeps calling it for later records, so a passing hiccup (an MLflow
server restarting) costs only the records it hit; ``summary`` counts the misses at the end.
``KeyboardInterrupt`` is not caught: Ctrl-C still stops the study.

``load_callback("mypkg.hooks:log_trial")`` (the CLI's ``--callback``) imports a module or a ``.py``
file the way plugins are imported (``harness.runner.plugins``) and returns the function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from harness.runner.plugins import PluginError, _import

TrialCallback = Callable[[dict[str, Any]], None]


class CallbackError(ValueError):
    """A ``module:function`` that does not name a callable, phrased for the person who wrote it."""


def load_callback(name: str) -> TrialCallback:
    """The callable named ``module:function`` (a dotted module or a ``.py`` file before the colon)."""
    module_name, sep, attr = name.rpartition(":")
    if not sep or not module_name or not attr:
        raise CallbackError(f"callback {name!r}: expected module:function, e.g. mypkg.hooks:log_trial")
    try:
        module = _import(module_name)
    except PluginError as exc:
        raise CallbackError(f"callback {name!r}: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CallbackError(f"callback {name!r}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise CallbackError(f"callback {name!r}: {attr} is a {type(target).__name__}, not a function")
    return target


def resolve_callbacks(callbacks: Iterable[TrialCallback | str]) -> list[TrialCallback]:
    """Callables as given; ``"module:function"`` strings loaded with ``load_callback``."""
    resolved = []
    for callback in callbacks:
        if isinstance(callback, str):
            resolved.append(load_callback(callback))
        elif callable(callback):
            resolved.append(callback)
        else:
            raise CallbackError(f"a callback is a callable or a 'module:function' string, got {callback!r}")
    return resolved


def callback_name(callback: object) -> str:
    """``mypkg.hooks:log_trial`` for a function, the class name for a callable object."""
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    module = getattr(callback, "__module__", None) or type(callback).__module__
    return f"{module}:{name}"


class SafeCallbacks:
    """Calls every callback with every record; a failing callback is warned about once and kept."""

    def __init__(self, callbacks: Iterable[TrialCallback], warn: Callable[[str], None] | None = None) -> None:
        self.callbacks = list(callbacks)
        self.warn = warn or (lambda message: None)
        self.failures = [0] * len(self.callbacks)
        self.calls = 0

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def __call__(self, record: dict[str, Any]) -> None:
        self.calls += 1
        for i, callback in enumerate(self.callbacks):
            try:
                callback(record)
            except Exception as exc:  # a view of the study must not stop it
                self.failures[i] += 1
                if self.failures[i] == 1:
                    self.warn(f"warning: callback {callback_name(callback)} failed on trial {record.get('trial_id')} "
                              f"({type(exc).__name__}: {exc}); the trial is stored, the study goes on, and the "
                              "callback is still called for later trials (further failures are counted, not shown)")

    def summary(self) -> list[str]:
        """One line per callback that failed: how many of the records it missed."""
        return [f"warning: callback {callback_name(c)} failed on {n} of {self.calls} trials"
                for c, n in zip(self.callbacks, self.failures) if n]
