"""Multi-objective combiners: several alpha gradients -> one update direction (E2RNAS, M43).

* ``WeightedSum``: fixed convex weights Gamma; equal weights are E2RNAS's ablation without
  MGDA, Gamma = (0.2, ..., 0.2) for its five objectives.
* ``MGDA``: the min-norm point of the convex hull of the gradients (M43 Eq. 1),
  min_gamma ||sum_i gamma_i g_i||^2 s.t. gamma >= 0, sum_i gamma_i = 1, solved by Frank-Wolfe
  with exact line search. Its result is a common descent direction of all objectives (or 0 at a
  Pareto-stationary point), which is why E2RNAS uses it instead of a hand-weighted sum.

Both return ``(combined, gammas)`` with ``combined = sum_i gammas[i] * grads[i]`` in the shape,
dtype and device of ``grads[0]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _stack(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    if len(grads) == 0:
        raise ValueError("combine() needs at least one gradient")
    shape = grads[0].shape
    for g in grads:
        if g.shape != shape:
            raise ValueError(f"all gradients must have the same shape, got {tuple(g.shape)} and {tuple(shape)}")
    return torch.stack([g.detach().reshape(-1) for g in grads])


def _mix(grads: Sequence[torch.Tensor], gammas: Sequence[float]) -> torch.Tensor:
    flat = _stack(grads)
    w = torch.tensor(list(gammas), dtype=flat.dtype, device=flat.device)
    return (w @ flat).reshape(grads[0].shape)


class WeightedSum:
    """combined = sum_i w_i g_i with fixed weights (default equal: E2RNAS's no-MGDA ablation, M43)."""

    name = "weighted-sum"

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        self.weights = None if weights is None else [float(w) for w in weights]

    def combine(self, grads: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[float]]:
        n = len(grads)
        if self.weights is None:
            gammas = [1.0 / n] * n
        elif len(self.weights) != n:
            raise ValueError(f"WeightedSum has {len(self.weights)} weights but got {n} gradients")
        else:
            gammas = list(self.weights)
        return _mix(grads, gammas), gammas


def min_norm_weights(gram: torch.Tensor, max_iter: int = 1000, tol: float = 1e-10) -> torch.Tensor:
    """Frank-Wolfe with away steps on min_gamma gamma^T G gamma over the simplex (G = Gram matrix).

    Starts from the best pair (two-point solutions). The Frank-Wolfe step towards vertex
    t = argmin_i (G gamma)_i uses the exact line search, which for the segment between
    v = sum gamma_i g_i and g_t is the two-point MGDA solution
    s = clip(((v - g_t).v) / ||v - g_t||^2, 0, 1). Away steps (Lacoste-Julien & Jaggi 2015) move
    weight off the worst active vertex, and a corrective step (``_affine_polish``) jumps to the
    exact optimum once the optimal face is found; plain Frank-Wolfe only converges as O(1/k).
    Stops when the Frank-Wolfe duality gap gamma^T G gamma - min_i (G gamma)_i is below
    ``tol * max_i G_ii``.
    """
    n = gram.shape[0]
    gram = 0.5 * (gram + gram.T)
    scale = float(gram.diagonal().max().clamp_min(0.0))
    if n == 1 or scale == 0.0:
        return torch.full((n,), 1.0 / n, dtype=gram.dtype, device=gram.device)
    gamma = _best_pair(gram)
    for _ in range(max_iter):
        mg = gram @ gamma
        value = float(gamma @ mg)
        t = int(torch.argmin(mg))
        fw_gap = value - float(mg[t])
        if fw_gap <= tol * scale:
            break
        active = gamma > 0
        masked = torch.where(active, mg, torch.full_like(mg, -float("inf")))
        a = int(torch.argmax(masked))
        away_gap = float(mg[a]) - value
        direction = -gamma.clone()
        if fw_gap >= away_gap:
            direction[t] += 1.0
            step_max = 1.0
        else:
            direction = gamma.clone()
            direction[a] -= 1.0
            step_max = float(gamma[a] / (1.0 - gamma[a])) if float(gamma[a]) < 1.0 else float("inf")
        curvature = float(direction @ gram @ direction)
        slope = float(direction @ mg)  # half the directional derivative of gamma^T G gamma
        step = step_max if curvature <= 0.0 else min(max(-slope / curvature, 0.0), step_max)
        if step == 0.0:
            break
        gamma = (gamma + step * direction).clamp_min(0.0)
        gamma = gamma / gamma.sum()
        gamma = _affine_polish(gram, gamma)
    return gamma


def _best_pair(gram: torch.Tensor) -> torch.Tensor:
    """Start point: the best two-point solution over all pairs (as the MGDA-UB solver of Sener & Koltun)."""
    n = gram.shape[0]
    best, best_value = None, float("inf")
    for i in range(n):
        for j in range(i + 1, n):
            gii, gjj, gij = float(gram[i, i]), float(gram[j, j]), float(gram[i, j])
            denom = gii + gjj - 2.0 * gij  # ||g_i - g_j||^2
            s = 0.5 if denom <= 0.0 else min(max((gjj - gij) / denom, 0.0), 1.0)  # weight on g_i
            value = s * s * gii + 2.0 * s * (1.0 - s) * gij + (1.0 - s) ** 2 * gjj
            if value < best_value:
                best, best_value = (i, j, s), value
    i, j, s = best
    gamma = torch.zeros(n, dtype=gram.dtype, device=gram.device)
    gamma[i], gamma[j] = s, 1.0 - s
    return gamma


def _affine_polish(gram: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Fully-corrective step: the exact min-norm point of the affine hull of the active vertices.

    Kept only if it is a convex combination (all weights >= 0) and not worse, i.e. once the
    Frank-Wolfe iterates have found the optimal face this lands exactly on the optimum instead
    of approaching it at Frank-Wolfe's rate (as in Wolfe's 1976 min-norm-point algorithm).
    """
    support = torch.nonzero(gamma > 0).reshape(-1)
    m = support.numel()
    if m < 2:
        return gamma
    kkt = torch.zeros(m + 1, m + 1, dtype=gram.dtype, device=gram.device)
    kkt[:m, :m] = gram[support][:, support]
    kkt[:m, m] = 1.0
    kkt[m, :m] = 1.0
    rhs = torch.zeros(m + 1, dtype=gram.dtype, device=gram.device)
    rhs[m] = 1.0
    mu = torch.linalg.lstsq(kkt, rhs[:, None]).solution[:m, 0]
    if not bool(torch.isfinite(mu).all()) or float(mu.min()) < 0.0 or abs(float(mu.sum()) - 1.0) > 1e-9:
        return gamma
    candidate = torch.zeros_like(gamma)
    candidate[support] = mu
    return candidate if float(candidate @ gram @ candidate) <= float(gamma @ gram @ gamma) else gamma


class MGDA:
    """Min-norm convex combination of the objectives' gradients (E2RNAS M43 Eq. 1, Frank-Wolfe).

    ``max_iter`` / ``tol``: M43 does not state the Frank-Wolfe budget; our choice. The loop stops
    at a relative duality gap ``tol`` = 1e-10 (the combined direction is then within ~1e-5 of the
    exact min-norm point, usually exact thanks to the corrective step); ``max_iter`` = 1000 (the
    MGDA-UB solver of Sener & Koltun uses 250) leaves room for degenerate hulls, e.g. more
    gradients than alpha entries, where Frank-Wolfe is slow. Each iteration costs O(n^2).
    """

    name = "mgda"

    def __init__(self, max_iter: int = 1000, tol: float = 1e-10) -> None:
        self.max_iter = int(max_iter)
        self.tol = float(tol)

    def combine(self, grads: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[float]]:
        flat = _stack(grads).double()
        # the solver works on the tiny (n, n) Gram matrix, on the CPU (no per-iteration device syncs)
        gamma = min_norm_weights((flat @ flat.T).cpu(), self.max_iter, self.tol)
        gammas = [float(x) for x in gamma]
        return _mix(grads, gammas), gammas
