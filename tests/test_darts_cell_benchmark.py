"""The cell-throughput benchmark runs end to end at its --quick size (timings are not checked)."""

import re
import subprocess
import sys
from pathlib import Path

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
