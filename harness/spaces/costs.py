"""Per-op parameter counts and multiply-adds for the 1D candidate ops of ``ops.py``.

E2RNAS (METHODS.md M43, Eqs 5-6) needs a cost c_o per candidate op for its expected
parameter count and FLOPs. Ours are exact for the modules of ``ops.py``:

* params: what ``sum(p.numel() for p in op.parameters())`` gives (conv weights and
  biases, BatchNorm's affine weight and bias; running statistics are buffers, not counted).
  For C channels and kernel k, the 2-layer CNN has (C k + C) + 2 C + (C k + 1) parameters;
  ``lgd`` adds its step size tau.
* flops: multiply-adds per sample (one signal of length N) of the linear maps only, the
  convention of fvcore and ``torch.utils.flop_counter`` (which reports 2 flops per
  multiply-add): a same-padded conv costs N * C_out * C_in * k; the data gradient
  A^T (A u - y) of ``lgd`` and ``noise`` with a dense (M, N) operator costs 2 M N. Biases,
  BatchNorm (foldable into the conv at inference), ReLU, additions, scalar scalings,
  ``roll`` and the noise draw are not counted.
"""

from __future__ import annotations

from harness.spaces.ops import OPS, OpConfig


def _cnn_params(cfg: OpConfig) -> int:
    c, k = cfg.channels, cfg.kernel_size
    return (c * k + c) + 2 * c + (c * k + 1)


def _cnn_flops(cfg: OpConfig, n: int) -> int:
    return 2 * n * cfg.channels * cfg.kernel_size  # conv 1 -> C and conv C -> 1


def op_cost(name: str, cfg: OpConfig, signal_length: int, measurement_length: int) -> tuple[int, int]:
    """(parameters, multiply-adds per sample) of the candidate op ``name``."""
    name = OPS.canonical(name)
    n, m = int(signal_length), int(measurement_length)
    if name == "lgd":
        return 1 + _cnn_params(cfg), _cnn_flops(cfg, n) + 2 * m * n
    if name == "net":
        return _cnn_params(cfg), _cnn_flops(cfg, n)
    if name == "noise":
        return 0, 2 * m * n
    if name in ("roll", "zero"):
        return 0, 0
    raise ValueError(f"no cost model for op {name!r}")


def op_costs(
    ops: tuple[str, ...],
    op_config: OpConfig | None,
    signal_length: int,
    measurement_length: int,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per candidate op, in the order of ``ops``: (parameter counts, multiply-adds per sample)."""
    cfg = op_config if op_config is not None else OpConfig()
    costs = [op_cost(name, cfg, signal_length, measurement_length) for name in ops]
    return tuple(p for p, _ in costs), tuple(f for _, f in costs)
