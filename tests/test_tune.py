"""Hyperparameter tuning (harness.tune): search space, objectives, hpbandster fixes and the CLI.

Everything that goes through Pyro4 runs in a subprocess with a timeout: if a compatibility fix
stops working, hpbandster hangs without an error, and the test must fail instead of hanging.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hpbandster")
pytest.importorskip("ConfigSpace")

from harness.methods.hyperparams import HP_SETS, HyperParams, resolve_hp_set  # noqa: E402
from harness.runner.spec import STATUS_FAILED, STATUS_OK, TrialResult  # noqa: E402
from harness.tune import (  # noqa: E402
    FAILED_LOSS,
    TABLE7,
    Budgets,
    Evaluation,
    RunRecord,
    TrialObjective,
    TrialTask,
    aggregate,
    build_space,
    register_method_space,
    select_incumbent,
    split_config,
)
from harness.tune import hpbandster_compat as compat  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
FAST_OPTIONS = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 4}}
TASK = TrialTask(dataset="blur", space="sequential", op_set="all", method="das", options=FAST_OPTIONS)


# --- search space ---------------------------------------------------------------------------


def test_space_matches_table7():
    import ConfigSpace as CS

    cs = build_space("das", seed=0)
    expected_floats = {  # [001] App. B Table 7, "Search Range", all sampled on a log scale
        "param_lr": (1e-5, 1.0),
        "param_weight_decay": (1e-8, 0.1),
        "alpha_lr": (1e-5, 0.1),
        "alpha_weight_decay": (1e-5, 0.1),
    }
    expected_choices = {
        "param_warmup": {True, False},
        "alpha_warmup": {True, False},
        "alpha_scheduler": {"none", "linear"},  # Table 7: None, Linear
        "alpha_optimizer": {"adam", "sgd"},  # Table 7: Adam, Gradient Descent
    }
    assert set(cs.keys()) == set(expected_floats) | set(expected_choices)
    for name, (lower, upper) in expected_floats.items():
        hp = cs[name]
        assert isinstance(hp, CS.UniformFloatHyperparameter)
        assert (hp.lower, hp.upper, hp.log) == (lower, upper, True)
    for name, choices in expected_choices.items():
        assert isinstance(cs[name], CS.CategoricalHyperparameter)
        assert set(cs[name].choices) == choices
    # every name is a HyperParams field, and a sampled configuration is a valid set of overrides
    for config in cs.sample_configuration(20):
        hp, method_options = split_config(dict(config))
        HyperParams().replace(**hp)
        assert method_options == {}
        assert all(type(v) in (float, bool, str) for v in hp.values())
    # the paper's BOHB results (Tables 7 and 8) lie inside the space
    for name in (
        "BOHB-one-shot-Blur",
        "BOHB-one-shot-DS",
        "BOHB-Blur",
        "BOHB-DAS-single",
        "BOHB-Non-Seq-one-shot-Blur",
        "BOHB-Non-Seq-Blur",
    ):
        values = HP_SETS.get(name).to_dict()
        for p in TABLE7:
            if hasattr(p, "lower"):
                assert p.lower <= values[p.name] <= p.upper, (name, p.name)
            else:
                assert values[p.name] in p.choices, (name, p.name)


def test_method_space_hook_and_subset():
    import ConfigSpace as CS

    register_method_space("test-tune-method", lambda cs: cs.add(CS.Integer("method.k", (1, 5))))
    cs = build_space("test-tune-method", seed=1)
    hp, options = split_config(dict(cs.sample_configuration()))
    assert set(options) == {"k"} and 1 <= options["k"] <= 5 and "method.k" not in hp
    spec = TrialTask("blur", "sequential", "good", "random-search", options={"method": {"k": 9}}).spec(
        {"param_lr": 0.01, "method.k": 3}, epochs=2, seed=4
    )
    assert spec.options_dict["method"] == {"k": 3} and spec.hp_overrides_dict == {"param_lr": 0.01}
    assert (spec.epochs, spec.seed, spec.hp_set) == (2, 4, "H1")
    assert set(build_space("das", tune=["param_lr", "alpha_lr"]).keys()) == {"param_lr", "alpha_lr"}
    with pytest.raises(ValueError, match="cannot tune"):
        build_space("das", tune=["batch_size"])


def test_budgets_follow_hpbandster_arithmetic():
    # hpbandster's BOHB.__init__ (the end-to-end tests check the evaluation counts for real)
    for lo, hi, eta in [(1, 3, 3), (5, 50, 3), (1, 27, 3), (2, 54, 3), (1, 16, 2)]:
        b = Budgets(lo, hi, eta)
        n = -int(np.log(lo / hi) / np.log(eta)) + 1
        assert np.allclose(b.rungs(), hi * np.power(eta, -np.linspace(n - 1, 0, n)))
        assert all(type(x) is float for x in b.rungs())
        assert b.rungs()[-1] == hi and b.rungs()[0] >= lo - 1e-9
    b = Budgets(1, 9, 3)  # brackets 9x1 3x3 1x9 | 3x3 1x9 | 3x9
    assert [b.bracket(i) for i in range(3)] == [
        [(9, 1.0), (3, 3.0), (1, 9.0)],
        [(3, 3.0), (1, 9.0)],
        [(3, 9.0)],
    ]
    assert b.n_evaluations(3) == 20 and b.bracket(3) == b.bracket(0)
    with pytest.raises(ValueError):
        Budgets(5, 1)


# --- objectives -----------------------------------------------------------------------------


def fake_run(scores: dict):
    """A run_batch stand-in: seed -> (oneshot, arch) or None for a failed trial."""

    def run(specs):
        out = []
        for s in specs:
            value = scores[s.seed]
            if value is None:
                out.append(TrialResult(spec=s, status=STATUS_FAILED, failure_reason="diverged: test"))
            else:
                out.append(TrialResult(spec=s, status=STATUS_OK, oneshot_score=value[0], arch_score=value[1]))
        return out

    return run


def test_robust_objective_takes_quantile_over_seeds():
    scores = {0: (1.0, 20.0), 1: (2.0, 10.0), 2: (3.0, 30.0), 3: (4.0, 25.0), 4: (5.0, 15.0)}
    config = {"param_lr": 0.01, "alpha_optimizer": "adam"}
    median = TrialObjective(TASK, "robust", seeds=range(5), run=fake_run(scores), threads=None)
    ev = median(config, 2.7)
    assert ev.status == STATUS_OK and ev.loss == -20.0 and ev.score == 20.0
    assert ev.info["scores"] == [20.0, 10.0, 30.0, 25.0, 15.0] and ev.info["epochs"] == 3
    assert len(ev.records) == 5 and {r["seed"] for r in ev.records} == set(range(5))
    assert all(r["epochs"] == 3 and r["overrides"]["alpha_optimizer"] == "adam" for r in ev.records)
    q = TrialObjective(TASK, "robust", seeds=range(5), quantile=0.25, run=fake_run(scores), threads=None)
    assert q(config, 1).loss == -float(np.quantile([20, 10, 30, 25, 15], 0.25))
    # a failed seed counts as the worst score inside the quantile ...
    scores[4] = None
    ev = median(config, 1)
    assert ev.status == STATUS_OK and ev.loss == -20.0 and ev.info["n_failed"] == 1
    assert ev.info["failure_reasons"] == ["diverged: test"]
    # ... and when the quantile falls on failures, the evaluation fails with the finite penalty
    scores.update({0: None, 1: None})
    ev = median(config, 1)
    assert ev.status == STATUS_FAILED and ev.loss == FAILED_LOSS and ev.score is None


def test_oneshot_and_architecture_objectives():
    scores = {0: (12.0, 18.0), 1: (14.0, 16.0)}
    one = TrialObjective(TASK, "oneshot", seeds=[0, 1], run=fake_run(scores), threads=None)
    arch = TrialObjective(TASK, "architecture", seeds=[0], run=fake_run(scores), threads=None)
    assert one({}, 1).loss == -13.0 and arch({}, 1).loss == -18.0
    scores[1] = (math.nan, 16.0)  # a diverged supernet: non-finite one-shot score
    ev = one({}, 1)
    assert (
        ev.status == STATUS_FAILED
        and ev.loss == FAILED_LOSS
        and "non-finite" in ev.info["failure_reasons"][0]
    )
    assert aggregate([], "architecture") == (FAILED_LOSS, STATUS_FAILED)
    assert aggregate([-5000.0], "architecture", failure_loss=100.0) == (100.0, STATUS_OK)  # capped
    with pytest.raises(ValueError, match="objective"):
        TrialObjective(TASK, "best")


def test_real_trial_objective_runs_run_trial():
    ev = TrialObjective(TASK, "architecture", seeds=[0])({"param_lr": 1e-3, "alpha_optimizer": "adam"}, 1)
    assert ev.status == STATUS_OK and math.isfinite(ev.loss), ev.info
    assert ev.records[0]["status"] == "ok" and ev.records[0]["overrides"]["param_lr"] == 1e-3
    json.dumps(ev.info, allow_nan=False)


def test_incumbent_is_best_on_largest_budget():
    def run(cid, budget, loss, status="ok"):
        return RunRecord(
            config_id=cid, config={}, budget=budget, loss=loss, info={"status": status}, finished=cid[2]
        )

    runs = [
        run((0, 0, 0), 1.0, -30.0),
        run((0, 0, 1), 3.0, -10.0),
        run((0, 0, 2), 3.0, -12.0),
        run((0, 0, 3), 3.0, FAILED_LOSS, "failed"),
    ]
    assert select_incumbent(runs).config_id == (0, 0, 2)
    assert select_incumbent(runs[:1]).config_id == (0, 0, 0)  # fallback: the largest budget with a success
    assert select_incumbent(runs[3:]) is None


def test_worker_turns_exceptions_into_finite_loss():
    from harness.tune.bohb import _make_worker_class

    def broken(config, budget):
        raise RuntimeError("boom")

    worker = _make_worker_class().__new__(_make_worker_class())
    worker.objective, worker.failure_loss = broken, 123.0
    out = worker.compute((0, 0, 0), {"param_lr": np.float64(0.1)}, 1.0, ".")
    assert out["loss"] == 123.0 and "boom" in out["info"]["failure_reasons"][0]
    worker.objective = lambda c, b: Evaluation(loss=-1.0, info={"x": np.bool_(True)}, records=[{"a": np.nan}])
    out = worker.compute((0, 0, 0), {}, np.float64(1.0), ".")
    assert out == {"loss": -1.0, "info": {"x": True, "status": "ok", "records": [{"a": None}]}}
    assert type(out["info"]["x"]) is bool


# --- hpbandster compatibility fixes ---------------------------------------------------------


def test_compat_serpent_sends_numpy_scalars_as_builtins():
    import serpent

    sent = {
        "budget": np.float64(1.0),
        "name": np.str_("adam"),
        "flag": np.bool_(True),
        "n": np.int64(3),
        "nested": [np.float32(0.5), (np.bool_(False),)],
    }
    text = serpent.dumps(sent)
    assert b"np." not in text and b"numpy" not in text  # numpy 2 reprs would reach ast.literal_eval
    back = serpent.loads(text)
    assert back == {"budget": 1.0, "name": "adam", "flag": True, "n": 3, "nested": [0.5, (False,)]}
    assert [type(back[k]) for k in ("budget", "name", "flag", "n")] == [float, str, bool, int]


def test_compat_json_logger_and_budgets(tmp_path):
    from hpbandster.core.dispatcher import Job

    logger = compat.NumpyJsonResultLogger(str(tmp_path), overwrite=True)
    config = {"param_warmup": np.bool_(True), "alpha_optimizer": np.str_("sgd"), "param_lr": np.float64(0.1)}
    logger.new_config((0, 0, 0), config, {"model_based_pick": np.bool_(False)})
    job = Job((0, 0, 0), config=config, budget=np.float64(3.0))
    job.timestamps = {"submitted": 1.0, "started": 2.0, "finished": 3.0}
    job.result = {"loss": np.float64(-1.5), "info": {"ok": np.bool_(True), "x": math.nan}}
    logger(job)
    assert json.loads((tmp_path / "configs.json").read_text())[1]["param_warmup"] is True
    line = json.loads((tmp_path / "results.json").read_text())
    assert line[1] == 3.0 and line[3] == {"loss": -1.5, "info": {"ok": True, "x": None}}

    class FakeOptimizer:
        budgets = np.array([1.0, 3.0])
        config = {"budgets": budgets}

    opt = FakeOptimizer()
    compat.builtin_budgets(opt)
    assert opt.budgets == [1.0, 3.0] and all(type(b) is float for b in opt.budgets + opt.config["budgets"])
    assert "np.float64" not in repr(opt.budgets)


DETERMINISM_SCRIPT = textwrap.dedent("""
    import json, math, sys, tempfile
    from harness.tune import Budgets, Evaluation, build_space
    from harness.tune.bohb import HpBandSterTuner

    def objective(config, budget):  # smooth in the floats, plus the numpy-typed categoricals
        score = -abs(math.log10(config["param_lr"]) + 3) - abs(math.log10(config["alpha_lr"]) + 3)
        score += 0.5 * (config["alpha_optimizer"] == "adam") + 0.2 * config["param_warmup"] + 0.1 * budget
        return Evaluation(loss=-score, info={"epochs": int(budget)})

    out = []
    for seed in (0, 0, 1):
        folder = tempfile.mkdtemp()
        result = HpBandSterTuner(folder, run_id="det").optimize(
            objective, build_space("das", seed=seed), Budgets(1, 9, 3), 4, seed=seed)
        out.append({"n": len(result.runs), "incumbent": result.incumbent.config,
                    "loss": result.incumbent.loss, "ids": [list(r.config_id) for r in result.runs]})
    print(json.dumps(out))
