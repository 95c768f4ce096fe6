"""Features: the declarations of features/ compiled to SQL (features/sql.py), on the configured engine.

Reads the fused silver tables of a purpose and as-of date; writes the release candidate, one row
per fused subject, to ``silver/features/purpose=<p>/as_of=<date>/``: internal until the release
gate (jobs/privacy.py) generalises its quasi-identifiers and publishes it to gold.
"""
from __future__ import annotations

import sys
from datetime import date

from features.definitions import FEATURES, SOURCES
from features.sql import features_sql
from mydata import progress, storage
from mydata.config import ConfigError, Settings
from mydata.engines import Engine, open_engine
from mydata.lake import Lake
from mydata.manifest import RunManifest, missing_input

JOB = "features"


def register_silver(engine: Engine, lake: Lake, purpose: str, as_of: date) -> dict[str, str]:
    """Every silver table of the purpose with rows as of ``as_of``, as ``silver_<table>``."""
    tables = {}
    for name in SOURCES:
        if engine.partition(f"silver_{name}", lake.silver_table(name, purpose), "as_of", as_of):
            tables[name] = f"silver_{name}"
    if "subjects" not in tables:
        raise FileNotFoundError(missing_input(lake, "fused subjects", "fuse", f"mydata fuse --as-of {as_of}",
                                              purpose=purpose, as_of=as_of.isoformat()))
    return tables


def run(settings: Settings, spark=None) -> dict:
    """Compute the release candidate for ``settings.purpose`` as of ``settings.as_of``."""
    if settings.as_of is None:
        raise ConfigError("features needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    manifest = RunManifest.start(JOB, purpose=purpose, as_of=as_of.isoformat(), engine=settings.engine)
    target = lake.feature_candidates(purpose)
    partition = target / f"as_of={as_of.isoformat()}"
    engine = open_engine(settings, spark)
    try:
        with progress.step("features", unit="subjects") as shown:
            tables = register_silver(engine, lake, purpose, as_of)
            query = f"SELECT *, DATE '{as_of.isoformat()}' AS as_of FROM ({features_sql(engine.dialect, tables, as_of)}) c"
            storage.publish([engine.stage(query, target, [as_of], manifest.run_id, key="as_of")])
            subjects = storage.rows_in(partition)
            shown.advance(subjects)
    finally:
        engine.close()
    manifest.inputs = {"silver": {name: storage.rows_in(lake.silver_table(name, purpose) / partition.name)
                                  for name in tables}}
    manifest.outputs = {"candidate": str(partition), "subjects": subjects, "features": len(FEATURES)}
    path = manifest.finish(lake)
    return {"manifest": str(path), **manifest.outputs}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
