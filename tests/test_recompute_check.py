"""The two levels of ``recompute_check``: exact on the CPU that stored a record, close elsewhere."""

from __future__ import annotations

import json

import pytest
from recompute_check import CROSS_CPU_SCORE_DB, assert_recomputes, stored_on_this_cpu

from harness.runner.spec import TrialSpec
from harness.runner.trial import run_trial

FAST = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 2}, "space": {"n_layers": 3}}


@pytest.fixture(scope="module")
def trial():
    spec = TrialSpec.make(dataset="blur", space="sequential", op_set="all", method="das", hp_set="H1", seed=0,
                          epochs=1, options=FAST)
    result = run_trial(spec, "cpu")
    return result, json.loads(json.dumps(result.to_record()))


def test_a_record_of_this_cpu_must_recompute_bit_for_bit(trial):
    result, record = trial
    assert stored_on_this_cpu(record)
    assert_recomputes(result, record)
    record["arch_score"] += 1e-9  # one rounding step away fails on the same CPU
    with pytest.raises(AssertionError):
        assert_recomputes(result, record)


def test_a_record_of_another_cpu_recomputes_within_the_cross_cpu_rounding(trial):
    result, record = trial
    for old in (dict(record, provenance={**record["provenance"], "cpu": None}),  # before CPUs were recorded
                dict(record, provenance={**record["provenance"], "cpu_capability": "AVX2"})):
        assert not stored_on_this_cpu(old)
        assert_recomputes(result, dict(old, arch_score=old["arch_score"] + 0.5 * CROSS_CPU_SCORE_DB))
        with pytest.raises(AssertionError):
            assert_recomputes(result, dict(old, arch_score=old["arch_score"] + 2 * CROSS_CPU_SCORE_DB))
        with pytest.raises(AssertionError):
            assert_recomputes(result, dict(old, genotype=[*old["genotype"], "lgd"]))  # another architecture
