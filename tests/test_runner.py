import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.runner import STATUS_FAILED, STATUS_OK, TrialSpec, TrialStore, run_specs, run_trial
from harness.runner.provenance import trial_engine
from harness.runner.spec import TrialResult
from harness.runner.trial import run_batch
from harness.spaces.kernels import fused_cnn

FAST = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 4}}
REPO = Path(__file__).resolve().parents[1]


def spec(method="das", op_set="all", seed=0, epochs=2, space="sequential", dataset="blur", **kw):
    return TrialSpec.make(dataset=dataset, space=space, op_set=op_set, method=method, hp_set="H1",
                          seed=seed, epochs=epochs, options=kw.pop("options", FAST), **kw)


@pytest.mark.parametrize("space", ["sequential", "nonsequential"])
def test_das_trial_records_both_scores(space):
    r = run_trial(spec(space=space))
    assert r.status == STATUS_OK, r.failure_reason
    assert math.isfinite(r.oneshot_score) and math.isfinite(r.arch_score)
    assert r.runtime_s >= r.search_runtime_s > 0 and r.retrain_runtime_s > 0
    positions = 10 if space == "sequential" else 30
    assert len(r.final_alphas) == positions and len(r.alpha_history) == 3  # init + 2 epochs
    assert r.extra["op_names"] and len(r.extra["positions"]) == positions
    assert r.n_param_free_ops is not None


def test_same_seed_same_result_and_different_seed_differs():
    a, b, c = run_trial(spec(seed=3)), run_trial(spec(seed=3)), run_trial(spec(seed=4))
    assert (a.oneshot_score, a.arch_score, a.genotype, a.final_alphas) == (
        b.oneshot_score, b.arch_score, b.genotype, b.final_alphas)
    assert a.final_alphas != c.final_alphas


@pytest.mark.parametrize("method", ["lg-only", "nets-only", "random", "random-search"])
def test_baselines_record_architecture_score_only(method):
    r = run_trial(spec(method=method, op_set="good", options={**FAST, "method": {"k": 2}} if method == "random-search"
                       else FAST))
    assert r.status == STATUS_OK, r.failure_reason
    assert math.isnan(r.oneshot_score) and math.isfinite(r.arch_score)
    if method == "lg-only":
        assert r.genotype == ["lgd"] * 10
    if method == "random-search":
        cands = r.extra["candidates"]
        assert len(cands) == 2 and r.arch_score == max(c["score"] for c in cands)


def test_divergence_is_recorded_as_failed():
    r = run_trial(spec(hp_overrides={"param_lr": 1e6, "alpha_lr": 1e6}, epochs=3))
    assert r.status == STATUS_FAILED
    assert "diverged" in r.failure_reason or "non-finite" in r.failure_reason


def test_exception_is_recorded_as_failed():
    r = run_trial(spec(options={"problem": {"no_such_option": 1}}))
    assert r.status == STATUS_FAILED and "no_such_option" in r.failure_reason


def test_store_roundtrip_skips_truncated_line_and_last_record_wins(tmp_path):
    store = TrialStore(tmp_path)
    ok = run_trial(spec(method="lg-only", op_set="good"))
    failed = TrialResult(spec=spec(method="das", seed=9), status=STATUS_FAILED, failure_reason="boom")
    store.append(ok)
    store.append(failed)
    with open(store.path, "a") as f:
        f.write('{"trial_id": "half')  # a crash mid-write
    records = store.records()
    assert [r["status"] for r in records] == ["ok", "failed"]
    assert store.finished_ids() == {ok.spec.trial_id, failed.spec.trial_id}
    assert store.finished_ids(retry_failed=True) == {ok.spec.trial_id}
    df = store.dataframe()
    assert df.loc[1, "failure_reason"] == "boom" and math.isnan(df.loc[1, "arch_score"])
    csv = store.write_csv()
    header = csv.read_text().splitlines()[0].split(",")
    for col in ["dataset", "space", "op_set", "method", "hp_set", "seed", "status", "metric",
                "oneshot_score", "arch_score", "runtime_s"]:
        assert col in header


def test_records_with_non_finite_values_are_stored_as_null(tmp_path):
    result = TrialResult(spec=spec(method="random-search"), status=STATUS_OK, arch_score=20.0,
                         final_alphas=[[float("nan"), 1.0]],
                         extra={"candidates": [{"score": float("nan")}, {"score": float("inf")}]})
    store = TrialStore(tmp_path)
    store.append(result)
    (record,) = store.records()
    assert record["final_alphas"] == [[None, 1.0]]
    assert [c["score"] for c in record["extra"]["candidates"]] == [None, None]


def test_parallel_workers_give_the_same_results_as_in_process(tmp_path):
    specs = [spec(method="random", seed=s) for s in range(3)]
    serial = {r.spec.seed: r.arch_score for r in run_specs(specs, workers=1, progress=False)}
    store = TrialStore(tmp_path)
    parallel = run_specs(specs, workers=2, store=store, progress=False)
    assert {r.spec.seed: r.arch_score for r in parallel} == serial
    assert len(store.records()) == 3


