import math

import pytest
import torch

from harness.methods import HP_SETS, METHODS, make_method, resolve_hp_set
from harness.methods.context import Streams
from harness.methods.estimators import FirstOrder, SecondOrder, make_estimator
from harness.methods.hyperparams import HyperParams, load_tuned
from harness.methods.schedules import alpha_lr_factor, param_lr_factor


def test_paper_hyperparameter_sets():
    h1, h2 = HP_SETS.get("H1"), HP_SETS.get("H2")
    assert (h1.param_lr, h1.alpha_lr, h1.alpha_weight_decay, h1.alpha_optimizer) == (0.001, 0.001, 0.001, "sgd")
    assert (h2.alpha_lr, h2.alpha_weight_decay, h2.alpha_scheduler, h2.alpha_warmup) == (1e-4, 1e-4, "linear", True)
    b = HP_SETS.get("BOHB-one-shot-Blur")
    assert (b.alpha_lr, b.alpha_optimizer, b.alpha_warmup) == (0.0836808765, "adam", False)
    assert HP_SETS.get("BOHB-one-shot-DS").param_warmup is True
    assert HP_SETS.get("BOHB-Non-Seq-Blur").alpha_scheduler == "none"
    darts = HP_SETS.get("DARTS-CIFAR")  # [003] IV-B2 (+ our documented lr / clipping choices)
    assert (darts.alpha_optimizer, darts.alpha_lr, darts.alpha_weight_decay) == ("adam", 3e-4, 1e-3)
    assert (darts.param_optimizer, darts.param_momentum, darts.param_weight_decay) == ("sgd", 0.9, 3e-4)
    assert len(HP_SETS) == 9


def test_hyperparameter_overrides_and_validation(tmp_path):
    hp = resolve_hp_set("H1", {"alpha_optimizer": "Adam", "alpha_scheduler": None, "param_lr": "0.01"})
    assert (hp.alpha_optimizer, hp.alpha_scheduler, hp.param_lr) == ("adam", "none", 0.01)
    assert resolve_hp_set("h1", {"alpha_optimizer": "Gradient Descent"}).alpha_optimizer == "sgd"
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        HyperParams().replace(lr=1)
    with pytest.raises(ValueError, match="alpha_optimizer"):
        HyperParams(alpha_optimizer="rmsprop")
    (tmp_path / "best_hyperparameters.json").write_text('{"hyperparameters": {"param_lr": 0.02}}')
    assert load_tuned(str(tmp_path)).param_lr == 0.02
    assert resolve_hp_set(f"tuned:{tmp_path}").param_lr == 0.02
    with pytest.raises(FileNotFoundError, match="harness.tune"):
        resolve_hp_set(f"tuned:{tmp_path}/nothing")


def test_schedules():
    assert [param_lr_factor(e, True, 4) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert param_lr_factor(0, False, 4) == 1.0
    # alpha warm-up freezes alpha for the warm-up epochs, then the linear decay starts at 1
    f = [alpha_lr_factor(e, 10, True, 5, "linear") for e in range(10)]
    assert f[:5] == [0.0] * 5 and f[5] == 1.0
    assert all(a > b for a, b in zip(f[5:], f[6:])) and math.isclose(f[9], 0.2)
    assert [alpha_lr_factor(e, 4, False, 5, "none") for e in range(4)] == [1.0] * 4
    # warm-up longer than the run still leaves the last epoch active
    assert alpha_lr_factor(1, 2, True, 5, "none") == 1.0


def test_streams_are_independent_and_reproducible():
    a, b = Streams(7), Streams(7)
    assert torch.equal(torch.rand(3, generator=a.generator("data")), torch.rand(3, generator=b.generator("data")))
    assert a.seed("data") != a.seed("init")
    assert Streams(8).seed("data") != a.seed("data")
    assert a.child(0).seed("arch") == b.child(0).seed("arch") != a.child(1).seed("arch")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    with a.seeded_init():
        torch.rand(5)
    assert torch.equal(torch.rand(1), before)  # the caller's global RNG is untouched


_A = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
_B = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))


def _train(w, a):
    return ((w - _A @ torch.tanh(a)) ** 2).sum() + 0.1 * (w**4).sum()


def _val(w, a):
    return ((w - _B @ torch.sin(a)) ** 2).sum() + (w[0] * a[1]) ** 2


def _quadratic_problem():
    """A tiny bi-level problem: live weights w, closures L(a) that read w, as the search uses them."""
    w = torch.randn(5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    alpha = torch.randn(3, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    return w, alpha, (lambda a: _train(w, a)), (lambda a: _val(w, a))


def test_second_order_matches_autograd_through_one_unrolled_step():
    w, alpha, train_loss, val_loss = _quadratic_problem()
    xi = 0.05
    w0 = w.detach().clone()

    def unrolled_val(a):
        return _val(w0 - xi * torch.func.grad(_train)(w0, a), a)

    exact = torch.func.grad(unrolled_val)(alpha.detach())
    est = SecondOrder().alpha_gradient(alpha, [w], train_loss, val_loss, xi)
    torch.testing.assert_close(est, exact, rtol=2e-3, atol=2e-4)
    torch.testing.assert_close(w.detach(), w0)  # the weights are restored afterwards
    # and the second-order term matters here: first order differs
    assert not torch.allclose(FirstOrder().alpha_gradient(alpha, [w], train_loss, val_loss, xi), exact, atol=1e-3)


def test_first_order_is_plain_validation_gradient():
    w, alpha, train_loss, val_loss = _quadratic_problem()
    est = FirstOrder().alpha_gradient(alpha, [w], train_loss, val_loss, 0.1)
    torch.testing.assert_close(est, torch.autograd.grad(val_loss(alpha), alpha)[0])
    assert isinstance(make_estimator(1), FirstOrder) and isinstance(make_estimator(2), SecondOrder)
    with pytest.raises(ValueError):
        make_estimator(3)


def test_method_registry_and_options():
    assert {"das", "das-2nd", "lg-only", "nets-only", "random", "random-search"} <= set(METHODS.names())
    assert make_method("random-search", {"k": 3}).k == 3
    with pytest.raises(ValueError, match="no option"):
        make_method("das", {"kk": 3})
    with pytest.raises(KeyError, match="Known methods"):
        make_method("darts-99")
