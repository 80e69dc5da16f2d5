import math

import numpy as np
import pytest
import torch
from scipy import stats

from harness.problems import PROBLEMS, ProblemConfig, make_problem
from harness.problems.metrics import psnr
from harness.problems.operators import blur_conv, blur_operator, gaussian_kernel


@pytest.mark.parametrize("boundary", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("downsample", [1, 4])
def test_adjoint_identity(boundary, downsample):
    op = blur_operator(50, 7, 3.1, boundary=boundary, downsample=downsample)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 50, generator=g, dtype=torch.float64)
    y = torch.randn(16, op.shape[0], generator=g, dtype=torch.float64)
    op.matrix = op.matrix.double()
    lhs = (op.forward(x) * y).sum(dim=1)
    rhs = (x * op.adjoint(y)).sum(dim=1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("boundary", ["zeros", "reflect", "replicate", "circular"])
def test_matrix_matches_convolution(boundary):
    op = blur_operator(50, 7, 1.5, boundary=boundary)
    x = torch.randn(8, 50, dtype=torch.float64)
    expected = blur_conv(x, gaussian_kernel(7, 1.5), boundary)
    torch.testing.assert_close(op.forward(x.float()).double(), expected, rtol=1e-5, atol=1e-6)


def test_downsampling_keeps_every_fourth_blurred_sample():
    blur = blur_operator(50, 7, 2.0)
    down = blur_operator(50, 7, 2.0, downsample=4)
    assert down.shape == (13, 50)  # ceil(50 / 4)
    x = torch.randn(3, 50)
    torch.testing.assert_close(down.forward(x), blur.forward(x)[:, ::4])


def test_gaussian_kernel_normalized_and_symmetric():
    k = gaussian_kernel(7, 3.0)
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-12)
    torch.testing.assert_close(k, k.flip(0))


def test_signal_generator_statistics():
    """x = cos(f w + Ox) + Oy with f ~ U[0, 2pi], Ox, Oy ~ N(0, 1): check via recovered parameters."""
    problem = make_problem("blur")
    g = torch.Generator().manual_seed(1)
    n = 20000
    x = problem.sample_signals(n, g).double()
    assert x.shape == (n, 50)
    # Draw the same parameters again with the same stream to test their distributions.
    g2 = torch.Generator().manual_seed(1)
    f = (torch.rand(n, 1, generator=g2) * 2 * math.pi).squeeze(1).numpy()
    offsets = torch.randn(n, 2, generator=g2).numpy()
    assert stats.kstest(f / (2 * math.pi), "uniform").pvalue > 1e-3
    assert stats.kstest(offsets[:, 0], "norm").pvalue > 1e-3
    assert stats.kstest(offsets[:, 1], "norm").pvalue > 1e-3
    grid = np.linspace(-math.pi / 2, math.pi / 2, 50)
    rebuilt = np.cos(f[:, None] * grid + offsets[:, :1]) + offsets[:, 1:]
    np.testing.assert_allclose(x.numpy(), rebuilt, atol=1e-5)
    # Moments agree with an independent numpy simulation of the paper's model.
    rng = np.random.default_rng(0)
    ref = np.cos(rng.uniform(0, 2 * math.pi, (n, 1)) * grid + rng.normal(size=(n, 1))) + rng.normal(size=(n, 1))
    assert abs(float(x.mean()) - ref.mean()) < 0.05
    assert abs(float(x.var()) - ref.var()) < 0.08


def test_measurement_noise_level():
    problem = make_problem("blur", {"noise_std": 0.1})
    g = torch.Generator().manual_seed(2)
    x = problem.sample_signals(4000, g)
    y = problem.measure(x, g)
    residual = (y - problem.operator.forward(x)).flatten().numpy()
    assert abs(residual.std() - 0.1) < 0.002
    assert stats.normaltest(residual[:5000]).pvalue > 1e-3


def test_network_input_is_adjoint_of_measurement():
    problem = make_problem("downsampling")
    g = torch.Generator().manual_seed(3)
    x, y = problem.sample(5, g)
    assert y.shape == (5, 13)
    u0 = problem.network_input(y)
    assert u0.shape == (5, 1, 50)
    torch.testing.assert_close(u0.squeeze(1), y @ problem.operator.matrix)


def test_psnr_conventions():
    truth = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    est = truth + 0.1
    mse = 0.01
    assert math.isclose(float(psnr(est, truth, "unit")), 10 * math.log10(1 / mse), rel_tol=1e-5)
    assert math.isclose(float(psnr(est, truth, "range")), 10 * math.log10(9 / mse), rel_tol=1e-5)
    assert math.isclose(float(psnr(est, truth, "max")), 10 * math.log10(9 / mse), rel_tol=1e-5)
    with pytest.raises(ValueError, match="peak"):
        psnr(est, truth, "bogus")


def test_problem_registry_and_options_validation():
    assert set(PROBLEMS.names()) == {"blur", "downsampling"}
    assert PROBLEMS.get("downsampling").downsample_factor == 4
    with pytest.raises(ValueError, match="unknown problem option"):
        ProblemConfig().replace(noise=0.1)
    with pytest.raises(ValueError, match="boundary"):
        ProblemConfig(boundary="mirror")
    with pytest.raises(KeyError, match="Did you mean 'blur'"):
        make_problem("blurr")
