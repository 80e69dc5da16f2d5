"""harness.atomic: a failed write leaves the old file and no temporary file; and the rule that every
file the project writes goes through it (an AST scan of harness/ and benchmarks/ with a reasoned
allow-list), so a new direct ``savefig`` / ``to_csv`` / ``write_text`` / ``open(..., "w")`` fails here."""

from __future__ import annotations

import ast
import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from harness import atomic
from harness.atomic import (
    TEMP_GLOB,
    atomic_writer,
    save_figure_atomic,
    write_bytes_atomic,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("harness", "benchmarks")


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(TEMP_GLOB))


# --- the helper -----------------------------------------------------------------------------------


def test_writes_and_replaces_without_leftovers(tmp_path):
    path = tmp_path / "a.txt"
    assert write_text_atomic(path, "old") == path and path.read_text() == "old"
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new" and _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like a plain open, not mkstemp's 0600


def test_a_writer_that_raises_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_writer(path) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("midway")
    assert path.read_bytes() == b"old contents" and _leftovers(tmp_path) == []


def test_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.csv"
    path.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_text_mode_and_bad_mode(tmp_path):
    with atomic_writer(tmp_path / "t.txt", "w") as handle:
        handle.write("héllo")
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode()
    with pytest.raises(ValueError, match="mode"):
        with atomic_writer(tmp_path / "t.txt", "a"):
            pass
    assert (tmp_path / "t.txt").read_text() == "héllo"


def test_json_that_cannot_be_serialized_leaves_the_old_file(tmp_path):
    path = tmp_path / "study.json"
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("\n")
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1} and _leftovers(tmp_path) == []


def test_csv(tmp_path):
    path = write_csv_atomic(tmp_path / "runs.csv", pd.DataFrame({"x": [1, 2]}))
    assert path.read_text().splitlines() == ["x", "1", "2"]


def test_figure_is_written_whole_or_not_at_all(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_figure_atomic(fig, tmp_path / "plot.png", dpi=50)
    old = path.read_bytes()
    assert old[:8] == b"\x89PNG\r\n\x1a\n"
    fig.add_subplot().text(0, 0, "$\\undefinedmacro$")  # mathtext fails only while drawing
    with pytest.raises(ValueError):
        save_figure_atomic(fig, path)
    assert path.read_bytes() == old and _leftovers(tmp_path) == []


def test_torch_checkpoint_that_fails_to_pickle_keeps_the_last_one(tmp_path):
    torch = pytest.importorskip("torch")
    from harness.methods.checkpoint import TrialCheckpoint

    checkpoint = TrialCheckpoint(tmp_path / "t.pt")
    checkpoint.save("train-0", {"epoch": 1, "w": torch.ones(3)})
    with pytest.raises(Exception):  # noqa: B017 - pickle's error type differs between versions
        checkpoint.save("train-0", {"epoch": 2, "bad": lambda: None})
    assert TrialCheckpoint(tmp_path / "t.pt").resume("train-0")["epoch"] == 1 and _leftovers(tmp_path) == []


def test_download_checksum_mismatch_and_truncated_member_leave_nothing(tmp_path):
    import tarfile

    from harness.tasks.data.download import DataFormatError, DownloadError, download_file, extract_tar

    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "local" / "copy.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"an earlier, verified copy")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(source.as_uri(), dest, md5="0" * 32)
    assert dest.read_bytes() == b"an earlier, verified copy" and _leftovers(dest.parent) == []
    archive = tmp_path / "a.tar"
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(200_000))
    with tarfile.open(archive, "w") as tar:
        tar.add(big, arcname="big.bin")
    archive.write_bytes(archive.read_bytes()[:100_000])  # cut inside the member's data
    out = tmp_path / "out"
    with pytest.raises(DataFormatError):
        extract_tar(archive, out)
    assert list(out.iterdir()) == []  # neither a half member nor a temporary file


# --- the rule: every write goes through harness.atomic --------------------------------------------

# (file, enclosing function, kind of write) -> why it is not an atomic whole-file write. Writes into
# the handle of a ``with atomic_writer(...)`` block need no entry.
ALLOWED = {
    ("harness/runner/store.py", "TrialStore.append_record", "os.open"):
        "the append-only trial log: crash safety from fsync'ed appends and torn-line repair, by design",
    ("harness/runner/lock.py", "StudyLock._open_locked", "os.open"):
        "the lock file: flock'ed in place; its holder text is informational and rewritten with pwrite",
    ("harness/tune/hpbandster_compat.py", "_make_logger_class.NumpyJsonResultLogger.new_config", "open(a)"):
        "hpbandster's append-only configs.json log (its own format, read back line by line)",
    ("harness/tune/hpbandster_compat.py", "_make_logger_class.NumpyJsonResultLogger.__call__", "open(a)"):
        "hpbandster's append-only results.json log",
    ("harness/tune/runlog.py", "RunLog._append", "open(a)"):
        "the tuner's append-only configs/results logs (readers skip a torn last line)",
    ("harness/tune/bohb_logs.py", "_end_with_newline", "open(rb+)"):
        "ends a torn last line of an append-only log with a newline, in place (what the next append needs)",
    ("harness/tune/bohb_logs.py", "load_previous_result", "write_text"):
        "scratch copies in a TemporaryDirectory that is deleted right after",
    ("harness/tune/bohb.py", "HpBandSterTuner._start_processes", "open(w)"):
        "a worker process's live log file, streamed while the worker runs",
    ("harness/study/optuna_mirror.py", "open_storage", "open(ab)"):
        "creates an empty Optuna journal file (no bytes written); Optuna appends to it with its own locking",
    ("harness/tasks/data/synthetic.py", "write_cifar_pickle", "open(wb)"):
        "synthetic data-set fixtures written into fresh test folders (owned by the data-set layer)",
    ("harness/tasks/data/synthetic.py", "write_cifar_pickle", "dump"): "the same fixture file's pickle stream",
    ("harness/tasks/data/synthetic.py", "write_idx", "write_bytes"): "synthetic MNIST fixtures, as above",
}

