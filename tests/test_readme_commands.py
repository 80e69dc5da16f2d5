"""The quick-start commands of the README and docs work in a fresh clone (issue 11, item 8):
each ``python -m harness.study|tune`` line, run as a dry run from the repository root, exits 0."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docs" / "tuning.md"]


def quick_start_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.splitlines():
                command = line.split("#", 1)[0].strip()
                if re.match(r"python -m harness\.(study|tune) ", command):
                    found.append((doc.name, command))
    return found


def test_docs_have_quick_start_commands():
    assert len(quick_start_commands()) >= 4


@pytest.mark.parametrize(("doc", "command"), quick_start_commands())
def test_quick_start_command_runs_in_a_fresh_clone(doc, command):
    argv = shlex.split(command)[1:]
    if "--resume" in argv:
        pytest.skip("continues a run the previous line starts")
    proc = subprocess.run([sys.executable, *argv, "--dry-run"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{doc}: {command}\n{proc.stderr}"
