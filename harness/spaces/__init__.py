"""Search spaces and candidate operations (imports only harness.tasks, harness.problems and below)."""

from __future__ import annotations

from harness.registry import Registry
from harness.spaces.cells import DartsCellSpace
from harness.spaces.darts_cell import OP_NAMES as DARTS_OPS
from harness.spaces.darts_cell import PARAMETER_FREE_OPS as DARTS_PARAMETER_FREE
from harness.spaces.nonsequential import NonSequentialSpace
from harness.spaces.ops import OP_SETS, OPS, OpConfig, OpContext
from harness.spaces.ops import PARAMETER_FREE_OPS as OPS_1D_PARAMETER_FREE
from harness.spaces.sequential import SequentialSpace

SPACES: Registry[type] = Registry("space")
SPACES.register("sequential", SequentialSpace)
SPACES.register("nonsequential", NonSequentialSpace)
SPACES.register("darts-cell", DartsCellSpace)
# The DARTS op list ([003] section IV-B1, [004]: 8 ops including 'none').
OP_SETS.register("darts", {"darts-cell": DARTS_OPS})
PARAMETER_FREE_OPS = OPS_1D_PARAMETER_FREE | frozenset(DARTS_PARAMETER_FREE)


def op_names(op_set: str, space: str) -> tuple[str, ...]:
    """The candidate ops of ``op_set`` in ``space`` (the non-sequential sets include 'zero')."""
    sets = OP_SETS.get(op_set)
    space = SPACES.canonical(space)
    if space not in sets:
        usable = [name for name, by_space in OP_SETS.items() if space in by_space]
        raise ValueError(f"op set {op_set!r} is not defined for space {space!r}; use {', '.join(usable)}")
    return sets[space]


__all__ = [
    "DartsCellSpace",
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
