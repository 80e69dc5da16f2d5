"""trials.parquet (harness.report.parquet): parquet equals JSONL, and DuckDB / polars read it directly."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.report import parquet as pq_mod
from harness.report import write_report
from harness.runner.executor import run_specs
from harness.runner.provenance import trial_provenance
from harness.runner.spec import TrialResult, TrialSpec
from harness.runner.store import TrialStore
from harness.stats.synthetic import synthetic_records

FAST = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 4}}
CELL_GENOTYPE = {"normal": [["sep_conv_3x3", 0], ["skip_connect", 1]], "normal_concat": [2, 3],
                 "reduce": [["max_pool_3x3", 0], ["dil_conv_5x5", 1]], "reduce_concat": [2, 3]}


def _spec(method: str, seed: int, options: dict | None = None) -> TrialSpec:
    return TrialSpec.make(dataset="blur", space="sequential", op_set="all", method=method, hp_set="H1",
                          seed=seed, epochs=2, options=FAST if options is None else options)


def _shard_records() -> tuple[list[dict], list[dict]]:
    """Records in the store's real format (``TrialResult.to_record``) with every nested shape: a cell
    genotype dict, overrides, metric dicts with a null, candidates in ``extra``, a failed trial."""
    prov = trial_provenance("cpu", 2)
    ok = TrialResult(
        spec=TrialSpec.make(dataset="cifar10", space="darts_cell", op_set="darts", method="darts", hp_set="H1",
                            seed=3, epochs=1, hp_overrides={"param_lr": 0.05, "alpha_warmup": True},
                            options={"space": {"layers": 2}}),
        status="ok", metric="accuracy", oneshot_score=61.5, arch_score=70.25, runtime_s=9.0,
        genotype=CELL_GENOTYPE, n_param_free_ops=1, final_alphas=[[0.1, -0.2]],
        extra={"candidates": [{"score": 1.5}, {"score": None}], "epochs_run": 1, "hessian_eigenvalue": 0.3},
        oneshot_metrics={"accuracy": 61.5, "inherited_accuracy": None},
        arch_metrics={"accuracy": 70.25, "params_m": 1.2, "flops_m": 3},
        provenance=prov,
    ).to_record()
    failed = TrialResult(spec=_spec("random-search", 7), status="failed", failure_reason="exception: out of memory",
                         provenance=prov).to_record()
    synthetic = synthetic_records(datasets=("downsampling",), methods=("das", "random"), n_seeds=3, seed=2)
    return [ok, failed, *synthetic[:4]], synthetic[4:]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Real trials (two finished, one failed) in trials.jsonl, more records in two shard files, and a
    trial that failed in trials.jsonl but finished in a shard (the finished record must win)."""
    folder = tmp_path_factory.mktemp("pq") / "study"
    main = TrialStore(folder)
    bad = {"problem": {"no_such_option": 1}}
    run_specs([_spec("das", 0), _spec("random", 1), _spec("random", 2, bad)], workers=1, store=main, progress=False)
    first, second = _shard_records()
    retried = dict(first[2], status="failed", failure_reason="synthetic crash", arch_score=None)
    main.append_record(retried)
    for record in first:
        TrialStore(folder, shard=(1, 2)).append_record(record)
    for record in second:
        TrialStore(folder, shard=(2, 2)).append_record(record)
    return folder


@pytest.fixture(scope="module")
def jsonl_records(study) -> list[dict]:
    """The merged JSONL view, checked against the raw files: every trial id of every file is in it."""
    records = TrialStore(study).records()
    raw_ids = {json.loads(line)["trial_id"] for f in TrialStore(study).files() for line in f.read_text().splitlines()}
    assert {r["trial_id"] for r in records} == raw_ids and len(TrialStore(study).files()) == 3
    return records


