"""Fault injection through the study CLI (issue 11): nothing lost, nothing stored twice.

The scenarios live in ``tests/fault_injection.py``; CI runs them at a small size, ``--run-slow``
at full size (every byte offset of a record, 20 kills)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import fault_injection as fi  # noqa: E402

from harness.runner import store as store_module  # noqa: E402
from harness.runner.store import StoreWriteError, TrialStore  # noqa: E402


def _assert_clean(row: fi.FaultRow) -> None:
    assert (row.lost, row.duplicated) == (0, 0), row


def test_torn_tail_at_sampled_offsets_is_healed_and_reported(tmp_path):
    row = fi.torn_tail(tmp_path, offsets=25)
    _assert_clean(row)
    assert row.note.endswith("torn fragment not reported or rerun failed: 0")


@pytest.mark.slow
def test_torn_tail_at_every_offset(tmp_path):
    row = fi.torn_tail(tmp_path, offsets="all")
    _assert_clean(row)
    assert row.note.endswith("torn fragment not reported or rerun failed: 0")


def test_damaged_line_in_the_middle_is_skipped_and_listed(tmp_path):
    store = TrialStore(tmp_path)
    store.append_record({"trial_id": "a", "status": "ok"})
    with open(store.path, "ab") as f:
        f.write(b'{"trial_id": "b", "sta')  # a crash mid-write
    store.append_record({"trial_id": "c", "status": "ok"})
    assert [r["trial_id"] for r in store.records()] == ["a", "c"]
    assert [(d.line, d.reason) for d in store.damaged] == [(2, "not a complete JSON record")]
    assert "skipped 1 damaged line" in store.damage_note()


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    row, orphans = fi.sigkill(tmp_path, kills=3, seed=1)
    assert (row.lost, row.duplicated) == (0, 0), row
    assert "3 of 3 kills landed while trials ran" in row.note
    assert orphans == 0  # workers notice their study died and exit


@pytest.mark.slow
def test_sigkill_many_runs(tmp_path):
    row, orphans = fi.sigkill(tmp_path, kills=20, seed=2)
    assert (row.lost, row.duplicated, orphans) == (0, 0, 0), row


def test_second_run_on_a_busy_folder_refuses_with_the_holder(tmp_path):
    row, message = fi.two_runs(tmp_path)
    assert (row.lost, row.duplicated) == (0, 0), row
    assert "exit 75, first still running then: True" in row.note
    assert "is in use by pid" in message and socket.gethostname() in message and "Traceback" not in message


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    study = fi.write_study(tmp_path)
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "tiny").mkdir(parents=True)
    (out / "tiny" / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    code, err = fi.run_cli(study, out)
    assert code == 0, err
    assert len(TrialStore(out / "tiny").records()) == 6


def test_full_disk_gives_a_clear_error_and_loses_nothing(tmp_path):
    row, message = fi.disk_full(tmp_path)
    assert (row.lost, row.duplicated) == (0, 0), row
    assert "exit 74" in row.note and "store intact after the failure: True" in row.note
    assert "disk is full" in message and "Traceback" not in message


def test_enospc_mid_record_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    store = TrialStore(tmp_path)
    store.append_record({"trial_id": "a", "status": "ok"})
    before = store.path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 8:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "write", half_then_full)
    with pytest.raises(StoreWriteError, match="disk is full"):
        store.append_record({"trial_id": "b", "status": "ok", "payload": "x" * 100})
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert [r["trial_id"] for r in store.records()] == ["a"] and not store.damaged
