"""``python -m harness.methods [--hyperparameters]``: list the method presets, one per line.

Columns: name, METHODS.md entry, where it runs (problems x spaces, or what it needs that the
1D problems lack), description; ``--hyperparameters`` adds each preset's own hyperparameters
with their defaults.
"""

from __future__ import annotations

import argparse

from harness.methods import METHODS
from harness.problems import PROBLEMS


def runs_on(preset) -> str:
    if preset.needs or not preset.spaces:
        return f"needs {preset.needs.split(':')[0]}"
    return f"{','.join(name for name, _ in PROBLEMS.items())} x {','.join(preset.spaces)}"


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