WRITE_METHODS = {
    "savefig", "write_text", "write_bytes", "to_parquet", "to_pickle", "to_excel", "to_feather", "to_hdf",
    "savez", "savez_compressed", "savetxt", "dump", "safe_dump", "write_table", "extractall", "urlretrieve",
    "touch",
}
RETURNS_TEXT_WITHOUT_PATH = {"to_csv", "to_json"}  # df.to_csv() returns the text; with a path it writes
SAVE_MODULES = {"torch", "np", "numpy", "pickle"}
FILE_MOVES = {("os", "replace"), ("os", "rename"), ("shutil", "move"), ("shutil", "copy"), ("shutil", "copy2"),
              ("shutil", "copyfile")}
FILE_MODULES = {"io", "builtins", "gzip", "bz2", "lzma", "tarfile"}  # open(name, mode, ...)
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


def _mode(call: ast.Call, position: int) -> str | None:
    """The literal mode of an ``open`` call ('?' when it is not a literal, None when absent)."""
    node = call.args[position] if len(call.args) > position else next(
        (k.value for k in call.keywords if k.arg == "mode"), None)
    if node is None:
        return None
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else "?"


def _write_kind(call: ast.Call) -> str | None:
    """What kind of direct file write ``call`` is, or None for anything else."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
    if name == "open" and owner == "os":
        flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)} if call.args[1:] else set()
        return "os.open" if flags & WRITE_FLAGS else None
    if name == "open":
        builtin = isinstance(func, ast.Name) or owner in FILE_MODULES  # else a method: Path.open(mode)
        mode = _mode(call, 1 if builtin else 0)
        return f"open({mode})" if mode and (mode == "?" or set(mode) & set("wax+")) else None
    if name in WRITE_METHODS:
        return name
    if name in RETURNS_TEXT_WITHOUT_PATH:
        return name if call.args or any(k.arg == "path_or_buf" for k in call.keywords) else None
    if name == "save" and owner in SAVE_MODULES:
        return f"{owner}.save"
    if (owner, name) in FILE_MOVES:
        return f"{owner}.{name}"
    return None


def _is_atomic_writer(node: ast.expr) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Name) and func.id == "atomic_writer") or (
        isinstance(func, ast.Attribute) and func.attr == "atomic_writer")


def _direct_writes(path: Path) -> list[tuple[str, str, int]]:
    """(enclosing function, kind, line) of every direct file write in ``path``."""
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.With) and any(_is_atomic_writer(item.context_expr) for item in child.items):
                continue  # its body writes into the atomic temporary file
            inner = scope + [child.name] if isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else scope
            if isinstance(child, ast.Call) and (kind := _write_kind(child)):
                found.append((".".join(scope) or "<module>", kind, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), [])
    return found


def _scan() -> dict[tuple[str, str, str], int]:
    sites = {}
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "harness/atomic.py":
                continue
            for function, kind, line in _direct_writes(path):
                sites[(rel, function, kind)] = line
    return sites


def test_every_file_write_goes_through_harness_atomic():
    sites = _scan()
    unexpected = [f"{rel}:{line} in {fn}: {kind}" for (rel, fn, kind), line in sites.items()
                  if (rel, fn, kind) not in ALLOWED]
    assert not unexpected, (
        "direct file writes; use harness.atomic (write_text_atomic, write_json_atomic, write_csv_atomic, "
        "save_figure_atomic, atomic_writer) or add an ALLOWED entry with the reason:\n  " + "\n  ".join(unexpected))
    stale = [key for key in ALLOWED if key not in sites]
    assert not stale, f"ALLOWED entries that match no write any more (remove them): {stale}"


@pytest.mark.parametrize("source, kind", [
    ("fig.savefig(path)", "savefig"),
    ("df.to_csv(path, index=False)", "to_csv"),
    ("Path(p).write_text('x')", "write_text"),
    ("json.dump(obj, fh)", "dump"),
    ("open(p, 'w')", "open(w)"),
    ("open(p, mode='ab')", "open(ab)"),
    ("open(p, m)", "open(?)"),
    ("Path(p).open('w')", "open(w)"),
    ("torch.save(state, p)", "torch.save"),
    ("os.replace(a, b)", "os.replace"),
    ("os.open(p, os.O_WRONLY | os.O_CREAT)", "os.open"),
    ("gzip.open(p, 'wb')", "open(wb)"),
])
def test_the_scan_sees_direct_writes(source, kind):
    assert _write_kind(ast.parse(source).body[0].value) == kind


@pytest.mark.parametrize("source", [
    "df.to_csv(index=False)", "open(p)", "open(p, 'rb')", "tarfile.open(a, 'r:*')", "os.open(p, os.O_RDONLY)",
    "df.rename(columns={})", "text.replace('a', 'b')",
])
def test_the_scan_ignores_reads_and_text(source):
    assert _write_kind(ast.parse(source).body[0].value) is None
