"""What a row and a trial are (``RowSpec``, ``TrialSpec``) and what a trial records (``TrialResult``).

A row is (problem, space, op set, method, hyperparameter set, epochs, overrides, options); a
trial is a row plus a seed. Specs are hashable and a trial has a stable ``trial_id`` so the
store can tell which trials of a study are already done.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STATUS_OK = "ok"
STATUS_FAILED = "failed"

# Columns every trials table has, in this order (see harness.runner.store).
# Per-trial search diagnostics kept in ``extra`` and promoted to columns for the reports.
DIAGNOSTIC_COLUMNS = ("hessian_eigenvalue", "epochs_run")

TRIAL_COLUMNS = [
    "trial_id",
    "dataset",
    "space",
    "op_set",
    "method",
    "hp_set",
    "seed",
    "epochs",
    "status",
    "failure_reason",
    "metric",
    "oneshot_score",
    "arch_score",
    "runtime_s",
    "search_runtime_s",
    "retrain_runtime_s",
    "genotype",
    "n_param_free_ops",
    *DIAGNOSTIC_COLUMNS,
    "overrides",
    "variant",
    "finished_at",
]


def _freeze(value: Any) -> Any:
    """Turn dicts/lists into sorted tuples so specs stay hashable."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {k: _thaw(v) for k, v in value}
    return value


@dataclass(frozen=True, kw_only=True)
class RowSpec:
    """A row of a study: everything that determines a trial's result except its seed.

    The one definition of a row's identity: the study parser expands rows into these, the
    runner batches trials by them, the tuner builds its trials from one, and the statistics
    group by it (``variant`` is the readable text of the overrides and options). Two rows that
    differ in any field, including overrides, options or epochs, are never pooled.
    """

    dataset: str
    space: str
    op_set: str
    method: str
    hp_set: str
    epochs: int = 50
    # Hyperparameter overrides on top of ``hp_set`` (e.g. from BOHB) and options of the
    # problem / space / method; stored frozen so the spec stays hashable.
    hp_overrides: tuple = field(default=())
    options: tuple = field(default=())

    @classmethod
    def make(cls, *, hp_overrides: dict | None = None, options: dict | None = None, **fields: Any):
        return cls(hp_overrides=_freeze(hp_overrides or {}), options=_freeze(options or {}), **fields)

    @property
    def hp_overrides_dict(self) -> dict:
        return _thaw(self.hp_overrides) if self.hp_overrides else {}

    @property
    def options_dict(self) -> dict:
        return _thaw(self.options) if self.options else {}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hp_overrides"] = self.hp_overrides_dict
        d["options"] = self.options_dict
        return d

    @property
    def row(self) -> RowSpec:
        return RowSpec(**{f: getattr(self, f) for f in ROW_FIELDS})

    def trial(self, seed: int) -> TrialSpec:
        return TrialSpec(seed=int(seed), **{f: getattr(self, f) for f in ROW_FIELDS})

    @property
    def variant(self) -> str:
        return variant_label(self.hp_overrides_dict, self.options_dict)

    @property
    def label(self) -> str:
        """``dataset/space/op_set/method/hp_set``, plus epochs and the variant where set."""
        text = f"{self.dataset}/{self.space}/{self.op_set}/{self.method}/{self.hp_set}, {self.epochs} epochs"
        return text if self.variant == NO_VARIANT else f"{text}, {self.variant}"

    @classmethod
    def from_record(cls, record: dict) -> RowSpec:
        """The row of a stored trial record (which names the overrides ``overrides``)."""
        return cls.make(
            **{f: record.get(f) for f in ROW_FIELDS if f not in ("hp_overrides", "options")},
            hp_overrides=record.get("overrides") or {},
            options=record.get("options") or {},
        )


ROW_FIELDS = tuple(f.name for f in fields(RowSpec))
NO_VARIANT = "-"


def derived_fields(record: dict) -> dict[str, Any]:
    """The columns every trials table derives from a record: the row's ``variant`` text (statistics
    group by it) and ``extra``'s diagnostics (``DIAGNOSTIC_COLUMNS``; a value that is not a number,
    or is a bool, reads as None). ``TrialStore.dataframe`` and ``trials.parquet`` both use it."""
    extra = record.get("extra") if isinstance(record.get("extra"), dict) else {}
    out: dict[str, Any] = {"variant": RowSpec.from_record(record).variant}
    for col in DIAGNOSTIC_COLUMNS:
        value = extra.get(col)
        out[col] = value if is_number(value) else None
    return out


