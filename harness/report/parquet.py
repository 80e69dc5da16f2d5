"""``trials.parquet``: the study's merged trials as one typed, columnar file (docs/results_format.md).

Why beside ``trials.jsonl``: the JSONL is the crash-safe log a study appends to (one fsync'ed line
per trial, shard files beside it), but its fields vary between records, so tools that infer a
schema from the first rows (polars without ``infer_schema_length=None``) misread it, and every
reader has to merge the shard files itself. The report rewrites ``trials.parquet`` from the same
merged view (``TrialStore.records``: all store files, the last record per trial id, failed trials
with their reason), atomically, so DuckDB (``SELECT ... FROM 'trials.parquet'``) and polars
(``pl.read_parquet``) read it directly.

The schema, deliberately (docs/results_format.md lists it):

* scalar fields are typed columns (``SCALAR_COLUMNS``), so rows, methods, seeds, status and the
  scores filter without any JSON;
* ``DERIVED_COLUMNS`` are what ``TrialStore.dataframe`` derives (``spec.derived_fields``: the row's
  ``variant`` text, the diagnostics from ``extra``) so queries can group rows exactly as the report does;
* flat dicts of scalars (``STRUCT_COLUMNS``: the metric dicts and ``provenance``) are struct
  columns with one field per key seen in the study (provenance: always its known fields); a key
  a record lacks reads as null;
* free-form nested fields (``JSON_COLUMNS``: overrides, options, genotype, alphas, extra) are JSON
  text: their shapes differ between spaces and methods (a genotype is a list or a dict), which no
  one struct type holds across studies; DuckDB's ``->>`` and polars' ``str.json_path_match`` read them;
* any other top-level field is a typed column when its values are scalars of one kind, else JSON.

No value is ever dropped: one that does not fit its column's type (a malformed or newer record)
turns that column or struct field into JSON text. Every JSON text column or struct field carries
the field metadata ``encoding: json``, which
``read_trials_parquet`` uses to give back the records (tests/test_parquet.py: parquet equals JSONL).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.atomic import atomic_writer
from harness.runner.spec import derived_fields, is_number
from harness.runner.store import TrialStore

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_FILE = "trials.parquet"
PARQUET_EXTRA = "parquet"  # the optional dependency's extra: pip install 'das-harness[parquet]' (pyarrow)
FORMAT_VERSION = "1"

STRING, INT, FLOAT, BOOL = "string", "int64", "float64", "bool"
SCALAR_COLUMNS: dict[str, str] = {
    "trial_id": STRING, "dataset": STRING, "space": STRING, "op_set": STRING, "method": STRING,
    "hp_set": STRING, "epochs": INT, "seed": INT, "status": STRING, "failure_reason": STRING,
    "metric": STRING, "oneshot_score": FLOAT, "arch_score": FLOAT, "runtime_s": FLOAT,
    "search_runtime_s": FLOAT, "retrain_runtime_s": FLOAT, "n_param_free_ops": INT, "finished_at": STRING,
}
DERIVED_COLUMNS: dict[str, str] = {"variant": STRING, "hessian_eigenvalue": FLOAT, "epochs_run": INT}
STRUCT_COLUMNS = ("oneshot_metrics", "arch_metrics", "provenance")
# Provenance's fields (harness.runner.provenance.trial_provenance) are always in the struct, so
# ``provenance.engine`` also works on a study whose records predate provenance (it is null there).
PROVENANCE_FIELDS: dict[str, str] = {
    "host": STRING, "cpu": STRING, "cpu_capability": STRING, "harness": STRING, "torch": STRING, "numpy": STRING,
    "python": STRING, "commit": STRING,
    "dirty": BOOL, "device": STRING, "device_name": STRING, "threads": INT, "engine": STRING, "batch_trials": INT,
}
JSON_COLUMNS = ("overrides", "options", "genotype", "final_alphas", "alpha_history", "extra")
JSON_META = {b"encoding": b"json"}

__all__ = ["PARQUET_EXTRA", "PARQUET_FILE", "parquet_available", "read_trials_parquet", "say_skipped_once",
           "skip_message", "trials_table", "write_trials_parquet"]


def parquet_available() -> bool:
    """Whether pyarrow (the optional dependency that writes parquet) is importable."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def skip_message() -> str:
    return (f"{PARQUET_FILE} skipped: pyarrow is not installed "
            f"(pip install 'das-harness[{PARQUET_EXTRA}]', or pip install pyarrow)")


_said: list[bool] = []


def say_skipped_once() -> None:
    """Tell stderr once per process that the parquet file was skipped (each report's notes say it too)."""
    if not _said:
        _said.append(True)
        print(f"note: {skip_message()}", file=sys.stderr)


def write_trials_parquet(store: TrialStore | str | os.PathLike, path: str | os.PathLike | None = None) -> Path | None:
    """Write the store's merged records as ``trials.parquet`` (atomically); None without pyarrow."""
    if not parquet_available():
        return None
    import pyarrow.parquet as pq

    store = store if isinstance(store, TrialStore) else TrialStore(store)
    table = trials_table(store.records())
    target = Path(path) if path else store.folder / PARQUET_FILE
    with atomic_writer(target) as handle:
        pq.write_table(table, handle, compression="zstd")
    return target


