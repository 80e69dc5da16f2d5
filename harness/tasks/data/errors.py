"""Exceptions raised by the data loaders.

Every error names the file or folder concerned, so that a user with a broken or partial copy of a
data set sees *what* is wrong and *where*, instead of a raw ``struct``/``pickle``/``gzip`` traceback.
All of them derive from :class:`DataError`, so a caller can catch the whole family at once.
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Base class of every data-loading error; ``path`` is the file or folder concerned (if any)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class DataNotFoundError(DataError, FileNotFoundError):
    """A data file or folder is missing (and no download was requested); also a ``FileNotFoundError``."""


class DataFormatError(DataError, ValueError):
    """A file exists but is not what it should be: wrong magic, truncated, corrupt or inconsistent."""


class ChecksumError(DataError):
    """A file's MD5 differs from the official value (incomplete download or a different file)."""


class UnsafeArchiveError(DataError):
    """An archive member would be written outside the target folder, or is a link or special file."""


class DownloadError(DataError):
    """Every URL tried for a file failed (no network, HTTP error, or a checksum mismatch)."""
