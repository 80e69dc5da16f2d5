"""The batched engine: K same-configuration trials that differ only in seed as one computation.

``networks`` stacks K trials' parameters, ``fused_cnn`` is the fused 2-layer-CNN kernel over K
seeds (compiled C++/OpenMP at first use, pure-PyTorch fallback), ``engine`` runs DAS search and
fixed-network training batched. The runner (``harness.runner.trial.run_batch``) uses it with
``engine="batched"``/``"auto"``; see docs/batched_engine.md.
"""
