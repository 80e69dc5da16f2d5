"""The method interface: a method searches and returns a ``SearchOutcome``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from harness.methods.context import MethodContext


@dataclass
class SearchOutcome:
    genotype: list
    # Supernet validation PSNR; NaN for methods without a supernet (baselines).
    oneshot_score: float = math.nan
    # Set when the method already trained the final architecture (random search); otherwise the
    # runner retrains ``genotype`` from scratch and scores it.
    arch_score: float | None = None
    final_alphas: list | None = None
    alpha_history: list | None = None
    extra: dict = field(default_factory=dict)
    # Every metric of the task, by name, where the method computed them (the scores above are
    # the primary metric's values).
    oneshot_metrics: dict = field(default_factory=dict)
    arch_metrics: dict = field(default_factory=dict)


class Method(Protocol):
    name: str
    entry: str  # METHODS.md entry, e.g. "M03"
    spaces: tuple[str, ...]  # spaces it runs on

    def search(self, ctx: MethodContext) -> SearchOutcome: ...
