"""Diagnostic plots of a tuning run (PNG), drawn from ``RunRecord``s only (any backend).

* ``incumbent_trajectory.png``: best score so far per budget against training epochs spent,
  to see whether more iterations would still help.
* ``loss_per_budget.png``: every evaluation's score per budget (failures marked), to see how
  much low budgets already separate configurations.
* ``budget_correlation.png``: Spearman rank correlation of scores between budgets over the
  configurations evaluated on both; low values mean the low budgets mislead BOHB, the
  multi-fidelity analogue of [001]'s one-shot vs architecture correlation question.

Score axes name the tuned task's metric (``metric_label``: ``'PSNR (dB)'``, ``'accuracy (%)'``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.atomic import save_figure_atomic
from harness.runner.store import TrialStore
from harness.tasks.metrics import metric_label
from harness.tune.tuner import RunRecord

PLOTS = ("incumbent_trajectory.png", "loss_per_budget.png", "budget_correlation.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(budget: float) -> str:
    return f"{budget:g} ep" if budget < 10 else f"{budget:.0f} ep"


def budget_correlation(runs: list[RunRecord]) -> tuple[list[float], np.ndarray, np.ndarray]:
    """(budgets, Spearman rho matrix, pair counts); NaN where fewer than 3 shared configurations."""
    from scipy.stats import spearmanr

    budgets = sorted({r.budget for r in runs})
    by_budget = {b: {r.config_id: r.score for r in runs if r.budget == b and r.ok} for b in budgets}
    n = len(budgets)
    rho, counts = np.full((n, n), np.nan), np.zeros((n, n), dtype=int)
    for i, bi in enumerate(budgets):
        for j, bj in enumerate(budgets):
            shared = sorted(set(by_budget[bi]) & set(by_budget[bj]))
            counts[i, j] = len(shared)
            if i == j:
                rho[i, j] = 1.0 if shared else np.nan
            elif len(shared) >= 3:
                a = [by_budget[bi][c] for c in shared]
                b = [by_budget[bj][c] for c in shared]
                if len(set(a)) > 1 and len(set(b)) > 1:
                    rho[i, j] = float(spearmanr(a, b).statistic)
    return budgets, rho, counts


def run_metric(folder: str | Path) -> str | None:
    """The metric the tuning run's ok trial records (``<folder>/trials.jsonl``) name, if exactly one
    (a trial that failed before its task was built carries the runner's default metric)."""
    names = {r.get("metric") for r in TrialStore(folder).records() if r.get("status") == "ok"} - {None}
    return names.pop() if len(names) == 1 else None


def plot_trajectory(runs: list[RunRecord], path: Path, metric: str | None = None) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ordered = sorted(runs, key=lambda r: r.finished if math.isfinite(r.finished) else math.inf)
    spent, xs = 0.0, []
    for r in ordered:
        spent += float(r.info.get("epochs", r.budget)) * max(1, len(r.info.get("seeds", [0])))
        xs.append(spent)
    for budget in sorted({r.budget for r in runs}):
        best_loss, bx, by = math.inf, [], []
        for x, r in zip(xs, ordered):
            if r.budget == budget and r.ok and r.loss < best_loss:  # by loss: the metric may be lower-is-better
                best_loss = r.loss
                bx.append(x)
                by.append(r.score)
        if bx:
            bx.append(xs[-1])
            by.append(by[-1])
            ax.step(bx, by, where="post", label=_label(budget))
    ax.set_xlabel("training epochs spent (all evaluations, all seeds)")
    ax.set_ylabel(f"best {metric_label(metric)} so far")
    ax.set_title("Incumbent trajectory per budget")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title="budget")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)


def plot_loss_per_budget(runs: list[RunRecord], path: Path, metric: str | None = None) -> None:
    plt = _plt()
    budgets = sorted({r.budget for r in runs})
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    rng = np.random.default_rng(0)  # horizontal jitter only
    ok_scores = [r.score for r in runs if r.ok]
    floor = (min(ok_scores) - 1.0) if ok_scores else 0.0
    for i, b in enumerate(budgets):
        ok = [r.score for r in runs if r.budget == b and r.ok]
        failed = sum(1 for r in runs if r.budget == b and not r.ok)
        if ok:
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(ok)), ok, s=14, alpha=0.7, color="C0")
            ax.plot([i - 0.25, i + 0.25], [np.median(ok)] * 2, color="C1")
        if failed:
            ax.scatter([i], [floor], marker="x", color="C3")
            ax.annotate(
                f"{failed} failed", (i, floor), textcoords="offset points", xytext=(6, -3), fontsize=8
            )
    ax.set_xticks(range(len(budgets)), [_label(b) for b in budgets])
    ax.set_xlabel("budget")
    ax.set_ylabel(f"{metric_label(metric)} = -loss")
    ax.set_title("Scores per budget (line: median; x: failed)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)


def plot_budget_correlation(runs: list[RunRecord], path: Path, metric: str | None = None) -> None:
    plt = _plt()
    budgets, rho, counts = budget_correlation(runs)
    fig, ax = plt.subplots(figsize=(1.2 * len(budgets) + 2.4, 1.0 * len(budgets) + 1.6))
    im = ax.imshow(np.ma.masked_invalid(rho), vmin=-1, vmax=1, cmap="RdBu")
    for i in range(len(budgets)):
        for j in range(len(budgets)):
            text = "n/a" if np.isnan(rho[i, j]) else f"{rho[i, j]:.2f}"
            dark = not np.isnan(rho[i, j]) and abs(rho[i, j]) > 0.6
            ax.text(
                j,
                i,
                f"{text}\nn={counts[i, j]}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
            )
    labels = [_label(b) for b in budgets]
    ax.set_xticks(range(len(budgets)), labels)
    ax.set_yticks(range(len(budgets)), labels)
    ax.set_title(f"Spearman correlation of {metric_label(metric)} across budgets")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)


def write_plots(runs: list[RunRecord], folder: str | Path, metric: str | None = None) -> list[Path]:
    """The three plots into ``folder``; ``metric`` defaults to the one the folder's trial records name
    (a generic 'score' label when they name none or several)."""
    folder = Path(folder)
    metric = metric if metric is not None else run_metric(folder)
    paths = [folder / name for name in PLOTS]
    for draw, path in zip((plot_trajectory, plot_loss_per_budget, plot_budget_correlation), paths):
        draw(runs, path, metric)
    return paths
