"""The batched 2-layer CNN op: reference vs the per-seed nn loop, compiled kernel vs reference, determinism."""

from __future__ import annotations

import pytest
import torch

from harness.spaces.kernels import fused_cnn
from harness.spaces.ops import OpConfig, TwoLayerCNN

PARAMS = ("w1", "b1", "gamma", "beta", "w2", "b2")


def _nets(K: int, C: int, ks: int, dtype=torch.float64, seed: int = 0) -> list[TwoLayerCNN]:
    """K loop modules with non-default BN affine parameters and running stats."""
    torch.manual_seed(seed)
    nets = []
    for _ in range(K):
        net = TwoLayerCNN(OpConfig(channels=C, kernel_size=ks)).to(dtype)
        with torch.no_grad():
            net.bn.weight.uniform_(0.5, 1.5)
            net.bn.bias.normal_()
            net.bn.running_mean.normal_()
            net.bn.running_var.uniform_(0.5, 2.0)
        nets.append(net)
    return nets


def _stacked(nets: list[TwoLayerCNN]) -> dict[str, torch.Tensor]:
    K, C, ks = len(nets), nets[0].conv1.out_channels, nets[0].conv1.kernel_size[0]

    def st(get, shape):
        return torch.stack([get(n).detach().clone() for n in nets]).reshape(shape)

    return {
        "w1": st(lambda n: n.conv1.weight, (K, C, ks)), "b1": st(lambda n: n.conv1.bias, (K, C)),
        "gamma": st(lambda n: n.bn.weight, (K, C)), "beta": st(lambda n: n.bn.bias, (K, C)),
        "w2": st(lambda n: n.conv2.weight, (K, C, ks)), "b2": st(lambda n: n.conv2.bias, (K,)),
        "running_mean": st(lambda n: n.bn.running_mean, (K, C)), "running_var": st(lambda n: n.bn.running_var, (K, C)),
    }


def _problem(K=3, B=37, N=23, C=5, ks=3, dtype=torch.float64, seed=0):
    nets = _nets(K, C, ks, dtype, seed)
    g = torch.Generator().manual_seed(seed + 1)
    u = (torch.randn(K, B, N, generator=g) + 0.3).to(dtype)
    grad_out = torch.randn(K, B, N, generator=g).to(dtype)
    return nets, _stacked(nets), u, grad_out


def _run(fn, p, u, grad_out, training, **kw):
    """Forward + backward of a batched implementation: (out, mean, var, grads dict)."""
    leaves = {name: p[name].clone().requires_grad_() for name in PARAMS}
    x = u.clone().requires_grad_()
    out, mean, var = fn(x, *(leaves[n] for n in PARAMS), training=training, running_mean=p["running_mean"],
                        running_var=p["running_var"], **kw)
    out.backward(grad_out)
    grads = {"u": x.grad, **{n: leaves[n].grad for n in PARAMS}}
    return out.detach(), mean, var, grads


def _close(a: torch.Tensor, b: torch.Tensor, rel: float, scale: float | None = None) -> None:
    """max |a - b| <= rel * (scale or max |b|)."""
    ref = scale if scale is not None else float(b.abs().max())
    err = float((a - b).abs().max())
    assert err <= rel * max(ref, 1e-30), f"max abs err {err:.3g} > {rel:g} * {ref:.3g}"


# ---------------------------------------------------------------- reference vs the per-seed loop


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("ks", [3, 5])
def test_reference_matches_loop(training, ks):
    nets, p, u, grad_out = _problem(ks=ks)
    out, mean, var, grads = _run(fused_cnn.reference_two_layer_cnn, p, u, grad_out, training)
    momentum = 0.1
    for k, net in enumerate(nets):
        net.train(training)
        x = u[k].clone().unsqueeze(1).requires_grad_()
        y = net(x)
        y.backward(grad_out[k].unsqueeze(1))
        _close(out[k], y.detach().squeeze(1), 1e-10)
        loop_grads = {"u": x.grad.squeeze(1), "w1": net.conv1.weight.grad.squeeze(1), "b1": net.conv1.bias.grad,
                      "gamma": net.bn.weight.grad, "beta": net.bn.bias.grad, "w2": net.conv2.weight.grad.squeeze(0),
                      "b2": net.conv2.bias.grad}
        for name, g in loop_grads.items():
            scale = float(grads["w1"][k].abs().max()) if name == "b1" and training else None  # b1: ~0 in training
            _close(grads[name][k], g, 1e-9, scale)
        if training:  # the caller's running-stat update reproduces nn.BatchNorm1d's
            _close((1 - momentum) * p["running_mean"][k] + momentum * mean[k], net.bn.running_mean, 1e-10)
            _close((1 - momentum) * p["running_var"][k] + momentum * var[k], net.bn.running_var, 1e-10)
        else:
            assert mean is None and var is None
            _close(p["running_mean"][k], net.bn.running_mean, 0.0)  # eval leaves the stats alone


