"""Problems: data, forward operators and metrics (the lowest layer)."""

from __future__ import annotations

from harness.problems.inverse1d import InverseProblem, ProblemConfig
from harness.registry import Registry

PROBLEMS: Registry[ProblemConfig] = Registry("dataset")
PROBLEMS.register("blur", ProblemConfig(name="blur"))
PROBLEMS.register("downsampling", ProblemConfig(name="downsampling", downsample_factor=4))


def make_problem(dataset: str, options: dict | None = None, device="cpu") -> InverseProblem:
    """The registered problem ``dataset`` with problem ``options`` overriding its defaults."""
    config = PROBLEMS.get(dataset)
    if options:
        config = config.replace(**options)
    return InverseProblem(config, device=device)


__all__ = ["PROBLEMS", "InverseProblem", "ProblemConfig", "make_problem"]
