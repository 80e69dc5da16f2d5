"""Append-only, crash-safe trial store: one JSON object per line in ``trials.jsonl``.

Why JSON lines: a record is appended with a single ``write`` followed by ``fsync``, so a
crash can at worst leave one truncated last line, which readers skip. Readers (notebooks,
reports) can load the file while a study is still appending to it. Only the study's main
process writes; worker processes return results to it.

If a trial id occurs twice (a failed trial retried on request), the last record wins.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from harness.runner.spec import DIAGNOSTIC_COLUMNS, STATUS_FAILED, STATUS_OK, TRIAL_COLUMNS, TrialResult

TRIALS_FILE = "trials.jsonl"
TRIALS_CSV = "trials.csv"


class TrialStore:
    """The trials of one study folder."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / TRIALS_FILE

    def append(self, result: TrialResult) -> None:
        self.append_record(result.to_record())

    def append_record(self, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        # One O_APPEND write per record: concurrent appenders never interleave a line.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict]:
        """All complete records, last one per trial id, in first-seen order."""
        if not self.path.exists():
            return []
        latest: dict[str, dict] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # a write cut short by a crash; everything before it is intact
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                latest[record["trial_id"]] = record
        return list(latest.values())

    def finished_ids(self, retry_failed: bool = False) -> set[str]:
        """Trial ids that a resumed study should skip."""
        done = set()
        for r in self.records():
            if r["status"] == STATUS_OK or (r["status"] == STATUS_FAILED and not retry_failed):
                done.add(r["trial_id"])
        return done

    def dataframe(self):
        """The trials as a pandas DataFrame (list-valued fields kept as Python objects)."""
        import pandas as pd

        records = self.records()
        df = pd.DataFrame.from_records(records)
        extras = df["extra"] if "extra" in df.columns else pd.Series([None] * len(df), dtype=object)
        for col in DIAGNOSTIC_COLUMNS:
            df[col] = pd.to_numeric(
                pd.Series([e.get(col) if isinstance(e, dict) else None for e in extras], index=df.index, dtype=object),
                errors="coerce",
            )
        for col in TRIAL_COLUMNS:
            if col not in df.columns:
                df[col] = None
        for col in ("oneshot_score", "arch_score", "runtime_s", "search_runtime_s", "retrain_runtime_s"):
            df[col] = pd.to_numeric(df[col], errors="coerce")
        return df

    def write_csv(self, path: str | os.PathLike | None = None) -> Path:
        """Write ``trials.csv`` (flat columns; genotype as a '-'-joined string)."""
        df = self.dataframe()
        flat = df[TRIAL_COLUMNS].copy()
        flat["genotype"] = [_genotype_text(g) for g in flat["genotype"]]
        flat["overrides"] = [json.dumps(o, sort_keys=True) if o else "" for o in flat["overrides"]]
        target = Path(path) if path else self.folder / TRIALS_CSV
        tmp = target.with_suffix(".csv.tmp")
        flat.to_csv(tmp, index=False)
        os.replace(tmp, target)  # atomic: readers never see a half-written CSV
        return target


def _genotype_text(genotype) -> str:
    if genotype is None or (isinstance(genotype, float)):
        return ""
    return json.dumps(genotype, separators=(",", ":")) if _nested(genotype) else "-".join(genotype)


def _nested(genotype: Iterable) -> bool:
    return any(isinstance(g, (list, dict)) for g in genotype)


def load_trials(study_folder: str | os.PathLike):
    """Public entry point for notebooks and reports: the study's trials as a DataFrame."""
    return TrialStore(study_folder).dataframe()
