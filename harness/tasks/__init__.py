"""Tasks: data, operators, losses, metrics and retraining recipes (the lowest layer).

Being built for issue 12 (image tasks): ``harness.tasks.data`` holds the real loaders for the
standard data-set formats. The 1D inverse problems still live in ``harness.problems`` until the
Task API replaces it (docs/task_layer.md).
"""
