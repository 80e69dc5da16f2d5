"""write_report and ``python -m harness.report`` on small synthetic studies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import ReportError, paper_row, paper_tables, write_report
from harness.report.__main__ import main as report_main
from harness.runner.store import TrialStore
from harness.stats.synthetic import synthetic_records

REPO = Path(__file__).resolve().parents[1]
REQUIRED = (
    "dataset space op_set method hp_set n n_failed max mean median std median_ci_low median_ci_high "
    "spearman_rho spearman_p pearson_r kendall_tau runtime_mean_s"
).split()


def make_study(folder: Path, records: list[dict]) -> Path:
    store = TrialStore(folder)
    for r in records:
        store.append_record(r)
    return folder


@pytest.fixture(scope="module")
def small_study(tmp_path_factory) -> tuple[Path, list[dict]]:
    records = synthetic_records(hp_sets=("H1", "H2"), n_seeds=6, fail_rate=0.15, seed=1)
    # A group whose trials all failed must be counted and must not break anything.
    dead = synthetic_records(
        datasets=("blur",), op_sets=("all",), methods=("das",), hp_sets=("BOHB-Blur",), n_seeds=3
    )
    for r in dead:
        r.update(status="failed", failure_reason="NaN loss", arch_score=None, oneshot_score=None)
    records += dead
    folder = make_study(tmp_path_factory.mktemp("r") / "study", records)
    return folder, records


@pytest.fixture(scope="module")
def written(small_study):
    folder, _ = small_study
    return write_report(folder, n_boot=50, alpha_trials=2)


def test_writes_all_files(small_study, written):
    folder, _ = small_study
    for name in ("trials.csv", "summary.csv", "summary.md", "report.html"):
        assert written[name] == folder / name and written[name].stat().st_size > 0
    for dataset in ("blur", "downsampling"):
        png = folder / "figures" / f"scatter_{dataset}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert written[f"figures/scatter_{dataset}.png"] == png
    assert sum(k.startswith("figures/alphas_") for k in written) == 2
    assert all(p.exists() for p in written.values())


def test_summary_csv_counts(small_study, written):
    _, records = small_study
    summary = pd.read_csv(written["summary.csv"], keep_default_na=False, na_values=[""])
    assert set(REQUIRED) <= set(summary.columns)
    truth = pd.DataFrame(records)
    truth["failed"] = truth["status"] != "ok"
    counts = truth.groupby(["dataset", "space", "op_set", "method", "hp_set"])["failed"].agg(["size", "sum"])
    assert len(summary) == len(counts)
    for _, r in summary.iterrows():
        n, n_failed = counts.loc[(r["dataset"], r["space"], r["op_set"], r["method"], r["hp_set"])]
        assert (r["n"], r["n_failed"]) == (n, n_failed)
    ok = truth[~truth["failed"]].groupby(["dataset", "op_set", "method", "hp_set"])["arch_score"].median()
    das = summary[(summary["dataset"] == "blur") & (summary["method"] == "das") & (summary["hp_set"] == "H1")]
    for _, r in das.iterrows():
        assert r["median"] == pytest.approx(ok.loc[("blur", r["op_set"], "das", "H1")])
    dead = summary[summary["hp_set"] == "BOHB-Blur"].iloc[0]
    assert (dead["n"], dead["n_failed"]) == (3, 3) and np.isnan(dead["median"])
    assert len(pd.read_csv(written["trials.csv"])) == len(records)


def test_markdown_and_html(written):
    md = written["summary.md"].read_text()
    assert "Table 1 layout" in md and "Table 3 layout" in md
    assert "Table 2 layout" not in md and "Table 4 layout" not in md  # no non-sequential trials
    assert "(21.60)" in md  # the paper's blur / good ops / DAS median next to ours
    assert "| op set | method | hp set | Blur Max." in md
    assert "Random search steps" in md and "Seed budget" in md and "NaN loss" in md
    page = written["report.html"].read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert 'src="figures/' not in page  # self-contained


def test_paper_tables_transcription():
    ref = paper_tables()
    assert ref.groupby("table").size().to_dict() == {1: 16, 2: 12, 3: 20, 4: 14}
    das = paper_row(1, "blur", "good", "das", "H1")
    assert (das["max"], das["mean"], das["median"], das["runtime_s"]) == (23.46, 21.56, 21.60, 159)
    assert paper_row(1, "blur", "good", "das", "H2") is None  # Table 1 DAS rows are H1
    assert (
        paper_row(1, "downsampling", "all", "random", "anything")["median"] == 4.31
    )  # baselines: any hp set
    assert paper_row(4, "blur", "all", "das", "BOHB-Non-Seq-Blur")["median"] == 15.42
    # Table 1's DAS rows are Table 3's H1 rows, Table 2's are Table 4's (blur).
    for first, second, datasets in ((1, 3, ("blur", "downsampling")), (2, 4, ("blur",))):
        for d in datasets:
            for op_set in ("good", "all"):
                a, b = paper_row(first, d, op_set, "das", "H1"), paper_row(second, d, op_set, "das", "H1")
                assert (a["max"], a["mean"], a["median"]) == (b["max"], b["mean"], b["median"])
    assert (ref["max"] >= ref["median"]).all() and (ref["max"] >= ref["mean"]).all()


@pytest.mark.parametrize("kind", ["baselines", "all_failed"])
def test_degenerate_studies(tmp_path, kind):
    if kind == "baselines":
        records = synthetic_records(datasets=("blur",), methods=("lg-only", "random"), n_seeds=3)
    else:
        records = synthetic_records(datasets=("downsampling",), methods=("das",), n_seeds=2)
        for r in records:
            r.update(status="failed", arch_score=None, oneshot_score=None)
    folder = make_study(tmp_path / kind, records)
    out = write_report(folder, n_boot=20, alpha_trials=1)
    dataset = records[0]["dataset"]
    assert out[f"figures/scatter_{dataset}.png"].exists()
    assert "no trial has both a one-shot and an architecture score" in out["summary.md"].read_text()


def test_missing_or_empty_study(tmp_path):
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nope")
    with pytest.raises(ReportError, match="no trials.jsonl"):
        write_report(tmp_path)
    (tmp_path / "trials.jsonl").write_text("")
    with pytest.raises(ReportError, match="no complete trial records"):
        write_report(tmp_path)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "harness.report", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli(tmp_path):
    records = synthetic_records(datasets=("blur",), methods=("das", "random"), n_seeds=4)
    make_study(tmp_path / "results" / "tiny", records)
    ok = run_cli("results/tiny", "--n-boot", "20", "--alpha-trials", "1", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "wrote summary.csv" in ok.stdout and (tmp_path / "results/tiny/figures/scatter_blur.png").exists()
    missing = run_cli("results/missing", cwd=tmp_path)
    assert missing.returncode != 0
    assert "error:" in missing.stderr and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_errors_in_process(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no trials.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path / "empty"), "--n-boot", "-1"])
    assert exit_info.value.code != 0


def test_scatter_panel_titles_fit_their_panels(tmp_path, monkeypatch):
    """[001] Table 4's longest hp-set name must not run past its panel (off the canvas on the right)."""
    from matplotlib.figure import Figure

    from harness.report import figures as report_figures

    records = synthetic_records(
        datasets=("blur",), spaces=("nonsequential",), methods=("das",), n_seeds=4, fail_rate=0.0, epochs=50,
        hp_sets=("H1", "H2", "BOHB-one-shot-Blur", "BOHB-one-shot-DS", "BOHB-Blur", "BOHB-Non-Seq-one-shot-Blur",
                 "BOHB-Non-Seq-Blur"),
    )
    panels = []  # (title extent, axes extent, canvas)
    save = report_figures.save_figure_atomic

    def recording(fig: Figure, path, **kwargs):
        out = save(fig, path, **kwargs)  # drawn: the extents are final
        if Path(path).name == "scatter_blur.png":
            renderer = fig.canvas.get_renderer()
            panels.extend(
                (ax.title.get_window_extent(renderer), ax.get_window_extent(renderer), fig.bbox)
                for ax in fig.axes
                if ax.get_title()
            )
        return out

    monkeypatch.setattr(report_figures, "save_figure_atomic", recording)
    write_report(make_study(tmp_path / "t4", records), n_boot=10, alpha_trials=0)
    assert len(panels) == 7
    for title, axes, canvas in panels:
        assert title.width <= axes.width and canvas.x0 <= title.x0 and title.x1 <= canvas.x1, (title, axes)