""")


def test_bohb_through_pyro_finishes_and_is_deterministic_with_one_worker():
    """Real name server, dispatcher and worker over Pyro4 with ConfigSpace 1.x values: hangs
    (-> timeout) if a compatibility fix stops working; the same seed gives the same incumbent."""
    proc = subprocess.run(
        [sys.executable, "-c", DETERMINISM_SCRIPT],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b, c = json.loads(proc.stdout.strip().splitlines()[-1])
    assert a["n"] == Budgets(1, 9, 3).n_evaluations(4) == 13 + 4 + 3 + 13
    assert a == b
    assert c["incumbent"] != a["incumbent"]


def test_warm_start_patches_crashed_runs(tmp_path):
    from harness.tune.bohb_logs import load_previous_result, load_runs, logged_iterations

    config = {"param_lr": 0.1}
    (tmp_path / "configs.json").write_text(
        json.dumps([[0, 0, 0], config, {}]) + "\n" + json.dumps([[1, 0, 0], config, {}]) + "\n"
    )
    stamps = {"submitted": 1.0, "started": 2.0, "finished": 3.0}
    (tmp_path / "results.json").write_text(
        json.dumps([[0, 0, 0], 1.0, stamps, {"loss": -3.0, "info": {"status": "ok"}}, None])
        + "\n"
        + json.dumps([[1, 0, 0], 1.0, stamps, None, "Worker died unexpectedly."])
        + "\n"
        + '[[1, 0, 1], 1.0, {"submitted"'
    )  # a line cut short by a crash
    runs = load_runs(tmp_path)
    assert [r.ok for r in runs] == [True, False] and runs[1].error.startswith("Worker died")
    assert logged_iterations(tmp_path) == 2
    previous = load_previous_result(tmp_path, failure_loss=77.0)
    assert previous.data[(1, 0, 0)].results[1.0]["loss"] == 77.0
    # a resumed logger starts after the cut line, so its own records stay readable
    from harness.tune.bohb_logs import make_tune_logger_class

    logger = make_tune_logger_class()(tmp_path, iteration_offset=2)
    logger.new_config((0, 0, 0), {"param_lr": np.float64(0.2)}, {})
    assert load_runs(tmp_path)[-1].config_id == (1, 0, 0) and logged_iterations(tmp_path) == 3


def test_plots_and_budget_correlation(tmp_path):
    from harness.tune.plots import budget_correlation, write_plots

    runs = []
    for i in range(6):
        for budget in (1.0, 3.0):
            runs.append(
                RunRecord(
                    config_id=(0, 0, i),
                    config={},
                    budget=budget,
                    loss=-(i + budget),
                    info={"status": "ok", "epochs": int(budget)},
                    finished=float(len(runs)),
                )
            )
    runs.append(
        RunRecord(config_id=(0, 0, 9), config={}, budget=1.0, loss=FAILED_LOSS, info={"status": "failed"})
    )
    budgets, rho, counts = budget_correlation(runs)
    assert budgets == [1.0, 3.0] and rho[0, 1] == pytest.approx(1.0) and counts[0, 1] == 6
    for path in write_plots(runs, tmp_path):
        assert path.stat().st_size > 1000


# --- the command line -----------------------------------------------------------------------


def tune_cli(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "harness.tune", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=timeout,
    )


TINY = {
    "name": "tiny",
    "dataset": "blur",
    "space": "sequential",
    "op_set": "all",
    "method": "das",
    "objective": "architecture",
    "iterations": 2,
    "min_budget": 1,
    "max_budget": 3,
    "eta": 3,
    "seed": 0,
    "options": FAST_OPTIONS,
}


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_end_to_end_resume_and_tuned_hp_set(tmp_path):
    tune_file = write_yaml(tmp_path / "tiny.yaml", TINY)
    out = tmp_path / "out"
    proc = tune_cli(tune_file, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = out / "tiny"
    for name in (
        "configs.json",
        "results.json",
        "trials.jsonl",
        "best_hyperparameters.json",
        "runs.csv",
        "incumbent_trajectory.png",
        "loss_per_budget.png",
        "budget_correlation.png",
    ):
        assert (folder / name).exists(), name
    n_evals = Budgets(1, 3, 3).n_evaluations(2)
    results = [json.loads(line) for line in (folder / "results.json").read_text().splitlines()]
    assert len(results) == n_evals
    trials = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == n_evals and {t["epochs"] for t in trials} == {1, 3}
    best = json.loads((folder / "best_hyperparameters.json").read_text())
    assert best["budget"] == 3.0 and best["at_max_budget"] and math.isfinite(best["score"])
    hp = resolve_hp_set(f"tuned:{folder}")
    assert hp.to_dict() == best["hyperparameters"] and hp.warmup_epochs == HyperParams().warmup_epochs
    assert "incumbent" in proc.stderr and f"tuned:{folder}" in proc.stderr

    # the folder is not silently overwritten ...
    proc = tune_cli(tune_file, "--out", out)
    assert proc.returncode == 2 and "--resume" in proc.stderr and "Traceback" not in proc.stderr
    # ... and a resumed run continues the iteration numbering and warm-starts from the logs
    proc = tune_cli(tune_file, "--out", out, "--resume", "--iterations", 3, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in (folder / "results.json").read_text().splitlines()]
    assert len(results) == Budgets(1, 3, 3).n_evaluations(3)
    assert {r[0][0] for r in results} == {0, 1, 2}
    configs = [json.loads(line)[0] for line in (folder / "configs.json").read_text().splitlines()]
    assert len(configs) == len({tuple(c) for c in configs})
    assert len((folder / "trials.jsonl").read_text().splitlines()) == len(results)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objetive": "oneshot"}, "unknown key(s) objetive"),
        ({"objective": "best"}, "objective must be one of oneshot, architecture, robust"),
        ({"min_budget": 10, "max_budget": 3}, "min_budget <= max_budget"),
        ({"dataset": "blurr"}, "Did you mean 'blur'"),
        ({"tune": ["param_lr", "batch_size"]}, "cannot tune batch_size"),
        ({"options": {"ops": {"chanels": 4}}}, "chanels"),
        ({"hp_overrides": {"param_lr": 0.1}}, "hp_overrides fixes param_lr, which is tuned"),
        ({"hp_overrides": {"warmup_epochs": "x"}}, "hp_overrides"),
    ],
)
def test_config_errors_are_clear(change, message):
    from harness.tune.config import TuneConfigError, parse_tune

    with pytest.raises(TuneConfigError) as info:
        parse_tune({**TINY, **change}, "bad.yaml")
    assert message in str(info.value) and str(info.value).startswith("bad.yaml")


def test_cli_reports_bad_files_without_traceback(tmp_path):
    proc = tune_cli(write_yaml(tmp_path / "bad.yaml", {**TINY, "iterations": -1}), "--out", tmp_path)
    assert proc.returncode == 2 and "iterations must be an integer >= 0" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = tune_cli(tmp_path / "tiny.yaml", "--max-budget", 0.5, "--dry-run")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = tune_cli(REPO / "studies" / "tune_blur.yaml", "--dry-run", "--min-budget", 100)
    assert (
        proc.returncode == 2 and "min_budget <= max_budget" in proc.stderr and "Traceback" not in proc.stderr
    )
    proc = tune_cli(REPO / "studies" / "tune_blur.yaml", "--dry-run", "--out", tmp_path)
    assert proc.returncode == 0 and "6 ep" in proc.stderr and "50 ep" in proc.stderr


def test_aggregate_minimizes_a_lower_is_better_metric():
    """A metric where lower is better is a loss as it stands: the best seed set has the lowest mean,
    and a robust quantile below the median looks at the worst (highest) seeds."""
    low, high = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    loss_low, _ = aggregate(low, "architecture", direction="min")
    loss_high, _ = aggregate(high, "architecture", direction="min")
    assert loss_low == pytest.approx(2.0) and loss_high == pytest.approx(5.0) and loss_low < loss_high
    assert aggregate(high, "architecture")[0] == pytest.approx(-5.0)  # higher is better: loss = -mean
    worst_quarter, _ = aggregate([1.0, 2.0, 3.0, 10.0], "robust", quantile=0.25, direction="min")
    assert worst_quarter == pytest.approx(float(np.quantile([-1.0, -2.0, -3.0, -10.0], 0.25)) * -1)
    assert worst_quarter > 3.0  # between the two worst seeds, 3 and 10
