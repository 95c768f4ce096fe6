"""The engines agree: ingest on DuckDB and on Spark writes the same lake, cell for cell.

Every bronze and quarantine table (rule and reason included) is compared row for row, as a
multiset; the only difference allowed is the lake's own folder inside ``file_path``. The run
manifests' counts (reconciliation, per-table counts, rules, the gate) must be equal too.
"""
from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import consent, fuse, ingest
from mydata import storage
from mydata.config import Settings
from tests.jobs.test_real_deliveries import CARD_ORG, LK, LK2, bills, deliver, register

ZONES = ("bronze", "quarantine")
COUNTED = ("reconciliation", "tables", "quarantine_gate", "rule_examples")


def lake_tables(root: Path, zones: tuple[str, ...] = ZONES) -> dict[str, Path]:
    """zone/table -> folder, for every table either engine may write."""
    found = {}
    for zone in zones:
        for folder in sorted((root / zone).iterdir()) if (root / zone).is_dir() else []:
            if folder.is_dir() and not folder.name.startswith("_"):
                # tables shared by the MyData sources hold one table per source=
                parts = sorted(folder.glob("source=*")) or [folder]
                found.update({f"{zone}/{folder.name}/{p.name}" if p != folder else f"{zone}/{folder.name}": p
                              for p in parts})
    return found


def _scan(con: duckdb.DuckDBPyConnection, root: Path, folder: Path) -> str:
    globs = [str(folder / g) for g in storage.DATA_FILES if any(folder.glob(g))]
    assert globs, f"{folder} has no data"
    columns = [c for c, *_ in con.execute(f"DESCRIBE SELECT * FROM read_parquet({globs!r}, hive_partitioning = true)").fetchall()]
    shown = ", ".join(f"replace(file_path, 'file:{root}/', '') AS file_path" if c == "file_path" else f'"{c}"'
                      for c in sorted(columns))
    return f"(SELECT {shown} FROM read_parquet({globs!r}, hive_partitioning = true))"


