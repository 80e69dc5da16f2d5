"""Methods: every search method as a preset of components, the baselines, hyperparameter sets.

Each published method is a named preset in ``METHODS`` (``harness/methods/presets.py``);
``python -m harness.methods`` lists them with their METHODS.md entry and the spaces they run
on. The search loop they all configure is ``ComposedSearch`` (``search.py``); the component
kinds live one per module (relaxation, estimators, regularizers, perturbations, schedules,
multiobjective, discretization, early_stopping; hessian for diagnostics).
"""

from __future__ import annotations

from harness.methods.base import Method, SearchOutcome
from harness.methods.context import MethodContext, Streams, TrialDiverged
from harness.methods.hyperparams import HP_SETS, HyperParams, resolve_hp_set
from harness.methods.presets import METHODS, ONE_D_PRESETS, SEARCH_PRESETS, Preset, make_method
from harness.methods.search import ComposedSearch

__all__ = [
    "HP_SETS",
    "METHODS",
    "ONE_D_PRESETS",
    "SEARCH_PRESETS",
    "ComposedSearch",
    "HyperParams",
    "Method",
    "MethodContext",
    "Preset",
    "SearchOutcome",
    "Streams",
    "TrialDiverged",
    "make_method",
    "resolve_hp_set",
]
