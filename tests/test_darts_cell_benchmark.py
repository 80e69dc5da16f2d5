"""The cell-throughput benchmark runs end to end at its --quick size (timings are not checked)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_cell_throughput_quick_prints_a_markdown_table():
    cmd = [sys.executable, str(REPO / "benchmarks" / "cell_throughput.py"), "--quick", "--formats", "nchw"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[1].startswith("| C | px | engine | format | K |")
    rows = [line.split("|")[1:-1] for line in lines[3:]]
    assert [(r[2].strip(), r[4].strip()) for r in rows] == [("loop", "1"), ("batched", "1"), ("batched", "2")]
    assert rows[0][-1].strip() == "1.00"
    for r in rows:
        assert re.fullmatch(r"\d+\.\d\d", r[-1].strip())


@pytest.mark.slow
def test_cell_trials_quick_compares_engines_and_the_straightforward_trial(tmp_path):
    from harness.tasks.data.synthetic import write_mnist

    write_mnist(tmp_path, n_train=8, n_test=3600)  # the proxy's 256 + 256 + 1,024 + 2,000 rows
    cmd = [sys.executable, str(REPO / "benchmarks" / "cell_trials.py"), "--data-dir", str(tmp_path), "--quick",
           "--methods", "random", "--straightforward"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    for engine in ("straightforward", "loop", "batched"):
        assert any(re.match(rf"\| random \| {engine} \| \d+ \| [\d.]+ \| [\d.]+ \|", line) for line in lines), engine
    assert re.fullmatch(r"- straightforward: \d+\.\d\d h \(\d+\.\d\dx the batched engine's\)", lines[-3])
    assert re.fullmatch(r"- batched: \d+\.\d\d h", lines[-1])
