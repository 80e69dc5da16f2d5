"""Optional download, checksum verification and safe extraction of the official archives.

Nothing here is needed when a user already has a copy on disk; it exists so that a user with
internet access can fetch the official files, and so that every file we did not write ourselves is
checked against the official MD5 before it is trusted. Extraction validates every member first
and writes the files itself: absolute paths, ``..`` escapes, links and special files are refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from harness.atomic import atomic_writer

from .errors import ChecksumError, DataFormatError, DataNotFoundError, DownloadError, UnsafeArchiveError

_CHUNK = 1 << 20


def file_md5(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, read in chunks (the official data sets publish MD5s, not SHA-256)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"cannot checksum {path}: no such file", path)
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: str | os.PathLike[str], expected: str) -> None:
    """Raise :class:`ChecksumError` unless the file's MD5 equals ``expected``."""
    actual = file_md5(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: MD5 is {actual}, expected {expected.lower()} "
            "(incomplete download or not the official file; delete it and download again)",
            path,
        )


def download_file(
    urls: str | Sequence[str], dest: str | os.PathLike[str], md5: str | None = None, timeout: float = 60.0
) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that works, verifying ``md5``; return ``dest``.

    The download streams into a temporary file beside ``dest`` (``harness.atomic.atomic_writer``)
    and is hashed on the way; it replaces ``dest`` only after the checksum passed, so an interrupted
    or corrupt download never leaves a file that looks complete. Mirrors are tried in order.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in [urls] if isinstance(urls, str) else list(urls):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_writer(dest) as out:
                actual = _copy_hashed(response, out)
                if md5 is not None and actual != md5.lower():
                    raise _ChecksumMismatch(f"checksum mismatch, MD5 {actual}, expected {md5.lower()}")
        except (urllib.error.URLError, OSError, ValueError, _ChecksumMismatch) as err:
            failures.append(f"{url}: {err}")
            continue
        return dest
    raise DownloadError(f"could not download {dest.name} to {dest}; tried:\n  " + "\n  ".join(failures), dest)


class _ChecksumMismatch(Exception):
    """Raised inside the atomic writer so a bad download is discarded and the next mirror tried."""


def _copy_hashed(source: IO[bytes], out: IO[bytes]) -> str:
    """Copy ``source`` to ``out`` in chunks; the hex MD5 of what was copied."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in iter(lambda: source.read(_CHUNK), b""):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def _safe_target(root: Path, member: tarfile.TarInfo, archive: Path) -> Path:
    """Where ``member`` would land under ``root``; refuses anything that would escape it."""
    name = member.name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an absolute path; refused", archive)
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} would escape {root}; refusing to extract", archive)
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "special file"
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} is a {kind}; a data archive should hold only files and folders", archive
        )
    return target


def extract_tar(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Extract a (gzip'ed) tar archive into ``dest`` after validating every member; return the files.

    Validation happens before anything is written, so a hostile archive leaves ``dest`` untouched.
    """
    archive, root = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataNotFoundError(f"archive {archive} does not exist", archive)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    written: list[Path] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            targets = [(member, _safe_target(root, member, archive)) for member in members]
            for member, target in targets:
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    raise DataFormatError(f"{archive}: member {member.name!r} has no data", archive)
                with source, atomic_writer(target) as out:  # a truncated member never lands half-written
                    shutil.copyfileobj(source, out, _CHUNK)
                written.append(target)
    except (FileNotFoundError, PermissionError):
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:  # gzip.BadGzipFile is an OSError
        message = f"{archive}: corrupt or truncated archive ({type(err).__name__}: {err})"
        raise DataFormatError(message, archive) from None
    return written