@pytest.fixture(scope="module")
def parquet_file(study) -> Path:
    pytest.importorskip("pyarrow")
    written = write_report(study, n_boot=20, alpha_trials=0)
    assert written[pq_mod.PARQUET_FILE] == study / pq_mod.PARQUET_FILE
    return written[pq_mod.PARQUET_FILE]


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _same(a, b) -> bool:
    """Equal, with NaN == None (pandas reads a null double or string as NaN)."""
    return (_missing(a) and _missing(b)) or a == b


def _no_nulls(value):
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value


def test_parquet_equals_jsonl_field_by_field(parquet_file, jsonl_records):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    schema = pq.read_schema(parquet_file)
    rows = pd.read_parquet(parquet_file).to_dict("records")
    assert [r["trial_id"] for r in rows] == [r["trial_id"] for r in jsonl_records]
    for record, row in zip(jsonl_records, rows):
        assert set(record) <= set(row), set(record) - set(row)
        for name, value in record.items():
            field = schema.field(name)
            got = row[name]
            if (field.metadata or {}).get(b"encoding") == b"json":
                got = None if _missing(got) else json.loads(got)
            elif pa.types.is_struct(field.type):  # a key a record lacks reads as null
                got, value = _no_nulls(got), _no_nulls(value)
            assert _same(got, value), (record["trial_id"], name, got, value)
    for name, kind in pq_mod.SCALAR_COLUMNS.items():  # the filter columns are typed, not JSON
        assert str(schema.field(name).type) == {"string": "string", "int64": "int64", "float64": "double"}[kind]


def test_failed_rows_keep_their_reason_and_the_finished_record_wins(parquet_file, jsonl_records):
    table = pd.read_parquet(parquet_file, columns=["trial_id", "status", "failure_reason", "arch_score"])
    failed = table[table["status"] == "failed"].set_index("trial_id")["failure_reason"].to_dict()
    expected = {r["trial_id"]: r["failure_reason"] for r in jsonl_records if r["status"] == "failed"}
    assert failed == expected and len(failed) >= 3
    assert "exception: out of memory" in failed.values() and any("no_such_option" in v for v in failed.values())
    assert "synthetic crash" not in failed.values()  # failed in trials.jsonl, finished in a shard


def test_read_back_gives_the_records(parquet_file, jsonl_records):
    back = pq_mod.read_trials_parquet(parquet_file)
    for record, got in zip(jsonl_records, back, strict=True):
        assert {k: _no_nulls(v) if k in pq_mod.STRUCT_COLUMNS else v for k, v in record.items()} == {
            k: v for k, v in got.items() if k in record or v is not None}


def test_derived_columns_match_the_report_dataframe(parquet_file, study):
    df = TrialStore(study).dataframe()
    table = pd.read_parquet(parquet_file, columns=list(pq_mod.DERIVED_COLUMNS))
    assert list(table["variant"]) == list(df["variant"])
    for col in ("hessian_eigenvalue", "epochs_run"):
        assert all(_same(a, b) for a, b in zip(table[col].astype(float), df[col].astype(float)))


