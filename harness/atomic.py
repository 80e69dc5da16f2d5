"""The one atomic file write: readers see the old file or the new one, never half of one.

Every file the project writes (reports, CSVs, figures, study.json, tune.json, checkpoints,
downloads) goes through ``atomic_writer`` or a helper built on it, so a crash, a kill or a full
disk mid-write never leaves a truncated file that looks complete, and a report refreshed while
someone reads it is never seen half-written. The only exceptions are the append-only logs, whose
crash safety comes from fsync'ed appends instead (tests/test_atomic_writes.py keeps the list).

How: write a temporary file beside the target (same directory, so the rename cannot cross file
systems), fsync it, ``os.replace`` it over the target, then fsync the directory so the rename
itself survives a power cut. On any failure the temporary file is removed and the target is
untouched. Temporary names are ``.<name>.<pid>.<n>.tmp``: hidden, unique per process and call,
and matched by ``.*.tmp`` so a folder's leftovers of killed writers can be swept.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib and pandas stay optional imports for callers that need them
    import pandas as pd
    from matplotlib.figure import Figure

TEMP_GLOB = ".*.tmp"
_counter = itertools.count()

__all__ = [
    "TEMP_GLOB", "atomic_writer", "save_figure_atomic", "write_bytes_atomic", "write_csv_atomic",
    "write_json_atomic", "write_text_atomic",
]


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{next(_counter)}.tmp")


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """A file object for writers that need one (``torch.save``, a streamed download, ``pickle``).

    The target appears only when the ``with`` block ends without an exception; an exception
    (or a kill) leaves the old file, if any, as it was. ``mode`` is "wb" or "w" (text, UTF-8
    unless ``encoding`` says otherwise).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer writes whole files: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = _temp_path(path)
    # "x": never reuse a stranger's file; the umask applies as for a plain open (unlike mkstemp's 0600)
    handle = open(tmp, "xb") if mode == "wb" else open(tmp, "x", encoding=encoding or "utf-8")
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; on failure (e.g. a full disk) ``path`` is untouched."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``write_bytes_atomic`` of UTF-8 text (no newline translation: the bytes are the same everywhere)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, **dumps_kwargs: Any) -> Path:
    """``obj`` as JSON text plus a final newline. Serialized before the file is opened, so an object
    that cannot be serialized leaves the old file intact."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, **dumps_kwargs) + "\n")


def write_csv_atomic(path: str | os.PathLike, df: pd.DataFrame, **to_csv_kwargs: Any) -> Path:
    """A DataFrame as CSV (``index=False`` unless given)."""
    to_csv_kwargs.setdefault("index", False)
    return write_text_atomic(path, df.to_csv(**to_csv_kwargs))


def save_figure_atomic(fig: Figure, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Render ``fig`` in memory, then write it atomically; the format follows the suffix unless given."""
    import io

    path = Path(path)
    savefig_kwargs.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    buffer = io.BytesIO()
    fig.savefig(buffer, **savefig_kwargs)
    return write_bytes_atomic(path, buffer.getvalue())
