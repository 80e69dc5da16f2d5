"""Checkpoints inside a trial: a long trial killed mid-way resumes from its last completed epoch.

A trial is a sequence of training phases (a search, each P-DARTS stage, each retraining, each
random-search candidate), numbered in the order the trial reaches them, so a resumed trial meets
the same phases in the same order. At the end of every epoch a phase saves everything its next
epoch depends on: weights and BatchNorm statistics, alpha, optimizer states, the states of the
random generators it draws from, and its bookkeeping. A resumed phase loads its last epoch and
goes on; code between phases is deterministic and simply runs again. So a resumed trial gives
the record an uninterrupted one gives (same seed, same machine; tests/test_checkpoints.py).

The file is replaced atomically (``harness.atomic``): a kill leaves the previous epoch's
checkpoint or the new one, never half of one. The runner deletes it once the trial is stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from harness.atomic import atomic_writer


class TrialCheckpoint:
    """The checkpoint file of one trial (or of one batch of trials on the trial axis)."""

    def __init__(self, path: str | os.PathLike, every_s: float = 0.0) -> None:
        self.path = Path(path)
        self.every_s = float(every_s)  # at most one write per this many seconds (0: every epoch)
        self._phases: dict[str, dict] = {}
        self._counter: dict[str, int] = {}
        self._last_write = 0.0
        self.resumed: dict[str, int] = {}  # phase -> the epoch it resumed after (recorded in the trial)
        if self.path.exists():
            try:
                self._phases = torch.load(self.path, map_location="cpu", weights_only=False)
            except Exception:  # noqa: BLE001 - an unreadable checkpoint only costs the time to redo it
                self._phases = {}

    def phase(self, kind: str) -> str:
        """The next phase of ``kind`` ("search", "train", ...) in this trial: ``kind-0``, ``kind-1``, ..."""
        index = self._counter.get(kind, 0)
        self._counter[kind] = index + 1
        return f"{kind}-{index}"

    def resume(self, phase: str) -> dict | None:
        """The state saved at the end of ``phase``'s last completed epoch, or None."""
        saved = self._phases.get(phase)
        if saved is not None and "epoch" in saved:
            self.resumed[phase] = int(saved["epoch"])
        return saved

    def save(self, phase: str, state: dict, final: bool = False) -> None:
        """Keep ``state`` for ``phase``; written now unless the last write is under ``every_s`` old
        (the last epoch of a phase is always written)."""
        import time

        self._phases[phase] = state
        now = time.monotonic()
        if final or not self.every_s or now - self._last_write >= self.every_s:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_writer(self.path) as handle:  # streamed: no second in-memory copy of the state
                torch.save(self._phases, handle)
            self._last_write = now

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def generator_states(generators: dict[str, torch.Generator | None]) -> dict:
    return {name: g.get_state() for name, g in generators.items() if g is not None}


def restore_generators(generators: dict[str, torch.Generator | None], states: dict) -> None:
    for name, g in generators.items():
        if g is not None and name in states:
            g.set_state(states[name])


def to_cpu(value):
    """A copy of tensors (nested in dicts/lists) on the CPU, so a checkpoint loads on any device."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value
