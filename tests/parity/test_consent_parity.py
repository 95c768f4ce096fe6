"""The engines agree on the consent ledger: the same events appended in the same order with the
same heads, and every kind of tampering named alike by both verifiers."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import consent
from mydata.config import Settings
from mydata.engines import open_engine
from tests.on_spark import verify_ledger
from tests.parity.test_ingest_parity import differences


def heads(root) -> list[tuple]:
    return [(a["events"], a["hash"], a["dt"]) for a in json.loads((root / "consent" / "anchors.json").read_text())]


def test_the_ledger_appended_by_each_engine_is_the_same(ingested, spark, tmp_path):
    settings = ingested[0]
    for engine in ("duckdb", "spark"):
        shutil.copytree(settings.data_root, tmp_path / engine)
        consent.run(Settings(data_root=tmp_path / engine, engine=engine), spark)
    assert differences(tmp_path / "duckdb", tmp_path / "spark", zones=("consent",)) == []
    assert heads(tmp_path / "duckdb") == heads(tmp_path / "spark") and heads(tmp_path / "spark")


TAMPERING = {
    "edited": lambda rows: [dict(r, channel="web" if r["channel"] != "web" else "app") if r["seq"] == 5 else r
                            for r in rows],
    "deleted": lambda rows: [dict(r, seq=r["seq"] - (r["seq"] > 5)) for r in rows if r["seq"] != 5],
    "reordered": lambda rows: [dict(r, seq={5: 6, 6: 5}.get(r["seq"], r["seq"])) for r in rows],
    "cut tail": lambda rows: rows[:-3],
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_both_engines_name_the_same_problem(ingested, spark, tmp_path, tampering):
    root = tmp_path / "lake"
    shutil.copytree(ingested[0].data_root, root)
    settings = Settings(data_root=root)
    consent.run(settings, spark)
    folder = sorted((root / "consent" / "ledger").glob("dt=*"))[0]
    table = pq.read_table(folder)
    rows = TAMPERING[tampering](sorted(table.to_pylist(), key=lambda r: r["seq"]))
    for old in folder.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / "part-0.parquet")
    duck = open_engine(settings)
    try:
        embedded = verify_ledger(duck, settings.lake)
    finally:
        duck.close()
    on_spark = verify_ledger(spark, settings.lake)
    assert not embedded.ok and embedded == on_spark