def test_reference_float32_close_to_loop():
    nets, p, u, grad_out = _problem(K=2, dtype=torch.float32)
    out, mean, var, grads = _run(fused_cnn.reference_two_layer_cnn, p, u, grad_out, True)
    for k, net in enumerate(nets):
        x = u[k].clone().unsqueeze(1).requires_grad_()
        y = net(x)
        y.backward(grad_out[k].unsqueeze(1))
        _close(out[k], y.detach().squeeze(1), 1e-6)
        _close(grads["u"][k], x.grad.squeeze(1), 1e-5)
        _close(grads["w2"][k], net.conv2.weight.grad.squeeze(0), 1e-5)


# ---------------------------------------------------------------- compiled kernel


@pytest.fixture(scope="module")
def compiled():
    if not fused_cnn.available():
        pytest.skip(f"compiled fused CNN kernel unavailable: {fused_cnn.unavailable_reason()}")


def _compiled(*args, **kw):
    return fused_cnn.two_layer_cnn(*args, backend="compiled", **kw)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype,rel", [(torch.float32, 2e-5), (torch.float64, 1e-11)])
@pytest.mark.parametrize("ks,C", [(3, 16), (1, 4), (5, 3), (7, 2)])
def test_compiled_matches_reference(compiled, training, dtype, rel, ks, C):
    _, p, u, grad_out = _problem(K=3, B=37, N=23, C=C, ks=ks, dtype=dtype)
    ref = _run(fused_cnn.reference_two_layer_cnn, p, u, grad_out, training)
    got = _run(_compiled, p, u, grad_out, training)
    _close(got[0], ref[0], rel)
    if training:
        _close(got[1], ref[1], rel, float(ref[1].abs().max()) + 1)
        _close(got[2], ref[2], rel)
    else:
        assert got[1] is None and got[2] is None
    for name in ref[3]:
        scale = float(ref[3]["w1"].abs().max()) if name == "b1" and training else None
        _close(got[3][name], ref[3][name], 10 * rel, scale)


def test_compiled_typical_shape_float32(compiled):
    _, p, u, grad_out = _problem(K=2, B=128, N=50, C=16, ks=3, dtype=torch.float32)
    ref = _run(fused_cnn.reference_two_layer_cnn, p, u, grad_out, True)
    got = _run(_compiled, p, u, grad_out, True)
    _close(got[0], ref[0], 1e-5)
    for name in ("u", "w1", "gamma", "beta", "w2", "b2"):
        _close(got[3][name], ref[3][name], 1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_compiled_gradcheck(compiled, training):
    _, p, u, _ = _problem(K=2, B=5, N=7, C=3, ks=3)
    inputs = [u.clone().requires_grad_()] + [p[n].clone().requires_grad_() for n in PARAMS]

    def fn(*xs):
        return _compiled(*xs, training=training, running_mean=p["running_mean"], running_var=p["running_var"])[0]

    assert torch.autograd.gradcheck(fn, inputs)


def test_compiled_double_backward(compiled):
    """create_graph and is_grads_batched (as in harness.methods.hessian) go through the reference inside."""
    _, p, u, _ = _problem(K=2, B=6, N=7, C=3, ks=3)
    inputs = [u.clone().requires_grad_()] + [p[n].clone().requires_grad_() for n in PARAMS]
    assert torch.autograd.gradgradcheck(lambda *xs: _compiled(*xs, training=True)[0], inputs)
    results = []
    for fn in (_compiled, fused_cnn.reference_two_layer_cnn):
        a = torch.tensor([0.7, 1.3], dtype=torch.float64, requires_grad=True)
        out = fn(u * a[0] + a[1], *(p[n] for n in PARAMS), training=True)[0]
        (g,) = torch.autograd.grad((out ** 2).sum(), [a], create_graph=True)
        (h,) = torch.autograd.grad(g, [a], grad_outputs=torch.eye(2, dtype=torch.float64), is_grads_batched=True)
        results.append(h)
    _close(results[0], results[1], 1e-10)


def _bits(res) -> list[torch.Tensor]:
    out, mean, var, grads = res
    return [out, mean, var, *grads.values()]


def test_compiled_thread_count_invariant(compiled):
    _, p, u, grad_out = _problem(K=3, B=37, N=23, C=4, ks=3, dtype=torch.float32)
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(_bits(_run(_compiled, p, u, grad_out, True)))
    finally:
        torch.set_num_threads(1)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_compiled_seed_independent_of_k_and_other_seeds(compiled):
    _, p, u, grad_out = _problem(K=4, B=37, N=23, C=4, ks=3, dtype=torch.float32)
    full = _bits(_run(_compiled, p, u, grad_out, True))
    k = 2
    alone = _bits(_run(_compiled, {n: t[k:k + 1] for n, t in p.items()}, u[k:k + 1], grad_out[k:k + 1], True))
    assert all(torch.equal(a[k:k + 1], b) for a, b in zip(full, alone))
    # other seeds with different values, even NaN, change nothing for seed k
    p2 = {n: t.clone() for n, t in p.items()}
    u2, g2 = u.clone(), grad_out.clone()
    u2[0] = float("nan")
    u2[3] *= 100
    g2[1] = float("inf")
    p2["w1"][3] += 1
    other = _bits(_run(_compiled, p2, u2, g2, True))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(full, other))


