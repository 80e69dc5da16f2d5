"""The ``harness`` console script (issue 15, packaging): ``harness SUBCOMMAND ...`` forwards to
``python -m harness.SUBCOMMAND ...``; ``--version``, ``--help`` and usage errors are the dispatcher's."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import harness
from harness import cli

REPO = Path(__file__).resolve().parents[1]


def installed_script() -> str | None:
    """The ``harness`` script of this interpreter's environment (pip puts it next to python), else PATH's."""
    beside = Path(sys.executable).parent / "harness"
    return str(beside) if beside.is_file() else shutil.which("harness")


def installed_distribution() -> metadata.Distribution | None:
    try:
        return metadata.distribution("das-harness")
    except metadata.PackageNotFoundError:
        return None


SCRIPT = installed_script()
DIST = installed_distribution()
needs_script = pytest.mark.skipif(SCRIPT is None, reason="the `harness` console script is not installed "
                                                         "(pip install -e . puts it on PATH)")


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"harness {harness.__version__}\n"


def test_subcommand_version_does_not_run_the_subcommand(capsys):
    assert cli.main(["study", "--version"]) == 0
    assert capsys.readouterr().out == f"harness {harness.__version__} (study)\n"


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("study", "report", "tune", "methods"):
        assert f"\n  {name} " in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a subcommand is required"),
        (["stdy"], "unknown subcommand 'stdy'. Did you mean 'study'? Known subcommands: study, report, tune, methods"),
        (["--verbose"], "unrecognized option '--verbose'"),
    ],
)
def test_usage_errors(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: harness ")
    assert message in err


def test_arguments_reach_the_subcommand(capsys, tmp_path):
    """The report subcommand's own error for a missing folder: the argument went through unchanged."""
    missing = tmp_path / "no_such_study"
    assert cli.main(["report", str(missing)]) == 2
    assert f"study folder {missing} does not exist" in capsys.readouterr().err


@needs_script
def test_installed_script_version():
    proc = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, f"harness {harness.__version__}\n"), proc.stderr


@needs_script
def test_installed_script_runs_a_dry_run():
    proc = subprocess.run([SCRIPT, "study", "studies/blur.yaml", "--dry-run"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "study blur: " in proc.stdout + proc.stderr


@needs_script
def test_installed_script_reports_an_unknown_subcommand():
    proc = subprocess.run([SCRIPT, "reprot"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Did you mean 'report'?" in proc.stderr


@pytest.mark.skipif(DIST is None, reason="the das-harness distribution is not installed (pip install -e .)")
def test_distribution_metadata_names_the_script_and_the_version():
    scripts = {ep.name: ep.value for ep in DIST.entry_points if ep.group == "console_scripts"}
    assert scripts == {"harness": "harness.cli:main"}
    assert DIST.version == harness.__version__
    assert DIST.metadata["License-Expression"] == "MIT"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the CI helper reads pyproject.toml with tomllib (3.11+)")
def test_lowest_constraints_pin_every_direct_dependency_at_its_lower_bound():
    """.ci/run-lowest's pins: NAME>=LOW becomes NAME==LOW; --pin replaces one; no bound is an error."""
    spec = importlib.util.spec_from_file_location("lowest_constraints", REPO / ".ci" / "lowest_constraints.py")
    lowest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lowest)
    deps = ["torch>=2.13,<3", "PyYAML>=6.0", "dask[distributed]>=2024.1 ; python_version >= '3.10'"]
    assert lowest.constraints(deps, {"torch": "torch==2.13.0"}) == ["torch==2.13.0", "PyYAML==6.0", "dask==2024.1"]
    assert lowest.constraints(deps, {"pyyaml": "pyyaml==6.0.1"})[1] == "pyyaml==6.0.1"
    with pytest.raises(ValueError, match="needs exactly one '>=' lower bound"):
        lowest.constraints(["numpy"], {})
    with pytest.raises(ValueError, match="--pin names no dependency"):
        lowest.constraints(deps, {"jax": "jax==0.4"})
    with pytest.raises(ValueError, match="two lower bounds"):
        lowest.constraints(["optuna>=3.6", "optuna>=4"], {})
    assert lowest.constraints(["optuna>=3.6", "optuna>=3.6"], {}) == ["optuna==3.6"]
    assert lowest.main([]) == 0 and lowest.main(["--extras"]) == 0  # the real pyproject.toml
