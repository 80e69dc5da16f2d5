"""Live view (issue 15, part 2): the Optuna mirror read back with real Optuna storages, trial
callbacks, the documented MLflow example, and the errors of bad input.

Every test runs a tiny real study (1 epoch, a 2-layer space, 2 channels): one DAS row, one
baseline without a one-shot score and one row whose huge learning rates make every trial fail.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import harness  # noqa: E402
from harness.runner.callbacks import CallbackError, SafeCallbacks, load_callback  # noqa: E402
from harness.runner.store import TrialStore  # noqa: E402
from harness.study.__main__ import main  # noqa: E402
from harness.study.optuna_mirror import MIRROR_ATTR, MirrorError, open_storage, shown  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DIVERGING = {"param_lr": 1e6, "alpha_lr": 1e6}


@pytest.fixture(autouse=True)
def forget_callback_files(monkeypatch):
    """A callback file is imported as ``harness_plugin_<stem>``: forget it after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m.startswith("harness_plugin_")]:
        del sys.modules[name]


def tiny(name: str = "live", trials: int = 2, methods: tuple[str, ...] = ("das", "random"), diverging: bool = True):
    rows = [{"op_set": "good", "method": list(methods)}]
    if diverging:
        rows.append({"op_set": "good", "method": "das", "hp_overrides": DIVERGING})
    return {"name": name, "trials": trials, "epochs": 1, "workers": 1,
            "defaults": {"dataset": "blur", "space": "sequential", "hp_set": "H1"},
            "options": {"problem": {"samples_per_evaluation": 128, "batch_size": 64}, "ops": {"channels": 2},
                        "space": {"n_layers": 2}},
            "rows": rows}


def run(study: dict, out: Path, **kw):
    return harness.run_study(study, out=out, report=False, progress=False, verbose=False, **kw)


def journal(path: str | Path):
    try:
        from optuna.storages.journal import JournalFileBackend
    except ImportError:  # Optuna 3.x
        from optuna.storages import JournalFileStorage as JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def mirrored(storage, name: str = "live/blur") -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def assert_mirror_matches_store(trials: list, records: list[dict]) -> None:
    """Every stored record is one mirrored trial, with its params, values, state and attributes."""
    by_id = {t.user_attrs["trial_id"]: t for t in trials}
    assert len(trials) == len(by_id) == len(records)
    for record in records:
        t = by_id[record["trial_id"]]
        assert t.user_attrs["seed"] == record["seed"] and t.user_attrs["status"] == record["status"]
        assert t.user_attrs["finished_at"] == record["finished_at"]
        assert t.params["method"] == record["method"] and t.params["epochs"] == record["epochs"]
        assert t.params.get("param_lr") == record["overrides"].get("param_lr")
        assert t.params["ops.channels"] == 2
        if record["status"] == "ok":
            assert t.state == optuna.trial.TrialState.COMPLETE
            oneshot = record["oneshot_score"] if record["oneshot_score"] is not None else -math.inf
            assert t.values == [oneshot, record["arch_score"]]
            assert t.user_attrs["genotype"] == "-".join(record["genotype"])
        else:
            assert t.state == optuna.trial.TrialState.FAIL and t.values is None
            assert t.user_attrs["failure_reason"] == record["failure_reason"] != ""


def test_a_study_mirrored_into_a_journal_file_reads_back_with_optuna(tmp_path):
    log = tmp_path / "mirror" / "live.optuna.log"
    got: list[dict] = []
    frame = run(tiny(), tmp_path / "results", optuna_storage=str(log), callbacks=[got.append])
    records = TrialStore(tmp_path / "results" / "live").records()
    assert len(frame) == len(records) == 6
    assert {r["status"] for r in records} == {"ok", "failed"}
    assert any(r["oneshot_score"] is None and r["status"] == "ok" for r in records)  # the random baseline
    assert sorted(got, key=lambda r: r["trial_id"]) == sorted(records, key=lambda r: r["trial_id"])  # as stored

    study = optuna.load_study(study_name="live/blur", storage=journal(log))
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2  # PSNR: higher is better
    assert study.metric_names == ["one-shot PSNR (dB)", "architecture PSNR (dB)"]
    assert study.user_attrs[MIRROR_ATTR] == "live"
    assert_mirror_matches_store(study.get_trials(), records)


def test_resuming_adds_only_new_trials_and_new_rows_rebuild_the_study(tmp_path, capsys):
    log = str(tmp_path / "live.log")
    run(tiny(methods=("das",), diverging=False), tmp_path, optuna_storage=log)
    assert len(mirrored(journal(log))) == 2
    run(tiny(methods=("das",), diverging=False), tmp_path, optuna_storage=log)  # nothing to run
    run(tiny(methods=("das",), diverging=False, trials=3), tmp_path, optuna_storage=log)  # one more seed
    records = TrialStore(tmp_path / "live").records()
    assert_mirror_matches_store(mirrored(journal(log)), records)
    # a new method widens the categorical 'method' parameter: rebuilt from the store, no duplicates
    harness.run_study(tiny(methods=("das", "random"), diverging=False, trials=3), out=tmp_path, report=False,
                      progress=False, optuna_storage=log)
    assert "rebuilding Optuna study live/blur from the trial store" in capsys.readouterr().err
    records = TrialStore(tmp_path / "live").records()
    assert len(records) == 6
    assert_mirror_matches_store(mirrored(journal(log)), records)


