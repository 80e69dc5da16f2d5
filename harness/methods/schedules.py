"""Per-epoch learning-rate factors: warm-up and the 'Linear' alpha scheduler.

Definitions (the paper gives only the flags; see docs/open_choices.md):
* param warm-up: factor (e + 1) / W for epochs e < W, then 1.
* alpha warm-up: factor 0 (alpha frozen, no architecture step) for epochs e < W.
* linear alpha scheduler: from the first active epoch e0 to the last, the factor falls
  linearly from 1 to ``end_factor`` (reached one epoch after the last, like a linear decay to
  zero at the end of training).
"""

from __future__ import annotations


def param_lr_factor(epoch: int, warmup: bool, warmup_epochs: int) -> float:
    if warmup and warmup_epochs > 0 and epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    return 1.0


def alpha_lr_factor(
    epoch: int, epochs: int, warmup: bool, warmup_epochs: int, scheduler: str, end_factor: float = 0.0
) -> float:
    start = min(warmup_epochs, epochs - 1) if warmup else 0
    if epoch < start:
        return 0.0
    if scheduler == "linear":
        span = max(epochs - start, 1)
        return 1.0 - (1.0 - end_factor) * (epoch - start) / span
    return 1.0
