"""Search spaces and candidate operations (imports only harness.tasks, harness.problems and below)."""

from __future__ import annotations

from harness.registry import Registry
from harness.spaces.nonsequential import NonSequentialSpace
from harness.spaces.ops import OP_SETS, OPS, PARAMETER_FREE_OPS, OpConfig, OpContext
from harness.spaces.sequential import SequentialSpace

SPACES: Registry[type] = Registry("space")
SPACES.register("sequential", SequentialSpace)
SPACES.register("nonsequential", NonSequentialSpace)


def op_names(op_set: str, space: str) -> tuple[str, ...]:
    """The candidate ops of ``op_set`` in ``space`` (the non-sequential sets include 'zero')."""
    return OP_SETS.get(op_set)[SPACES.canonical(space)]


__all__ = [
    "OPS",
    "OP_SETS",
    "PARAMETER_FREE_OPS",
    "SPACES",
    "NonSequentialSpace",
    "OpConfig",
    "OpContext",
    "SequentialSpace",
    "op_names",
]
