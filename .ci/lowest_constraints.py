"""Print pip constraints that pin every direct dependency of pyproject.toml at its lower bound.

``python .ci/lowest_constraints.py [--extras] [--pin NAME==VERSION ...]`` reads
``[project].dependencies`` (with ``--extras`` also every ``[project.optional-dependencies]``
entry) and turns each ``NAME>=LOW`` into ``NAME==LOW`` (one per line), so the lowest-versions CI
step (``.ci/run-lowest``) tests exactly the bounds the package declares and cannot drift from
them. ``--pin`` replaces a derived pin (torch: only ``torch==2.13.0`` can be installed here). A
dependency without a ``>=`` bound is an error (every dependency states a tested one), and so are
two different bounds for one project.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<specs>[^;]*?)\s*(?:;.*)?$")


def normalize(name: str) -> str:
    """The PEP 503 form of a project name (``PyYAML`` and ``pyyaml`` are one project)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lower_bound(requirement: str) -> tuple[str, str]:
    """``(name, lowest version)`` of a requirement such as ``torch>=2.13,<3``."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot parse the requirement {requirement!r}")
    bounds = [spec.strip()[2:].strip() for spec in match["specs"].split(",") if spec.strip().startswith(">=")]
    if len(bounds) != 1:
        raise ValueError(f"{requirement!r} needs exactly one '>=' lower bound (the tested lowest version)")
    return match["name"], bounds[0]


def constraints(dependencies: list[str], pins: dict[str, str]) -> list[str]:
    """One ``NAME==VERSION`` line per project; ``pins`` (normalized name -> line) replace derived ones."""
    lines: dict[str, str] = {}
    for requirement in dependencies:
        name, low = lower_bound(requirement)
        key = normalize(name)
        line = f"{name}=={low}"
        if key in lines and lines[key].split("==")[1] != low:
            raise ValueError(f"{name} has two lower bounds: {lines[key]} and {line}; declare one")
        lines[key] = line
    unknown = sorted(line for key, line in pins.items() if key not in lines)
    if unknown:
        raise ValueError(f"--pin names no dependency: {', '.join(unknown)}")
    return [pins.get(key, line) for key, line in lines.items()]


def declared(project: dict, extras: bool) -> list[str]:
    """The project's requirements; with ``extras`` also the extras' (not the ones naming this project)."""
    requirements = list(project["dependencies"])
    if extras:
        own = normalize(project["name"])
        for group in project.get("optional-dependencies", {}).values():
            requirements += [r for r in group if normalize(REQUIREMENT.match(r)["name"]) != own]
    return requirements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", action="store_true", help="also pin every extra's dependencies")
    parser.add_argument("--pin", action="append", default=[], metavar="NAME==VERSION",
                        help="use this pin instead of the derived one (repeatable)")
    args = parser.parse_args(argv)
    pins = {}
    for pin in args.pin:
        name, sep, version = pin.partition("==")
        if not sep or not name.strip() or not version.strip():
            parser.error(f"--pin takes NAME==VERSION, got {pin!r}")
        pins[normalize(name.strip())] = f"{name.strip()}=={version.strip()}"
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    try:
        print("\n".join(constraints(declared(project, args.extras), pins)))
    except ValueError as err:
        print(f"error: {PYPROJECT.name}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
