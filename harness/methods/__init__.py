"""Methods: DAS and the baselines, as compositions of components, plus hyperparameter sets.

Each published method is a named preset in ``METHODS``; ``python -m harness.methods`` lists
them with their METHODS.md entry and the spaces they run on.
"""

from __future__ import annotations

from harness.methods.base import Method, SearchOutcome
from harness.methods.baselines import RandomArchitecture, RandomSearch, SingleOp
from harness.methods.context import MethodContext, Streams, TrialDiverged
from harness.methods.das import DAS
from harness.methods.hyperparams import HP_SETS, HyperParams, resolve_hp_set
from harness.registry import Registry

METHODS: Registry[Method] = Registry("method")
METHODS.register("das", DAS())
METHODS.register("das-2nd", DAS(name="das-2nd", order=2, description="DAS with the second-order estimator"))
METHODS.register("lg-only", SingleOp(name="lg-only", op="lgd", description="Learnable Grad. only"))
METHODS.register("nets-only", SingleOp(name="nets-only", op="net", description="Nets only (2-layer CNN)"))
METHODS.register("random", RandomArchitecture())
METHODS.register("random-search", RandomSearch())


def make_method(name: str, options: dict | None = None) -> Method:
    """The preset ``name``, with method ``options`` (e.g. ``k`` for random search) applied."""
    import dataclasses

    method = METHODS.get(name)
    if options:
        known = {f.name for f in dataclasses.fields(method)} - {"name", "entry", "spaces", "description"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"method {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(sorted(known))}"
            )
        method = dataclasses.replace(method, **options)
    return method


__all__ = [
    "DAS",
    "HP_SETS",
    "METHODS",
    "HyperParams",
    "Method",
    "MethodContext",
    "SearchOutcome",
    "Streams",
    "TrialDiverged",
    "make_method",
    "resolve_hp_set",
]
