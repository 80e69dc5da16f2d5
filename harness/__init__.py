"""harness: hyperparameter-robustness benchmarking of differentiable architecture search.

Layers, with one-way imports (tests/test_layers.py): problems -> tasks -> spaces -> methods ->
runner -> stats -> report -> study, tune -> cli.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``harness.run_study`` (``harness.study.api``), imported on first use: readers of results
    (reports, notebooks) do not pay for torch."""
    if name == "run_study":
        from harness.study.api import run_study

        return run_study
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
