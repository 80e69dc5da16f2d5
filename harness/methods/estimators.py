"""Architecture-gradient estimators for the bi-level problem min_a L_val(w*(a), a).

* first order (DARTS-1st, inner step 0): grad_a L_val(w, a) at the current weights.
* second order (DARTS-2nd, [004] Eqs 2-3): one virtual SGD step w' = w - xi grad_w L_train,
  then grad_a L_val(w', a) - xi * H v with the Hessian-vector product H v approximated by
  finite differences [grad_a L_train(w+, a) - grad_a L_train(w-, a)] / (2 eps),
  w+- = w +- eps v, v = grad_w' L_val(w', a), eps = 0.01 / ||v||.
Both return only the alpha gradient (weights' .grad is left untouched).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LossFn = Callable[[torch.Tensor], torch.Tensor]  # alpha -> loss on a fixed batch


class FirstOrder:
    name = "first-order"

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float) -> torch.Tensor:
        loss = val_loss(alpha)
        (grad,) = torch.autograd.grad(loss, [alpha])
        return grad


class SecondOrder:
    name = "second-order"

    def __init__(self, fd_radius: float = 0.01) -> None:
        self.fd_radius = fd_radius

    def alpha_gradient(self, alpha, weights, train_loss: LossFn, val_loss: LossFn, xi: float) -> torch.Tensor:
        weights = [w for w in weights if w.requires_grad]
        backup = [w.detach().clone() for w in weights]
        try:
            grads = torch.autograd.grad(train_loss(alpha.detach()), weights, allow_unused=True)
            with torch.no_grad():
                for w, g in zip(weights, grads):
                    if g is not None:
                        w.sub_(xi * g)
            loss = val_loss(alpha)
            grads = torch.autograd.grad(loss, [alpha, *weights], allow_unused=True)
            d_alpha, v = grads[0], [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads[1:])]
            norm = torch.sqrt(sum((g**2).sum() for g in v))
            eps = self.fd_radius / (float(norm) + 1e-12)
            hessian_terms = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for w, b, g in zip(weights, backup, v):
                        w.copy_(b + sign * eps * g)
                (g_alpha,) = torch.autograd.grad(train_loss(alpha), [alpha])
                hessian_terms.append(g_alpha)
            hvp = (hessian_terms[0] - hessian_terms[1]) / (2 * eps)
            return d_alpha - xi * hvp
        finally:
            with torch.no_grad():
                for w, b in zip(weights, backup):
                    w.copy_(b)


def make_estimator(order: int):
    if order in (0, 1):
        return FirstOrder()
    if order == 2:
        return SecondOrder()
    raise ValueError(f"unroll order must be 1 (first order) or 2 (second order), got {order!r}")
