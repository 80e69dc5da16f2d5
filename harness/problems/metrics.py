"""PSNR, the score of every trial.

PSNR_i = 10 log10(peak_i^2 / MSE_i) per sample, averaged over samples ([001]: "average peak
signal to noise ratio"). The paper does not state the peak. Conventions offered:
'unit' (peak 1, our default: it puts the single-op baselines closest to [001] Table 1, see
docs/open_choices.md), 'range' (max - min of the true signal) and 'max' (max |x_i|).
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def sample_psnr(estimate: torch.Tensor, truth: torch.Tensor, peak: str = "unit") -> torch.Tensor:
    """PSNR of every sample: signals on the last axis, any leading axes (e.g. seed, batch) kept."""
    mse = ((estimate - truth) ** 2).mean(dim=-1)
    if peak == "range":
        peak_value = truth.amax(dim=-1) - truth.amin(dim=-1)
    elif peak == "max":
        peak_value = truth.abs().amax(dim=-1)
    elif peak == "unit":
        peak_value = torch.ones_like(mse)
    else:
        raise ValueError(f"unknown PSNR peak convention {peak!r}; use 'range', 'max' or 'unit'")
    return 10 * torch.log10(peak_value**2 / (mse + _EPS) + _EPS)


def psnr(estimate: torch.Tensor, truth: torch.Tensor, peak: str = "unit") -> torch.Tensor:
    """Mean over samples of per-sample PSNR; inputs (B, N) or (B, 1, N)."""
    estimate = estimate.reshape(truth.shape[0], -1)
    truth = truth.reshape(truth.shape[0], -1)
    return sample_psnr(estimate, truth, peak).mean()