def test_trials_stored_before_the_mirror_was_switched_on_are_mirrored(tmp_path):
    run(tiny(), tmp_path)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    got: list[dict] = []
    run(tiny(trials=3), tmp_path, optuna_storage=url, callbacks=[got.append])
    records = TrialStore(tmp_path / "live").records()
    assert len(records) == 9 and len(got) == 3  # callbacks see only this run's trials
    assert_mirror_matches_store(mirrored(url), records)


def test_records_from_a_dask_cluster_are_mirrored_and_passed_on(tmp_path):
    pytest.importorskip("distributed")
    log = str(tmp_path / "dask.log")
    got: list[dict] = []
    run(tiny(), tmp_path, executor="dask", workers=1, optuna_storage=log, callbacks=[got.append])
    records = TrialStore(tmp_path / "live").records()
    assert sorted(r["trial_id"] for r in got) == sorted(r["trial_id"] for r in records) and len(records) == 6
    assert_mirror_matches_store(mirrored(journal(Path(log))), records)


def test_shards_share_one_mirror_without_duplicates(tmp_path):
    log = str(tmp_path / "shards.log")
    run(tiny(), tmp_path, shard=(1, 2), optuna_storage=log)
    run(tiny(), tmp_path, shard=(2, 2), optuna_storage=log)  # sees shard 1's trials in the folder, mirrors its own
    run(tiny(), tmp_path, shard=(1, 2), optuna_storage=log)  # resumed: nothing new
    records = TrialStore(tmp_path / "live").records()
    assert len(records) == 6
    assert_mirror_matches_store(mirrored(journal(log)), records)


def test_a_raising_callback_loses_no_trial_and_warns_once(tmp_path, capsys):
    calls: list[str] = []

    def broken(record: dict) -> None:
        calls.append(record["trial_id"])
        raise RuntimeError("tracking server unreachable")

    got: list[dict] = []
    harness.run_study(tiny(), out=tmp_path, report=False, progress=False, verbose=True, callbacks=[broken, got.append])
    records = TrialStore(tmp_path / "live").records()
    assert len(records) == 6 and sorted(calls) == sorted(r["trial_id"] for r in records)
    assert len(got) == 6  # the callback after the broken one still gets every record
    err = capsys.readouterr().err
    assert err.count("tracking server unreachable") == 1
    assert "failed on 6 of 6 trials" in err


def test_safe_callbacks_keep_a_callback_that_recovers():
    attempts: list[int] = []

    def flaky(record: dict) -> None:
        attempts.append(record["n"])
        if record["n"] == 0:
            raise OSError("blip")

    warnings: list[str] = []
    hooks = SafeCallbacks([flaky], warnings.append)
    for n in range(3):
        hooks({"trial_id": str(n), "n": n})
    assert attempts == [0, 1, 2] and len(warnings) == 1 and "blip" in warnings[0]
    assert hooks.summary() == [f"warning: callback {__name__}:{flaky.__qualname__} failed on 1 of 3 trials"]


def test_the_cli_mirrors_from_the_study_file_and_calls_a_callback_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hook = tmp_path / "hooks.py"
    hook.write_text("import json\n\n\ndef note(record):\n"
                    "    with open('seen.jsonl', 'a') as f:\n"
                    "        f.write(json.dumps(record['trial_id']) + '\\n')\n")
    study = {**tiny(), "mirror": {"optuna_storage": "from_file.log"}}
    (tmp_path / "live.yaml").write_text(json.dumps(study))
    assert main(["live.yaml", "--out", "results", "--quiet", "--no-report", "--callback", "hooks.py:note"]) == 0
    records = TrialStore(tmp_path / "results" / "live").records()
    assert sorted(json.loads(line) for line in Path("seen.jsonl").read_text().splitlines()) == sorted(
        r["trial_id"] for r in records)
    assert_mirror_matches_store(mirrored(journal(tmp_path / "from_file.log")), records)
    # the flag wins over the file
    assert main(["live.yaml", "--out", "results", "--quiet", "--no-report", "--optuna-storage", "flag.log"]) == 0
    assert len(mirrored(journal(tmp_path / "flag.log"))) == 6


