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
    title: str = ""  # display name, e.g. "PGD accuracy"; derived from ``name`` when empty

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "max" else a < b

    @property
    def display_name(self) -> str:
        """``'PSNR'``, ``'accuracy'``: the name a sentence or an axis uses."""
        return self.title or (self.name.upper() if len(self.name) <= 4 else self.name.replace("_", " "))

    def axis_label(self) -> str:
        """``'PSNR (dB)'``, ``'accuracy (%)'``: what every report label and caption shows."""
        return f"{self.display_name} ({self.unit})" if self.unit else self.display_name

    def amount(self, value: float) -> str:
        """A difference or width in the metric's unit: ``'1 dB'``, ``'2 percentage points'``."""
        if self.unit == "%":
            return f"{value:g} percentage point{'' if value == 1 else 's'}"
        return f"{value:g} {self.unit}" if self.unit else f"{value:g}"

    @property
    def best_word(self) -> str:
        """``'highest'`` or ``'lowest'``."""
        return "highest" if self.direction == "max" else "lowest"

    @property
    def direction_text(self) -> str:
        """``'higher is better'`` or ``'lower is better'``."""
        return "higher is better" if self.direction == "max" else "lower is better"

    def label(self) -> str:
        """Axis and column label, e.g. 'PSNR [dB]'."""
        return f"{self.display_name} [{self.unit}]" if self.unit else self.display_name


METRICS: Registry[Metric] = Registry("metric")
for _metric in (
    Metric("psnr", "max", "dB", "peak signal-to-noise ratio of the reconstruction ([001] section 5.1)"),
    Metric("ssim", "max", "", "structural similarity of a denoised image ([000])"),
    Metric("accuracy", "max", "%", "top-1 classification accuracy"),
    Metric("pgd_accuracy", "max", "%", "accuracy under a PGD attack ([003] section IV-B4)", "PGD accuracy"),
    Metric("ood_aupr", "max", "%", "area under precision-recall, OoD images as positives ([003])", "OoD AUPR"),
    Metric("params_m", "min", "M", "parameters of the derived network, auxiliary head excluded", "parameters"),
    Metric("flops_m", "min", "M", "FLOPs of one forward pass of the derived network", "FLOPs"),
):
    METRICS.register(_metric.name, _metric)

# What a report calls the values of a metric it does not know (no name, or an unregistered one).
UNKNOWN_METRIC = Metric("score", "max", title="score")


def find_metric(name: object) -> Metric:
    """The registered ``Metric`` called ``name``; a generic higher-is-better ``'score'`` for a
    missing name (NaN, ``'-'``) and an unregistered one (named as itself, assumed higher is
    better), so a report of old or hand-made records still renders."""
    if isinstance(name, str) and name in METRICS:
        return METRICS.get(name)
    if isinstance(name, str) and name.strip() not in ("", "-"):
        return Metric(name.strip(), "max", title=name.strip())
    return UNKNOWN_METRIC


def metric_label(name: object) -> str:
    """``metric_label('psnr') == 'PSNR (dB)'``, ``'accuracy (%)'``: the one label of a metric."""
    return find_metric(name).axis_label()
