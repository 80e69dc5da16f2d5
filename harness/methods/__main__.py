"""``python -m harness.methods [--hyperparameters]``: list the method presets, one per line.

Columns: name, METHODS.md entry, where it runs (tasks x spaces, e.g. ``blur,downsampling x
sequential,nonsequential; cifar10,cifar100,mnist-proxy x darts-cell``, or what it needs that
no space has), description; ``--hyperparameters`` adds each preset's own hyperparameters with
their defaults. A task fits a space when the space's kind of data (``DATA_KINDS``) is among the
task's capabilities.
"""

from __future__ import annotations

import argparse
from functools import cache

from harness.methods import METHODS
from harness.spaces import SPACES
from harness.tasks.registry import TASKS, make_task

DATA_KINDS = frozenset({"signal-1d", "images"})


@cache
def tasks_for(space: str) -> tuple[str, ...]:
    """The registered tasks whose data the space's networks take."""
    kinds = getattr(SPACES.get(space), "capabilities", frozenset()) & DATA_KINDS
    return tuple(name for name, _ in TASKS.items() if kinds and kinds <= make_task(name).capabilities)


def runs_on(preset) -> str:
    if preset.needs or not preset.spaces:
        return f"needs {preset.needs.split(':')[0]}"
    groups: dict[tuple[str, ...], list[str]] = {}
    for space in preset.spaces:
        groups.setdefault(tasks_for(space), []).append(space)
    return "; ".join(f"{','.join(tasks)} x {','.join(spaces)}" for tasks, spaces in groups.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.methods", description="List the method presets.")
    parser.add_argument("--hyperparameters", action="store_true", help="also list each preset's hyperparameters")
    args = parser.parse_args(argv)
    for name, preset in METHODS.items():
        line = f"{name}\t{preset.entry}\t{runs_on(preset)}\t{preset.description}"
        if args.hyperparameters:
            params = ", ".join(f"{k}={v!r}" for k, v in preset.hyperparameters().items())
            line += f"\t[hp set {preset.default_hp_set}; {params or 'no options'}]"
        print(line)


if __name__ == "__main__":
    main()
