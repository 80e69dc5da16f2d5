"""Fault injection through the study CLI: torn writes, SIGKILL, two runs on one folder, full disk.

``tests/test_faults.py`` runs each fault a few times in CI; run this file directly for the full
fault matrix (every byte offset, many kills) quoted in the closing notes:

    python tests/fault_injection.py --kills 30 --offsets all

Each scenario returns a ``FaultRow``: how many runs, and how many trials were lost (missing
after the final resume) or duplicated (a trial id on more than one line of the store).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.runner.store import TRIALS_FILE, TrialStore  # noqa: E402
from harness.study.__main__ import main as study_main  # noqa: E402

# A study whose trials take milliseconds (1 epoch, 2 layers, 2 channels, small evaluation), so
# a fault can be injected at hundreds of points in a CI run.
TINY_STUDY = """\
name: {name}
trials: {trials}
epochs: 1
workers: {workers}
defaults: {{dataset: blur, space: sequential, hp_set: H1}}
options: {{problem: {{samples_per_evaluation: 128, batch_size: 64}}, ops: {{channels: 2}}, space: {{n_layers: 2}}}}
rows:
  - {{op_set: good, method: [lg-only, random]}}
"""
# The same, slow enough (about 1 s per trial) that a kill lands in the middle of the work.
SLOW_STUDY = TINY_STUDY.replace("epochs: 1", "epochs: 4").replace("channels: 2", "channels: 8").replace(
    "samples_per_evaluation: 128", "samples_per_evaluation: 1024"
)


@dataclass
class FaultRow:
    fault: str
    runs: int
    lost: int
    duplicated: int
    note: str = ""

    def markdown(self) -> str:
        return f"| {self.fault} | {self.runs} | {self.lost} | {self.duplicated} | {self.note} |"


def write_study(folder: Path, name: str = "tiny", trials: int = 3, workers: int = 1, slow: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text((SLOW_STUDY if slow else TINY_STUDY).format(name=name, trials=trials, workers=workers))
    return path


def run_cli(study: Path, out: Path, *extra: str) -> tuple[int, str]:
    """The study CLI in this process (fast; a crash would surface as an exception here)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = study_main([str(study), "--out", str(out), "--no-report", "--quiet", "--batch-size", "1", *extra])
    return code, err.getvalue()


