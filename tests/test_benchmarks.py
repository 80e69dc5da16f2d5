"""Benchmark scripts run end to end at a tiny size (their numbers are not checked: timing is
machine-dependent; the scripts' own output format is)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_trial_throughput_runs_and_reports_the_speedup_line():
    cmd = [sys.executable, str(REPO / "benchmarks" / "trial_throughput.py"), "--epochs", "1", "--k", "1", "2",
           "--datasets", "blur", "--methods", "das", "random", "--samples", "128"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert any(re.match(r"blur\s+das\s+batched\s+2\s", line) for line in lines)
    assert re.fullmatch(r"speedup K=2: \d+\.\d\d", lines[-1])
