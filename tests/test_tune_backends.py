"""The tuning backends behind one ``Tuner`` interface (issue 15): hpbandster, SMAC3, Optuna.

Every CLI run here uses the real ``TrialObjective`` with a fake ``run_batch`` (a smooth function of
the hyperparameters and the epochs, with real trial records), so a run takes seconds; the trial
code itself is covered by tests/test_tune.py. hpbandster goes through Pyro4, so its run is a
subprocess with a timeout (a broken compatibility fix hangs instead of failing).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("ConfigSpace")

from test_tune import TINY as TUNE_TINY  # noqa: E402  (the tiny tuning file)

from harness.runner.spec import STATUS_OK, TrialResult  # noqa: E402
from harness.tune import TABLE7, Budgets, TrialObjective  # noqa: E402
from harness.tune.__main__ import main  # noqa: E402
from harness.tune.bohb_logs import load_runs  # noqa: E402
from harness.tune.config import TuneConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "OMP_NUM_THREADS": "1"}
TINY = {**TUNE_TINY, "max_budget": 9}  # three rungs (1, 3, 9 epochs) for the brackets
BUDGETS = Budgets(1, 9, 3)
BOUNDS = {p.name: p for p in TABLE7}


def fake_run(specs):
    """A run_batch stand-in: best near param_lr = alpha_lr = 1e-3 with adam, better with more epochs."""
    out = []
    for s in specs:
        hp = s.hp_overrides_dict
        score = 20 - abs(math.log10(hp["param_lr"]) + 3) - abs(math.log10(hp["alpha_lr"]) + 3)
        score += 1.0 * (hp["alpha_optimizer"] == "adam") + 0.3 * s.epochs
        out.append(TrialResult(spec=s, status=STATUS_OK, oneshot_score=score - 1, arch_score=score))
    return out


def fake_objective(self: TuneConfig, **_: object) -> TrialObjective:
    return TrialObjective(self.task, self.objective, self.trial_seeds, self.quantile, self.failure_loss, run=fake_run)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(TuneConfig, "make_objective", fake_objective)


def write_tiny(tmp_path: Path, **change) -> Path:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **change}))
    return path


HPBANDSTER_DRIVER = """
import sys
import test_tune_backends as t
from harness.tune.config import TuneConfig
from harness.tune.__main__ import main
TuneConfig.make_objective = t.fake_objective
sys.exit(main(sys.argv[1:]))
"""


def run_cli(backend: str, tune_file: Path, out: Path, *extra: str) -> tuple[int, str]:
    argv = [str(tune_file), "--out", str(out), "--quiet", "--backend", backend, *extra]
    if backend != "hpbandster":
        return main(argv), ""
    proc = subprocess.run([sys.executable, "-c", HPBANDSTER_DRIVER, *argv], capture_output=True, text=True,
                          env=ENV, cwd=REPO, timeout=180)
    return proc.returncode, proc.stderr


def check_best(folder: Path, backend: str, at_max_budget: bool = True) -> dict:
    """best_hyperparameters.json: every tuned name, each value inside the space."""
    best = json.loads((folder / "best_hyperparameters.json").read_text())
    hp = best["hyperparameters"]
    assert best["backend"] == backend and best["budget"] in BUDGETS.rungs()
    if at_max_budget:
        assert best["at_max_budget"] and best["budget"] == 9.0
    assert set(BOUNDS) <= set(hp)
    for name, p in BOUNDS.items():
        if hasattr(p, "lower"):
            assert p.lower <= hp[name] <= p.upper, (name, hp[name])
        else:
            assert hp[name] in p.choices, (name, hp[name])
    return best


def schedule(iterations: int) -> Counter:
    """Evaluations per budget in ``iterations`` hyperband iterations (hpbandster's brackets)."""
    counts: Counter = Counter()
    for i in range(iterations):
        for n, budget in BUDGETS.bracket(i):
            counts[budget] += n
    return counts


@pytest.mark.parametrize("backend", ["hpbandster", "smac", "optuna"])
def test_tiny_run_through_the_cli(backend, tmp_path, fast, capsys):
    if backend != "hpbandster":
        pytest.importorskip(backend)
    else:
        pytest.importorskip("hpbandster")
    out = tmp_path / "out"
    rc, stderr = run_cli(backend, write_tiny(tmp_path), out)
    stderr += capsys.readouterr().err
    assert rc == 0, stderr[-3000:]
    folder = out / "tiny"
    best = check_best(folder, backend)
    runs = load_runs(folder)
    assert best["n_evaluations"] == len(runs) and all(r.ok for r in runs)
    assert {r.budget for r in runs} <= set(BUDGETS.rungs())
    if backend == "optuna":  # no fixed schedule: capped by the epochs hpbandster would spend
        assert sum(r.budget for r in runs) <= BUDGETS.total_budget(2)
        assert sum(r.budget for r in runs) > BUDGETS.total_budget(2) - 9  # stopped only when nearly spent
    else:  # the same brackets, so the same evaluations per budget
        assert Counter(r.budget for r in runs) == schedule(2) and len(runs) == BUDGETS.n_evaluations(2)
    trials = (folder / "trials.jsonl").read_text().splitlines()
    assert len(trials) == len(runs) and {json.loads(t)["epochs"] for t in trials} <= {1, 3, 9}
    for name in ("runs.csv", "incumbent_trajectory.png", "loss_per_budget.png", "budget_correlation.png"):
        assert (folder / name).exists(), name
    assert f"tuned:{folder}" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("backend", ["smac", "optuna"])
def test_same_seed_same_run(backend, tmp_path, fast, capsys):
    pytest.importorskip(backend)
    tune_file = write_tiny(tmp_path)

    def sequence(name: str, *extra: str) -> list:
        assert run_cli(backend, tune_file, tmp_path / name, *extra)[0] == 0, capsys.readouterr().err[-3000:]
        return [(r.config_id, r.budget, r.config) for r in load_runs(tmp_path / name / "tiny")]

    first = sequence("a")
    assert sequence("b") == first
    assert sequence("c", "--seed", "1") != first


def test_unknown_backend_and_bad_settings_are_clear(tmp_path, capsys):
    tune_file = write_tiny(tmp_path)
    cases = [
        (["--backend", "hyperopt"], "unknown --backend 'hyperopt'; choose one of hpbandster, smac, optuna"),
        (["--backend", "optuna", "--eta", "2.5"], "backend optuna needs an integer eta, got 2.5"),
        (["--backend", "smac", "--resume"], "--resume: only for --backend hpbandster"),
        (["--backend", "optuna", "--remote-workers", "2"], "--remote-workers: only for --backend hpbandster"),
    ]
    for extra, message in cases:
        assert main([str(tune_file), "--out", str(tmp_path), "--dry-run", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    bad_file = write_tiny(tmp_path, backend="nevergrad")
    assert main([str(bad_file), "--dry-run"]) == 2
    assert "backend must be one of hpbandster, smac, optuna, got 'nevergrad'" in capsys.readouterr().err


@pytest.mark.parametrize(("backend", "module", "extra"),
                         [("smac", "smac", "smac"), ("optuna", "optuna", "optuna"), ("hpbandster", "Pyro4", "tune")])
def test_missing_optional_package_is_a_clear_error(backend, module, extra, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    assert main([str(write_tiny(tmp_path)), "--out", str(tmp_path), "--backend", backend, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"backend '{backend}' needs the '{module}' package" in err, err
    assert f'pip install "das-harness[{extra}]"' in err and "Traceback" not in err, err
    assert not (tmp_path / "tiny").exists()


@pytest.mark.parametrize("backend", ["smac", "optuna"])
def test_evaluations_run_on_a_local_dask_cluster(backend, tmp_path, fast, capsys):
    pytest.importorskip(backend)
    pytest.importorskip("distributed")
    tune_file, out = write_tiny(tmp_path, iterations=1), tmp_path / "out"
    rc, _ = run_cli(backend, tune_file, out, "--executor", "dask", "--workers", "2")
    err = capsys.readouterr().err
    assert rc == 0, err[-3000:]
    assert "a local Dask cluster: 2 worker(s)" in err
    runs = load_runs(out / "tiny")
    assert runs and all(r.ok for r in runs)
    assert {r.info["worker"]["dask_worker"] for r in runs} <= {"0", "1"}  # ran in the Dask worker processes
    assert all(r.info["worker"]["pid"] != os.getpid() for r in runs)
    assert {r.budget for r in runs} <= set(BUDGETS.rungs())
    if backend == "smac":  # in parallel SMAC may open the next bracket early, but runs n_trials evaluations
        assert len(runs) == BUDGETS.n_evaluations(1)
    check_best(out / "tiny", backend, at_max_budget=False)  # SMAC in parallel may not reach 9 epochs in 1 iteration


# --- Pyro4 HMAC (hpbandster's remote workers) --------------------------------------------------


def test_master_key_is_installed_exported_and_restored(monkeypatch):
    pytest.importorskip("Pyro4")
    import Pyro4

    from harness.tune import pyro_hmac

    monkeypatch.delenv(pyro_hmac.ENV_VAR, raising=False)
    with pyro_hmac.master_key() as key:
        assert len(key) >= 32 and os.environ[pyro_hmac.ENV_VAR] == key
        proxy = Pyro4.Proxy("PYRO:x@127.0.0.1:1")
        proxy._pyroHmacKey = None  # what hpbandster and Pyro4.locateNS do: still the master's key
        assert proxy._pyroHmacKey == key.encode()
        with Pyro4.core.Daemon(host="127.0.0.1") as daemon:
            assert daemon._pyroHmacKey == key.encode()
    assert pyro_hmac.ENV_VAR not in os.environ and Pyro4.Proxy("PYRO:x@127.0.0.1:1")._pyroHmacKey is None


def test_worker_needs_the_masters_hmac_key(tmp_path, monkeypatch, capsys):
    pytest.importorskip("hpbandster")
    import hpbandster.core.nameserver as hpns
    import Pyro4

    from harness.tune import pyro_hmac
    from harness.tune.worker import main as worker_main

    tune_file = write_tiny(tmp_path)
    undo = pyro_hmac.install("the-masters-key")
    ns = hpns.NameServer(run_id="tiny", host="127.0.0.1", port=0)
    host, port = ns.start()
    try:
        worker = [sys.executable, "-m", "harness.tune.worker", str(tune_file), "--nameserver", host, "--port",
                  str(port), "--idle-timeout", "3", "--worker-id", "w"]
        env = {k: v for k, v in ENV.items() if k != pyro_hmac.ENV_VAR}
        proc = subprocess.run([*worker, "--hmac-key", "a-wrong-key"], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=120)
        assert proc.returncode == 2 and "No nameserver found" in proc.stderr and "HMAC key" in proc.stderr
        monkeypatch.delenv(pyro_hmac.ENV_VAR, raising=False)
        assert worker_main(worker[3:]) == 2 and "error: no HMAC key" in capsys.readouterr().err
        with pytest.raises(Pyro4.errors.NamingError):  # the name server itself rejects an unkeyed client
            Pyro4.locateNS(host, port, hmac_key=b"a-wrong-key")

        # the right key (here from the environment): the worker registers with the name server
        env[pyro_hmac.ENV_VAR] = "the-masters-key"
        proc = subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        try:
            registered = {}
            for _ in range(240):
                with Pyro4.locateNS(host, port) as nameserver:
                    registered = nameserver.list(prefix="hpbandster.run_tiny.worker")
                if registered or proc.poll() is not None:
                    break
                time.sleep(0.25)
            assert registered, proc.communicate(timeout=30)[1][-3000:]
        finally:
            proc.kill()
            proc.communicate()
    finally:
        ns.shutdown()
        undo()