def trials_table(records: list[dict]) -> pa.Table:
    """The records as an Arrow table with the schema described in the module docstring."""
    import pyarrow as pa

    derived = [derived_fields(r) for r in records]
    seen = {k for r in records for k in r}
    others = sorted(seen - set(SCALAR_COLUMNS) - set(STRUCT_COLUMNS) - set(JSON_COLUMNS) - set(DERIVED_COLUMNS))
    arrays, fields = [], []

    def add(result: tuple[pa.Array, pa.Field]) -> None:
        arrays.append(result[0])
        fields.append(result[1])

    for name, kind in SCALAR_COLUMNS.items():
        add(_typed(name, [r.get(name) for r in records], kind))
    for name, kind in DERIVED_COLUMNS.items():
        add(_typed(name, [d[name] for d in derived], kind))
    for name in STRUCT_COLUMNS:
        add(_struct(name, [r.get(name) for r in records], PROVENANCE_FIELDS if name == "provenance" else {}))
    for name in JSON_COLUMNS:
        add(_json(name, [r.get(name) for r in records]))
    for name in others:  # a field this module does not know yet (a newer record format)
        values = [r.get(name) for r in records]
        add(_typed(name, values, _scalar_kind(values)))
    metadata = {"harness.format": FORMAT_VERSION, "harness.derived_columns": ",".join(DERIVED_COLUMNS)}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def read_trials_parquet(path: str | os.PathLike) -> list[dict]:
    """The records back from ``trials.parquet`` (derived columns dropped, JSON decoded, null struct
    fields left out): what the file says, for checks and for readers that want dicts."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    derived = set(DERIVED_COLUMNS)
    names = [f.name for f in table.schema if f.name not in derived]
    records = [{} for _ in range(table.num_rows)]
    for name in names:
        field = table.schema.field(name)
        for record, value in zip(records, _decode(field, table.column(name).to_pylist())):
            record[name] = value
    return records


def _scalar_kind(values: list) -> str | None:
    """The one Arrow type that holds every non-null value exactly, or None (then JSON text)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return BOOL
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return INT
    if all(is_number(v) for v in present):
        return FLOAT
    if all(isinstance(v, str) for v in present):
        return STRING
    return None


def _typed(name: str, values: list, kind: str | None) -> tuple[pa.Array, pa.Field]:
    """A typed column; JSON text when a value does not fit ``kind`` (never fails the report)."""
    import pyarrow as pa

    if kind is None and not any(v is not None for v in values):
        return pa.nulls(len(values)), pa.field(name, pa.null())
    found = _scalar_kind(values)
    mixed = found is None and any(v is not None for v in values)
    if kind is not None and not mixed and found in (kind, None, *((INT,) if kind == FLOAT else ())):
        arrow_type = {STRING: pa.string(), INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_()}[kind]
        cast = [float(v) if kind == FLOAT and v is not None else v for v in values]
        try:
            return pa.array(cast, type=arrow_type), pa.field(name, arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    return _json(name, values)


def _json(name: str, values: list) -> tuple[pa.Array, pa.Field]:
    import pyarrow as pa

    text = [None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":")) for v in values]
    return pa.array(text, type=pa.string()), pa.field(name, pa.string(), metadata=JSON_META)


def _struct(name: str, values: list, fixed: dict[str, str]) -> tuple[pa.Array, pa.Field]:
    """One struct field per key of ``fixed`` and of the study's dicts; a null or missing dict is a
    null struct. JSON text instead when there is no key at all (a metric dict of a study in which
    no trial finished: Parquet has no struct without fields) or a value is not a dict."""
    import pyarrow as pa

    keys = sorted(set(fixed) | {k for v in values if isinstance(v, dict) for k in v})
    if not keys or any(v is not None and not isinstance(v, dict) for v in values):
        return _json(name, values)
    children = []
    for k in keys:
        column = [v.get(k) if v else None for v in values]
        children.append(_typed(k, column, fixed.get(k) or _scalar_kind(column)))
    mask = pa.array([v is None for v in values], type=pa.bool_())
    array = pa.StructArray.from_arrays([c[0] for c in children], fields=[c[1] for c in children], mask=mask)
    return array, pa.field(name, array.type)


def _decode(field: pa.Field, values: list) -> list:
    """Undo ``_json`` (a column or struct field with ``encoding: json``) and drop null struct fields."""
    import pyarrow as pa

    if (field.metadata or {}).get(b"encoding") == b"json":
        return [None if v is None else json.loads(v) for v in values]
    if pa.types.is_struct(field.type):
        subs = {f.name: _decode(f, [None if v is None else v[f.name] for v in values]) for f in field.type}
        return [None if v is None else {k: subs[k][i] for k in subs if subs[k][i] is not None}
                for i, v in enumerate(values)]
    return values
