"""Append-only, crash-safe trial store: one JSON object per line in ``trials.jsonl``.

Why JSON lines: a record is appended with ``write`` + ``fsync``, so a crash can at worst leave
one torn last line. Readers skip a line that is not a complete record and report it
(``TrialStore.damaged``); the next append starts on a fresh line, so a torn fragment never
swallows a good record. A write that fails (disk full, quota) is cut back to the last complete
record and raises ``StoreWriteError`` with what is safe. Readers (notebooks, reports) can load
the file while a study appends to it. Only one process writes a study folder at a time
(``StudyLock``); worker processes return results to it.

If a trial id occurs twice (a failed trial retried on request), the last record wins.

Shards (``--shard i/N``, e.g. a SLURM job array) write ``trials.shard-i-of-N.jsonl`` beside
``trials.jsonl``, each under its own lock; every reader merges all of the folder's store files,
de-duplicated by trial id (a finished record beats a failed one; else the later file wins).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.runner.lock import StudyLock, StudyLocked
from harness.runner.spec import (
    DIAGNOSTIC_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    TRIAL_COLUMNS,
    TrialResult,
    derived_fields,
)

TRIALS_FILE = "trials.jsonl"
TRIALS_CSV = "trials.csv"
SHARD_GLOB = "trials.shard-*-of-*.jsonl"

__all__ = ["DamagedLine", "StoreWriteError", "StudyLock", "StudyLocked", "TrialStore", "load_trials", "parse_shard",
           "shard_specs"]


class StoreWriteError(OSError):
    """A record could not be appended (e.g. the disk is full); earlier records are intact."""


@dataclass(frozen=True)
class DamagedLine:
    """A line of the store that is not a complete record (a write cut short by a crash)."""

    line: int
    n_bytes: int
    reason: str
    file: str = TRIALS_FILE

    def describe(self) -> str:
        where = "" if self.file == TRIALS_FILE else f"{self.file} "
        return f"{where}line {self.line} ({self.n_bytes} bytes): {self.reason}"


def shard_file(shard: tuple[int, int] | None) -> str:
    """The store file of shard ``(i, n)`` (1 <= i <= n), or of an unsharded run."""
    if shard is None:
        return TRIALS_FILE
    i, n = shard
    return f"trials.shard-{i}-of-{n}.jsonl"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` (1 <= i <= N, so a SLURM array ``--array=1-N`` passes its task id) -> (i, N)."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"a shard is i/N with integers 1 <= i <= N, got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"a shard is i/N with 1 <= i <= N, got {text!r}")
    return i, n


def shard_specs(specs: list, shard: tuple[int, int] | None) -> list:
    """Shard ``(i, n)``'s part of a study's trials: the k-th trial of each row (in the given order,
    seed-major) goes to shard k mod n + 1. It depends on the study alone, never on what is stored,
    so shards started at different times split the work exactly, and each gets 1/n of every row
    (whole batches of seeds)."""
    if shard is None:
        return list(specs)
    i, n = shard
    seen: dict = {}
    mine = []
    for spec in specs:
        k = seen.get(spec.row, 0)
        seen[spec.row] = k + 1
        if k % n == i - 1:
            mine.append(spec)
    return mine


class TrialStore:
    """The trials of one study folder."""

    def __init__(self, folder: str | os.PathLike, shard: tuple[int, int] | None = None) -> None:
        self.folder = Path(folder)
        self.shard = shard
        self.path = self.folder / shard_file(shard)  # the file this store appends to
        self.damaged: list[DamagedLine] = []  # filled by every read

    def lock(self, purpose: str = "") -> StudyLock:
        """The writer lock (a context manager; ``harness.runner.lock``): the folder's, or a shard's
        own lock, which coexists with the other shards' and excludes an unsharded run."""
        return StudyLock(self.folder, purpose, None if self.shard is None else shard_file(self.shard))

    def files(self) -> list[Path]:
        """Every store file of the folder: ``trials.jsonl`` first, then the shards' in name order."""
        main = self.folder / TRIALS_FILE
        return ([main] if main.exists() else []) + sorted(self.folder.glob(SHARD_GLOB))

    def append(self, result: TrialResult) -> None:
        self.append_record(result.to_record())

    def append_record(self, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn last line: start this record on a fresh line
            _write_all(fd, data, size, self.path)
        finally:
            os.close(fd)

    def records(self) -> list[dict]:
        """All complete records, last one per trial id, in first-seen order. Lines that are not
        complete records are skipped and listed in ``self.damaged``."""
        self.damaged = []
        latest: dict[str, dict] = {}
        source: dict[str, Path] = {}
        for path in self.files():
            with open(path, "rb") as f:
                for number, raw in enumerate(f, start=1):
                    record, reason = _parse_line(raw)
                    if record is None:
                        if reason:
                            self.damaged.append(DamagedLine(number, len(raw), reason, path.name))
                        continue
                    tid = record["trial_id"]
                    # Within a file the last record wins (a retried trial); across files a finished
                    # record is not replaced by a failed one.
                    if tid in latest and source[tid] != path and latest[tid]["status"] == STATUS_OK != record["status"]:
                        continue
                    latest[tid], source[tid] = record, path
        return list(latest.values())

    def adopt(self, source: str | os.PathLike, wanted: set[str]) -> int:
        """Copy the finished trials of another study folder whose ids are in ``wanted`` and not
        finished here; return how many. A trial id is the whole trial (row identity, seed, epochs),
        and a trial gives the same record wherever it runs on this machine, batch mates included
        (docs/engine.md), so a trial two studies share is computed once. Each copy is marked
        ``extra.reused_from``; failed trials are not copied (they run again here). Call it under
        this store's lock."""
        source = Path(source)
        other = TrialStore(source)
        if not other.files():
            raise FileNotFoundError(f"{source}: no trial store ({TRIALS_FILE}) to reuse trials from")
        done = self.finished_ids()
        adopted = 0
        for record in other.records():
            if record["status"] != STATUS_OK or record["trial_id"] not in wanted or record["trial_id"] in done:
                continue
            self.append_record({**record, "extra": {**(record.get("extra") or {}), "reused_from": str(source)}})
            done.add(record["trial_id"])
            adopted += 1
        return adopted

    def damage_note(self) -> str:
        """One sentence about skipped lines for CLIs and reports ('' when the file is clean)."""
        if not self.damaged:
            return ""
        listed = "; ".join(d.describe() for d in self.damaged[:3])
        more = f" and {len(self.damaged) - 3} more" if len(self.damaged) > 3 else ""
        return (
            f"{self.folder}: skipped {len(self.damaged)} damaged line(s) ({listed}{more}); "
            "their trials count as not run and a rerun of the study stores them"
        )

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
        derived = [derived_fields(r) for r in records]
        df["variant"] = pd.Series([d["variant"] for d in derived], index=df.index, dtype=object)
        for col in DIAGNOSTIC_COLUMNS:
            df[col] = pd.to_numeric(pd.Series([d[col] for d in derived], index=df.index, dtype=object))
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
        return write_text_atomic(target, flat.to_csv(index=False))


def _write_all(fd: int, data: bytes, size_before: int, path: Path) -> None:
    """Write every byte and fsync; on failure cut the file back to ``size_before``, so the store
    never keeps a partial record of ours, and raise ``StoreWriteError``."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, size_before)
        except OSError:
            pass  # a torn tail is still skipped by readers and healed by the next append
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        why = "the disk is full (or a quota / file-size limit is reached)" if full else exc.strerror
        raise StoreWriteError(
            exc.errno, f"cannot append a trial to {path}: {why}. Every trial stored before is intact; "
            "free space and run the same command again to resume"
        ) from exc


def _parse_line(raw: bytes) -> tuple[dict | None, str]:
    """(record, '') for a complete record; (None, reason) for a damaged line; (None, '') for blank."""
    text = raw.strip()
    if not text:
        return None, ""
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        torn = not raw.endswith(b"\n")
        return None, "torn last line (a write cut short)" if torn else "not a complete JSON record"
    if not isinstance(record, dict) or "trial_id" not in record:
        return None, "a JSON value without a trial_id"
    return record, ""


def _genotype_text(genotype) -> str:
    if genotype is None or (isinstance(genotype, float)):
        return ""
    return json.dumps(genotype, separators=(",", ":")) if _nested(genotype) else "-".join(genotype)


def _nested(genotype: Iterable) -> bool:
    return any(isinstance(g, (list, dict)) for g in genotype)


def load_trials(study_folder: str | os.PathLike):
    """Public entry point for notebooks and reports: the study's trials as a DataFrame."""
    return TrialStore(study_folder).dataframe()
