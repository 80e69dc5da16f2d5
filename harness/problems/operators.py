"""Linear forward operators A (blur, blur + subsampling) and their adjoints.

A is applied as a dense (M x N) matrix: with N = 50 that is one small matmul, exact, and
its adjoint is the transpose. The matrix is built by applying the convolution (with the
chosen boundary mode) to the identity, so ``forward`` agrees with ``conv1d`` (tested).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class LinearOperator:
    """y = x @ A^T for batches of signals x of shape (B, N)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix.float()

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.matrix.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.matrix

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^T A x, used by gradient-descent layers."""
        return self.adjoint(self.forward(x))

    def to(self, device: torch.device | str) -> LinearOperator:
        return LinearOperator(self.matrix.to(device))


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Normalized (sums to 1) Gaussian taps; ``sigma`` in grid spacings."""
    taps = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def blur_conv(x: torch.Tensor, kernel: torch.Tensor, boundary: str) -> torch.Tensor:
    """Same-size 1D convolution of x (B, N) with a symmetric kernel."""
    pad = (kernel.numel() - 1) // 2
    x3 = x.unsqueeze(1)
    if boundary == "zeros":
        x3 = F.pad(x3, (pad, pad))
    else:
        x3 = F.pad(x3, (pad, pad), mode=boundary)  # reflect, replicate or circular
    return F.conv1d(x3, kernel.view(1, 1, -1).to(x3)).squeeze(1)


def blur_operator(
    n: int,
    kernel_size: int,
    sigma: float,
    *,
    boundary: str = "zeros",
    downsample: int = 1,
    offset: int = 0,
) -> LinearOperator:
    """Gaussian blur (sigma in grid spacings), optionally followed by keeping every
    ``downsample``-th sample starting at ``offset`` (length ceil((n - offset) / downsample))."""
    if kernel_size % 2 != 1:
        raise ValueError(f"blur kernel size must be odd, got {kernel_size}")
    if not 0 <= offset < downsample:
        raise ValueError(f"downsample offset must be in [0, {downsample}), got {offset}")
    kernel = gaussian_kernel(kernel_size, sigma)
    identity = torch.eye(n, dtype=torch.float64)
    blurred_basis = blur_conv(identity, kernel, boundary)  # row j = blur(e_j)
    matrix = blurred_basis.T  # column j = A e_j
    matrix = matrix[offset::downsample]
    assert matrix.shape[0] == math.ceil((n - offset) / downsample)
    return LinearOperator(matrix)
