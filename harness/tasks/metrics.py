"""The one definition of a metric: its name, direction and unit.

Statistics, reports and tuners ask a ``Metric`` whether higher is better instead of assuming it;
a task declares its metrics and which one is primary (the trial's ``arch_score``).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.registry import Registry

DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "max": higher is better; "min": lower is better
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "max" else a < b

    def label(self) -> str:
        """Axis and column label, e.g. 'PSNR [dB]'."""
        title = self.name.upper() if len(self.name) <= 4 else self.name.replace("_", " ")
        return f"{title} [{self.unit}]" if self.unit else title


METRICS: Registry[Metric] = Registry("metric")
for _metric in (
    Metric("psnr", "max", "dB", "peak signal-to-noise ratio of the reconstruction ([001] section 5.1)"),
    Metric("ssim", "max", "", "structural similarity of a denoised image ([000])"),
    Metric("accuracy", "max", "%", "top-1 classification accuracy"),
    Metric("pgd_accuracy", "max", "%", "accuracy under a PGD attack ([003] section IV-B4)"),
    Metric("ood_aupr", "max", "%", "area under precision-recall, OoD images as positives ([003])"),
    Metric("params_m", "min", "M", "parameters of the derived network, auxiliary head excluded"),
    Metric("flops_m", "min", "M", "FLOPs of one forward pass of the derived network"),
):
    METRICS.register(_metric.name, _metric)