def differences(a: Path, b: Path, zones: tuple[str, ...] = ZONES, rel_tol: float | None = None) -> list[str]:
    """Every way the lakes under ``a`` and ``b`` differ; empty when they are the same, cell for cell
    (with ``rel_tol``, doubles within it are the same: sums of doubles depend on their order)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    tables_a, tables_b = lake_tables(a, zones), lake_tables(b, zones)
    problems = [f"{name}: only in {'the first' if name in tables_a else 'the second'} lake"
                for name in sorted(set(tables_a) ^ set(tables_b))
                if storage.has_data(tables_a.get(name) or tables_b[name])]
    for name in sorted(set(tables_a) & set(tables_b)):
        if not (storage.has_data(tables_a[name]) or storage.has_data(tables_b[name])):
            continue
        scan_a, scan_b = _scan(con, a, tables_a[name]), _scan(con, b, tables_b[name])
        types_a = con.execute(f"DESCRIBE SELECT * FROM {scan_a}").fetchall()
        types_b = con.execute(f"DESCRIBE SELECT * FROM {scan_b}").fetchall()
        if [t[:2] for t in types_a] != [t[:2] for t in types_b]:
            problems.append(f"{name}: columns {[t[:2] for t in types_a]} != {[t[:2] for t in types_b]}")
            continue
        doubles = [i for i, t in enumerate(types_a) if t[1] == "DOUBLE"]
        if doubles and rel_tol:
            problems += _close(con, name, scan_a, scan_b, [t[0] for t in types_a], doubles, rel_tol)
            continue
        for first, second, which in ((scan_a, scan_b, "first"), (scan_b, scan_a, "second")):
            extra = con.execute(f"SELECT * FROM {first} EXCEPT ALL SELECT * FROM {second} LIMIT 3").fetchall()
            if extra:
                problems.append(f"{name}: rows only in the {which} lake, e.g. {extra}")
    return problems


def _close(con, name: str, scan_a: str, scan_b: str, columns: list[str], doubles: list[int],
           rel_tol: float) -> list[str]:
    """Rows paired in the same order (every column, doubles last), equal but for doubles within ``rel_tol``."""
    order = ", ".join(f'"{c}"' for i, c in enumerate(columns) if i not in doubles) + "".join(
        f', "{columns[i]}"' for i in doubles)
    rows_a, rows_b = (con.execute(f"SELECT * FROM {scan} ORDER BY {order}").fetchall() for scan in (scan_a, scan_b))
    if len(rows_a) != len(rows_b):
        return [f"{name}: {len(rows_a)} rows in the first lake, {len(rows_b)} in the second"]
    for row_a, row_b in zip(rows_a, rows_b):
        for i, (x, y) in enumerate(zip(row_a, row_b)):
            same = x == y or (i in doubles and x is not None and y is not None
                              and math.isclose(x, y, rel_tol=rel_tol, abs_tol=rel_tol))
            if not same:
                return [f"{name}: {columns[i]} differs: {x!r} in the first lake, {y!r} in the second (row {row_a[:3]}…)"]
    return []


def manifest_counts(result: dict) -> dict:
    manifest = json.loads(Path(result["manifest"]).read_text(encoding="utf-8"))
    return {"outputs": {k: manifest["outputs"][k] for k in COUNTED}, "quarantined": manifest["quarantined"],
            "records_read": manifest["inputs"]["records_read"]}


def ingest_both(root: Path, spark, **settings) -> tuple[dict, dict]:
    """Ingest the landing under ``root/duckdb`` and a copy under ``root/spark``, one per engine."""
    shutil.copytree(root / "duckdb", root / "spark")
    results = {}
    for engine in ("duckdb", "spark"):
        results[engine] = ingest.run(Settings(data_root=root / engine, engine=engine, **settings), spark)
    return results["duckdb"], results["spark"]


def test_ingest_of_the_planted_defects_is_the_same_on_both_engines(small_landing, tmp_path, spark):
    settings, summary = small_landing
    shutil.copytree(settings.data_root, tmp_path / "duckdb")
    on_duckdb, on_spark = ingest_both(tmp_path, spark, max_quarantine_rate=settings.max_quarantine_rate)
    assert differences(tmp_path / "duckdb", tmp_path / "spark") == []
    assert manifest_counts(on_duckdb) == manifest_counts(on_spark)
    assert {k: v for k, v in on_duckdb.items() if k not in ("manifest", "run_id")} == \
        {k: v for k, v in on_spark.items() if k not in ("manifest", "run_id")}
    # the comparison saw every table, planted defects included
    assert len(lake_tables(tmp_path / "spark")) >= 30 and on_spark["rows_quarantined"] > 200
    # a lake Spark ingested is fused by DuckDB as the one DuckDB ingested
    as_of = date.fromisoformat(summary.deliveries[-1])
    for engine in ("duckdb", "spark"):
        lake = Settings(data_root=tmp_path / engine, engine="duckdb", purpose="marketing", as_of=as_of)
        consent.run(lake)
        fuse.run(lake)
    assert differences(tmp_path / "duckdb", tmp_path / "spark", ("consent", "silver")) == []


def test_ingest_a_delivery_date_at_a_time_writes_what_ingest_of_all_at_once_writes(small_landing, tmp_path):
    """What the embedded engine does when a run's landing outgrows its memory; planted repeats
    of a response in the next month's delivery are found across the dates."""
    from unittest.mock import patch

    settings, _ = small_landing
    results = {}
    for name, per_byte in (("together", 1), ("apart", 2**62)):
        shutil.copytree(settings.data_root, tmp_path / name)
        with patch("mydata.engines.duckdb.MEMORY_PER_LANDING_BYTE", per_byte):
            results[name] = ingest.run(Settings(data_root=tmp_path / name, engine="duckdb",
                                                max_quarantine_rate=settings.max_quarantine_rate))
    assert differences(tmp_path / "together", tmp_path / "apart") == []
    assert manifest_counts(results["together"]) == manifest_counts(results["apart"])
    assert results["apart"]["duplicates"] > 0


