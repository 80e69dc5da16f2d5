"""Seeded, disjoint index splits (the DARTS search protocol and the proxy study's three-way split).

DARTS ([003] §IV-B2; METHODS.md §3.4) splits the training set half/half during search: one half
trains the weights w, the other is the validation set for the architecture parameters α. The CPU
proxy study splits the MNIST test set into disjoint search, retraining and test parts. Both are
a random permutation from a seeded ``torch.Generator`` cut into consecutive pieces, so the same
seed always gives the same split and the parts never overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _generator(generator: torch.Generator | int) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise TypeError(f"generator must be a torch.Generator or an int seed, got {type(generator).__name__}")


def _sizes(n: int, parts: Sequence[int] | Sequence[float]) -> list[int]:
    """Part sizes from counts, or from fractions (which, if they sum to 1, cover all ``n`` rows)."""
    if not parts:
        raise ValueError("give at least one part size or fraction")
    if any(isinstance(p, bool) or not isinstance(p, int | float) for p in parts):
        raise TypeError(f"parts must be ints (sizes) or floats (fractions), got {list(parts)!r}")
    if all(isinstance(p, int) for p in parts):
        sizes = [int(p) for p in parts]
        if any(s < 0 for s in sizes) or sum(sizes) > n:
            raise ValueError(f"sizes {sizes} must be non-negative and sum to at most n={n}")
        return sizes
    if not all(isinstance(p, float) for p in parts):
        raise TypeError(f"do not mix sizes (int) and fractions (float): {list(parts)!r}")
    fractions = [float(p) for p in parts]
    total = math.fsum(fractions)
    if any(not 0.0 <= f <= 1.0 for f in fractions) or total > 1.0 + 1e-9:
        raise ValueError(f"fractions {fractions} must lie in [0, 1] and sum to at most 1")
    exact = [f * n for f in fractions]
    sizes = [math.floor(x) for x in exact]
    if abs(total - 1.0) <= 1e-9:  # hand the rounding remainder to the largest fractional parts
        order = sorted(range(len(sizes)), key=lambda i: (sizes[i] - exact[i], i))
        for i in order[: n - sum(sizes)]:
            sizes[i] += 1
    return sizes


def split_indices(
    n: int, parts: Sequence[int] | Sequence[float], generator: torch.Generator | int
) -> list[torch.Tensor]:
    """Disjoint random index tensors (int64) of ``range(n)``, one per entry of ``parts``.

    ``parts`` holds either sizes (``[20000, 10000, 10000]``) or fractions (``[0.5, 0.5]``); fractions
    summing to 1 use every index (the remainder of the rounding goes to the largest remainders).
    ``generator`` is a seeded ``torch.Generator`` (consumed) or an int seed.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    sizes = _sizes(n, parts)
    order = torch.randperm(n, generator=_generator(generator))
    return list(torch.split(order[: sum(sizes)], sizes))


def search_split(
    n: int, generator: torch.Generator | int, train_fraction: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS search split of ``n`` training rows: (indices training w, indices validating α), half/half by default."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    train, valid = split_indices(n, [train_fraction, 1.0 - train_fraction], generator)
    return train, valid
