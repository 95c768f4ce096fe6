"""The plain ingest references (issue 34's yardsticks, DuckDB and PySpark) do the project's work or
more: each accepts every row the project accepts, and rejects planted defects by the same field checks."""
from __future__ import annotations

import duckdb
import pytest

from benchmarks import ingest_reference
from schemas.bronze import tables_of
from schemas.landing import MYDATA_SOURCES


def _same_key(spec, left: str, right: str) -> str:
    def text(alias: str, name: str) -> str:
        kind = spec.column(name).kind
        return f"strftime({alias}.{name}, '%Y%m%d%H%M%S')" if kind == "dtime" else f"CAST({alias}.{name} AS VARCHAR)"
    return " AND ".join(f"{text(left, k)} = {text(right, k)}" for k in spec.natural_key) + f" AND {left}.dt = {right}.dt"


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_the_reference_accepts_every_row_the_project_accepts_and_rejects_the_planted_defects(
        ingested, tmp_path, request, engine):
    settings, _, _, manifest = ingested
    if engine == "duckdb":
        figures = ingest_reference.run(settings.data_root, tmp_path / "plain", threads=1, memory="1GB")
        accepted_files = "{}/accepted.parquet"
    else:
        figures = ingest_reference.run_spark(request.getfixturevalue("spark"), settings.data_root, tmp_path / "plain")
        accepted_files = "{}/accepted=true/*.parquet"
    assert set(figures) == set(MYDATA_SOURCES) and all(f["rejected"] > 0 for f in figures.values())
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Seoul'")  # bronze holds KST instants; the reference, their wall time
    for spec in (spec for source in MYDATA_SOURCES for spec in tables_of(source)):
        bronze = f"read_parquet('{settings.lake.bronze_table(spec.name)}/**/*.parquet', hive_partitioning = true)"
        plain = f"read_parquet('{accepted_files.format(tmp_path / 'plain' / spec.name)}')"
        missing = con.execute(f"SELECT count(*) FROM {bronze} b WHERE NOT EXISTS "
                              f"(SELECT 1 FROM {plain} r WHERE {_same_key(spec, 'b', 'r')})").fetchone()[0]
        accepted = sum(c["accepted"] for c in manifest["outputs"]["tables"][spec.name].values())
        assert accepted > 0 and missing == 0, (spec.name, missing)
