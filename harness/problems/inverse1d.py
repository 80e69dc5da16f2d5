"""The 1D cosine inverse problems of [001] section 5.1 (blur and downsampling).

Ground truth: N = 50 equally spaced points w_i on [-pi/2, pi/2],
x_i = cos(f * w_i + O_x) + O_y with f ~ U[0, 2 pi] and O_x, O_y ~ N(0, 1).
Measurement: y = A x + n, n ~ N(0, noise_std^2). Samples are drawn fresh on the fly.

Every choice the paper leaves open is a field of ``ProblemConfig`` with its default,
documented (with the calibration evidence) in docs/open_choices.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.options import replace_options
from harness.problems.operators import LinearOperator, blur_operator


@dataclass(frozen=True)
class ProblemConfig:
    name: str = "blur"
    n_points: int = 50
    # [001] Table 5 says 0.10, the text says 0.01; 0.10 reproduces the paper's PSNR range.
    noise_std: float = 0.10
    blur_kernel_size: int = 7
    blur_sigma: float = 0.2
    # 'domain': sigma_b in the units of w (grid spacing pi/49), 'samples': in grid spacings.
    blur_sigma_units: str = "domain"
    # How the blur treats the signal's ends: 'zeros', 'reflect', 'replicate' or 'circular'.
    boundary: str = "zeros"
    downsample_factor: int = 1
    downsample_offset: int = 0
    # The network's input u0 from y: 'adjoint' (A^T y) or 'measurement' (y itself; blur only).
    network_input: str = "adjoint"
    # PSNR peak: 'unit' (1.0, default), 'range' (max - min of the true signal) or 'max' (max |x|).
    psnr_peak: str = "unit"
    batch_size: int = 128
    samples_per_evaluation: int = 2432  # = 19 batches of 128 ([001] section 5.1)

    def __post_init__(self) -> None:
        _choice("blur_sigma_units", self.blur_sigma_units, ("domain", "samples"))
        _choice("boundary", self.boundary, ("zeros", "reflect", "replicate", "circular"))
        _choice("network_input", self.network_input, ("adjoint", "measurement"))
        _choice("psnr_peak", self.psnr_peak, ("range", "max", "unit"))
        for key in ("n_points", "blur_kernel_size", "downsample_factor", "batch_size", "samples_per_evaluation"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"problem option {key} must be a positive integer, got {value!r}")
        if self.noise_std < 0 or self.blur_sigma <= 0:
            raise ValueError("problem options noise_std must be >= 0 and blur_sigma > 0")
        if self.network_input == "measurement" and self.downsample_factor != 1:
            raise ValueError("network_input 'measurement' needs downsample_factor 1 (y is shorter than x)")
        if self.samples_per_evaluation % self.batch_size:
            raise ValueError("samples_per_evaluation must be a multiple of batch_size")

    def replace(self, **options) -> ProblemConfig:
        return replace_options(self, options, "problem")

    @property
    def batches_per_epoch(self) -> int:
        return self.samples_per_evaluation // self.batch_size


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"problem option {key} must be one of {allowed}, got {value!r}")


class InverseProblem:
    """Samples (x, y) pairs and holds the forward operator A."""

    def __init__(self, config: ProblemConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.grid = torch.linspace(-math.pi / 2, math.pi / 2, config.n_points, dtype=torch.float64)
        spacing = math.pi / (config.n_points - 1)
        sigma = config.blur_sigma / spacing if config.blur_sigma_units == "domain" else config.blur_sigma
        self.operator: LinearOperator = blur_operator(
            config.n_points,
            config.blur_kernel_size,
            sigma,
            boundary=config.boundary,
            downsample=config.downsample_factor,
            offset=config.downsample_offset,
        ).to(self.device)
        self._grid = self.grid.to(device=self.device, dtype=torch.float32)

    def sample_signals(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Ground-truth cosines, shape (n, N); ``generator`` lives on the CPU for reproducibility."""
        f = torch.rand(n, 1, generator=generator) * (2 * math.pi)
        offsets = torch.randn(n, 2, generator=generator)
        x = torch.cos(f * self.grid.float() + offsets[:, :1]) + offsets[:, 1:]
        return x.to(self.device)

    def measure(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        y = self.operator.forward(x)
        noise = torch.randn(y.shape, generator=generator).to(self.device)
        return y + self.config.noise_std * noise

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch (x, y) with x of shape (n, N) and y of shape (n, M)."""
        x = self.sample_signals(n, generator)
        return x, self.measure(x, generator)

    def signal_input(self, y: torch.Tensor) -> torch.Tensor:
        """u0 for measurements y (..., M): y itself or A^T y, in signal space (..., N)."""
        return y if self.config.network_input == "measurement" else self.operator.adjoint(y)

    def network_input(self, y: torch.Tensor) -> torch.Tensor:
        """u0, the network's input in signal space, shape (n, 1, N)."""
        return self.signal_input(y).unsqueeze(1)

    def psnr(self, estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        from harness.problems.metrics import psnr

        return psnr(estimate, truth, peak=self.config.psnr_peak)
