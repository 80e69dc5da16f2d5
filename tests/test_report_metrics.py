"""Reports label every score with the study's metric: an accuracy study reads in accuracy (%),
a 1D study in PSNR (dB), and a study of both keeps them apart (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from harness.report import figures as report_figures
from harness.report import write_report
from harness.runner.spec import TrialResult, TrialSpec
from harness.runner.store import TrialStore
from harness.spaces import OP_SETS
from harness.spaces.cells import DartsCellSpace
from harness.stats import op_frequencies
from harness.stats.genotypes import NOT_KEPT
from harness.stats.synthetic import synthetic_records

SEARCH = ("das", "darts", "darts-2nd")
N_SEEDS = 6


def accuracy_records(dataset: str = "cifar10", n_seeds: int = N_SEEDS, epochs: int = 2, seed: int = 0) -> list[dict]:
    """Records as the runner writes them for the DARTS cell search: random accuracies (in %),
    random DARTS genotypes, alpha histories for the search methods, and one trial that failed
    before its task was built (so it carries the runner's default metric)."""
    rng = np.random.default_rng(seed)
    space, ops = DartsCellSpace(), tuple(OP_SETS.get("darts")["darts-cell"])
    positions, records = space.positions(), []
    for k, method in enumerate((*SEARCH, "random", "random-search")):
        for s in range(n_seeds):
            spec = TrialSpec(
                dataset=dataset, space="darts-cell", op_set="darts", method=method, hp_set="H1", epochs=epochs, seed=s
            )
            search = method in SEARCH
            arch = float(np.clip(rng.normal(94.0 if search else 92.0, 1.5), 0, 100))
            history = None
            if search:
                drift = rng.normal(0, 0.3, (len(positions), len(ops)))
                history = [(drift * e).tolist() for e in range(epochs + 1)]
            result = TrialResult(
                spec=spec,
                status="ok",
                metric="accuracy",
                arch_score=arch,
                runtime_s=float(rng.uniform(1, 3)),
                oneshot_score=float(0.5 * arch + rng.normal(40, 1)) if search else float("nan"),
                genotype=space.random_genotype(ops, torch.Generator().manual_seed(100 * k + s)),
                n_param_free_ops=int(rng.integers(0, 4)),
                alpha_history=history,
                final_alphas=history[-1] if history else None,
                extra={"op_names": list(ops), "positions": positions},
                arch_metrics={"accuracy": arch, "val_accuracy": arch + 0.3},
            )
            records.append(result.to_record())
    spec = TrialSpec(
        dataset=dataset, space="darts-cell", op_set="darts", method="das", hp_set="H1", epochs=epochs, seed=n_seeds
    )
    records.append(TrialResult(spec=spec, status="failed", failure_reason="no CIFAR-10 files").to_record())
    return records


def report(folder: Path, records: list[dict]) -> tuple[dict[str, Path], dict[str, list[tuple[str, str]]]]:
    """``write_report`` on the records, and each figure's (x label, y label) per axes by file name."""
    store = TrialStore(folder)
    for record in records:
        store.append_record(record)
    labels: dict[str, list[tuple[str, str]]] = {}
    save = report_figures.save_figure_atomic  # every report figure is written through it (save_png)

    def recording(fig: Figure, path, **kwargs):
        labels[Path(path).name] = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
        return save(fig, path, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_figures, "save_figure_atomic", recording)
        written = write_report(folder, n_boot=30, alpha_trials=1)
    return written, labels


def texts(written: dict[str, Path]) -> tuple[str, str]:
    """summary.md and report.html without its embedded images (base64 may spell anything)."""
    page = re.sub(r'src="data:image/png;base64,[^"]*"', "", written["report.html"].read_text())
    return written["summary.md"].read_text(), page


@pytest.fixture(scope="module")
def accuracy_report(tmp_path_factory):
    return report(tmp_path_factory.mktemp("accuracy") / "study", accuracy_records())


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory):
    blur = synthetic_records(datasets=("blur",), methods=("lg-only", "das", "random"), n_seeds=N_SEEDS, seed=2)
    return report(tmp_path_factory.mktemp("mixed") / "study", blur + accuracy_records(seed=1))


def test_accuracy_report_reads_in_accuracy(accuracy_report):
    written, _ = accuracy_report
    for text in texts(written):
        assert "accuracy (%)" in text
        assert not re.search(r"psnr|\bdB\b", text, flags=re.IGNORECASE), re.findall(r".{60}(?:PSNR|dB).{20}", text)
        assert "Table 1 layout" not in text and "[001] Table" not in text  # paper tables are PSNR only
    md = texts(written)[0]
    assert "Scores are the retrained architectures' accuracy (%), higher is better, over ok trials" in md
    assert "## Methods, darts-cell space (2 epochs, H1)" in md and "[001] has no table for accuracy." in md
    assert "### cifar10, darts-cell space, darts ops: accuracy (%)" in md
    assert "Seed budget: trials for a 1 percentage point wide 95% CI of the median" in md
    assert "| P(A beats B) |" in md


def test_accuracy_report_counts_an_early_failure_in_its_row(accuracy_report):
    written, _ = accuracy_report
    summary = pd.read_csv(written["summary.csv"], keep_default_na=False)
    assert set(summary["metric"]) == {"accuracy"}
    das = summary[summary["method"] == "das"].iloc[0]
    assert (das["n"], das["n_failed"], das["n_ok"]) == (N_SEEDS + 1, 1, N_SEEDS)
    ranking = pd.read_csv(written["methods_ranking.csv"])
    assert (ranking.groupby("metric")["rank"].min() == 1).all() and "best" in ranking.columns


