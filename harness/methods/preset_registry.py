"""The method registry: a preset is a named factory whose keyword arguments are the method's own
hyperparameters. ``harness.methods.presets`` registers the published methods with ``@preset``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from harness.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A registered method: metadata plus the factory that builds it from its hyperparameters."""

    name: str
    entry: str
    description: str
    spaces: tuple[str, ...]
    needs: str
    default_hp_set: str
    factory: Callable

    def hyperparameters(self) -> dict:
        return {
            p.name: p.default for p in inspect.signature(self.factory).parameters.values() if p.name != "name"
        }

    def build(self, **options):
        known = self.hyperparameters()
        unknown = sorted(set(options) - set(known))
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            raise ValueError(f"method {self.name!r} has no option(s) {', '.join(unknown)}; its options: {listed}")
        return self.factory(name=self.name, **options)


METHODS: Registry[Preset] = Registry("method")


def preset(name: str):
    """Register a factory; its default build supplies the listing's metadata."""

    def register(factory: Callable) -> Callable:
        method = factory(name=name)
        METHODS.register(
            name,
            Preset(
                name=name,
                entry=method.entry,
                description=method.description,
                spaces=tuple(method.spaces),
                needs=getattr(method, "needs", ""),
                default_hp_set=getattr(method, "default_hp_set", "H1"),
                factory=factory,
            ),
        )
        return factory

    return register


def make_method(name: str, options: dict | None = None):
    """The preset ``name`` built with its method ``options`` (hyperparameters)."""
    return METHODS.get(name).build(**(options or {}))