def test_auto_uses_compiled_when_available(compiled):
    _, p, u, grad_out = _problem(K=2, B=9, N=11, C=3, dtype=torch.float32)
    auto = _bits(_run(fused_cnn.two_layer_cnn, p, u, grad_out, True))
    comp = _bits(_run(_compiled, p, u, grad_out, True))
    assert all(torch.equal(a, b) for a, b in zip(auto, comp))


# ---------------------------------------------------------------- fallbacks and validation


def _reset_loader(monkeypatch):
    for key, value in (("tried", False), ("ext", None), ("reason", "not built yet")):
        monkeypatch.setitem(fused_cnn._state, key, value)


def _check_reference_fallback():
    assert not fused_cnn.available()
    _, p, u, grad_out = _problem(K=2, B=9, N=11, C=3, dtype=torch.float32)
    auto = _bits(_run(fused_cnn.two_layer_cnn, p, u, grad_out, True))
    ref = _bits(_run(fused_cnn.reference_two_layer_cnn, p, u, grad_out, True))
    assert all(torch.equal(a, b) for a, b in zip(auto, ref))
    with pytest.raises(RuntimeError, match="unavailable"):
        _run(_compiled, p, u, grad_out, True)


def test_disabled_by_environment(monkeypatch):
    _reset_loader(monkeypatch)
    monkeypatch.setenv("HARNESS_NO_FUSED", "1")
    _check_reference_fallback()
    assert "HARNESS_NO_FUSED" in fused_cnn.unavailable_reason()


def test_build_failure_falls_back(monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    def broken(*args, **kwargs):
        raise OSError("no compiler here")

    _reset_loader(monkeypatch)
    monkeypatch.delenv("HARNESS_NO_FUSED", raising=False)
    monkeypatch.setenv("HARNESS_EXTENSION_DIR", str(tmp_path))  # no cached binary there
    monkeypatch.setattr(cpp_extension, "load", broken)
    _check_reference_fallback()
    assert "build failed" in fused_cnn.unavailable_reason() and "no compiler here" in fused_cnn.unavailable_reason()


def test_auto_falls_back_for_unsupported_inputs():
    _, p, u, grad_out = _problem(K=2, B=6, N=11, C=2, ks=9, dtype=torch.float32)
    auto = _bits(_run(fused_cnn.two_layer_cnn, p, u, grad_out, True))
    ref = _bits(_run(fused_cnn.reference_two_layer_cnn, p, u, grad_out, True))
    assert all(torch.equal(a, b) for a, b in zip(auto, ref))


def test_validation():
    _, p, u, _ = _problem(K=2, B=4, N=5, C=2)
    args = [p[n] for n in PARAMS]
    with pytest.raises(ValueError, match="running_mean"):
        fused_cnn.two_layer_cnn(u, *args, training=False)
    with pytest.raises(ValueError, match="running stats"):
        fused_cnn.two_layer_cnn(u, *args, training=False, running_mean=p["running_mean"][:1],
                                running_var=p["running_var"])
    with pytest.raises(ValueError, match="backend"):
        fused_cnn.two_layer_cnn(u, *args, training=True, backend="fast")
    with pytest.raises(ValueError, match="shape"):
        fused_cnn.two_layer_cnn(u, args[0][:, :1], *args[1:], training=True)
    with pytest.raises(ValueError, match="more than 1 value"):
        fused_cnn.two_layer_cnn(u[:, :1, :1], *args, training=True)



@pytest.mark.skipif(not fused_cnn.available(), reason="compiled kernel unavailable")
def test_compiled_forward_propagates_nan_like_the_reference():
    """A NaN must reach the loss (divergence detection), not be swallowed by the ReLU."""
    torch.manual_seed(0)
    k, b, n, c = 2, 16, 50, 4
    u = torch.randn(k, b, n)
    params = [torch.randn(k, c, 3), torch.randn(k, c), torch.ones(k, c), torch.zeros(k, c), torch.randn(k, c, 3),
              torch.randn(k)]
    params[0][0] = float("inf")
    for backend in ("compiled", "reference"):
        out, _, _ = fused_cnn.two_layer_cnn(u, *params, training=True, backend=backend)
        assert not torch.isfinite(out[0]).any() and torch.isfinite(out[1]).all()
