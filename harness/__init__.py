"""harness: hyperparameter-robustness benchmarking of differentiable architecture search.

Layers, with one-way imports: problems -> spaces -> methods -> runner -> stats/report -> study.
"""

__version__ = "0.1.0"
