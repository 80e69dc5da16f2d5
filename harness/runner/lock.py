"""One writer per study folder: an advisory ``flock`` on ``<folder>/.lock``.

Two runs pointed at one folder would otherwise both run every trial and store it twice. The
kernel drops a ``flock`` when its holder dies (even by SIGKILL), so a crash never leaves a
stale lock behind: the file may still name the dead holder, but the next run takes the lock.
The file's text (host, pid, start time, command) only serves the message of the run that is
refused. To split one study over machines on purpose, run it as shards (``--shard i/N``): a shard
holds the folder's lock *shared* and its own ``.lock.<shard file>`` exclusively, so shards run side
by side while an unsharded run (exclusive on the folder) excludes them all.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_FILE = ".lock"


class StudyLocked(RuntimeError):
    """Another live process holds the study folder."""


class StudyLock:
    """``with StudyLock(folder):`` holds the folder's writer lock or raises ``StudyLocked``."""

    def __init__(self, folder: str | os.PathLike, purpose: str = "", shard: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / (LOCK_FILE if shard is None else f"{LOCK_FILE}.{shard}")
        self.purpose = purpose
        self.shard = shard
        self._fd: int | None = None
        self._folder_fd: int | None = None  # a shard's shared hold on the folder lock

    def _open_locked(self, path: Path, mode: int) -> int:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd workers
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StudyLocked(_locked_message(self.folder, holder)) from None
        except OSError:
            os.close(fd)
            raise
        return fd

    def acquire(self) -> StudyLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.shard is not None:
            self._folder_fd = self._open_locked(self.folder / LOCK_FILE, fcntl.LOCK_SH)
        try:
            fd = self._open_locked(self.path, fcntl.LOCK_EX)
        except BaseException:
            self.release()
            raise
        holder = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": " ".join(sys.argv) or self.purpose,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        for name in ("_fd", "_folder_fd"):
            fd = getattr(self, name)
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def _locked_message(folder: Path, holder: dict) -> str:
    who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}" if holder else "the shards of a run"
    since = f" since {holder['started']}" if holder.get("started") else ""
    command = f" ({holder['command']})" if holder.get("command") else ""
    return (
        f"{folder} is in use by {who}{since}{command}. Two runs on one folder would run the same "
        "trials twice: wait for it to finish (its trials are kept), or give this run another --out"
    )
