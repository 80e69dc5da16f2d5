"""Curvature of the validation loss w.r.t. alpha (RobustDARTS / DARTS-ES, M25).

RobustDARTS links DARTS' collapse to sharp minima in alpha: the dominant eigenvalue of
nabla^2_alpha L_val grows before the found architectures degrade, so it is tracked per epoch.
alpha has P x K entries (40 in the [001] sequential space), so the dense Hessian is cheap
(one double-backward pass per entry); power iteration on Hessian-vector products is the
matrix-free alternative for larger alpha.

"Dominant" follows RobustDARTS, which tracks lambda_max, the *largest* (algebraic) eigenvalue
(which = "largest", the default); which = "magnitude" gives the eigenvalue of largest |lambda|.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

LossFn = Callable[[torch.Tensor], torch.Tensor]  # alpha -> scalar loss, differentiable in alpha


def _gradient(loss_fn: LossFn, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaf copy of alpha, flattened gradient with a graph for double backward)."""
    a = alpha.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(a), [a], create_graph=True)
    return a, grad.reshape(-1)


def _grad_or_zero(output: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    if not output.requires_grad:  # the gradient is constant in alpha (e.g. a linear loss)
        return torch.zeros(a.numel(), dtype=a.dtype, device=a.device)
    (g,) = torch.autograd.grad(output, [a], retain_graph=True, allow_unused=True)
    return torch.zeros(a.numel(), dtype=a.dtype, device=a.device) if g is None else g.reshape(-1)


def alpha_hessian(loss_fn: LossFn, alpha: torch.Tensor) -> torch.Tensor:
    """Dense Hessian (n, n), n = alpha.numel(), of loss_fn at alpha (alpha flattened row-major).

    Row i is d(grad_i)/d alpha by a second backward pass (all rows batched with vmap when the
    graph allows it, else row by row). ``alpha`` itself is not modified and
    no ``.grad`` is accumulated anywhere (``torch.autograd.grad`` only).
    """
    a, grad = _gradient(loss_fn, alpha)
    n = grad.numel()
    if not grad.requires_grad:
        return torch.zeros(n, n, dtype=a.dtype, device=a.device)
    try:  # all rows in one vmapped double-backward pass (about 1.5x faster on the 1D supernets)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            eye = torch.eye(n, dtype=grad.dtype, device=grad.device)
            (h,) = torch.autograd.grad(grad, [a], grad_outputs=eye, retain_graph=True, is_grads_batched=True)
        return h.reshape(n, n)
    except RuntimeError:  # an op without a batching rule: one row per pass
        return torch.stack([_grad_or_zero(grad[i], a) for i in range(n)])


def hessian_vector_product(loss_fn: LossFn, alpha: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v (n,) -> H v by double backward, reusing one first-order graph for all products."""
    a, grad = _gradient(loss_fn, alpha)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return _grad_or_zero(grad @ v, a)

    return hvp


def _power_iteration(matvec, v: torch.Tensor, iterations: int, tol: float) -> float:
    """Rayleigh quotient of the largest-magnitude eigenvector after power iteration."""
    v = v / v.norm()
    value = 0.0
    for _ in range(iterations):
        w = matvec(v)
        new = float(v @ w)
        norm = w.norm()
        if float(norm) == 0.0:
            return 0.0
        v = w / norm
        if abs(new - value) <= tol * max(abs(new), 1e-30):
            return new
        value = new
    return value


def dominant_eigenvalue(
    loss_fn: LossFn,
    alpha: torch.Tensor,
    method: str = "dense",
    iterations: int = 100,
    generator: torch.Generator | None = None,
    which: str = "largest",
    tol: float = 1e-6,
    dense_max: int = 64,
) -> float:
    """Dominant eigenvalue of nabla^2_alpha loss_fn at alpha (M25).

    method="dense": eigvalsh of the (symmetrised) dense Hessian, exact.
    method="power": power iteration on Hessian-vector products from a random start drawn from
    ``generator`` (a fixed-seed CPU generator when None; global RNG untouched), stopping when the
    Rayleigh quotient changes by less than ``tol`` (relative) or after ``iterations`` products.
    Power iteration finds the largest-|lambda| eigenvalue; for which="largest", if that one is
    negative, a second run on H - lambda I (positive semi-definite then) recovers lambda_max.
    method="auto": dense up to ``dense_max`` alpha entries (the 40 of the sequential space, as M25's
    CPU note suggests), power iteration above (the dense 150 x 150 Hessian of the non-sequential
    supernet costs ~150 double-backward passes, several seconds on one CPU thread).
    ``iterations`` = 100 and ``tol`` = 1e-6 are our choice (M25 does not state them); convergence
    depends on the gap between the two largest |lambda|, so power results are approximate.
    """
    if which not in ("largest", "magnitude"):
        raise ValueError(f"which must be 'largest' or 'magnitude', got {which!r}")
    if method == "auto":
        method = "dense" if alpha.numel() <= dense_max else "power"
    if method == "dense":
        h = alpha_hessian(loss_fn, alpha)
        eig = torch.linalg.eigvalsh(0.5 * (h + h.T))
        return float(eig[-1]) if which == "largest" else float(eig[eig.abs().argmax()])
    if method != "power":
        raise ValueError(f"method must be 'dense', 'power' or 'auto', got {method!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    hvp = hessian_vector_product(loss_fn, alpha)
    n = alpha.numel()

    def start() -> torch.Tensor:
        return torch.randn(n, generator=generator, dtype=alpha.dtype).to(alpha.device)

    top = _power_iteration(hvp, start(), iterations, tol)
    if which == "magnitude" or top >= 0.0:
        return top
    shift = top  # every eigenvalue of H - shift I is >= 0: power iteration now finds lambda_max - shift
    return shift + _power_iteration(lambda v: hvp(v) - shift * v, start(), iterations, tol)


HESSIAN_FD_STEP = 1e-2


def trial_difference_hvp(loss_fn: LossFn, alpha: torch.Tensor, step: float = HESSIAN_FD_STEP
                         ) -> Callable[[torch.Tensor], torch.Tensor]:
    """v (K, n) -> every trial's H v from central differences of exact gradients,
    (g(a + h v) - g(a - h v)) / 2h: two first-order passes for the whole batch. ``loss_fn`` sums K
    independent trials' losses of ``alpha`` (K, ...), so its gradient is every trial's own. Double
    backward through the fused CNN goes through its reference ops and costs ~25x a first-order
    pass (docs/engine.md). The truncation error is O(h^2 |v|^2), h = 1e-2: within 1e-2 relative of
    the exact product (tests/test_hessian.py; on the non-sequential supernet, eigenvalues within
    9e-3: benchmarks/hessian_probe.py)."""
    k = alpha.shape[0]
    base = alpha.detach()

    def gradient(a: torch.Tensor) -> torch.Tensor:
        a = a.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(a), [a], allow_unused=True)
        return torch.zeros(k, a[0].numel(), dtype=a.dtype, device=a.device) if g is None else g.reshape(k, -1)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        e = (step * v).reshape(base.shape).to(base.dtype)
        return (gradient(base + e) - gradient(base - e)) / (2 * step)

    return hvp


def trial_exact_hvp(loss_fn: LossFn, alpha: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v (K, n) -> every trial's exact H v by double backward through one first-order graph of the
    summed loss (each trial's block: the trials' losses are independent)."""
    k = alpha.shape[0]
    a = alpha.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(a), [a], create_graph=True)
    grad = grad.reshape(k, -1)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if not grad.requires_grad:
            return torch.zeros_like(v)
        (g,) = torch.autograd.grad((grad * v).sum(), [a], retain_graph=True, allow_unused=True)
        return torch.zeros_like(v) if g is None else g.reshape(k, -1)

    return hvp


HESSIAN_PRODUCTS = {"difference": trial_difference_hvp, "exact": trial_exact_hvp}


def trial_hvp(loss_fn: LossFn, alpha: torch.Tensor, products: str = "difference"
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The K-trial Hessian-vector product of kind ``products`` ("difference" or "exact")."""
    if products not in HESSIAN_PRODUCTS:
        raise ValueError(f"products must be one of {sorted(HESSIAN_PRODUCTS)}, got {products!r}")
    return HESSIAN_PRODUCTS[products](loss_fn, alpha)


def trial_hessians(loss_fn: LossFn, alpha: torch.Tensor, products: str = "difference") -> torch.Tensor:
    """Dense Hessians (K, n, n) of K trials at once: column j of every trial's Hessian is its product
    with the basis vector e_j, n products for the whole batch. By differences (2n first-order passes)
    on the 1D spaces, where double backward with the basis vectors batched costs ~8x more through
    the fused CNN."""
    k, n = alpha.shape[0], alpha[0].numel()
    hvp = trial_hvp(loss_fn, alpha, products)
    eye = torch.eye(n, dtype=alpha.dtype, device=alpha.device)
    return torch.stack([hvp(eye[j].expand(k, n)) for j in range(n)], dim=2).double()


def dominant_eigenvalues(loss_fn: LossFn, alpha: torch.Tensor, method: str = "auto", iterations: int = 100,
                         generator: torch.Generator | list[torch.Generator] | None = None, tol: float = 1e-6,
                         dense_max: int = 64, products: str = "difference") -> list[float]:
    """``dominant_eigenvalue`` (which = "largest") of each of K trials at once, ``alpha`` (K, ...):
    dense Hessians, or power iteration from one start vector for all (``generator``) or, given K
    generators, each trial's from its own, every trial stopping at its own iteration, as alone.
    ``products``: Hessian-vector products by central differences of exact gradients
    (``trial_difference_hvp``) or by double backward (``trial_exact_hvp``)."""
    k, n = alpha.shape[0], alpha[0].numel()
    if method == "auto":
        method = "dense" if n <= dense_max else "power"
    if method == "dense":
        h = trial_hessians(loss_fn, alpha, products)
        eig = torch.linalg.eigvalsh(0.5 * (h + h.transpose(1, 2)))
        return [float(e[-1]) for e in eig]
    if method != "power":
        raise ValueError(f"method must be 'dense', 'power' or 'auto', got {method!r}")
    hvp = trial_hvp(loss_fn, alpha, products)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def start(trials: list[int]) -> torch.Tensor:  # (n,) shared, or (K, n): the listed trials' own
        if isinstance(generator, torch.Generator):
            return torch.randn(n, generator=generator, dtype=alpha.dtype).to(alpha.device)
        return torch.stack([torch.randn(n, generator=g, dtype=alpha.dtype) if t in trials
                            else torch.ones(n, dtype=alpha.dtype) for t, g in enumerate(generator)]).to(alpha.device)

    top = _trial_power_iteration(hvp, start(list(range(k))), k, iterations, tol)
    negative = [t for t in range(k) if top[t] < 0.0]
    if negative:  # as dominant_eigenvalue: lambda_max of H - shift I, from a second start vector
        shift = torch.tensor(top, dtype=alpha.dtype, device=alpha.device).unsqueeze(1)
        second = start(negative)
        again = _trial_power_iteration(lambda v: hvp(v) - shift * v, second, k, iterations, tol)
        top = [top[t] + again[t] if t in negative else top[t] for t in range(k)]
    return top


def _trial_power_iteration(matvec, v0: torch.Tensor, k: int, iterations: int, tol: float) -> list[float]:
    """``_power_iteration`` for K trials from the same start (n,) or their own (K, n): each keeps
    the value at which it alone stops."""
    v = (v0 / v0.norm()).expand(k, -1).clone() if v0.dim() == 1 else v0 / v0.norm(dim=1, keepdim=True)
    value = [0.0] * k
    done = [False] * k
    for _ in range(iterations):
        w = matvec(v)
        new = (v * w).sum(1).tolist()
        norms = w.norm(dim=1)
        for t in range(k):
            if done[t]:
                continue
            if float(norms[t]) == 0.0:
                value[t], done[t] = 0.0, True
            elif abs(new[t] - value[t]) <= tol * max(abs(new[t]), 1e-30):
                value[t], done[t] = new[t], True
            else:
                value[t] = new[t]
        if all(done):
            break
        v = torch.where(norms.unsqueeze(1) > 0, w / norms.clamp_min(1e-30).unsqueeze(1), v)
    return value