def test_the_comparison_sees_a_changed_cell(small_landing, tmp_path):
    """The parity check itself can fail: one reason edited in one lake is found."""
    import pyarrow.parquet as pq

    settings, _ = small_landing
    for name in ("a", "b"):
        shutil.copytree(settings.data_root, tmp_path / name)
        ingest.run(Settings(data_root=tmp_path / name, engine="duckdb", max_quarantine_rate=settings.max_quarantine_rate))
    assert differences(tmp_path / "a", tmp_path / "b") == []
    part = next((tmp_path / "b" / "quarantine" / "customers").glob("dt=*/*.parquet"))
    table = pq.read_table(part)
    reasons = table.column("reason").to_pylist()
    pq.write_table(table.set_column(table.schema.get_field_index("reason"), "reason",
                                    [[reasons[0] + "!"] + reasons[1:]]), part)
    assert [p for p in differences(tmp_path / "a", tmp_path / "b") if p.startswith("quarantine/customers")]


# -- small random deliveries: the engines agree --------------------------------------------------

_amounts = st.one_of(st.sampled_from(["1000.000", "-25.500", "0", "12,000", "", "1e3", "99999999999999999999",
                                      "0.0005", "-0.0005", " 7", "7 ", "N/A", "３", " ", "\u00a0", "\u3000"]),
                     st.text(alphabet="0123456789.-", min_size=1, max_size=8))
_lines = st.one_of(
    st.lists(_amounts, min_size=0, max_size=3).map(lambda amounts: ("bills", amounts)),
    st.sampled_from(["{", "[]", '{"api": 1}', "not json", '{"response": "x"}', "\t"]).map(lambda raw: ("raw", raw)),
)


@hsettings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_lines, min_size=1, max_size=6), repeat=st.booleans())
def test_engines_agree_on_small_random_deliveries(tmp_path_factory, spark, lines, repeat):
    root = tmp_path_factory.mktemp("random")
    landing = root / "duckdb"
    text = [bills(CARD_ORG, f"T{i}", *amounts, link_key=(LK if i % 2 else LK2)) if kind == "bills" else amounts
            for i, (kind, amounts) in enumerate(lines)]
    deliver(landing, "card", text + (text[:1] if repeat else []))
    register(landing, ("card", CARD_ORG))
    on_duckdb, on_spark = ingest_both(root, spark, max_quarantine_rate=1)
    assert differences(root / "duckdb", root / "spark") == []
    assert manifest_counts(on_duckdb) == manifest_counts(on_spark)


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_lake_written_by_one_engine_is_read_by_the_other(tmp_path, spark, engine):
    """Spark reads what DuckDB wrote and DuckDB what Spark wrote: same columns, same types."""
    from mydata.engines import open_engine

    deliver(tmp_path, "card", [bills(CARD_ORG, "T1", "1000.000", "-5.000")])
    register(tmp_path, ("card", CARD_ORG))
    ingest.run(Settings(data_root=tmp_path, engine=engine), spark)
    other = open_engine(Settings(data_root=tmp_path, engine="spark" if engine == "duckdb" else "duckdb"), spark)
    try:
        assert other.parquet("bills", tmp_path / "bronze" / "card_bills")
        rows = other.rows("SELECT charge_amt, charge_month, collected_at FROM bills ORDER BY charge_amt")
    finally:
        other.close()
    assert [str(r["charge_amt"]) for r in rows] == ["-5.000", "1000.000"]
    assert {str(r["charge_month"]) for r in rows} == {"2026-10-01"}
    # 2026-11-01 09:30:15 KST is the same instant whichever engine wrote it and whichever reads it
    # (Spark hands back the process's local wall time, DuckDB an aware datetime)
    assert {r["collected_at"].timestamp() for r in rows} == {datetime(2026, 11, 1, 0, 30, 15, tzinfo=UTC).timestamp()}
