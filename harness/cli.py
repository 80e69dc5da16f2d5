"""The ``harness`` command: ``harness SUBCOMMAND [ARGS...]`` runs ``python -m harness.SUBCOMMAND [ARGS...]``.

A thin dispatcher (the console script of ``pyproject.toml``): it forwards the arguments unchanged to
the subcommand's own ``main(argv)``, so ``harness study studies/blur.yaml --dry-run`` and
``python -m harness.study studies/blur.yaml --dry-run`` are the same run. It imports a subcommand
only when it runs it, so ``harness --help`` and ``--version`` do not load torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from harness import __version__
from harness.registry import Registry, UnknownNameError

PROG = "harness"


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: the module whose ``main(argv)`` it runs, and a line for ``--help``."""

    module: str
    summary: str


SUBCOMMANDS: Registry[Subcommand] = Registry("subcommand")
for _name, _summary in (
    ("study", "run a study YAML file's trials and write its report"),
    ("report", "rebuild a study folder's tables, figures and report"),
    ("tune", "tune DAS hyperparameters (BOHB, SMAC or Optuna) from a tuning YAML file"),
    ("methods", "list the method presets"),
):
    SUBCOMMANDS.register(_name, Subcommand(f"harness.{_name}.__main__", _summary))


def usage() -> str:
    return f"usage: {PROG} [-h] [--version] {{{','.join(SUBCOMMANDS.names())}}} [ARGS...]"


def help_text() -> str:
    width = max(len(name) for name in SUBCOMMANDS.names())
    lines = [
        usage(),
        "",
        "Hyperparameter-robustness benchmarking of differentiable architecture search.",
        "",
        "subcommands (each also runs as `python -m harness.SUBCOMMAND`):",
        *(f"  {name:<{width}}  {sub.summary}" for name, sub in SUBCOMMANDS.items()),
        "",
        "options:",
        "  -h, --help  show this help and exit; `harness SUBCOMMAND --help` for a subcommand's",
        "  --version   print the version and exit (also after a subcommand)",
    ]
    return "\n".join(lines)


def version_line() -> str:
    return f"{PROG} {__version__}"


def fail(message: str) -> int:
    """Print ``usage`` and an argparse-style error to stderr; the exit status of a usage error."""
    print(f"{usage()}\n{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``harness [ARGS...]``; returns the exit status (the subcommand's, or 2 for a usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        return fail("a subcommand is required")
    first, rest = args[0], args[1:]
    if first in ("-h", "--help"):
        print(help_text())
        return 0
    if first in ("-V", "--version"):
        print(version_line())
        return 0
    if first.startswith("-"):
        return fail(f"unrecognized option {first!r} (options of a subcommand go after its name)")
    try:
        sub = SUBCOMMANDS.get(first)
    except UnknownNameError as err:
        return fail(str(err))
    name = SUBCOMMANDS.canonical(first)
    own = rest[: rest.index("--")] if "--" in rest else rest
    if "--version" in own:
        print(f"{version_line()} ({name})")
        return 0
    status = importlib.import_module(sub.module).main(rest)
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
