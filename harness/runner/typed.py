"""Type a row's free-form values once, strictly, before any trial id is computed.

Hyperparameter overrides and options arrive from YAML, the CLI or a tuner. Each is checked
against the type its owner declares (``HyperParams`` and the problem / op configs are
dataclasses, a space's and a method preset's options are annotated parameters) with pydantic in
strict mode: ``"false"`` is not a bool, ``2.7`` is not an int, ``16.5`` channels are refused,
while an int passes for a float and becomes one (``1`` -> ``1.0``). Typed values then give the
same trial id however the file spelled them.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from harness.methods import METHODS
from harness.methods.hyperparams import HyperParams
from harness.runner.spec import RowSpec
from harness.spaces import SPACES, OpConfig
from harness.tasks.registry import TASKS

OPTION_GROUPS = ("problem", "ops", "space", "method")


class ValueTypeError(ValueError):
    """A value of the wrong type; ``path`` names it (``hp_overrides.alpha_lr``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


def _dataclass_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _signature_types(func: Callable, skip: tuple[str, ...] = ("self", "name")) -> dict[str, Any]:
    """Declared parameter types; an unannotated parameter takes its default's type (None: any)."""
    hints = typing.get_type_hints(func)
    out = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default_type = type(p.default) if p.default not in (None, inspect.Parameter.empty) else Any
        out[p.name] = hints.get(p.name, default_type)
    return out


def group_types(group: str, row: RowSpec) -> dict[str, Any]:
    """The declared types of an option group's keys for this row (its space and method)."""
    if group == "problem":  # the task's options (a 1D problem's or an image task's)
        config_type = type(TASKS.get(row.dataset).config)
        return {k: t for k, t in _dataclass_types(config_type).items() if k != "name"}
    if group == "ops":
        return _dataclass_types(OpConfig)
    if group == "space":
        return _signature_types(SPACES.get(row.space).__init__)
    if group == "method":
        return _signature_types(METHODS.get(row.method).factory)
    raise ValueTypeError("options", f"unknown option group {group!r}; known: {', '.join(OPTION_GROUPS)}")


def typed_values(values: Any, types: dict[str, Any], path: str, what: str) -> dict:
    """``values`` with every value validated (strictly) against its declared type."""
    if not isinstance(values, dict):
        raise ValueTypeError(path, f"must be a mapping of {what}, got {values!r}")
    out = {}
    for key, value in values.items():
        if key not in types:
            known = ", ".join(sorted(types)) or "none"
            raise ValueTypeError(f"{path}.{key}", f"unknown {what}; known: {known}")
        try:
            out[key] = _adapter(types[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            expected = getattr(types[key], "__name__", str(types[key]))
            raise ValueTypeError(f"{path}.{key}", f"{exc.errors()[0]['msg']} ({expected}), got {value!r}") from None
    return out


_ADAPTERS: dict[Any, TypeAdapter] = {}


def _adapter(tp: Any) -> TypeAdapter:
    if tp not in _ADAPTERS:
        _ADAPTERS[tp] = TypeAdapter(tp)
    return _ADAPTERS[tp]


def typed_options(options: Any, row: RowSpec, path: str = "options") -> dict:
    """Options as ``{group: {key: typed value}}`` for this row's space and method."""
    if not isinstance(options, dict):
        raise ValueTypeError(path, f"must be a mapping of option groups ({', '.join(OPTION_GROUPS)})")
    out = {}
    for group, values in options.items():
        if group not in OPTION_GROUPS:
            raise ValueTypeError(f"{path}.{group}", f"unknown option group; known: {', '.join(OPTION_GROUPS)}")
        out[group] = typed_values(values or {}, group_types(group, row), f"{path}.{group}", f"{group} option")
    return {g: v for g, v in out.items() if v}


def typed_row(row: RowSpec) -> RowSpec:
    """The row with its overrides and options typed (raises ``ValueTypeError`` naming the key)."""
    overrides = typed_values(row.hp_overrides_dict, _dataclass_types(HyperParams), "hp_overrides", "hyperparameter")
    options = typed_options(row.options_dict, row)
    fields = {f: getattr(row, f) for f in ("dataset", "space", "op_set", "method", "hp_set", "epochs")}
    return RowSpec.make(**fields, hp_overrides=overrides, options=options)
