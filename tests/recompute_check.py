"""Recomputing a stored trial: bit for bit on the CPU that stored it, else within the float rounding
that separates CPUs.

Why two levels: torch's and MKL's kernels use the CPU's vector instructions, so the same code and
seed round differently on another CPU model, and a retraining carries that into the score. Measured
2026-12-01, trials stored on the CPU of 2026-11-30 recomputed on an AVX-512 Xeon: the same genotypes,
alphas within 1.4e-8, architecture PSNR 0.032 dB (5-epoch DAS), 0.034 dB (5-epoch E2RNAS) and
0.0075 dB (50-epoch Random) apart. A refactor that changes a draw or an order of operations moves
these by far more (a different genotype, or dB). Records name their CPU since 2026-12-01
(``provenance.cpu``, ``provenance.cpu_capability``); older ones count as another CPU.
"""

from __future__ import annotations

import pytest
import torch

from harness.runner.provenance import process_facts, record_provenance

CROSS_CPU_SCORE_DB = 0.1
CROSS_CPU_ALPHA_ATOL = 1e-6


def stored_on_this_cpu(record: dict) -> bool:
    prov, here = record_provenance(record), process_facts()
    return bool(prov.get("cpu")) and all(prov.get(key) == here[key] for key in ("cpu", "cpu_capability"))


def assert_recomputes(fresh, stored: dict) -> None:
    """``fresh`` (a TrialResult) recomputes ``stored`` (its record)."""
    assert fresh.genotype == stored["genotype"]
    alphas = stored.get("final_alphas")
    if stored_on_this_cpu(stored):
        assert fresh.arch_score == stored["arch_score"]
        if alphas is not None:
            assert torch.equal(torch.tensor(fresh.final_alphas), torch.tensor(alphas))
        return
    assert fresh.arch_score == pytest.approx(stored["arch_score"], abs=CROSS_CPU_SCORE_DB)
    if alphas is not None:
        torch.testing.assert_close(torch.tensor(fresh.final_alphas), torch.tensor(alphas), rtol=0,
                                   atol=CROSS_CPU_ALPHA_ATOL)
