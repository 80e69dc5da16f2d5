"""Malformed study files and CLI arguments: exit code 2 and a message naming the key or argument,
never a traceback (issue 11, item 5). Each case runs the CLI's ``main`` in this process, so
an uncaught exception fails the test; a few also run as a subprocess to check the output."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from harness.study.__main__ import main
from harness.study.config import load_study

GOOD_ROW = "{dataset: blur, space: sequential, op_set: good, method: das}"
BASE = f"name: t\ntrials: 1\nepochs: 1\nrows:\n  - {GOOD_ROW}\n"


def row(**keys: str) -> str:
    items = {"dataset": "blur", "space": "sequential", "op_set": "good", "method": "das", **keys}
    return "name: t\ntrials: 1\nepochs: 1\nrows:\n  - {" + ", ".join(f"{k}: {v}" for k, v in items.items()) + "}\n"


# (case id, study file text, expected fragment of the message)
BAD_FILES = [
    ("not-a-mapping", "- a\n- b\n", "a study file is a YAML mapping"),
    ("unknown-top-key", BASE + "nmae: x\n", "nmae: unknown key"),
    ("trials-string", BASE.replace("trials: 1", 'trials: "5"'), "trials: Input should be a valid integer"),
    ("trials-zero", BASE.replace("trials: 1", "trials: 0"), "trials: Input should be greater than or equal to 1"),
    ("trials-float", BASE.replace("trials: 1", "trials: 2.5"), "trials: Input should be a valid integer"),
    ("epochs-huge", BASE.replace("epochs: 1", "epochs: 10000000000"), "epochs: Input should be less than or equal"),
    ("epochs-negative", BASE.replace("epochs: 1", "epochs: -1"), "epochs: Input should be greater than or equal"),
    ("workers-bool", BASE + "workers: true\n", "workers: Input should be a valid integer"),
    ("seed-offset-negative", BASE + "seed_offset: -1\n", "seed_offset: Input should be greater"),
    ("name-with-space", BASE.replace("name: t", "name: a b"), "name: String should match pattern"),
    ("description-number", BASE + "description: 5\n", "description: Input should be a valid string"),
    ("rows-missing", "name: t\n", "rows: Field required"),
    ("rows-empty", "name: t\nrows: []\n", "rows: List should have at least 1 item"),
    ("rows-mapping", "name: t\nrows: {a: 1}\n", "rows: Input should be a valid list"),
    ("row-not-mapping", "name: t\nrows: [5]\n", "rows[0]: Input should be a valid dictionary"),
    ("defaults-not-mapping", BASE + "defaults: 3\n", "defaults: Input should be a valid dictionary"),
    ("row-unknown-key", row(methd="das"), "rows[0].methd: unknown key"),
    ("row-trials-zero", row(trials="0"), "rows[0].trials: Input should be greater than or equal to 1"),
    ("unknown-method", row(method="dass"), "rows[0].method: unknown method 'dass'. Did you mean 'das'"),
    ("unknown-dataset", row(dataset="blurr"), "rows[0].dataset: unknown dataset 'blurr'"),
    ("unknown-op-set", row(op_set="goood"), "rows[0].op_set: unknown op set"),
    ("unknown-hp-set", row(hp_set="H3"), "rows[0].hp_set: unknown hyperparameter set 'H3'"),
    ("missing-method", "name: t\nrows:\n  - {dataset: blur, space: sequential, op_set: good}\n",
     "rows[0]: missing method"),
    ("alpha-lr-word", row(hp_overrides="{alpha_lr: fast}"),
     "rows[0].hp_overrides.alpha_lr: Input should be a valid number"),
    ("alpha-lr-negative", row(hp_overrides="{alpha_lr: -1}"), "alpha_lr must be > 0"),
    ("unknown-hyperparameter", row(hp_overrides="{alpha_rate: 0.1}"),
     "rows[0].hp_overrides.alpha_rate: unknown hyperparameter"),
    ("bool-as-string", row(hp_overrides='{alpha_warmup: "false"}'),
     "rows[0].hp_overrides.alpha_warmup: Input should be a valid boolean"),
    ("int-as-float", row(hp_overrides="{warmup_epochs: 2.7}"),
     "rows[0].hp_overrides.warmup_epochs: Input should be a valid integer"),
    ("hp-overrides-list", row(hp_overrides="[1]"), "rows[0].hp_overrides: Input should be a valid dictionary"),
    ("channels-fraction", BASE + "options: {ops: {channels: 16.5}}\n",
     "options.ops.channels: Input should be a valid integer"),
    ("noise-std-word", BASE + "options: {problem: {noise_std: high}}\n",
     "options.problem.noise_std: Input should be a valid number"),
    ("unknown-option-group", BASE + "options: {foo: {a: 1}}\n", "options.foo: unknown option group"),
    ("unknown-problem-option", BASE + "options: {problem: {noise: 0.1}}\n",
     "options.problem.noise: unknown problem option"),
    ("option-group-not-mapping", BASE + "options: {problem: 3}\n",
     "options.problem: Input should be a valid dictionary"),
    ("unknown-method-option", row(options="{method: {w99: 1}}"), "rows[0].options.method.w99: unknown method option"),
    ("method-option-type", row(options="{method: {order: two}}"),
     "rows[0].options.method.order: Input should be a valid integer"),
    ("bad-choice-option", BASE + "options: {problem: {boundary: wrap}}\n", "boundary"),
    ("method-needs-other-space", row(method="pc-darts"), "pc-darts"),
    ("duplicate-yaml-key", BASE + "trials: 2\n", "duplicate key 'trials'"),
    ("duplicate-rows", BASE + f"  - {GOOD_ROW}\n", "rows[1] repeats rows[0]"),
    ("invalid-yaml", "name: [t\n", "not valid YAML"),
]


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse reports bad arguments this way
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("text", "fragment"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_malformed_study_file(text, fragment, tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(text)
    code, err = run_main([str(study), "--out", str(tmp_path / "out"), "--dry-run"], capsys)
    assert code == 2, err
    assert fragment in err, err
    assert not (tmp_path / "out").exists()  # nothing written for a refused file


def _good_study(tmp_path):
    study = tmp_path / "good.yaml"
    study.write_text(BASE)
    return str(study)


BAD_PATHS_AND_ARGS = [
    ("study-is-folder", lambda p: [str(p)], "is a folder"),
    ("study-is-binary", lambda p: [_binary(p)], "binary"),
    ("study-missing", lambda p: [str(p / "nope.yaml")], "does not exist"),
    ("out-is-file", lambda p: [_good_study(p), "--out", _file(p)], "--out"),
    ("out-under-file", lambda p: [_good_study(p), "--out", _file(p) + "/sub"], "is a file, not a folder"),
    ("trials-word", lambda p: [_good_study(p), "--trials", "abc"], "argument --trials: must be an integer"),
    ("trials-zero", lambda p: [_good_study(p), "--trials", "0"], "argument --trials: must be between 1"),
    ("epochs-huge", lambda p: [_good_study(p), "--epochs", "10000000000"], "argument --epochs: must be between"),
    ("workers-negative", lambda p: [_good_study(p), "--workers", "-1"], "argument --workers"),
    ("batch-size-zero", lambda p: [_good_study(p), "--batch-size", "0"], "argument --batch-size"),
    ("engine-gone", lambda p: [_good_study(p), "--engine", "loop"], "unrecognized arguments: --engine"),
    ("flag-typo", lambda p: [_good_study(p), "--trails", "3"], "unrecognized arguments: --trails"),
    ("device-unknown", lambda p: [_good_study(p), "--device", "gpu"], "argument --device: must be cpu, cuda"),
    ("data-dir-missing", lambda p: [_good_study(p), "--data-dir", str(p / "nope")], "--data-dir"),
]


def _binary(folder) -> str:
    path = folder / "study.bin"
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


def _file(folder) -> str:
    path = folder / "a-file"
    path.write_text("x")
    return str(path)


@pytest.mark.parametrize(("make_args", "fragment"), [c[1:] for c in BAD_PATHS_AND_ARGS],
                         ids=[c[0] for c in BAD_PATHS_AND_ARGS])
def test_bad_path_or_argument(make_args, fragment, tmp_path, capsys):
    argv = make_args(tmp_path)
    out = [] if "--out" in argv else ["--out", str(tmp_path / "o")]
    code, err = run_main([*argv, *out, "--dry-run"], capsys)
    assert code == 2, err
    assert fragment in err, err


@pytest.mark.parametrize("case", ["alpha-lr-word", "duplicate-rows", "epochs-huge"])
def test_subprocess_prints_one_message_and_no_traceback(case, tmp_path):
    text = dict((c[0], c[1]) for c in BAD_FILES)[case]
    study = tmp_path / "s.yaml"
    study.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "harness.study", str(study), "--dry-run"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_numbers_are_typed_once_so_spelling_does_not_change_trial_ids(tmp_path):
    spelled = {}
    for name, lr, noise in (("exp", "1e-2", "1e-1"), ("dec", "0.01", "0.1"), ("int", "0.010", "0.10")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(textwrap.dedent(f"""\
            name: t
            trials: 2
            options: {{problem: {{noise_std: {noise}}}}}
            rows:
              - {{dataset: blur, space: sequential, op_set: good, method: das, hp_overrides: {{alpha_lr: {lr}}}}}
            """))
        spelled[name] = [s.trial_id for s in load_study(path).specs()]
    assert spelled["exp"] == spelled["dec"] == spelled["int"]
    spec = load_study(tmp_path / "exp.yaml").specs()[0]
    assert spec.hp_overrides_dict == {"alpha_lr": 0.01} and spec.options_dict == {"problem": {"noise_std": 0.1}}


def test_int_for_a_float_hyperparameter_is_typed_as_float(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(row(hp_overrides="{alpha_lr: 1}"))
    assert load_study(path).specs()[0].hp_overrides == (("alpha_lr", 1.0),)
    assert isinstance(load_study(path).specs()[0].hp_overrides[0][1], float)