def test_accuracy_figures_label_axes_with_the_metric(accuracy_report):
    written, labels = accuracy_report
    assert "figures/scatter_cifar10.png" in written
    scatter = labels["scatter_cifar10.png"]
    assert len(scatter) == len(SEARCH)  # one panel per search method, baselines have no one-shot score
    assert set(scatter) == {("one-shot accuracy (%)", "architecture accuracy (%)")}
    assert labels["distribution_cifar10.png"][0][0] == "architecture accuracy (%)"
    assert labels["ecdf_cifar10.png"][0][0] == "architecture accuracy (%)"
    assert labels["seed_budget_cifar10.png"][0][1] == "95% CI width of the median accuracy (%)"
    everything = " ".join(x + " " + y for axes in labels.values() for x, y in axes)
    assert "PSNR" not in everything and "dB" not in everything


def test_accuracy_op_frequencies_are_per_cell_edge(accuracy_report):
    written, _ = accuracy_report
    assert "figures/op_frequency_cifar10_darts-cell.png" in written
    freq = op_frequencies(TrialStore(written["summary.md"].parent).dataframe(), "method")
    assert set(freq["op"]) <= {*OP_SETS.get("darts")["darts-cell"], NOT_KEPT} and "none" not in set(freq["op"])
    assert freq["position"].nunique() == 28 and "reduce 4->5" in set(freq["position"])
    per_trial = freq[freq["op"] != NOT_KEPT].groupby("method")["count"].sum() / N_SEEDS
    assert (per_trial == 16).all()  # two kept inputs for each of 4 nodes, in both cells


def test_tuning_plots_name_the_tuned_metric(tmp_path):
    from harness.tune.plots import run_metric, write_plots
    from harness.tune.tuner import RunRecord

    store = TrialStore(tmp_path)
    for record in accuracy_records(n_seeds=1):
        store.append_record(record)
    assert run_metric(tmp_path) == "accuracy"  # the early failure's default metric does not count
    runs = [
        RunRecord(config_id=(0, 0, i), config={}, budget=b, loss=-(90.0 + i + b), info={"status": "ok"})
        for i in range(4)
        for b in (1.0, 3.0)
    ]
    ylabels: list[str] = []
    savefig = Figure.savefig

    def recording(fig: Figure, path, *args, **kwargs):
        ylabels.extend(ax.get_ylabel() for ax in fig.axes)
        return savefig(fig, path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Figure, "savefig", recording)
        write_plots(runs, tmp_path)
    assert "best accuracy (%) so far" in ylabels and "accuracy (%) = -loss" in ylabels


def test_a_1d_report_still_reads_in_psnr(tmp_path):
    records = synthetic_records(datasets=("blur",), methods=("das", "random"), n_seeds=N_SEEDS, seed=4)
    written, labels = report(tmp_path / "blur", records)
    md, page = texts(written)
    assert "PSNR (dB), higher is better" in md and "PSNR (dB)" in page
    assert "## Table 1 layout: methods, sequential space (4 epochs, H1)" in md  # the paper tables stay
    assert "to beat the DAS median PSNR of 18.57 dB" in md
    assert "accuracy" not in md
    assert set(labels["scatter_blur.png"]) == {("one-shot PSNR (dB)", "architecture PSNR (dB)")}


def test_a_mixed_study_keeps_its_metrics_apart(mixed_report):
    written, labels = mixed_report
    md, _ = texts(written)
    assert "PSNR (dB) for Blur (higher is better); accuracy (%) for cifar10 (higher is better)" in md
    assert "## Table 1 layout: methods, sequential space (4 epochs, H1), PSNR (dB)" in md
    assert "## Methods, darts-cell space (2 epochs, H1), accuracy (%)" in md
    methods_table = md.split("## Table 1 layout")[1].split("##")[0]
    assert "cifar10" not in methods_table  # the paper-layout table holds the PSNR rows only
    for section in ("Method comparisons", "Random search steps", "Seed budget"):
        body = md.split(f"## {section}")[1].split("\n## ")[0]
        assert body.index("### PSNR (dB)") < body.index("### accuracy (%)"), section
    assert set(labels["scatter_blur.png"]) == {("one-shot PSNR (dB)", "architecture PSNR (dB)")}
    assert set(labels["scatter_cifar10.png"]) == {("one-shot accuracy (%)", "architecture accuracy (%)")}
    summary = pd.read_csv(written["summary.csv"], keep_default_na=False)
    assert summary.groupby("dataset")["metric"].unique().map(list).to_dict() == {
        "blur": ["psnr"],
        "cifar10": ["accuracy"],
    }


def test_random_search_steps_use_darts_as_the_reference_on_the_cell_space(accuracy_report):
    """[001] §5.2 counts random draws to beat the DAS median; on the cell space DARTS is that row."""
    written, _ = accuracy_report
    steps = pd.read_csv(written["random_search_steps.csv"], keep_default_na=False)
    assert set(steps["reference"]) >= {"darts/H1"}
    row = steps[steps["reference"] == "darts/H1"].iloc[0]
    assert row["metric"] == "accuracy" and float(row["target"]) > 0
    md, _ = texts(written)
    assert "Random search steps to beat the DAS / DARTS median" in md
