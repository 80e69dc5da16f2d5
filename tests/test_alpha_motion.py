"""harness.stats.alpha_motion on hand-built alpha histories with exactly known motion."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.stats.alpha_motion import FROZEN_THRESHOLD, alpha_motion, alpha_motion_summary, trial_motion

LN3 = math.log(3.0)  # softmax([ln 3, 0]) = [0.75, 0.25]


def test_motion_between_first_and_last_entry_only():
    first = [[LN3, 0.0], [0.0, 0.0]]  # p = [.75, .25] and [.5, .5]
    middle = [[50.0, -50.0], [9.0, 0.0]]  # ignored: only first and last count
    last = [[0.0, LN3], [0.0, 0.0]]  # p = [.25, .75]: position 0 swapped its argmax
    m = trial_motion([first, middle, last])
    assert m["prob_motion"] == pytest.approx(0.5, abs=1e-12)
    assert m["raw_motion"] == pytest.approx(LN3, abs=1e-12)
    assert m["argmax_changed"] == 0.5
    assert (m["n_recorded"], m["motion_note"]) == (3, "")


def test_frozen_history_has_zero_motion():
    init = [[0.001, -0.002, 0.0005], [0.0, 0.003, -0.001]]
    m = trial_motion([init] * 4)  # e.g. fewer epochs than the alpha warm-up
    assert (m["prob_motion"], m["raw_motion"], m["argmax_changed"]) == (0.0, 0.0, 0.0)


def test_ragged_positions_are_softmaxed_separately():
    first = [[0.0, 0.0], [0.0, 0.0, 0.0]]  # p = [1/2, 1/2] and [1/3, 1/3, 1/3]
    last = [[0.0, 0.0], [0.0, 0.0, math.log(2.0)]]  # p = [1/4, 1/4, 1/2]
    m = trial_motion([first, last])
    assert m["prob_motion"] == pytest.approx(1 / 6, abs=1e-12)
    assert m["raw_motion"] == pytest.approx(math.log(2.0), abs=1e-12)
    assert m["argmax_changed"] == 0.5  # position 1: op 0 (first of ties) -> op 2


def test_cells_nesting_reads_like_a_flat_list_of_positions():
    flat = trial_motion([[[LN3, 0.0], [0.0, 0.0]], [[0.0, LN3], [0.0, 0.0]]])
    cells = trial_motion([[[[LN3, 0.0]], [[0.0, 0.0]]], [[[0.0, LN3]], [[0.0, 0.0]]]])
    assert cells["prob_motion"] == pytest.approx(flat["prob_motion"], abs=1e-12)
    assert cells["argmax_changed"] == flat["argmax_changed"] == 0.5


@pytest.mark.parametrize(
    ("history", "note"),
    [
        (None, "no alpha history"),
        ([], "no alpha history"),
        ([[[0.0, 1.0]]], "a single recorded alpha"),
        ([[[0.0, 1.0]], [[0.0, 1.0, 2.0]]], "differ in shape"),
    ],
)
def test_unmeasurable_histories_give_nan_and_a_note(history, note):
    m = trial_motion(history)
    assert np.isnan(m["prob_motion"]) and np.isnan(m["raw_motion"])
    assert note in m["motion_note"]


def _history(delta_p: float) -> list:
    """Two positions x two ops whose op-0 probability grows by ``delta_p`` at position 0."""
    x = math.log((0.5 + delta_p) / (0.5 - delta_p))
    return [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[x, 0.0], [0.0, 0.0]]]


def _trials() -> pd.DataFrame:
    row = {"dataset": "blur", "space": "sequential", "op_set": "all", "method": "das", "hp_set": "H1", "epochs": 3}
    rows = []
    for i, dp in enumerate([0.0, 0.001, 0.004]):  # frozen: median 0.001
        rows.append({**row, "variant": "alpha_lr=0", "trial_id": f"f{i}", "seed": i, "status": "ok",
                     "alpha_history": _history(dp)})
    for i, dp in enumerate([0.2, 0.3]):  # moves: median 0.25
        rows.append({**row, "variant": "-", "trial_id": f"m{i}", "seed": i, "status": "ok",
                     "alpha_history": _history(dp)})
    # A failed trial never enters the statistics, however far its alpha moved.
    rows.append({**row, "variant": "alpha_lr=0", "trial_id": "x", "seed": 9, "status": "failed",
                 "alpha_history": _history(0.45)})
    rows.append({**row, "method": "random", "variant": "-", "trial_id": "r", "seed": 0, "status": "ok",
                 "alpha_history": None})
    return pd.DataFrame(rows)


BY = ("method", "variant")


def test_summary_per_row_median_max_and_frozen_flag():
    table = alpha_motion_summary(_trials(), BY).set_index(list(BY))
    frozen = table.loc[("das", "alpha_lr=0")]
    assert (frozen["n"], frozen["n_failed"], frozen["n_alpha"]) == (4, 1, 3)
    assert frozen["prob_motion_median"] == pytest.approx(0.001, abs=1e-12)
    assert frozen["prob_motion_max"] == pytest.approx(0.004, abs=1e-12)
    assert frozen["argmax_changed_mean"] == 0.0
    assert frozen["frozen"] is True and frozen["prob_motion_median"] < FROZEN_THRESHOLD
    moving = table.loc[("das", "-")]
    assert moving["prob_motion_median"] == pytest.approx(0.25, abs=1e-12)
    assert moving["prob_motion_max"] == pytest.approx(0.3, abs=1e-12)
    assert moving["frozen"] is False
    baseline = table.loc[("random", "-")]
    assert baseline["n_alpha"] == 0 and baseline["frozen"] is None and np.isnan(baseline["prob_motion_max"])
    assert "no alpha history" in baseline["note"]


def test_threshold_is_a_parameter():
    table = alpha_motion_summary(_trials(), BY, threshold=0.3).set_index(list(BY))
    assert table.loc[("das", "-"), "frozen"] is True  # median 0.25 < 0.3


def test_frames_without_variant_are_one_row_and_per_trial_table():
    old = _trials().drop(columns="variant")
    table = alpha_motion_summary(old, BY)
    assert set(table["variant"]) == {"-"}
    assert table.set_index("method").loc["das", "n_alpha"] == 5  # pooled: they are one row there
    per_trial = alpha_motion(_trials(), BY)
    assert len(per_trial) == 7 and list(per_trial.columns[:2]) == list(BY)
    x = per_trial.set_index("trial_id").loc["x"]
    assert x["status"] == "failed" and x["prob_motion"] == pytest.approx(0.45, abs=1e-12)
