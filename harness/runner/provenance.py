"""Where and how a trial ran: host, CPU, device, threads, engine, versions and the harness's git commit.

Why: a study resumes from its store, possibly on another machine, device or engine, and float
rounding differs between them (the trial axis rounds differently from a trial alone; a GPU from a
CPU; one CPU model from another, whose kernels use other vector instructions: a 5-epoch DAS trial
stored on the CPU of 2026-11-30 retrains 0.03 dB apart on an AVX-512 Xeon). Each record therefore
carries its provenance, measured in the process that ran the trial (a worker, not the process that
stores it), and the report counts trials per provenance.

Nothing here raises: a fact that cannot be measured (no git, not a checkout) is None. torch is
imported only when a trial's provenance is measured, so readers of the store stay light.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

# The package's parent folder: the checkout's root when harness is imported from a git checkout.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
GIT_TIMEOUT_S = 2.0
ALONE, TRIAL_AXIS = "alone", "trial-axis"
# Records written before provenance name the engine in ``extra.engine``.
LEGACY_ENGINES = {"loop": ALONE, "batched": TRIAL_AXIS}


def _git(folder: Path, *args: str) -> str | None:
    """``git -C folder args`` stdout, or None when git is missing, fails or times out. The search for
    the repository stops at ``folder`` (GIT_CEILING_DIRECTORIES), so a package installed inside some
    other repository (a virtual environment in a project) never reports that repository's commit."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(Path(folder).resolve().parent)}
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_commit(folder: str | os.PathLike = PACKAGE_ROOT) -> str | None:
    """The commit checked out in ``folder`` (a checkout's root), None when it is not one."""
    out = (_git(Path(folder), "rev-parse", "HEAD") or "").strip()
    return out or None


def git_dirty(folder: str | os.PathLike = PACKAGE_ROOT, path: str = "harness") -> bool | None:
    """Whether tracked files under ``path`` differ from the commit (None when unknown). Only the
    package counts: a study appending to its store under ``results/`` does not change the code."""
    out = _git(Path(folder), "status", "--porcelain", "--untracked-files=no", "--", path)
    return None if out is None else bool(out.strip())


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``), None if unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def cpu_capability() -> str | None:
    """The vector instruction set torch's CPU kernels dispatch to ("AVX2", "AVX512", ...)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - provenance never fails a trial
        return None


@functools.cache
def _process_facts() -> dict[str, Any]:
    import numpy
    import torch

    import harness

    commit = git_commit()
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_capability": cpu_capability(),
        "harness": str(harness.__version__),
        "torch": str(torch.__version__),  # TorchVersion, a str subclass: plain for JSON and Pyro
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
        "commit": commit,
        "dirty": git_dirty() if commit else None,
    }


def process_facts() -> dict[str, Any]:
    """What is fixed for the life of a process (measured once per process, then cached): host, CPU
    model and the instruction set of torch's kernels, versions of harness / torch / numpy / python,
    the git commit and whether the package is modified. A copy, so a caller may change it."""
    return dict(_process_facts())


def device_text(device: Any) -> tuple[str, str | None]:
    """``("cuda:0", "NVIDIA H200")`` or ``("cpu", None)``: the device with its index and, on a GPU,
    its name."""
    import torch

    try:
        device = torch.device(device)
        if device.type != "cuda":
            return str(device), None
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index}", torch.cuda.get_device_name(index)
    except Exception:  # noqa: BLE001 - provenance never fails a trial
        return str(device), None


def trial_provenance(device: Any, batch_trials: int) -> dict[str, Any]:
    """A trial's provenance, measured in the process that runs it. ``batch_trials`` is K, the trials
    of the one computation that produced its numbers (a lone trial of a batched row runs beside a
    shadow copy: K = 2); the engine is "trial-axis" for K > 1, "alone" for K = 1."""
    import torch

    name, gpu = device_text(device)
    return {
        **process_facts(),
        "device": name,
        "device_name": gpu,
        "threads": torch.get_num_threads(),
        "engine": TRIAL_AXIS if batch_trials > 1 else ALONE,
        "batch_trials": int(batch_trials),
    }


def record_provenance(record: dict) -> dict:
    """A stored record's provenance; ``{}`` for a record written before provenance (plus its engine,
    mapped from ``extra.engine``, where it names one)."""
    prov = record.get("provenance")
    if isinstance(prov, dict) and prov:
        return prov
    extra = record.get("extra")
    legacy = LEGACY_ENGINES.get(extra.get("engine")) if isinstance(extra, dict) else None
    return {"engine": legacy} if legacy else {}


def trial_engine(record: dict) -> str | None:
    """"alone" or "trial-axis" for any stored record (old ones via ``extra.engine``), else None."""
    return record_provenance(record).get("engine")
