"""Lake storage helpers on small explicit inputs."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from mydata import storage


def test_dates_are_batched_together_while_their_sizes_fit_the_budget():
    d1, d2, d3, d4 = (date(2026, m, 1) for m in (6, 7, 8, 9))
    sizes = {d3: 40, d1: 50, d2: 50, d4: 200}
    assert storage.date_batches(sizes, 100) == [[d1, d2], [d3], [d4]]
    assert storage.date_batches(sizes, None) == [[d1, d2, d3, d4]]
    assert storage.date_batches(sizes, 0) == [[d1], [d2], [d3], [d4]]


def _written(table: Path) -> dict[str, bytes]:
    return {str(p.relative_to(table)): p.read_bytes() for p in sorted(table.rglob("*")) if p.is_file()}


def test_the_same_rows_in_another_order_write_the_same_bytes_one_file_per_partition(engine, tmp_path):
    rows = [(f"p{i % 7}", i * 3 % 11, date(2026, 6 + i % 2, 1)) for i in range(40)]
    written = []
    for run, order in (("run-a", rows), ("run-b", rows[::-1])):
        values = ", ".join(f"('{p}', {n}, DATE '{d.isoformat()}')" for p, n, d in order)
        table = tmp_path / run / "table"
        staged = engine.stage(f"SELECT * FROM (VALUES {values}) AS t(pseudonym, n, dt)", table,
                              [date(2026, 6, 1), date(2026, 7, 1)], run)
        storage.publish([staged])
        written.append(_written(table))
    assert written[0] == written[1]
    assert [f for f in sorted(written[0]) if not f.endswith(".crc")] == [  # Spark's checksums beside them
        "dt=2026-06-01/data_0.parquet", "dt=2026-07-01/data_0.parquet"]
    firsts = pq.read_table(tmp_path / "run-a" / "table" / "dt=2026-06-01").to_pylist()
    assert firsts == sorted(firsts, key=lambda r: (r["pseudonym"], r["n"]))  # every column, left to right


def test_a_partition_left_without_rows_is_removed_not_written_empty(engine, tmp_path):
    table = tmp_path / "table"
    storage.publish([engine.stage("SELECT 'p1' AS pseudonym, DATE '2026-06-01' AS dt", table, [date(2026, 6, 1)], "a")])
    assert (table / "dt=2026-06-01" / storage.PART_FILE).is_file()
    storage.publish([engine.stage("SELECT 'p1' AS pseudonym, DATE '2026-06-01' AS dt WHERE false", table,
                                  [date(2026, 6, 1)], "b")])
    assert not (table / "dt=2026-06-01").exists()


def test_a_partition_spark_splits_into_several_files_keeps_every_row_in_order(spark, tmp_path):
    """A setting that splits a task's output (maxRecordsPerFile) gives data_0, data_1, … in order, not one
    file renamed over another."""
    rows = [(f"p{i:02d}", date(2026, 6, 1)) for i in range(20)]
    spark.conf.set("spark.sql.files.maxRecordsPerFile", "7")
    try:
        written = []
        for run, order in (("run-a", rows), ("run-b", rows[::-1])):
            table = tmp_path / run / "table"
            staged = storage.stage(spark.createDataFrame(order, "pseudonym string, dt date"), table,
                                   [date(2026, 6, 1)], run)
            storage.publish([staged])
            written.append(_written(table))
    finally:
        spark.conf.unset("spark.sql.files.maxRecordsPerFile")
    assert written[0] == written[1]
    assert [f for f in sorted(written[0]) if not f.endswith(".crc")] == [
        f"dt=2026-06-01/data_{n}.parquet" for n in range(3)]
    read = pq.read_table(tmp_path / "run-a" / "table" / "dt=2026-06-01").column("pseudonym").to_pylist()
    assert read == [p for p, _ in rows]
