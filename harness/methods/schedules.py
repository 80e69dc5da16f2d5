"""Schedules: per-epoch learning-rate factors of [001] and annealing curves of later methods.

All functions return a float. ``progress`` is the fraction of the search done (clipped to
[0, 1]); ``start`` is the value at progress 0 and ``end`` the value at progress 1.

[001] factors. Definitions (the paper gives only the flags; see docs/open_choices.md):
* param warm-up: factor (e + 1) / W for epochs e < W, then 1.
* alpha warm-up: factor 0 (alpha frozen, no architecture step) for epochs e < W.
* linear alpha scheduler: from the first active epoch e0 to the last, the factor falls
  linearly from 1 to ``end_factor`` (reached one epoch after the last, like a linear decay to
  zero at the end of training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def param_lr_factor(epoch: int, warmup: bool, warmup_epochs: int) -> float:
    if warmup and warmup_epochs > 0 and epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    return 1.0


def alpha_frozen_epochs(epochs: int, warmup: bool, warmup_epochs: int) -> int:
    """Epochs at the start of a search without alpha steps (the alpha warm-up; at least the last
    epoch always updates alpha). A row with few epochs left after it hardly searches at all."""
    return min(warmup_epochs, epochs - 1) if warmup else 0


def alpha_lr_factor(
    epoch: int, epochs: int, warmup: bool, warmup_epochs: int, scheduler: str, end_factor: float = 0.0
) -> float:
    start = alpha_frozen_epochs(epochs, warmup, warmup_epochs)
    if epoch < start:
        return 0.0
    if scheduler == "linear":
        span = max(epochs - start, 1)
        return 1.0 - (1.0 - end_factor) * (epoch - start) / span
    return 1.0


def _clip01(progress: float) -> float:
    return min(max(float(progress), 0.0), 1.0)


def cosine(progress: float, start: float, end: float) -> float:
    """Cosine annealing ([004] Eq. 7, METHODS.md section 0): end + (start - end)(1 + cos(pi p)) / 2."""
    p = _clip01(progress)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * p))


def natural_exp_cosine(progress: float, start: float, end: float) -> float:
    """AllegroNAS' "natural exponential cosine" schedule ([004] Eq. 8, METHODS.md M44).

    The printed Eq. 8 has (l_max - l_min) inside the exponent, which with DARTS-sized
    rates keeps the value near l_min all along. We implement the consistent reading of M44:
    end + (start - end)(e^c - 1)/(e - 1) with c = (1 + cos(pi p))/2, which runs from start to
    end and sits below ``cosine`` throughout (0.784 vs 0.854 of the range at p = 0.25),
    the "faster early decay" the paper describes.
    """
    c = 0.5 * (1.0 + math.cos(math.pi * _clip01(progress)))
    return end + (start - end) * (math.exp(c) - 1.0) / (math.e - 1.0)


def linear_ramp(epoch: float, ramp_epochs: float, vmax: float, vmin: float = 0.0) -> float:
    """AllegroNAS' ramp of chi ([004] Eq. 6, M44): chi = (vmax - vmin) / H * epoch, clipped at vmax.

    As printed, vmin only sets the slope (it is not an offset). Eq. 6 does not say what
    happens after H; we clip at vmax so the mixed-level term never exceeds its stated
    maximum (with the paper's vmin = 0 the ramp reaches vmax at epoch H and stays there).
    """
    if ramp_epochs <= 0:
        return float(vmax)
    return min((vmax - vmin) / ramp_epochs * max(float(epoch), 0.0), float(vmax))


def linear_decay(progress: float, start: float, end: float) -> float:
    """Straight line from start to end, e.g. DARTS-'s auxiliary-skip beta from 1 to 0 (M23)."""
    p = _clip01(progress)
    return start + (end - start) * p


def exponential_decay(progress: float, start: float, end: float) -> float:
    """Geometric interpolation start * (end / start)^p (temperature annealing); start, end > 0."""
    if start <= 0 or end <= 0:
        raise ValueError(f"exponential_decay needs positive start and end, got {start} and {end}")
    return start * (end / start) ** _clip01(progress)


@dataclass
class ChiRamp:
    """AllegroNAS's chi ramp ([004] Eq. 6) as a schedule callable for mixed-level estimators."""

    ramp_epochs: int = 25
    chi_max: float = 0.1
    chi_min: float = 0.0

    def __call__(self, state) -> float:
        return linear_ramp(state.epoch, self.ramp_epochs, self.chi_max, self.chi_min)
