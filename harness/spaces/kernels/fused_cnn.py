"""The 2-layer CNN op (conv1d(1->C) - BatchNorm1d - ReLU - conv1d(C->1)) over K independent seeds.

``two_layer_cnn`` equals, per seed k, ``TwoLayerCNN`` of :mod:`harness.spaces.ops` applied to
``u[k].unsqueeze(1)`` (``nn.Conv1d(1, C, k, padding=k // 2)``, ``nn.BatchNorm1d(C)``, ReLU,
``nn.Conv1d(C, 1, k, padding=k // 2)``). Training mode normalizes with the batch mean and biased variance
over (batch, length) and returns the batch mean and *unbiased* variance, so the caller can update running
stats (``running = (1 - momentum) * running + momentum * batch``) for the seeds it owns; eval mode uses the
given running stats.

Two backends:

* ``reference``: plain torch ops (grouped conv1d with ``groups=K`` on a (B, K, N) layout and
  ``F.batch_norm`` over K*C channels); autograd does the backward. Any device, any float dtype.
* ``compiled``: a C++/OpenMP kernel (``csrc/fused_cnn.cpp``) built with ``torch.utils.cpp_extension.load``
  on first use into ``$HARNESS_EXTENSION_DIR`` or ``~/.cache/harness/extensions/<tag>`` (the tag names the
  CPU flags and the torch/Python versions, since the build uses ``-march=native``); the first build takes
  about a minute, later processes load the cached library. CPU, float32/float64, odd kernel sizes <= 7.
  Work items are (seed, 16-row batch chunk), run in parallel on at most ``torch.get_num_threads()``
  threads; every reduction runs per item in a fixed order and then per seed in chunk order, so results are
  bitwise independent of the thread count, of K and of the other seeds' values. Hidden activations are
  never stored (no K*B*C*N buffer): each pass recomputes conv1 from u, one channel at a time in L1
  (training: 2 passes forward -- BN statistics, output -- and 1 backward, whose BN terms that need the
  per-seed dgamma/dbeta are assembled afterwards: in double for dW1/db1, by a light channel-free pass for
  du). BN statistics are exact two-pass per chunk, merged per seed in double.
  Gradients that need a graph (``create_graph=True``, e.g. Hessians w.r.t. architecture weights) or come
  batched (``is_grads_batched``) are computed inside the backward through the reference ops on the saved
  inputs, so double backward works with either backend (at reference speed).

``backend="auto"`` uses the compiled kernel when it is available and applicable, else the reference; it
never raises for build problems. ``HARNESS_NO_FUSED=1`` disables the build.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["available", "reference_two_layer_cnn", "two_layer_cnn", "unavailable_reason"]

_SOURCE = Path(__file__).resolve().parent / "csrc" / "fused_cnn.cpp"
_EXT_NAME = "harness_fused_cnn"
_lock = threading.Lock()
_state: dict = {"tried": False, "ext": None, "reason": "not built yet"}


_CFLAGS = ["-O3", "-march=native", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]
_STALE_LOCK_S = 900.0  # a build lock older than this was left by a killed build (a build takes ~1 min)


def _build_dir() -> Path:
    """Cache folder keyed by everything the binary depends on: source, flags, CPU (-march=native), versions."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = "".join(line for line in fh if line.startswith(("flags", "Features", "model name")))
    except OSError:
        pass
    key = "|".join([_SOURCE.read_text(), " ".join(_CFLAGS + _LDFLAGS), platform.machine(), cpu, torch.__version__,
                    sys.version])
    base = os.environ.get("HARNESS_EXTENSION_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "harness" / "extensions"
    return root / f"fused_cnn_{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def _import_built(path: Path):
    spec = importlib.util.spec_from_file_location(_EXT_NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(build_dir: Path):
    built = build_dir / f"{_EXT_NAME}.so"
    if built.exists():  # the folder is keyed by the source and flags: nothing to check, skip ninja
        try:
            return _import_built(built)
        except Exception:  # a broken file: rebuild below
            pass
    from torch.utils import cpp_extension

    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"
    try:
        if time.time() - lock.stat().st_mtime > _STALE_LOCK_S:  # else cpp_extension.load waits for it forever
            lock.unlink()
    except OSError:
        pass
    return cpp_extension.load(name=_EXT_NAME, sources=[str(_SOURCE)], extra_cflags=list(_CFLAGS),  # load edits lists
                              extra_ldflags=list(_LDFLAGS), build_directory=str(build_dir), verbose=False)


def _load():
    """The compiled extension module, or None (the reason is kept for ``unavailable_reason``)."""
    if _state["tried"]:
        return _state["ext"]
    with _lock:
        if _state["tried"]:
            return _state["ext"]
        ext, reason = None, ""
        if os.environ.get("HARNESS_NO_FUSED", "") not in ("", "0"):
            reason = "disabled by HARNESS_NO_FUSED"
        else:
            try:
                ext = _build(_build_dir())
            except Exception as exc:  # no compiler, no ninja, compile error, ...: fall back
                ext = None
                msg = " ".join(str(exc).split())
                reason = f"build failed: {type(exc).__name__}: {msg[:500]}"
        _state.update(tried=True, ext=ext, reason=reason)
        return ext


def available() -> bool:
    """Whether the compiled kernel is usable (builds or loads it on the first call)."""
    return _load() is not None


def unavailable_reason() -> str:
    """Why the compiled kernel is not usable; "" if it is."""
    _load()
    return "" if _state["ext"] is not None else _state["reason"]


# ---------------------------------------------------------------- reference


def reference_two_layer_cnn(u, w1, b1, gamma, beta, w2, b2, *, training: bool, running_mean=None, running_var=None,
                            eps: float = 1e-5) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Pure-torch batched op; same contract as ``two_layer_cnn``."""
    K, B, N = u.shape
    C, ks = w1.shape[1], w1.shape[2]
    pad = ks // 2
    x = u.transpose(0, 1)  # (B, K, N): seed k is group k
    h = F.conv1d(x, w1.reshape(K * C, 1, ks), b1.reshape(K * C), padding=pad, groups=K)  # (B, K*C, N)
    if training:
        # momentum 1 makes F.batch_norm write exactly the batch mean and unbiased variance into the buffers.
        bm = torch.zeros(K * C, dtype=h.dtype, device=h.device)
        bv = torch.ones(K * C, dtype=h.dtype, device=h.device)
        z = F.batch_norm(h, bm, bv, gamma.reshape(K * C), beta.reshape(K * C), training=True, momentum=1.0,
                         eps=eps)
        stats = bm.reshape(K, C), bv.reshape(K, C)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("eval mode needs running_mean and running_var")
        z = F.batch_norm(h, running_mean.reshape(K * C), running_var.reshape(K * C), gamma.reshape(K * C),
                         beta.reshape(K * C), training=False, eps=eps)
        stats = None, None
    out = F.conv1d(torch.relu(z), w2, b2, padding=pad, groups=K)  # (B, K, N)
    return out.transpose(0, 1), stats[0], stats[1]


# ---------------------------------------------------------------- compiled


def _is_batched(t: Tensor) -> bool:
    """Whether t is a vmap batched tensor (is_grads_batched uses the legacy kind); these have no storage."""
    ft = getattr(torch._C, "_functorch", None)
    for name in ("is_legacy_batchedtensor", "is_batchedtensor", "is_functorch_wrapped_tensor"):
        check = getattr(ft, name, None)
        try:
            if check is not None and check(t):
                return True
        except (RuntimeError, TypeError):  # pragma: no cover
            pass
    return False


class _FusedTwoLayerCNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, w1, b1, gamma, beta, w2, b2, running_mean, running_var, training, eps):
        ext = _state["ext"]
        out, mean, invstd, var_u = ext.forward(u, w1, b1, gamma, beta, w2, b2, running_mean, running_var,
                                               training, eps)
        ctx.save_for_backward(u, w1, b1, gamma, beta, w2, b2, mean, invstd, running_mean, running_var)
        ctx.training, ctx.eps = training, eps
        ctx.mark_non_differentiable(mean, var_u)
        return out, mean, var_u

    @staticmethod
    def backward(ctx, grad_out, _grad_mean, _grad_var):
        u, w1, b1, gamma, beta, w2, b2, mean, invstd, rm, rv = ctx.saved_tensors
        params = (u, w1, b1, gamma, beta, w2, b2)
        needs = ctx.needs_input_grad[:7]
        if grad_out is None:
            return (None,) * 11
        if torch.is_grad_enabled() or _is_batched(grad_out):
            # create_graph=True, or vmapped grads (is_grads_batched): the kernel cannot do these, so the
            # gradient goes through the reference ops on the saved inputs (differentiable, vmap-able).
            wanted = [t for t, n in zip(params, needs) if n]
            with torch.enable_grad():
                out, _, _ = reference_two_layer_cnn(*params, training=ctx.training, running_mean=rm,
                                                    running_var=rv, eps=ctx.eps)
            got = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=torch.is_grad_enabled(),
                                           allow_unused=True))
            grads = [next(got) if n else None for n in needs]
            return (*grads, None, None, None, None)
        grads = _state["ext"].backward(grad_out.contiguous(), u, w1, b1, gamma, beta, w2, b2, mean, invstd,
                                       ctx.training)
        return (*[g if n else None for g, n in zip(grads, needs)], None, None, None, None)


_MAX_COMPILED_KERNEL = 7


def _compiled_applicable(tensors) -> bool:
    dtype = tensors[0].dtype
    return tensors[1].shape[2] <= _MAX_COMPILED_KERNEL and dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.dtype == dtype for t in tensors)


def two_layer_cnn(u, w1, b1, gamma, beta, w2, b2, *, training: bool, running_mean=None, running_var=None,
                  eps: float = 1e-5, backend: str = "auto") -> tuple[Tensor, Tensor | None, Tensor | None]:
    """u: (K, B, N); w1: (K, C, k); b1, gamma, beta: (K, C); w2: (K, C, k); b2: (K,).

    Returns (out (K, B, N), batch_mean (K, C), batch_var_unbiased (K, C)) in training mode (the caller
    updates running stats: it may have gathered a subset of seeds), and (out, None, None) in eval mode, which
    uses running_mean/running_var (K, C). Differentiable w.r.t. u and all parameters (autograd.Function).
    backend: "auto" (compiled if available, else reference), "compiled", "reference".
    """
    if backend not in ("auto", "compiled", "reference"):
        raise ValueError(f"backend must be 'auto', 'compiled' or 'reference', got {backend!r}")
    K, B, N = u.shape
    C, ks = w1.shape[1], w1.shape[2]
    if ks % 2 == 0:
        raise ValueError("fused_cnn: odd kernel sizes only (padding k // 2 keeps the length)")
    for name, t, shape in (("w1", w1, (K, C, ks)), ("b1", b1, (K, C)), ("gamma", gamma, (K, C)),
                           ("beta", beta, (K, C)), ("w2", w2, (K, C, ks)), ("b2", b2, (K,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"fused_cnn: {name} has shape {tuple(t.shape)}, expected {shape}")
    if training and B * N <= 1:
        raise ValueError("Expected more than 1 value per channel when training")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("eval mode needs running_mean and running_var")
        if tuple(running_mean.shape) != (K, C) or tuple(running_var.shape) != (K, C):
            raise ValueError(f"fused_cnn: running stats must have shape {(K, C)}")
        running_mean, running_var = running_mean.detach(), running_var.detach()
    if backend == "reference":
        return reference_two_layer_cnn(u, w1, b1, gamma, beta, w2, b2, training=training, running_mean=running_mean,
                                       running_var=running_var, eps=eps)
    args = [t.contiguous() for t in (u, w1, b1, gamma, beta, w2, b2)]
    if training:
        stats = [args[0].new_empty(0), args[0].new_empty(0)]
    else:
        stats = [running_mean.contiguous(), running_var.contiguous()]
    usable = _compiled_applicable(args + stats) and _load() is not None
    if not usable:
        if backend == "compiled":
            why = unavailable_reason() or "needs CPU float32/float64 tensors of one dtype and kernel size <= 7"
            raise RuntimeError(f"fused_cnn compiled backend unavailable: {why}")
        return reference_two_layer_cnn(u, w1, b1, gamma, beta, w2, b2, training=training, running_mean=running_mean,
                                       running_var=running_var, eps=eps)
    out, mean, var_u = _FusedTwoLayerCNN.apply(*args, *stats, bool(training), float(eps))
    if training:
        return out, mean, var_u
    return out, None, None