@pytest.mark.parametrize(("args", "message"), [
    (["--callback", "no_colon"], "expected module:function"),
    (["--callback", "no_such_module_xyz:f"], "cannot be imported"),
    (["--callback", "json:no_such_function"], "has no attribute 'no_such_function'"),
    (["--callback", "math:pi"], "not a function"),
    (["--optuna-storage", "."], "is a folder"),
    (["--optuna-storage", "nosuchdb://x"], "cannot open it as a database"),
])
def test_bad_callbacks_and_storages_are_clear_errors(tmp_path, capsys, args, message):
    (tmp_path / "live.yaml").write_text(json.dumps(tiny(trials=1)))
    code = main([str(tmp_path / "live.yaml"), "--out", str(tmp_path), "--quiet", "--no-report", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not TrialStore(tmp_path / "live").records()  # nothing ran


def test_storage_errors_name_the_fix(tmp_path, monkeypatch):
    db = tmp_path / "x.db"
    open_storage(f"sqlite:///{db}")  # creates an SQLite database
    with pytest.raises(MirrorError, match="sqlite:///"):
        open_storage(str(db))  # given as a plain path it would be read as a journal file
    monkeypatch.setitem(sys.modules, "optuna", None)  # Optuna not installed
    with pytest.raises(MirrorError, match=r"\[dashboard\]"):
        open_storage(str(tmp_path / "j.log"))


def test_passwords_stay_out_of_logs_and_errors():
    assert shown("postgresql://ann:secret@db.example:5432/studies") == "postgresql://ann:***@db.example:5432/studies"
    assert shown("sqlite:///results/live.db") == "sqlite:///results/live.db"


def test_a_study_of_the_same_name_written_by_someone_else_is_left_alone(tmp_path):
    log = str(tmp_path / "shared.log")
    optuna.create_study(study_name="live/blur", storage=journal(log)).set_user_attr("owner", "a tuning run")
    with pytest.raises(MirrorError, match="did not write"):
        run(tiny(trials=1), tmp_path, optuna_storage=log)


def test_an_empty_unmarked_study_is_taken_over(tmp_path):
    """A run killed between creating its Optuna study and marking it left an empty study behind."""
    log = str(tmp_path / "killed.log")
    optuna.create_study(study_name="live/blur", storage=journal(log), direction="minimize")
    run(tiny(trials=1), tmp_path, optuna_storage=log)
    study = optuna.load_study(study_name="live/blur", storage=journal(log))
    assert study.user_attrs[MIRROR_ATTR] == "live" and len(study.directions) == 2
    assert_mirror_matches_store(study.get_trials(), TrialStore(tmp_path / "live").records())


def test_load_callback_reads_files_and_modules(tmp_path):
    assert load_callback("json:dumps") is json.dumps
    with pytest.raises(CallbackError, match="does not exist"):
        load_callback(f"{tmp_path / 'missing.py'}:f")


def test_optuna_dashboard_serves_the_mirror(tmp_path):
    dashboard = pytest.importorskip("optuna_dashboard")
    from wsgiref.util import setup_testing_defaults

    log = tmp_path / "live.log"
    run(tiny(), tmp_path, optuna_storage=str(log))
    app = dashboard.wsgi(journal(log))

    def get(path: str, query: str = "") -> dict:
        environ: dict = {"PATH_INFO": path, "QUERY_STRING": query}
        setup_testing_defaults(environ)
        status: list[str] = []
        body = b"".join(app(environ, lambda s, headers, *exc: status.append(s)))
        assert status == ["200 OK"], body[:500]
        return json.loads(body)

    [summary] = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "live/blur" and summary["directions"] == ["maximize", "maximize"]
    detail = get(f"/api/studies/{summary['study_id']}", "after=0")
    assert len(detail["trials"]) == 6 and {t["state"] for t in detail["trials"]} == {"Complete", "Fail"}
    assert detail["objective_names"] == ["one-shot PSNR (dB)", "architecture PSNR (dB)"]


def mlflow_example() -> str:
    """The MLflow callback of docs/live_view.md, as written there."""
    blocks = re.findall(r"```python\n(# mlflow_hooks\.py\n.*?)```", (REPO / "docs" / "live_view.md").read_text(),
                        flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_documented_mlflow_callback_logs_every_trial(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    (tmp_path / "mlflow_hooks.py").write_text(mlflow_example())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants a database; a folder is quicker here
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "live")
    run(tiny(), tmp_path, callbacks=["mlflow_hooks.py:log_trial"])
    records = {r["trial_id"]: r for r in TrialStore(tmp_path / "live").records()}
    runs = mlflow.search_runs(experiment_names=["live"])
    assert sorted(runs["tags.trial_id"]) == sorted(records)
    for _, logged in runs.iterrows():
        record = records[logged["tags.trial_id"]]
        assert logged["params.method"] == record["method"] and logged["params.seed"] == str(record["seed"])
        assert logged["tags.status"] == record["status"]
        if record["arch_score"] is not None:
            assert logged["metrics.arch_score"] == pytest.approx(record["arch_score"])


def test_the_documented_commands_run(tmp_path):
    text = (REPO / "docs" / "live_view.md").read_text()
    commands = [line.split("#", 1)[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
                for line in block.splitlines() if line.startswith("python -m harness.study ")]
    assert len(commands) >= 3
    for command in commands:
        argv = [a if not a.startswith("mlflow_hooks.py") else str(tmp_path / a) for a in shlex.split(command)[1:]]
        (tmp_path / "mlflow_hooks.py").write_text("def log_trial(record):\n    pass\n")
        argv = [a.replace("mypkg.hooks:log_trial", "json:dumps") for a in argv]
        proc = subprocess.run([sys.executable, *argv, "--dry-run"], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