def _write_study(tmp_path, trials=2, epochs=2, workers=1):
    text = f"""
name: tiny
trials: {trials}
epochs: {epochs}
workers: {workers}
defaults: {{dataset: blur, space: sequential, hp_set: H1}}
options: {{problem: {{samples_per_evaluation: 256}}, ops: {{channels: 4}}, method: {{}}}}
rows:
  - {{op_set: good, method: [lg-only, das]}}
  - {{op_set: all, method: [das, random]}}
"""
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "harness.study", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=kw.get("cwd", REPO), timeout=kw.get("timeout", 600))


def test_tiny_study_through_the_cli(tmp_path):
    study = _write_study(tmp_path)
    out = tmp_path / "results"
    proc = _cli(study, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    folder = out / "tiny"
    records = TrialStore(folder).records()
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    for name in ["trials.csv", "summary.csv", "summary.md", "report.html", "figures/scatter_blur.png"]:
        assert (folder / name).exists(), name
    # a second run finds everything done
    again = _cli(study, "--out", out, "--quiet")
    assert again.returncode == 0 and "8 already stored, 0 to run" in again.stderr
    # overriding the number of trials adds only the new seeds
    more = _cli(study, "--out", out, "--quiet", "--trials", "3", "--no-report")
    assert "8 already stored, 4 to run" in more.stderr


def test_resume_after_killed_run(tmp_path):
    study = _write_study(tmp_path, trials=3, epochs=3)
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "harness.study", str(study), "--out", str(out), "--quiet",
                             "--no-report"], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    store = TrialStore(out / "tiny")
    deadline = time.time() + 300
    while len(store.records()) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(store.records())
    assert 2 <= stored < 12
    resumed = _cli(study, "--out", out, "--quiet", "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{stored} already stored, {12 - stored} to run" in resumed.stderr
    records = store.records()
    assert len(records) == 12 and len({r["trial_id"] for r in records}) == 12
    # the resumed results equal a fresh, uninterrupted computation of the same trial
    first = records[0]
    spec = TrialSpec.make(dataset=first["dataset"], space=first["space"], op_set=first["op_set"],
                          method=first["method"], hp_set=first["hp_set"], seed=first["seed"],
                          epochs=first["epochs"], options=first["options"])
    engine = trial_engine(first)  # "alone" or "trial-axis" (old records: extra.engine "loop" / "batched")
    fresh = run_batch([spec], batched=engine != "alone")[0]
    # bitwise alone, and with the compiled kernel in a batch (a trial does not depend on its batch)
    exact = engine == "alone" or fused_cnn.available()
    assert fresh.arch_score == pytest.approx(first["arch_score"], abs=0 if exact else 1e-3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nrows:\n  - {dataset: blur, space: sequential, op_set: good, method: dass}\n", "Did you mean 'das'"),
        ("name: x\ntrials: two\nrows: []\n", "trials: Input should be a valid integer"),
        ("name: x\nrows:\n  - {dataset: blur, space: sequential, op_set: good, method: das, hp_set: H9}\n",
         "Known hyperparameter sets: H1"),
        ("name: x\nrows:\n  - {dataset: blur, space: sequential, op_set: good, method: das, lr: 1}\n",
         "rows[0].lr: unknown key"),
        ("name: x\nrows:\n  - {dataset: blur, space: sequential, op_set: good, method: das,"
         " hp_overrides: {alpha_lr: -1}}\n", "alpha_lr must be > 0"),
        ("name: x\nrows: [\n", "not valid YAML"),
    ],
)
def test_bad_study_files_give_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = _cli(path, "--out", tmp_path, "--dry-run")
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_dry_run_lists_rows(tmp_path):
    proc = _cli(REPO / "studies" / "blur.yaml", "--dry-run", "--out", tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.count("blur") == 8 and "600 to run" in proc.stderr
    study_json = tmp_path / "blur" / "study.json"
    assert not study_json.exists()  # a dry run writes nothing


def test_tuned_hyperparameters_are_pinned_into_the_trial_id(tmp_path):
    from harness.study.config import parse_study

    tuned = tmp_path / "tune"
    tuned.mkdir()
    row = {"dataset": "blur", "space": "sequential", "op_set": "good", "method": "das", "hp_set": f"tuned:{tuned}"}
    ids = []
    for lr in (0.01, 0.02):
        (tuned / "best_hyperparameters.json").write_text(f'{{"hyperparameters": {{"param_lr": {lr}}}}}')
        study = parse_study({"name": "t", "trials": 1, "rows": [row]})
        (s,) = study.specs()
        assert s.hp_overrides_dict["param_lr"] == lr
        ids.append(s.trial_id)
    assert ids[0] != ids[1]  # a re-tuned set is a different trial, not a "completed" one
