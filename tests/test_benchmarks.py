"""Benchmark scripts run end to end at a tiny size (their numbers are not checked: timing is
machine-dependent; the scripts' own output format is)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> list[str]:
    """The script's stdout lines (it must exit 0)."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


def test_trial_throughput_runs_and_reports_the_speedup_line():
    lines = run_benchmark("trial_throughput.py", "--epochs", "1", "--k", "2", "--rows", "das", "sdarts-rs",
                          "--samples", "128")
    assert any(re.match(r"\| das \| das \| sequential \| 2 \| [\d.]+ \|", line) for line in lines)
    assert any(re.match(r"\| .* \| sdarts-rs \| sequential \| 2 \| [\d.]+ \|", line) for line in lines)
    assert re.fullmatch(r"speedup K=2: \d+\.\d\d", lines[-1])


def test_engine_drift_reports_both_differences():
    row = run_benchmark("engine_drift.py", "--epochs", "1", "--seeds", "2", "--samples", "128")[-1].split()
    assert row[0] == "1" and row[-2:] == ["2/2,", "2/2"]  # nets-only: one genotype, shared by all engines
    batched_max, nudged_max = float(row[1]), float(row[3])
    assert 0 <= batched_max < 1 and 0 <= nudged_max < 1  # PSNR differences in dB after one short epoch


def test_executor_overhead_times_both_executors():
    lines = run_benchmark("executor_overhead.py", "--epochs", "1", "--trials", "2", "--repeats", "1",
                          "--samples", "128")
    assert any(re.match(r"\| local \| \d+ \|", line) for line in lines)
    assert any(re.match(r"\| dask \| \d+ \|", line) for line in lines)
    assert re.fullmatch(r"dask/local: \d+\.\d{3}", lines[-1])


def test_tuner_comparison_runs_the_three_backends_on_one_budget():
    lines = run_benchmark("tuner_comparison.py", "--synthetic", "--iterations", "1")
    rows = {m.group(1): m for line in lines if (m := re.match(r"\| (\w+) \| (\d+) \| (\d+) \| ([\d.]+) \|", line))}
    assert set(rows) == {"hpbandster", "smac", "optuna"}
    epochs = {name: int(m.group(3)) for name, m in rows.items()}
    # hpbandster's schedule is the budget; SMAC runs the same brackets; Optuna stops before exceeding it
    assert epochs["smac"] == epochs["hpbandster"] and 0 < epochs["optuna"] <= epochs["hpbandster"]
