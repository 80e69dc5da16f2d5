"""Tuning on a Dask cluster (issue 14): ``python -m harness.tune --executor dask [--scheduler ADDRESS]``.

hpbandster's optimizer, name server and logger stay in the tuning process; every evaluation runs
as a Dask task. The end-to-end run goes through Pyro4, so it runs in a subprocess with a timeout
(a broken fix makes hpbandster hang, and the test must fail instead).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hpbandster")
pytest.importorskip("ConfigSpace")
pytest.importorskip("distributed")

from test_tune import TINY  # noqa: E402  (the tiny tuning file)

from harness.runner import dask_executor  # noqa: E402
from harness.tune import Budgets, Evaluation  # noqa: E402
from harness.tune.__main__ import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def write_tiny(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_bohb_evaluations_run_on_a_local_dask_cluster(tmp_path):
    tune_file, out = write_tiny(tmp_path), tmp_path / "out"
    argv = [sys.executable, "-m", "harness.tune", str(tune_file), "--out", str(out), "--quiet",
            "--executor", "dask", "--workers", "2"]
    proc = subprocess.Popen(argv, cwd=REPO, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster's processes
        proc.communicate()
        pytest.fail("tuning on a local Dask cluster did not finish within 240 s")
    assert proc.returncode == 0, stderr[-3000:]
    assert "a local Dask cluster: 2 worker(s), 2 thread(s)" in stderr and "2 evaluation(s) at a time" in stderr

    folder = out / "tiny"
    results = [json.loads(line) for line in (folder / "results.json").read_text().splitlines()]
    assert len(results) == Budgets(1, 3, 3).n_evaluations(2) == 6
    workers = [result["info"]["worker"] for _, _, _, result, _ in results]
    assert all(w["executor"] == "dask" and w["dask_worker"] in {"0", "1"} for w in workers), workers
    pids = {w["pid"] for w in workers}
    assert proc.pid not in pids and 1 <= len(pids) <= 2  # Dask worker processes, not the client
    assert all(result["info"]["status"] == "ok" for _, _, _, result, _ in results)
    trials = (folder / "trials.jsonl").read_text().splitlines()
    assert len(trials) == len(results)  # the records came back with the results; the client wrote them
    assert json.loads((folder / "best_hyperparameters.json").read_text())["at_max_budget"]


# Objectives for the fault test; Dask worker processes import them from this module.
def succeed(config: dict, budget: float) -> Evaluation:
    return Evaluation(loss=-float(budget), info={"score": float(budget)})


def fail(config: dict, budget: float) -> Evaluation:
    raise ValueError(f"boom at budget {budget:g}")


def crash(config: dict, budget: float) -> Evaluation:
    os._exit(3)  # the worker process dies, as on an out-of-memory kill


def test_dask_failures_become_failed_evaluations():
    from harness.tune.bohb import _make_worker_class
    from harness.tune.dask_workers import DaskCluster

    worker = _make_worker_class().__new__(_make_worker_class())
    worker.failure_loss = 321.0
    with DaskCluster(None, 1) as cluster:
        assert cluster.threads() == 1 and cluster.threads(limit=5) == 1
        worker.objective = cluster.objective(succeed)
        out = worker.compute((0, 0, 0), {}, 2.0, ".")
        assert out["loss"] == -2.0 and out["info"]["status"] == "ok"
        assert out["info"]["worker"]["pid"] != os.getpid() and out["info"]["worker"]["dask_worker"] == "0"

        worker.objective = cluster.objective(fail)
        out = worker.compute((0, 0, 1), {}, 1.0, ".")
        assert out["loss"] == 321.0 and out["info"]["status"] == "failed"
        assert out["info"]["failure_reasons"] == ["objective raised: ValueError: boom at budget 1"]

        worker.objective = cluster.objective(crash)
        out = worker.compute((0, 0, 2), {}, 1.0, ".")
        assert out["loss"] == 321.0 and out["info"]["status"] == "failed"
        reason = out["info"]["failure_reasons"][0]
        assert "DaskEvaluationError" in reason and "died on every attempt" in reason, reason


def test_dask_setup_errors_are_clear(tmp_path, capsys, monkeypatch):
    tune_file = write_tiny(tmp_path)
    assert main([str(tune_file), "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "--scheduler needs --executor dask" in err and "Traceback" not in err

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1)  # nothing listens there: fail fast
    argv = [str(tune_file), "--out", str(tmp_path), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: no Dask scheduler answers at tcp://127.0.0.1:1" in err and "Traceback" not in err
    assert not (tmp_path / "tiny" / "results.json").exists()

    # a scheduler without workers: an error after a while, not an endless wait
    from distributed import LocalCluster

    from harness.tune.dask_workers import DaskCluster, DaskSetupError

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        with pytest.raises(DaskSetupError, match="has no workers"):
            DaskCluster(empty.scheduler_address, 1, wait_s=0.5)
