"""Where a study keeps the checkpoints of trials in progress, and when they go.

``<study folder>/checkpoints/<trial id>.pt`` for a trial run alone; ``batch-<hash>.pt`` for a
batch of trials run as one computation, with ``batch-<hash>.json`` listing its trial ids. A
checkpoint is deleted only after its trials are in the store: a kill between the two costs
nothing but a file, which the next finished run removes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.atomic import TEMP_GLOB, write_text_atomic
from harness.methods.checkpoint import TrialCheckpoint

FOLDER = "checkpoints"


def checkpoint_folder(study_folder: str | Path) -> Path:
    return Path(study_folder) / FOLDER


def for_trial(folder: str | Path | None, trial_id: str) -> TrialCheckpoint | None:
    return None if folder is None else TrialCheckpoint(Path(folder) / f"{trial_id}.pt")


def for_batch(folder: str | Path | None, trial_ids: list[str]) -> TrialCheckpoint | None:
    """One checkpoint for trials that run as one computation (the same batch after a restart:
    the batch plan of a row depends only on which of its trials are still to run)."""
    if folder is None:
        return None
    key = hashlib.sha1(",".join(sorted(trial_ids)).encode()).hexdigest()[:16]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"batch-{key}.json", json.dumps(sorted(trial_ids)))
    return TrialCheckpoint(folder / f"batch-{key}.pt")


def discard_stored(folder: str | Path | None, stored_ids: set[str]) -> None:
    """Delete the checkpoints whose trials are all stored (and any torn temporary files)."""
    if folder is None or not Path(folder).is_dir():
        return
    folder = Path(folder)
    for path in folder.glob("*.pt"):
        if not path.name.startswith("batch-") and path.stem in stored_ids:
            path.unlink(missing_ok=True)
    for members in folder.glob("batch-*.json"):
        try:
            ids = json.loads(members.read_text())
        except (OSError, ValueError):
            continue
        if set(ids) <= stored_ids:
            members.with_suffix(".pt").unlink(missing_ok=True)
            members.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def clean_temporaries(folder: str | Path | None) -> None:
    """Remove half-written checkpoints of killed writers (call under the study lock, before workers start)."""
    if folder is not None and Path(folder).is_dir():
        for tmp in Path(folder).glob(TEMP_GLOB):
            tmp.unlink(missing_ok=True)