def test_values_that_fit_no_type_become_json_and_round_trip(tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    record = TrialResult(spec=_spec("das", 0), status="ok", arch_score=1.0,
                         arch_metrics={"psnr": "n/a"}).to_record()
    other = {"trial_id": "x", "epochs": "fifty", "budget": 3, "notes": [1, "a"], "arch_metrics": {"psnr": 1.5}}
    records = [record, {**record, **other}]  # mixed kinds in epochs, notes and arch_metrics.psnr
    table = pq_mod.trials_table(records)
    assert table.schema.field("epochs").metadata == pq_mod.JSON_META
    assert table.schema.field("budget").type == pa.int64() and table.schema.field("notes").metadata == pq_mod.JSON_META
    assert table.schema.field("arch_metrics").type.field("psnr").metadata == pq_mod.JSON_META
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    back = pq_mod.read_trials_parquet(path)
    assert [{k: v for k, v in b.items() if k in r} for r, b in zip(records, back)] == records


def test_provenance_struct_knows_every_field_the_runner_measures():
    pytest.importorskip("pyarrow")
    prov = trial_provenance("cpu", 1)
    assert set(prov) <= set(pq_mod.PROVENANCE_FIELDS)
    table = pq_mod.trials_table([{"trial_id": "a", "provenance": prov}, {"trial_id": "b"}])
    assert table.column("provenance").to_pylist()[1] is None
    assert all(f.metadata is None for f in table.schema.field("provenance").type)  # typed, none fell back to JSON


def _pandas_summary(records: list[dict]) -> dict[str, tuple[int, float]]:
    df = pd.DataFrame(records)
    ok = df[(df["status"] == "ok") & (df["seed"] <= 2)]
    return {m: (len(g), float(g["arch_score"].median())) for m, g in ok.groupby("method")}


def test_duckdb_reads_it_directly(parquet_file, jsonl_records):
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"SELECT method, count(*), median(arch_score) FROM '{parquet_file}' "
        "WHERE status = 'ok' AND seed <= 2 GROUP BY method"
    ).fetchall()
    got = {m: (n, med) for m, n, med in rows}
    expected = _pandas_summary(jsonl_records)
    assert got.keys() == expected.keys()
    for method, (n, med) in expected.items():
        assert got[method][0] == n and got[method][1] == pytest.approx(med)
    darts = duckdb.sql(
        f"SELECT arch_metrics.accuracy, provenance.engine, overrides->>'param_lr', genotype->'normal'->0->>0 "
        f"FROM '{parquet_file}' WHERE method = 'darts'"
    ).fetchall()
    assert darts == [(70.25, "trial-axis", "0.05", "sep_conv_3x3")]
    failed = duckdb.sql(f"SELECT count(*) FROM '{parquet_file}' WHERE status = 'failed'").fetchall()[0][0]
    assert failed == sum(r["status"] == "failed" for r in jsonl_records)


def test_polars_reads_it_directly(parquet_file, jsonl_records):
    pl = pytest.importorskip("polars")
    df = pl.read_parquet(parquet_file)
    ok = df.filter((pl.col("status") == "ok") & (pl.col("seed") <= 2))
    got = {r["method"]: (r["n"], r["median"]) for r in ok.group_by("method").agg(
        pl.len().alias("n"), pl.col("arch_score").median().alias("median")).to_dicts()}
    expected = _pandas_summary(jsonl_records)
    assert got.keys() == expected.keys()
    for method, (n, med) in expected.items():
        assert got[method][0] == n and got[method][1] == pytest.approx(med)
    darts = df.filter(pl.col("method") == "darts").select(
        pl.col("arch_metrics").struct.field("accuracy"), pl.col("overrides").str.json_path_match("$.param_lr"))
    assert darts.rows() == [(70.25, "0.05")]


def test_report_without_pyarrow_skips_the_file_and_says_so_once(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "study"
    store = TrialStore(folder)
    for record in synthetic_records(datasets=("blur",), methods=("das",), n_seeds=3):
        store.append_record(record)
    with monkeypatch.context() as blocked:  # import pyarrow raises ImportError (not for long: pandas uses it)
        blocked.setitem(sys.modules, "pyarrow", None)
        blocked.setitem(sys.modules, "pyarrow.parquet", None)
        assert not pq_mod.parquet_available()
    monkeypatch.setattr(pq_mod, "parquet_available", lambda: False)
    monkeypatch.setattr(pq_mod, "_said", [])
    for _ in range(2):
        written = write_report(folder, n_boot=10, alpha_trials=0)
    assert pq_mod.PARQUET_FILE not in written and not (folder / pq_mod.PARQUET_FILE).exists()
    assert capsys.readouterr().err.count("trials.parquet skipped") == 1
    assert "pip install 'das-harness[parquet]'" in (folder / "summary.md").read_text()
