"""Features: the declarations of features/ compiled to SQL (features/sql.py), on the configured engine.

Reads the fused silver tables of a purpose and as-of date; writes the release candidate, one row
per fused subject, to ``silver/features/purpose=<p>/as_of=<date>/``: internal until the release
gate (jobs/release/gate.py) generalises its quasi-identifiers and publishes it to gold.

``historical`` is the point-in-time training frame: for rows of (pseudonym, as_of) it gives
every feature as of each row's own date, from one silver snapshot's records delivered by then.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa

from features.definitions import FEATURES, SOURCES
from features.sql import SPINE_AS_OF, features_sql, historical_sql
from jobs.stage import StageResult, stage_run
from mydata import progress, storage
from mydata.config import ConfigError, Settings
from mydata.engines import Engine, open_engine
from mydata.errors import MissingInput, StageFailed
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import missing_input
from schemas import asof

JOB = "features"


def register_silver(engine: Engine, lake: Lake, purpose: str, as_of: date) -> dict[str, str]:
    """Every silver table of the purpose with rows as of ``as_of``, as ``silver_<table>``."""
    tables = {}
    for name in SOURCES:
        if engine.partition(f"silver_{name}", lake.silver_table(name, purpose), "as_of", as_of):
            tables[name] = f"silver_{name}"
    if "subjects" not in tables:
        raise MissingInput(missing_input(lake, "fused subjects", "fuse", f"mydata fuse --as-of {as_of}",
                                              purpose=purpose, as_of=as_of.isoformat()))
    return tables


@writes_lake(JOB)
def run(settings: Settings, spark=None) -> StageResult:
    """Compute the release candidate for ``settings.purpose`` as of ``settings.as_of``."""
    if settings.as_of is None:
        raise ConfigError("features needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    target = lake.feature_candidates(purpose)
    partition = target / f"as_of={as_of.isoformat()}"
    with stage_run(settings, JOB, spark=spark, purpose=purpose, as_of=as_of.isoformat(), engine=settings.engine) as run:
        engine = run.engine
        with progress.step("features", unit="subjects") as shown:
            tables = register_silver(engine, lake, purpose, as_of)
            query = f"SELECT *, DATE '{as_of.isoformat()}' AS as_of FROM ({features_sql(engine.dialect, tables, as_of)}) c"
            storage.publish([engine.stage(query, target, [as_of], run.manifest.run_id, key="as_of")])
            subjects = storage.rows_in(partition)
            shown.advance(subjects)
        run.manifest.inputs = {"silver": {name: storage.rows_in(lake.silver_table(name, purpose) / partition.name)
                                          for name in tables}}
        run.manifest.outputs = {"candidate": str(partition), "subjects": subjects, "features": len(FEATURES)}
    return run.result()


class BadSpine(StageFailed, ValueError):
    """A training-frame spine the frame cannot be built for (missing columns, dates after the snapshot)."""


@dataclass(frozen=True)
class TrainingFrame:
    frame: pa.Table  # pseudonym, as_of, then every feature in declaration order; one row per spine row
    snapshot: date  # the silver snapshot the records came from
    rows: int
    not_in_snapshot: int  # spine rows whose pseudonym the snapshot does not hold: every feature null


def latest_silver_snapshot(lake: Lake, purpose: str) -> date:
    found = asof.latest_snapshot(lake.silver_table("subjects", purpose))
    if found is None:
        raise MissingInput(missing_input(lake, "fused subjects", "fuse", "mydata fuse --as-of DATE", purpose=purpose))
    return found


def spine_table(spine: pa.Table | Path | str) -> pa.Table:
    """A spine as (pseudonym string, as_of date): a table, or a Parquet or CSV file; a timestamp's
    day is its date (deliveries are dated by day)."""
    if not isinstance(spine, pa.Table):
        path = Path(spine)
        if not path.is_file():
            raise BadSpine(f"spine {path}: no such file")
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq
            spine = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv
            spine = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types={"pseudonym": pa.string()}))
    missing = {"pseudonym", SPINE_AS_OF} - set(spine.column_names)
    if missing:
        raise BadSpine(f"the spine needs the columns pseudonym and {SPINE_AS_OF}; missing {', '.join(sorted(missing))}")
    when = _days(spine.column(SPINE_AS_OF))
    if when.null_count or spine.column("pseudonym").null_count:
        raise BadSpine(f"{when.null_count + spine.column('pseudonym').null_count} spine row(s) lack a pseudonym or a date")
    return pa.table({"pseudonym": spine.column("pseudonym").cast(pa.string()), SPINE_AS_OF: when})


def _days(when: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each spine row's date, in Arrow (a spine may hold millions of rows): a timestamp's day in its
    own zone, an ISO text's date; a text Arrow does not read (an offset, a typo) goes by Python."""
    import pyarrow.compute as pc

    if pa.types.is_timestamp(when.type):
        return pc.cast(pc.local_timestamp(when) if when.type.tz else when, pa.date32())
    if pa.types.is_string(when.type):
        try:
            return pc.cast(pc.cast(when, pa.timestamp("us")), pa.date32())
        except pa.ArrowInvalid:
            return pa.chunked_array([pa.array([None if v is None else _day(v) for v in when.to_pylist()], pa.date32())])
    return when.cast(pa.date32())


def _day(text: str) -> date:
    try:
        return datetime.fromisoformat(text).date() if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise BadSpine(f"spine date {text!r} is not YYYY-MM-DD or an ISO timestamp") from None


def historical(settings: Settings, spine: pa.Table | Path | str, spark=None) -> TrainingFrame:
    """Every declared feature for each spine row as of its own date, under the definition the
    snapshots use (schemas/asof.py), from the silver snapshot as of ``settings.as_of`` (default the
    newest): nothing delivered after a row's date reaches it."""
    lake, purpose = settings.lake, settings.purpose
    snapshot = settings.as_of or latest_silver_snapshot(lake, purpose)
    rows = spine_table(spine)
    late = [d for d in rows.column(SPINE_AS_OF).to_pylist() if d > snapshot]
    if late:
        raise BadSpine(f"{len(late)} spine row(s) are dated after the snapshot as of {snapshot} (the latest is "
                       f"{max(late)}): fuse a later snapshot, or give rows up to {snapshot}")
    # a reader holds no lock: a fuse's publish half done is refused, never read
    storage.refuse_unfinished(lake.publish_journal, *(lake.silver_table(name, purpose) / f"as_of={snapshot.isoformat()}"
                                                      for name in SOURCES))
    engine = open_engine(settings, spark)
    try:
        with progress.step("features", "training frame", unit="rows") as shown:
            tables = register_silver(engine, lake, purpose, snapshot)
            engine.arrow("spine", rows)
            frame = engine.arrow_rows(historical_sql(engine.dialect, tables, "spine"))
            held = engine.rows(f"SELECT count(*) AS n FROM spine s JOIN {tables['subjects']} u "
                               "ON u.pseudonym = s.pseudonym")[0]["n"]
            shown.advance(frame.num_rows)
    finally:
        engine.close()
    return TrainingFrame(frame, snapshot, frame.num_rows, frame.num_rows - int(held))


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
