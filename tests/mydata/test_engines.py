"""The embedded engine reads any lake table as the instants and columns it holds."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq


def test_a_table_mixing_int96_and_utc_adjusted_files_reads_the_same_instants(duckdb_engine, tmp_path):
    """Spark wrote INT96 before TIMESTAMP_MICROS; a table may hold both kinds of file (and sits
    below a key=value folder that is not its column)."""
    moment = datetime(2026, 8, 1, 0, 30, tzinfo=UTC)
    table = tmp_path / "silver" / "t" / "purpose=marketing"
    for dt, int96 in (("2026-07-01", True), ("2026-08-01", False)):
        folder = table / f"as_of={dt}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"event_time": pa.array([moment], pa.timestamp("us", tz="UTC")), "n": [1]}),
                       folder / "part-0.parquet", use_deprecated_int96_timestamps=int96)
    assert duckdb_engine.parquet("t", table)
    assert duckdb_engine.columns("t") == ["event_time", "n", "as_of"]
    assert [r["event_time"] for r in duckdb_engine.rows("SELECT event_time FROM t")] == [moment, moment]


def test_one_partition_is_read_with_its_key_and_only_its_files(duckdb_engine, tmp_path):
    table = tmp_path / "gold" / "t" / "purpose=marketing"
    for dt, n in (("2026-07-01", 1), ("2026-08-01", 2)):
        (table / f"as_of={dt}").mkdir(parents=True)
        pq.write_table(pa.table({"n": list(range(n))}), table / f"as_of={dt}" / "part-0.parquet")
    (table / "as_of=2026-07-01" / "part-1.parquet").write_bytes(b"not parquet: never opened")
    assert duckdb_engine.partition("t", table, "as_of", date(2026, 8, 1))
    assert duckdb_engine.columns("t") == ["n", "as_of"]
    assert duckdb_engine.rows("SELECT count(*) AS c, min(as_of) AS d FROM t") == [{"c": 2, "d": date(2026, 8, 1)}]
    assert not duckdb_engine.partition("none", table, "as_of", date(2026, 9, 1))


def test_an_unreadable_landing_file_is_raised_as_itself_once_and_later_errors_as_theirs(duckdb_engine, tmp_path):
    import gzip

    import duckdb
    import pytest

    from mydata.engines import UnreadableLanding

    whole = gzip.compress(b'{"a": 1}\n' * 100_000)
    path = tmp_path / "dt=2026-11-01" / "part-0.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(whole[:len(whole) // 2])
    duckdb_engine.lines("cut_lines", [path], streamed=True)
    with pytest.raises(UnreadableLanding, match=r"part-0\.jsonl\.gz cannot be read to its end"):
        duckdb_engine.table("parsed", "SELECT count(*) AS n FROM cut_lines")
    with pytest.raises(duckdb.CatalogException):  # not the landing file's error again
        duckdb_engine.table("other", "SELECT * FROM no_such_table")
