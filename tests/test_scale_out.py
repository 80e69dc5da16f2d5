"""Scale-out (issue 14): a real Dask scheduler and workers, faults, shards, plugins, the Python API.

The Dask tests start ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (the real
distributed components, as a user's cluster would run them) and compare every trial with the
local executor's: the engine is deterministic, so the scores are equal, not close.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from harness.runner.store import TrialStore, parse_shard, shard_specs  # noqa: E402
from harness.study.__main__ import main  # noqa: E402
from harness.study.config import load_study  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = """\
name: {name}
trials: {trials}
epochs: {epochs}
workers: 2
defaults: {{dataset: blur, space: sequential, hp_set: H1}}
options: {{problem: {{samples_per_evaluation: 128, batch_size: 64}}, ops: {{channels: 2}}, space: {{n_layers: 2}}}}
{extra}rows:
  - {{op_set: good, method: [{methods}]}}
"""
PLUGIN = '''\
from harness.methods.preset_registry import preset
from harness.methods.presets import das


@preset("user-das")
def user_das(name: str = "user-das", order: int = 1):
    """A method that exists only in this file: workers know it only if they import the plugin."""
    method = das(name, order)
    method.description = "DAS registered by a user's plugin"
    return method
'''
CRASHING_PLUGIN = '''\
import os

from harness.methods.preset_registry import preset
from harness.methods.presets import das


@preset("crashing-das")
def crashing_das(name: str = "crashing-das", order: int = 1):
    """DAS whose search kills its process: a batch that takes down every worker it runs on."""
    method = das(name, order)
    method.search_trials = lambda ctxs: os._exit(3)
    return method
'''
COLUMNS = ["method", "seed", "status", "oneshot_score", "arch_score"]


@pytest.fixture(autouse=True)
def isolated_registries(monkeypatch):
    """Plugins register methods in this process too: undo that after each test."""
    from harness.methods.preset_registry import METHODS
    from harness.runner import plugins

    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_display", dict(METHODS._display))
    monkeypatch.setattr(plugins, "_LOADED_ENTRY_POINTS", set())
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m.startswith(("harness_plugin_", "entry_plugin_module"))]:
        del sys.modules[name]


def write_study(folder: Path, name: str = "tiny", trials: int = 4, epochs: int = 2, methods: str = "das, random",
                extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(name=name, trials=trials, epochs=epochs, methods=methods, extra=extra))
    return path


def trials_of(folder: Path):
    from harness.runner import load_trials

    return load_trials(folder).set_index("trial_id").sort_index()[COLUMNS]


def assert_same_trials(a, b) -> None:
    assert list(a.index) == list(b.index)
    assert (a[["method", "seed", "status"]] == b[["method", "seed", "status"]]).all().all()
    for col in ("oneshot_score", "arch_score"):
        np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float))  # NaN == NaN here


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes (each with its nanny)."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                     "--no-dashboard"], logs / "scheduler.log")]
    for i in range(2):
        procs.append(_start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard",
                             "--name", f"w{i}"], logs / f"worker{i}.log"))
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_study_on_a_dask_cluster_equals_the_local_executor(tmp_path, dask_cluster):
    study = write_study(tmp_path)
    assert main([str(study), "--out", str(tmp_path / "local"), "--quiet", "--no-report"]) == 0
    assert main([str(study), "--out", str(tmp_path / "dask"), "--quiet", "--no-report", "--executor", "dask",
                 "--scheduler", dask_cluster]) == 0
    local, dask = trials_of(tmp_path / "local" / "tiny"), trials_of(tmp_path / "dask" / "tiny")
    assert len(local) == 8 and (local["status"] == "ok").all()
    assert_same_trials(local, dask)


def test_a_killed_dask_worker_loses_no_trial_and_stores_none_twice(tmp_path, dask_cluster):
    """One worker process is killed (SIGKILL, by pid) while it runs a batch: its nanny restarts it,
    Dask reschedules the batch, and the study ends with every trial stored exactly once."""
    from distributed import Client

    study = write_study(tmp_path, name="faults", trials=8, epochs=4)
    out = tmp_path / "out"
    cli = subprocess.Popen([sys.executable, "-m", "harness.study", str(study), "--out", str(out), "--quiet",
                            "--no-report", "--executor", "dask", "--scheduler", dask_cluster, "--batch-size", "2"],
                           env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    killed = None
    with Client(dask_cluster, timeout=60) as client:
        deadline = time.time() + 120
        while killed is None and time.time() < deadline and cli.poll() is None:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed = pid
            time.sleep(0.2)
        output, _ = cli.communicate(timeout=600)
        client.wait_for_workers(2, timeout=120)  # the nanny brought the worker back for the next test
    assert killed is not None, "no batch was seen running"
    assert cli.returncode == 0, output
    lines = [json.loads(line) for line in (out / "faults" / "trials.jsonl").read_text().splitlines()]
    ids = [r["trial_id"] for r in lines]
    expected = {s.trial_id for s in load_study(study).specs()}
    assert len(ids) == len(set(ids)) == 16 and set(ids) == expected
    assert all(r["status"] == "ok" for r in lines), [r["failure_reason"] for r in lines]


def test_ctrl_c_cancels_the_dask_tasks_and_the_same_command_resumes(tmp_path, dask_cluster):
    from distributed import Client

    study = write_study(tmp_path, name="interrupted", trials=8, epochs=4)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "harness.study", str(study), "--out", str(out), "--quiet", "--no-report",
               "--executor", "dask", "--scheduler", dask_cluster, "--batch-size", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store = out / "interrupted" / "trials.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and cli.poll() is None and not (store.exists() and store.read_text().strip()):
        time.sleep(0.1)
    cli.send_signal(signal.SIGINT)
    output, _ = cli.communicate(timeout=120)
    assert cli.returncode == 130, output
    assert "run the same command to resume" in output and "Traceback" not in output
    first = [json.loads(line) for line in store.read_text().splitlines()]
    assert 1 <= len(first) < 16
    with Client(dask_cluster, timeout=60) as client:  # the cancelled batches leave the workers
        deadline = time.time() + 60
        while any(client.processing().values()) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(client.processing().values())
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(line)["trial_id"] for line in store.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 16


def test_a_plugin_method_runs_in_worker_processes_local_and_dask(tmp_path, dask_cluster):
    plugin = tmp_path / "user_plugin.py"
    plugin.write_text(PLUGIN)
    study = write_study(tmp_path, name="plugin", trials=2, methods="user-das", extra="imports: [user_plugin.py]\n")
    for executor in (["--workers", "2"], ["--executor", "dask", "--scheduler", dask_cluster]):
        out = tmp_path / executor[-1].replace(":", "_").replace("/", "")
        assert main([str(study), "--out", str(out), "--quiet", "--no-report", *executor]) == 0
        records = TrialStore(out / "plugin").records()
        assert [r["status"] for r in records] == ["ok", "ok"], [r["failure_reason"] for r in records]
        assert {r["method"] for r in records} == {"user-das"}


def test_an_unknown_plugin_is_a_clear_error(tmp_path, capsys):
    study = write_study(tmp_path, extra="imports: [no_such_plugin_module]\n")
    assert main([str(study), "--out", str(tmp_path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no_such_plugin_module" in err and "Traceback" not in err


def test_dask_executor_with_a_local_cluster_and_bad_addresses(tmp_path, capsys):
    study = write_study(tmp_path, trials=2)
    assert main([str(study), "--out", str(tmp_path / "dask"), "--quiet", "--no-report", "--executor", "dask"]) == 0
    assert main([str(study), "--out", str(tmp_path / "local"), "--quiet", "--no-report", "--workers", "1"]) == 0
    assert_same_trials(trials_of(tmp_path / "local" / "tiny"), trials_of(tmp_path / "dask" / "tiny"))
    capsys.readouterr()
    assert main([str(study), "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--executor dask" in capsys.readouterr().err


def test_three_shards_merge_into_the_single_run(tmp_path):
    study = write_study(tmp_path, trials=5)
    assert main([str(study), "--out", str(tmp_path / "one"), "--quiet", "--no-report", "--workers", "1"]) == 0
    for i in (1, 2, 3):
        assert main([str(study), "--out", str(tmp_path / "shards"), "--quiet", "--no-report", "--workers", "1",
                     "--shard", f"{i}/3"]) == 0
    folder = tmp_path / "shards" / "tiny"
    assert sorted(p.name for p in folder.glob("trials*.jsonl")) == [f"trials.shard-{i}-of-3.jsonl" for i in (1, 2, 3)]
    sizes = [len((folder / f"trials.shard-{i}-of-3.jsonl").read_text().splitlines()) for i in (1, 2, 3)]
    assert sum(sizes) == 10 and max(sizes) - min(sizes) <= 2  # each row's seeds split 2/2/1
    assert_same_trials(trials_of(tmp_path / "one" / "tiny"), trials_of(folder))
    # A resumed unsharded run finds everything stored; the report reads the merged store.
    assert main([str(study), "--out", str(tmp_path / "shards"), "--quiet"]) == 0
    assert not (folder / "trials.jsonl").exists()
    assert len((folder / "trials.csv").read_text().splitlines()) == 1 + 10  # header + every shard's trials


def test_shards_partition_every_row_whatever_is_stored(tmp_path):
    specs = load_study(write_study(tmp_path, trials=7)).specs()
    parts = [shard_specs(specs, (i, 3)) for i in (1, 2, 3)]
    ids = [s.trial_id for part in parts for s in part]
    assert sorted(ids) == sorted(s.trial_id for s in specs) and len(set(ids)) == len(ids)
    for part in parts:  # every shard holds about a third of each row
        assert sorted({s.row for s in part}, key=str) == sorted({s.row for s in specs}, key=str)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(ValueError, match="i/N"):
            parse_shard(bad)


def test_shards_run_side_by_side_but_exclude_an_unsharded_run(tmp_path):
    from harness.runner.lock import StudyLocked

    folder = tmp_path / "study"
    with TrialStore(folder, (1, 2)).lock(), TrialStore(folder, (2, 2)).lock():
        with pytest.raises(StudyLocked, match="shards"):
            TrialStore(folder).lock().acquire()
        with pytest.raises(StudyLocked):
            TrialStore(folder, (1, 2)).lock().acquire()
    with TrialStore(folder).lock():
        with pytest.raises(StudyLocked, match="pid"):
            TrialStore(folder, (1, 2)).lock().acquire()


def test_merged_records_prefer_a_finished_trial_across_files(tmp_path):
    base = {"status": "ok", "failure_reason": ""}
    TrialStore(tmp_path).append_record({"trial_id": "a", **base, "arch_score": 1.0})
    TrialStore(tmp_path, (1, 2)).append_record({"trial_id": "a", "status": "failed", "failure_reason": "x"})
    TrialStore(tmp_path, (1, 2)).append_record({"trial_id": "b", "status": "failed", "failure_reason": "y"})
    TrialStore(tmp_path, (2, 2)).append_record({"trial_id": "b", **base, "arch_score": 2.0})
    records = {r["trial_id"]: r for r in TrialStore(tmp_path, (2, 2)).records()}
    assert records["a"]["arch_score"] == 1.0 and records["b"]["arch_score"] == 2.0


def test_run_study_from_python_resumes_and_returns_the_trials(tmp_path):
    import harness

    study = {"name": "api", "trials": 2, "epochs": 2, "workers": 1,
             "defaults": {"dataset": "blur", "space": "sequential", "hp_set": "H1"},
             "options": {"problem": {"samples_per_evaluation": 128, "batch_size": 64}, "ops": {"channels": 2},
                         "space": {"n_layers": 2}},
             "rows": [{"op_set": "good", "method": ["das", "random"]}]}
    first = harness.run_study(study, out=tmp_path, report=False, progress=False, verbose=False)
    assert len(first) == 4 and set(first["method"]) == {"das", "random"} and (first["status"] == "ok").all()
    stamp = (tmp_path / "api" / "trials.jsonl").stat().st_mtime_ns
    again = harness.run_study(study, out=tmp_path, report=False, progress=False, verbose=False)
    assert (tmp_path / "api" / "trials.jsonl").stat().st_mtime_ns == stamp  # nothing ran twice
    assert list(again["trial_id"]) == list(first["trial_id"])
    from harness.study.config import StudyConfigError

    with pytest.raises(StudyConfigError, match="name"):
        harness.run_study({k: v for k, v in study.items() if k != "name"}, out=tmp_path)


def test_the_entry_point_group_loads_an_installed_plugin(tmp_path, monkeypatch):
    """A package that declares ``harness.plugins`` in its entry points is loaded without being named."""
    from harness.methods.preset_registry import METHODS
    from harness.runner.plugins import load_entry_points

    site = tmp_path / "site"
    (site / "entry_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "entry_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: entry-plugin\n"
                                                                  "Version: 0.1\n")
    (site / "entry_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[harness.plugins]\nmine = entry_plugin_module\n")
    (site / "entry_plugin_module.py").write_text(PLUGIN.replace("user-das", "entry-point-das"))
    monkeypatch.syspath_prepend(str(site))
    assert "entry-point-das" not in METHODS
    assert "entry_plugin_module" in load_entry_points()
    assert "entry-point-das" in METHODS


def test_a_batch_that_keeps_killing_workers_is_stored_failed_with_its_reason(tmp_path):
    """Our LocalCluster gives a batch MAX_ATTEMPTS workers; then its trials are stored as failed
    (with the reason, counted by the summary) and the rest of the study is unaffected."""
    (tmp_path / "crashing.py").write_text(CRASHING_PLUGIN)
    study = write_study(tmp_path, name="crash", trials=2, methods="crashing-das, random",
                        extra="imports: [crashing.py]\n")
    assert main([str(study), "--out", str(tmp_path), "--quiet", "--no-report", "--executor", "dask",
                 "--batch-size", "2"]) == 0
    records = TrialStore(tmp_path / "crash").records()
    assert len(records) == 4
    by_method = {m: [r["status"] for r in records if r["method"] == m] for m in ("crashing-das", "random")}
    assert by_method == {"crashing-das": ["failed", "failed"], "random": ["ok", "ok"]}
    reasons = {r["failure_reason"] for r in records if r["status"] == "failed"}
    assert len(reasons) == 1 and "died on every attempt (KilledWorker" in reasons.pop()
