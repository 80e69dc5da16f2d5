"""The hyperparameter search space of [001] App. B Table 7, as a ConfigSpace.

Hyperparameter names are ``HyperParams`` field names and categorical values are the values
``HyperParams`` takes ('none'/'linear', 'adam'/'sgd'), so a configuration is directly a set of
overrides. Table 7's spellings map as: scheduler None -> 'none', Linear -> 'linear'; optimizer
Adam -> 'adam', Gradient Descent -> 'sgd'. Ranges are sampled on a log scale (the paper does not
say; its ranges span up to five decades, where linear sampling would almost never try small
values).

A method with hyperparameters of its own registers a hook in ``METHOD_SPACES`` that adds them
with names ``method.<option>``; ``split_config`` routes those to the trial's method options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.registry import Registry

METHOD_PREFIX = "method."


@dataclass(frozen=True)
class FloatRange:
    name: str
    lower: float
    upper: float
    log: bool
    paper_name: str


@dataclass(frozen=True)
class Choice:
    name: str
    choices: tuple
    paper_name: str
    paper_choices: tuple


# [001] App. B Table 7, "Search Range" column (Table 8 repeats it for the non-sequential space).
TABLE7: tuple[FloatRange | Choice, ...] = (
    FloatRange("param_lr", 1e-5, 1.0, True, "Param. learn. rate"),
    FloatRange("param_weight_decay", 1e-8, 0.1, True, "Param. weight decay"),
    Choice("param_warmup", (True, False), "Param. warm up", ("True", "False")),
    FloatRange("alpha_lr", 1e-5, 0.1, True, "Alpha learn. rate"),
    FloatRange("alpha_weight_decay", 1e-5, 0.1, True, "Alpha weight decay"),
    Choice("alpha_warmup", (True, False), "Alpha warm up", ("True", "False")),
    Choice("alpha_scheduler", ("none", "linear"), "Alpha scheduler", ("None", "Linear")),
    Choice("alpha_optimizer", ("adam", "sgd"), "Alpha optimizer", ("Adam", "Gradient Descent")),
)

# A hook adds a method's own hyperparameters (named ``method.<option>``) to the space.
MethodSpaceHook = Callable[[Any], None]
METHOD_SPACES: Registry[MethodSpaceHook] = Registry("method search space")


def register_method_space(method: str, hook: MethodSpaceHook) -> MethodSpaceHook:
    """Add ``hook(configspace)`` to the space whenever ``method`` is tuned."""
    return METHOD_SPACES.register(method, hook)


def build_space(method: str | None = None, seed: int | None = None, tune: list[str] | None = None):
    """The Table 7 space (restricted to ``tune`` names if given) plus ``method``'s own hook.

    ``seed`` seeds the space's sampler: hpbandster has no seed argument, so this (with numpy's
    global seed) is what makes a run reproducible.
    """
    import ConfigSpace as CS

    from harness.tune import hpbandster_compat  # noqa: F401  (numpy-safe serialization, first)

    known = [p.name for p in TABLE7]
    if tune is not None:
        unknown = sorted(set(tune) - set(known))
        if unknown:
            raise ValueError(f"cannot tune {', '.join(unknown)}; tunable: {', '.join(known)}")
    cs = CS.ConfigurationSpace(seed=seed)
    for p in TABLE7:
        if tune is not None and p.name not in tune:
            continue
        if isinstance(p, FloatRange):
            cs.add(CS.Float(p.name, (p.lower, p.upper), log=p.log))
        else:
            cs.add(CS.Categorical(p.name, list(p.choices)))
    if method is not None and method in METHOD_SPACES:
        METHOD_SPACES.get(method)(cs)
    return cs


def split_config(config: dict) -> tuple[dict, dict]:
    """(HyperParams overrides, method options) of a configuration, as builtin types."""
    from harness.tune.hpbandster_compat import to_builtin

    config = to_builtin(dict(config))
    hp = {k: v for k, v in config.items() if not k.startswith(METHOD_PREFIX)}
    method = {k[len(METHOD_PREFIX) :]: v for k, v in config.items() if k.startswith(METHOD_PREFIX)}
    return hp, method
