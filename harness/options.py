"""Applying a study's options to a frozen config dataclass (one rule for every option group)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

C = TypeVar("C")


def replace_options(config: C, options: dict, kind: str) -> C:
    """``config`` with ``options`` applied; an unknown key raises ValueError listing the known ones."""
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown {kind} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dataclasses.replace(config, **options)
