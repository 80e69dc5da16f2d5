"""The report's provenance table: how many trials ran in each environment.

Why: a study resumes from its store, possibly on another host, CPU, device, thread count, engine
or code version, and float rounding differs between them; the report says so instead of pooling
silently. Records stored before provenance was recorded form one "not recorded" group (its engine
column still names the engines their ``extra.engine`` recorded).
"""

from __future__ import annotations

import pandas as pd

from harness.report.doc import Doc
from harness.runner.provenance import trial_engine

NOT_RECORDED = "not recorded"
UNKNOWN = "unknown"
# The columns of a provenance group, in table order (``provenance_groups``).
PROVENANCE_COLUMNS = ("host", "cpu", "device", "threads", "engine", "harness", "torch", "numpy", "commit")
COMMIT_CHARS = 10


def _cell(value) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


def provenance_key(prov: dict) -> tuple[str, ...]:
    """A recorded provenance as the table's cells: the device with its GPU name, the commit short
    and marked "(modified)" where the package differed from it."""
    device = _cell(prov.get("device"))
    if prov.get("device_name"):
        device = f"{device} ({prov['device_name']})"
    commit = str(prov["commit"])[:COMMIT_CHARS] if prov.get("commit") else UNKNOWN
    if prov.get("commit") and prov.get("dirty"):
        commit += " (modified)"
    cpu = _cell(prov.get("cpu"))
    if prov.get("cpu_capability"):
        cpu = f"{cpu} ({prov['cpu_capability']})"
    cells = {**{c: _cell(prov.get(c)) for c in PROVENANCE_COLUMNS}, "cpu": cpu, "device": device, "commit": commit}
    return tuple(cells[c] for c in PROVENANCE_COLUMNS)


def provenance_groups(df: pd.DataFrame) -> pd.DataFrame:
    """Trials per distinct provenance (``PROVENANCE_COLUMNS``), in the order first seen in the store,
    with ``trials`` and the first and last ``finished_at``. Records without provenance are one
    "not recorded" group whose engine lists the engines their ``extra.engine`` names."""
    n = len(df)
    provs = df["provenance"] if "provenance" in df.columns else pd.Series([None] * n, index=df.index)
    extras = df["extra"] if "extra" in df.columns else pd.Series([None] * n, index=df.index)
    finished = df["finished_at"] if "finished_at" in df.columns else pd.Series([None] * n, index=df.index)
    groups: dict[tuple[str, ...], dict] = {}
    legacy_engines: set[str] = set()
    for prov, extra, when in zip(provs, extras, finished):
        if isinstance(prov, dict) and prov:
            key = provenance_key(prov)
        else:
            key = (NOT_RECORDED,) * len(PROVENANCE_COLUMNS)
            engine = trial_engine({"extra": extra})
            legacy_engines.update([engine] if engine else [])
        group = groups.setdefault(key, {**dict(zip(PROVENANCE_COLUMNS, key)), "trials": 0, "times": []})
        group["trials"] += 1
        if isinstance(when, str) and when:
            group["times"].append(when)
    rows = []
    for key, group in groups.items():
        times = group.pop("times")
        if key[0] == NOT_RECORDED and legacy_engines:
            group["engine"] = ", ".join(sorted(legacy_engines))
        rows.append({**group, "first finished": min(times, default="–"), "last finished": max(times, default="–")})
    columns = [*PROVENANCE_COLUMNS, "trials", "first finished", "last finished"]
    return pd.DataFrame(rows, columns=columns)


def provenance_note(groups: pd.DataFrame, pointer: bool = True) -> str:
    """A sentence for the report when the trials come from more than one environment, else ''.
    ``pointer``: name the section with the table (for the report's head)."""
    if len(groups) <= 1:
        return ""
    legacy = " (one group: records stored without provenance)" if (groups["host"] == NOT_RECORDED).any() else ""
    see = "; see 'Provenance'" if pointer else ""
    return (
        f"This study's trials come from {len(groups)} environments{legacy}{see}. Float rounding differs "
        "between engines, devices and CPU models, so a trial rerun elsewhere may not match its record bit "
        "for bit."
    )


def provenance_section(doc: Doc, groups: pd.DataFrame) -> None:
    doc.heading("Provenance")
    doc.text(
        "Trials per environment they ran in, measured in the worker process: host, CPU model (with the "
        "instruction set torch's kernels use; 'unknown' before 2026-12-01), device, torch threads, "
        "engine ('trial-axis': K > 1 seeds of a row as one computation; 'alone': one trial), the versions of "
        "harness, torch and numpy, and the harness git commit ('(modified)': the package's tracked files "
        f"differed from it). '{NOT_RECORDED}': records stored before provenance was recorded (their engine "
        "from extra.engine where they name one)."
    )
    doc.table(groups)
    note = provenance_note(groups, pointer=False)
    doc.text(note or "All trials of this study come from one environment.")
