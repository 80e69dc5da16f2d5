"""Statistics over a study's trials: pure functions on the trials DataFrame.

Each function takes the DataFrame from ``harness.runner.store.load_trials`` and the columns
to group by (default ``GROUP_COLUMNS``) and returns a DataFrame with one row per group.
Only ok trials enter a statistic; ``n`` and ``n_failed`` always say how many were left out.
Groups are rows of the study (``GROUP_COLUMNS`` include the metric, epochs and the
overrides/options ``variant``), so different rows, and scores of different metrics, are never
pooled; ``group_metric`` gives a group's ``Metric`` (its label, unit and direction). CIs are
``scipy.stats.bootstrap`` (BCa by default), seeded per group. Groups below ``MIN_N_CI`` /
``MIN_N_CORRELATION`` trials, or degenerate ones, give NaN and a reason in a ``*note`` column,
never an error.
"""

from harness.stats._common import (
    CI_METHODS,
    GROUP_COLUMNS,
    MIN_N_CI,
    bootstrap_ci,
    bootstrap_distribution,
    bootstrap_interval,
    group_metric,
    iter_groups,
    metric_labels,
    ok_values,
)
from harness.stats.compare import compare_groups, compare_two, genotype_agreement, level_labels, prob_superiority
from harness.stats.correlation import MIN_N_CORRELATION, correlate, correlations
from harness.stats.describe import describe_scores, score_stats, summary_table
from harness.stats.genotypes import alpha_probabilities, flatten_genotype, op_frequencies, softmax
from harness.stats.search import (
    ci_width_curve,
    expected_steps,
    fit_inverse_sqrt,
    random_search_steps,
    seed_budget,
    steps_to_beat,
)

__all__ = [
    "CI_METHODS",
    "GROUP_COLUMNS",
    "MIN_N_CI",
    "MIN_N_CORRELATION",
    "alpha_probabilities",
    "bootstrap_ci",
    "bootstrap_distribution",
    "bootstrap_interval",
    "ci_width_curve",
    "compare_groups",
    "compare_two",
    "genotype_agreement",
    "correlate",
    "correlations",
    "describe_scores",
    "expected_steps",
    "fit_inverse_sqrt",
    "flatten_genotype",
    "group_metric",
    "iter_groups",
    "level_labels",
    "metric_labels",
    "ok_values",
    "op_frequencies",
    "prob_superiority",
    "random_search_steps",
    "score_stats",
    "seed_budget",
    "softmax",
    "steps_to_beat",
    "summary_table",
]
