"""The embedded engine reads any lake table as the instants and columns it holds."""
from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq


def test_a_table_mixing_int96_and_utc_adjusted_files_reads_the_same_instants(duckdb_engine, tmp_path):
    """Spark wrote INT96 before TIMESTAMP_MICROS; a table may hold both kinds of file (and sits
    below a key=value folder that is not its column)."""
    moment = datetime(2026, 8, 1, 0, 30, tzinfo=timezone.utc)
    table = tmp_path / "silver" / "t" / "purpose=marketing"
    for dt, int96 in (("2026-07-01", True), ("2026-08-01", False)):
        folder = table / f"as_of={dt}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"event_time": pa.array([moment], pa.timestamp("us", tz="UTC")), "n": [1]}),
                       folder / "part-0.parquet", use_deprecated_int96_timestamps=int96)
    assert duckdb_engine.parquet("t", table)
    assert duckdb_engine.columns("t") == ["event_time", "n", "as_of"]
    assert [r["event_time"] for r in duckdb_engine.rows("SELECT event_time FROM t")] == [moment, moment]
