"""Fixes that let hpbandster 0.7.4 run with ConfigSpace 1.x and numpy 2.

hpbandster is unmaintained; with current ConfigSpace and numpy it *hangs forever without an
error* in three ways, each fixed here (import this module in the master and in every worker,
before anything is sent over Pyro4):

1. ConfigSpace 1.x returns ``np.str_`` / ``np.bool_`` values. Pyro4's serpent serializer
   cannot send them, the dispatcher thread dies, and the master waits forever.
   Fix: serpent sends any ``np.generic`` as its ``.item()`` (a builtin).
2. numpy 2 prints ``np.float64(1.0)``; serpent writes floats with ``repr``, so a numpy budget
   arrives at the worker as the text ``np.float64(1.0)``, which ``ast.literal_eval`` rejects
   (visible only with ``PYRO_LOGLEVEL=DEBUG``). Fix 1 covers it; ``builtin_budgets`` also makes
   the optimizer's budgets builtin floats so no numpy scalar is sent in the first place.
3. ``json_result_logger`` cannot write ``np.bool_``. Fix: ``NumpyJsonResultLogger`` writes with a
   numpy-aware JSON default.

Workers must still return only builtin types (``to_builtin`` helps; it also turns subclasses of
str/int/float, such as ``torch.__version__`` in a trial record's provenance, into the builtin:
serpent would send them as a class the dispatcher rejects, and the master would wait forever).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np

try:
    import serpent
except ImportError:  # only hpbandster's Pyro4 needs it; the smac and optuna backends run without
    serpent = None

# hpbandster calls ConfigSpace methods that 1.x deprecates; the warnings are noise to users.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"hpbandster(\.|$)")
# statsmodels' KDE (used by BOHB with a deterministic bandwidth rule) warns about a future default
# random generator it does not use here, and divides by zero for a categorical with one level in
# the good points (BOHB then falls back to a random configuration, by design).
warnings.filterwarnings("ignore", message="After 0.17 or January 2028", category=FutureWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"statsmodels\.nonparametric")


def _serialize_numpy_scalar(obj: np.generic, serializer: serpent.Serializer, out: list, level: int) -> None:
    serializer._serialize(obj.item(), out, level)


def install() -> None:
    """Register the serpent fix (idempotent; runs on import; nothing to fix without serpent)."""
    if serpent is None:
        return
    serpent.register_class(np.generic, _serialize_numpy_scalar)


def to_builtin(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into builtin JSON/Pyro-safe types."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if type(value) not in (bool, str, int, float):
        # subclasses, e.g. torch.__version__ (a str) or an IntEnum: serpent sends them as dicts of
        # their class, which the receiving side rejects, and the master would wait forever
        for kind in (str, int, float):
            if isinstance(value, kind):
                return kind(value)
    return value


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` hook for numpy values."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return to_builtin(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """JSON text of ``obj``; numpy values as builtins, non-finite floats as null."""
    return json.dumps(json_safe(obj), default=json_default, allow_nan=False)


def json_safe(value: Any) -> Any:
    """``value`` as builtin types with non-finite floats as ``None`` (strict JSON has no NaN)."""
    return _finite(to_builtin(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def builtin_budgets(optimizer: Any) -> None:
    """Make a hyperband-style optimizer's budgets builtin floats (numpy 2 prints them as np.float64)."""
    optimizer.budgets = [float(b) for b in optimizer.budgets]
    if "budgets" in optimizer.config:
        optimizer.config["budgets"] = list(optimizer.budgets)


def _make_logger_class():
    from hpbandster.core.result import json_result_logger

    class NumpyJsonResultLogger(json_result_logger):
        """hpbandster's live logger (configs.json, results.json), writing numpy values as builtins."""

        def config_line(self, config_id, config, config_info) -> list:
            return [config_id, config, config_info]

        def result_line(self, job) -> list:
            return [job.id, job.kwargs["budget"], job.timestamps, job.result, job.exception]

        def new_config(self, config_id, config, config_info) -> None:
            if config_id not in self.config_ids:
                self.config_ids.add(config_id)
                with open(self.config_fn, "a") as fh:
                    fh.write(dumps(self.config_line(config_id, config, config_info)) + "\n")

        def __call__(self, job) -> None:
            self.new_config(job.id, job.kwargs["config"], {})
            with open(self.results_fn, "a") as fh:
                fh.write(dumps(self.result_line(job)) + "\n")

    return NumpyJsonResultLogger


def __getattr__(name: str):
    # Lazy so that importing the serpent fix does not import hpbandster (and statsmodels).
    if name == "NumpyJsonResultLogger":
        cls = _make_logger_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


install()
