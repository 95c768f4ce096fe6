"""The point-in-time training frame agrees on both engines, cell for cell, and a row as of the
snapshot's own date is the snapshot's feature row: one definition of "as of D" for both."""
from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.definitions import FEATURES
from features.sql import features_sql
from jobs import features
from mydata.engines import open_engine
from tests.tables import differing_cells

pytestmark = pytest.mark.slow


def _by_row(table: pa.Table) -> dict[tuple, dict]:
    return {(r["pseudonym"], r["as_of"]): r for r in table.to_pylist()}


def test_the_training_frame_is_the_same_on_both_engines_and_equals_the_snapshot(fused, spark):
    settings, results = fused
    settings = settings.replace(purpose="marketing")
    snapshot = date.fromisoformat(results["marketing"]["as_of"])
    folder = settings.lake.silver_table("subjects", "marketing") / f"as_of={snapshot}"
    pseudonyms = pq.read_table(folder, columns=["pseudonym"]).column("pseudonym").to_pylist()[:150]
    earlier = date(snapshot.year, snapshot.month - 2, 1) if snapshot.month > 2 else date(snapshot.year - 1, 11, 1)
    spine = pa.table({"pseudonym": pseudonyms * 2 + ["never-fused"],
                      "as_of": [snapshot] * len(pseudonyms) + [earlier] * len(pseudonyms) + [snapshot]})
    on_duckdb = features.historical(settings, spine)
    on_spark = features.historical(settings.replace(engine="spark"), spine, spark)
    assert on_duckdb.rows == on_spark.rows == len(spine) and on_duckdb.not_in_snapshot == 1
    duck, sparked = _by_row(on_duckdb.frame), _by_row(on_spark.frame)
    assert not differing_cells(duck, sparked)
    # a row as of the snapshot's date is the snapshot's own feature row
    engine = open_engine(settings)
    try:
        tables = features.register_silver(engine, settings.lake, "marketing", snapshot)
        candidate = {r["pseudonym"]: r for r in engine.rows(features_sql(engine.dialect, tables, snapshot))}
    finally:
        engine.close()
    as_of_snapshot = {k: {n: v for n, v in row.items() if n != "as_of"} for k, row in duck.items() if k[1] == snapshot
                      and k[0] in candidate}
    assert not differing_cells(as_of_snapshot, {(p, snapshot): candidate[p] for p in pseudonyms})
    # two months earlier, the frame knows less: some feature differs for most subjects
    changed = sum(any(duck[(p, earlier)][f.name] != duck[(p, snapshot)][f.name] for f in FEATURES if f.source != "subjects")
                  for p in pseudonyms)
    assert changed > len(pseudonyms) * 0.9
    assert {k: v for k, v in duck[("never-fused", snapshot)].items() if k not in ("pseudonym", "as_of") and v is not None} == {}
    with pytest.raises(features.BadSpine, match="dated after the snapshot"):
        features.historical(settings, pa.table({"pseudonym": ["x"], "as_of": [date(snapshot.year + 1, 1, 1)]}))
