"""What a method gets to work with: the task, the space, hyperparameters and random streams.

Each trial owns independent random streams (initialization, training data, the noise op,
random architectures, evaluation) derived from its seed with numpy's SeedSequence, so a
trial's result does not depend on what else runs in the same process or batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.methods.checkpoint import TrialCheckpoint
from harness.methods.hyperparams import HyperParams
from harness.spaces import OpConfig
from harness.tasks.base import Task

STREAM_NAMES = ("init", "data", "noise_op", "arch", "eval", "retrain_init", "retrain_data", "children")


class TrialDiverged(RuntimeError):
    """Training produced a non-finite loss; the trial is recorded as failed with this reason."""


class Streams:
    """Named, independent random streams of one trial (or of one sub-run of a trial)."""

    def __init__(self, seed: int | np.random.SeedSequence) -> None:
        self.seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
        children = self.seq.spawn(len(STREAM_NAMES))
        self._seeds = {
            name: int(c.generate_state(1, dtype=np.uint64)[0] >> 1) for name, c in zip(STREAM_NAMES, children)
        }
        self._children_seq = children[STREAM_NAMES.index("children")]
        self._generators: dict[str, torch.Generator] = {}

    def seed(self, name: str) -> int:
        return self._seeds[name]

    def generator(self, name: str) -> torch.Generator:
        """The stream's generator; created once, then it advances as it is used."""
        if name not in self._generators:
            self._generators[name] = self.fresh(name)
        return self._generators[name]

    def fresh(self, name: str) -> torch.Generator:
        """A new generator at the start of the stream (e.g. the same validation set twice)."""
        return torch.Generator().manual_seed(self._seeds[name])

    def child(self, index: int) -> Streams:
        """Streams for the index-th sub-run (e.g. a random-search candidate)."""
        parent = self._children_seq
        return Streams(np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, index)))

    @contextlib.contextmanager
    def seeded_init(self, name: str = "init"):
        """Run module construction under the stream's seed without touching the caller's global RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seeds[name])
            yield


@dataclass
class MethodContext:
    task: Task
    space: object
    ops: tuple[str, ...]
    op_config: OpConfig
    hp: HyperParams
    epochs: int
    streams: Streams
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    record_alpha_history: bool = True
    # Where phases save their epochs (harness.methods.checkpoint); None: no checkpoints.
    checkpoint: TrialCheckpoint | None = None

    @property
    def problem(self):
        """The 1D problem behind the task, for the code that still reads it directly (the 1D cost
        objective)."""
        return self.task.problem
