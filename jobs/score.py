"""Scoring: every row of a published feature snapshot gets its segment, on the configured engine.

Reads ``gold/features/purpose=<p>/as_of=<date>/``; writes ``gold/segments/purpose=<p>/as_of=<date>/``
(pseudonym, segment, its label, model version), which the purge finds like any derived table. The
fitted pipeline is applied batch by batch (on Spark's executors, or in this process beside DuckDB),
so a snapshot of any size is scored without holding it whole.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pandas as pd

from jobs.stage import StageResult, stage_run
from mydata import progress, storage
from mydata.config import ConfigError, Settings
from mydata.errors import MissingInput
from mydata.lock import writes_lake
from schemas.dialects import Dialect

JOB = "score"
SCHEMA = "pseudonym string, segment int"


def predictor(pipeline: Any, features: list[str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A batch of (pseudonym, features...) -> (pseudonym, segment)."""
    def predict(batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"pseudonym": batch["pseudonym"],
                             "segment": pipeline.predict(batch[features]).astype("int32")})
    return predict


def labelled_sql(d: Dialect, segments: str, metadata: dict, version: str, as_of: str) -> str:
    """Each segment's readable label from the model's profile (a CASE, no join), the model version
    and the ``as_of`` partition column."""
    labels = {s["segment"]: s["label"] for s in metadata.get("profile", {}).get("segments", [])}
    arms = " ".join(f"WHEN {int(segment)} THEN {d.lit(label)}" for segment, label in sorted(labels.items()))
    label = f"CASE segment {arms} END" if labels else f"CAST(NULL AS {d.sql_type('string')})"
    return (f"SELECT pseudonym, segment, {label} AS segment_label, {d.lit(version)} AS model_version, "
            f"DATE '{as_of}' AS as_of FROM {segments}")


@writes_lake("score")
def run(settings: Settings, spark: Any = None, version: str | None = None) -> StageResult:
    """Score the published snapshot of ``settings.purpose`` as of ``settings.as_of`` with the current
    model (or ``version``)."""
    from models import registry

    if settings.as_of is None:
        raise ConfigError("scoring needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of.isoformat()
    chosen = registry.get(lake, purpose, version)
    snapshot = lake.published_features(purpose)
    subjects = storage.rows_in(snapshot / f"as_of={as_of}")
    if not subjects:
        raise MissingInput(f"no published feature snapshot {snapshot / f'as_of={as_of}'}: "
                                "run features and release first")
    target = lake.segments(purpose)
    features = chosen.metadata["features"]
    with stage_run(settings, JOB, spark=spark, purpose=purpose, as_of=as_of, model=chosen.version,
                   engine=settings.engine) as run:
        engine = run.engine
        with progress.step("score", chosen.version, total=subjects) as shown:
            engine.partition("snapshot", snapshot, "as_of", settings.as_of)
            columns = ", ".join(["pseudonym", *features])
            engine.map_batches("segments", f"SELECT {columns} FROM snapshot",
                               predictor(chosen.load(), features), SCHEMA)
            query = labelled_sql(engine.dialect, "segments", chosen.metadata, chosen.version, as_of)
            storage.publish([engine.stage(query, target, [settings.as_of], run.manifest.run_id, key="as_of")])
            engine.partition("written", target, "as_of", settings.as_of)
            sizes = {int(r["segment"]): int(r["n"]) for r in engine.rows(
                "SELECT segment, count(*) AS n FROM written GROUP BY segment")}
            shown.advance(sum(sizes.values()))
        run.manifest.inputs = {"snapshot": str(snapshot / f"as_of={as_of}"), "model": chosen.version,
                               "consent_snapshot": chosen.metadata.get("consent_snapshot")}
        run.manifest.outputs = {"segments": str(target / f"as_of={as_of}"), "rows": sum(sizes.values()),
                                "sizes": dict(sorted(sizes.items()))}
    return run.result(model=chosen.version)


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