def is_number(value: Any) -> bool:
    """An int or float JSON value (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def setting_items(hp_overrides: dict, options: dict) -> list[tuple[str, object]]:
    """A row's overrides and options as ``[("param_lr", 0.1), ("problem.noise_std", 0.2)]``, in
    label order: overrides, then option groups, each sorted by name."""
    items = [(k, v) for k, v in sorted(hp_overrides.items())]
    for group, values in sorted(options.items()):
        items.extend((f"{group}.{k}", v) for k, v in sorted((values or {}).items()))
    return items


def setting_text(value) -> str:
    """A setting's value as a label prints it (JSON, strings bare)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def items_label(items: list[tuple[str, object]]) -> str:
    """``k=v, ...`` of ``setting_items`` (or a part of them); ``-`` for none."""
    return ", ".join(f"{k}={setting_text(v)}" for k, v in items) if items else NO_VARIANT


def variant_label(hp_overrides: dict, options: dict) -> str:
    """Exact, readable text of a row's overrides and options: ``param_lr=0.1, problem.noise_std=0.2``
    (``-`` for none). Values print as JSON, so 0.1 and 0.10000001 never share a label."""
    return items_label(setting_items(hp_overrides, options))


@dataclass(frozen=True, kw_only=True)
class TrialSpec(RowSpec):
    """A row plus a seed: everything that determines a trial's result (on a given machine)."""

    seed: int

    @property
    def trial_id(self) -> str:
        """A hash of the typed values (the study parser types every value once, so ``1e-2`` and
        ``0.01`` in a study file give the same id). A field added after the first stored studies
        is left out while it is at its default, so adding one never orphans stored trials."""
        payload = self.to_dict()
        for f in fields(self):
            if f.name not in ORIGINAL_ID_FIELDS and getattr(self, f.name) == f.default:
                payload.pop(f.name)
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


# The fields of the first stored studies: always in the id. Any later field joins the id only
# when a row sets it away from its default (tests/test_row_identity.py).
ORIGINAL_ID_FIELDS = frozenset(
    {"dataset", "space", "op_set", "method", "hp_set", "epochs", "hp_overrides", "options", "seed"}
)


@dataclass
class TrialResult:
    """The record of one finished (or failed) trial; one line of the trial store."""

    spec: TrialSpec
    status: str
    metric: str = "psnr"
    oneshot_score: float = math.nan
    arch_score: float = math.nan
    runtime_s: float = math.nan
    search_runtime_s: float = math.nan
    retrain_runtime_s: float = math.nan
    failure_reason: str = ""
    genotype: list | None = None
    n_param_free_ops: int | None = None
    final_alphas: list | None = None
    alpha_history: list | None = None
    extra: dict = field(default_factory=dict)
    # Every metric of the task by name (``metric`` is the primary one, whose values are the scores).
    oneshot_metrics: dict = field(default_factory=dict)
    arch_metrics: dict = field(default_factory=dict)
    # Where and how the trial ran, measured in the worker (harness.runner.provenance); records
    # stored before it have no "provenance" key, so readers use ``record_provenance``.
    provenance: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        record = {"trial_id": self.spec.trial_id, **self.spec.to_dict()}
        record.pop("hp_overrides")
        record["overrides"] = self.spec.hp_overrides_dict
        record["options"] = self.spec.options_dict
        record.update(
            status=self.status,
            failure_reason=self.failure_reason,
            metric=self.metric,
            oneshot_score=_finite_or_none(self.oneshot_score),
            arch_score=_finite_or_none(self.arch_score),
            runtime_s=_finite_or_none(self.runtime_s),
            search_runtime_s=_finite_or_none(self.search_runtime_s),
            retrain_runtime_s=_finite_or_none(self.retrain_runtime_s),
            genotype=self.genotype,
            n_param_free_ops=self.n_param_free_ops,
            final_alphas=self.final_alphas,
            alpha_history=self.alpha_history,
            extra=self.extra,
            oneshot_metrics=self.oneshot_metrics,
            arch_metrics=self.arch_metrics,
            provenance=self.provenance,
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        return _json_safe(record)


def _json_safe(value: Any) -> Any:
    """Non-finite floats anywhere in a record (e.g. a diverged candidate's score) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _finite_or_none(x: float) -> float | None:
    """JSON has no NaN; a missing or non-finite score is stored as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