def cli_command(study: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.study", str(study), "--out", str(out), "--no-report", "--quiet", *extra]


def line_ids(store_file: Path) -> Counter:
    """How often each trial id occurs among the complete records of the file."""
    counts: Counter = Counter()
    for raw in store_file.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(raw)
            if isinstance(record, dict) and "trial_id" in record:
                counts[record["trial_id"]] += 1
    return counts


def expected_ids(study: Path) -> set[str]:
    from harness.study.config import load_study

    return {s.trial_id for s in load_study(study).specs()}


def tally(fault: str, runs: int, study: Path, store_file: Path, note: str = "") -> FaultRow:
    counts = line_ids(store_file)
    lost = len(expected_ids(study) - set(counts))
    duplicated = sum(c - 1 for c in counts.values())
    return FaultRow(fault, runs, lost, duplicated, note)


# ------------------------------------------------------------------------------------------ faults
def torn_tail(workdir: Path, offsets: str | int = "all") -> FaultRow:
    """Cut the last record at byte offsets (``all`` or every n-th) and rerun each time."""
    study = write_study(workdir / "torn")
    out = workdir / "torn" / "out"
    code, _ = run_cli(study, out)
    assert code == 0
    store_file = out / "tiny" / TRIALS_FILE
    intact = store_file.read_bytes()
    head, last = intact[: intact.rstrip(b"\n").rfind(b"\n") + 1], intact[intact.rstrip(b"\n").rfind(b"\n") + 1 :]
    cuts = range(len(last)) if offsets == "all" else sorted({*range(0, len(last), int(offsets)), 1, len(last) - 1})
    runs = lost = duplicated = unreported = 0
    for cut in cuts:
        store_file.write_bytes(head + last[:cut])
        code, err = run_cli(study, out)
        runs += 1
        counts = line_ids(store_file)
        lost += len(expected_ids(study) - set(counts))
        duplicated += sum(c - 1 for c in counts.values())
        torn = 0 < cut < len(last) - 1  # cut == len - 1 leaves a complete record without its newline
        if code != 0 or (torn and "damaged line" not in err):
            unreported += 1
    note = f"{len(last)}-byte record, {runs} cut points; torn fragment not reported or rerun failed: {unreported}"
    return FaultRow("torn last line, then rerun", runs, lost, duplicated, note)


def sigkill(workdir: Path, kills: int, seed: int = 0, workers: int = 2) -> tuple[FaultRow, int]:
    """SIGKILL the study process at random moments while trials run (after it stored 1-3 more
    trials, plus a random 0-1.5 s), resume each time; then run to completion. Returns the row
    and the number of kills after which a process of the study outlived it by 10 s (orphans)."""
    rng = random.Random(seed)
    study = write_study(workdir / "kill", name="kill", trials=8 * kills + 2, workers=workers, slow=True)
    out = workdir / "kill" / "out"
    store_file = out / "kill" / TRIALS_FILE
    orphans = landed = 0
    for i in range(kills):
        before = _lines(store_file)
        # The loop engine stores trials one by one, so kills land between and during trials.
        log = open(workdir / "kill" / f"run{i}.log", "w")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(cli_command(study, out, "--batch-size", "1"), cwd=REPO, stderr=log,
                                start_new_session=True)
        deadline = time.time() + 120
        while proc.poll() is None and _lines(store_file) < before + 1 + i % 3 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        landed += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
        orphans += not _group_exits(proc.pid, timeout=10.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    done = subprocess.run(cli_command(study, out), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    row = tally("SIGKILL of the study at a random moment, resumed", kills, study, store_file,
                f"{workers} workers; {landed} of {kills} kills landed while trials ran; final resume completes")
    return row, orphans


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _group_exits(pgid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def two_runs(workdir: Path) -> tuple[FaultRow, str]:
    """Start a second run on the folder while the first holds it; returns its message."""
    study = write_study(workdir / "two", name="two", trials=12, workers=1, slow=True)
    out = workdir / "two" / "out"
    first = subprocess.Popen(cli_command(study, out, "--batch-size", "1"), cwd=REPO, stderr=subprocess.PIPE, text=True)
    lock = out / "two" / ".lock"
    deadline = time.time() + 60
    while time.time() < deadline and not (lock.exists() and str(first.pid) in lock.read_text()):
        time.sleep(0.1)
    second = subprocess.run(cli_command(study, out, "--batch-size", "1"), cwd=REPO, capture_output=True, text=True)
    overlapped = first.poll() is None
    first.communicate()
    assert first.returncode == 0
    row = tally("second run on a folder in use", 1, study, out / "two" / TRIALS_FILE,
                f"second run exit {second.returncode}, first still running then: {overlapped}")
    return row, second.stderr


def disk_full(workdir: Path) -> tuple[FaultRow, str]:
    """Let a run hit a real file-size limit (RLIMIT_FSIZE) in the middle of the store, then resume."""
    study = write_study(workdir / "full", name="full", trials=4)
    out = workdir / "full" / "out"
    code, _ = run_cli(study, out, "--trials", "1")
    assert code == 0
    store_file = out / "full" / TRIALS_FILE
    limit = store_file.stat().st_size + 1200  # room for one more record, not for the rest

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = subprocess.run(cli_command(study, out), cwd=REPO, capture_output=True, text=True,
                          preexec_fn=limit_file_size)
    size_after_failure = store_file.stat().st_size
    intact = store_file.read_bytes().endswith(b"\n") and not TrialStore(store_file.parent).damaged
    done = subprocess.run(cli_command(study, out), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    row = tally("file-size limit reached while appending, then resumed", 1, study, store_file,
                f"exit {full.returncode}; store intact after the failure: {intact} ({size_after_failure} <= {limit} B)")
    return row, full.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--offsets", default="all", help="'all' or a stride (every n-th byte)")
    parser.add_argument("--workdir", default="/tmp/harness-faults")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    rows = [torn_tail(workdir, args.offsets if args.offsets == "all" else int(args.offsets))]
    kill_row, orphans = sigkill(workdir, args.kills)
    kill_row.note += f"; worker processes alive 10 s after the kill: {orphans} of {args.kills} runs"
    rows += [kill_row, two_runs(workdir)[0], disk_full(workdir)[0]]
    print("| fault | runs | trials lost | trials duplicated | notes |\n|---|---:|---:|---:|---|")
    print("\n".join(r.markdown() for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
