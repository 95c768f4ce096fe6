"""Ingest: landing deliveries -> typed bronze tables, with quarantine, and nothing lost.

Per source, one pass over the run's complete deliveries (those with ``_SUCCESS``):

1. lines are parsed (MyData JSON envelope, CSV row or consent event) as text, so a bad line keeps
   its original form for quarantine;
2. line-level outcomes: ``rejected`` (not JSON, unknown API, envelope broken, count mismatch),
   ``failed`` (rsp_code not 00000: a failed collection, counted and kept, not parsed),
   ``duplicate`` (an x_api_tran_id already delivered, in this run or an earlier delivery);
3. good lines become rows of their table (lists exploded), typed from the landing form by the
   rules of ``schemas.bronze``; a row breaking a rule goes to quarantine with the rule and a
   readable reason, as does a second row with the same natural key in a delivery;
4. bronze and quarantine partitions (``dt=``) are replaced atomically (see ``mydata.storage``).

Quarantine rows (``quarantine/<table>/dt=...``) hold: rule (the first broken), reason (all
broken, readable), record (the original line, or the list item), item_no, file_path, line_no.

Reconciliation, per delivery: lines read = lines parsed + rejected + failed + duplicate, and per
table: rows = accepted + quarantined. Both are in the run manifest.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jobs.ingest.accounting import SourceResult, record
from jobs.ingest.sql import (
    COLLECTIONS,
    FAILED_COLLECTIONS,
    LINE_TABLE,
    accepted_rows,
    collections,
    consent_rows,
    csv_rows,
    duplicate_lines,
    failed_collections,
    line_counts,
    line_quarantine,
    mark_duplicates,
    mydata_rows,
    parse_mydata,
    quarantined_rows,
    ranked_rows,
    repeated_rows,
    shown_reason,
)
from jobs.landing import (
    Delivery,
    check_landing,
    data_files,
    find_deliveries,
    text_bytes,
)
from jobs.stage import StageResult, StageRun, stage_run
from mydata import progress, storage
from mydata.config import Settings
from mydata.engines import Engine, UnreadableLanding
from mydata.errors import StageFailed, UsageError
from mydata.holders import HolderRegistry, unregistered_message
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import RunManifest, ingest_rows, reconciled
from render.ingest import write_report
from schemas.bronze import TABLES, TableSpec, tables_of
from schemas.landing import MYDATA_SOURCES, SOURCES


class NoDeliveryError(UsageError):
    """Nothing complete to ingest: said plainly, not as a stack trace."""


class IngestFailed(StageFailed):
    """A delivery cannot be ingested as it is (an unregistered holder, too much quarantined): the
    run publishes nothing, and its manifest says why."""


class HoldersRefused(IngestFailed):
    """Deliveries from holders the registry does not allow (for those dates): one message per holder."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__(f"{len(messages)} unregistered holder(s), nothing of this run was ingested: "
                         + "; ".join(messages))


def per_source(lake: Lake, table: str, source: str) -> Path:
    """Tables shared by the MyData sources are partitioned by source, then delivery date."""
    return lake.bronze_table(table) / f"source={source}"


@dataclass
class SourceIngest:
    """One source's ingest under way: what each batch of its delivery dates reads and adds to."""

    engine: Engine
    lake: Lake
    source: str
    run_id: str
    run_dts: list[date]  # every delivery date of the run: their earlier collections are replaced
    delivered: str | None  # the collections index of earlier deliveries (a MyData source's)
    result: SourceResult = field(default_factory=SourceResult)
    earlier: str | None = None  # this run's ids of the dates read so far (a MyData source's)

    @property
    def is_mydata(self) -> bool:
        return self.source in MYDATA_SOURCES

    def ingest(self, deliveries: list[Delivery], more: bool) -> None:
        """Some delivery dates into ``result``, staged; with ``more`` to come, their ids kept for duplicates."""
        engine, d = self.engine, self.engine.dialect
        dts = sorted({delivery.dt for delivery in deliveries})
        names = {step: f"{self.source}_{step}" for step in ("lines", "unmarked", "duplicates", "parsed")}
        # a MyData source's lines are read once, by the parse: streamed, they are never all held
        engine.lines(names["lines"], [p for delivery in deliveries for p in data_files(delivery)],
                     streamed=self.is_mydata)
        outputs, quarantines, candidates = self._parse(names, dts, more)
        self.result.count_lines(engine.rows(line_counts(d, self.source, names)))
        check_holders(self.lake, self.source, self.result.holders)  # before these dates are written
        ranked = {name: f"{name}_ranked" for name in candidates}
        for name, sql in candidates.items():
            rank(engine, TABLES[name], sql, ranked[name])
            outputs[name] = accepted_rows(d, TABLES[name], ranked[name])
            quarantines.append(quarantined_rows(d, TABLES[name], ranked[name], names["parsed"]))
        shared = (COLLECTIONS, FAILED_COLLECTIONS)
        self.result.staged += engine.concurrently([
            (engine.stage, sql, per_source(self.lake, name, self.source) if name in shared
             else self.lake.bronze_table(name), dts, self.run_id)
            for name, sql in outputs.items()])
        self._quarantine(quarantines, ranked, dts)
        engine.drop(*names.values(), *(part for name in ranked.values() for part in ranking_parts(name)))

    def _parse(self, names: dict[str, str], dts: list[date], more: bool) -> tuple[dict, list, dict]:
        """The lines parsed: the tables they fill directly (SQL by name), the line quarantine, and
        each bronze table's candidate rows (SQL by name)."""
        engine, d, source = self.engine, self.engine.dialect, self.source
        if not self.is_mydata:
            builder = consent_rows if source == "consent" else csv_rows
            return {}, [], {spec.name: builder(d, spec, names["lines"]) for spec in tables_of(source)}
        engine.table(names["unmarked"], parse_mydata(d, source, names["lines"]))
        if engine.materializes:  # every later step reads the parsed lines: the raw ones can go now
            engine.drop(names["lines"])
        engine.table(names["duplicates"], duplicate_lines(d, names["unmarked"], self.delivered, self.run_dts,
                                                          self.earlier))
        engine.view(names["parsed"], mark_duplicates(d, names["unmarked"], names["duplicates"]))
        seen = None
        if more:
            seen = f"{source}_seen_{dts[-1]:%Y%m%d}"
            engine.table(seen, " UNION ALL ".join(
                [*([f"SELECT x_api_tran_id, dt FROM {self.earlier}"] if self.earlier else []),
                 f"SELECT x_api_tran_id, dt FROM {names['parsed']} WHERE status IN ('ok', 'failed')"]))
        if self.earlier:
            engine.drop(self.earlier)
        self.earlier = seen
        outputs = {FAILED_COLLECTIONS: failed_collections(d, names["parsed"]),
                   COLLECTIONS: collections(d, names["parsed"])}
        return (outputs, [line_quarantine(d, source, names["parsed"])],
                {spec.name: mydata_rows(d, spec, names["parsed"]) for spec in tables_of(source)})

    def _quarantine(self, quarantines: list[str], ranked: dict[str, str], dts: list[date]) -> None:
        """Stage the quarantine beside the counts; both read the kept rankings, not the written tables."""
        engine, d = self.engine, self.engine.dialect
        quarantined, table = " UNION ALL ".join(quarantines), d.ident("table")
        accepted_counts = " UNION ALL ".join(
            f"SELECT {d.lit(name)} AS {table}, dt, count(*) AS count FROM {ranked[name]} "
            f"WHERE {d.size('_violations')} = 0 GROUP BY dt" for name in ranked)
        rule_counts = (f"SELECT {table}, dt, rule, count(*) AS count, min({shown_reason(d)}) AS example "
                       f"FROM ({quarantined}) q GROUP BY {table}, dt, rule")
        tables = sorted(set(ranked) | ({LINE_TABLE.format(source=self.source)} if self.is_mydata else set()))
        staged, accepted, rules = engine.concurrently([
            (engine.stage, quarantined, self.lake.quarantine, dts, self.run_id, tables),
            (engine.rows, accepted_counts), (engine.rows, rule_counts)])
        self.result.staged.append(staged)
        self.result.count_rows(list(ranked), dts, accepted, rules)


def ranking_parts(name: str) -> tuple[str, str, str]:
    """What ``rank`` registers for the ranked rows ``name``, in the order they can be dropped."""
    return name, f"{name}_repeated", f"{name}_candidates"


def rank(engine: Engine, spec: TableSpec, candidates: str, name: str) -> None:
    """Register ``name``: a table's candidate rows (SQL) ranked by natural key (``ranked_rows``).
    The rows are computed once; the few repeating a key are found from them."""
    d = engine.dialect
    ranked, repeated, rows = ranking_parts(name)
    engine.table(rows, candidates)
    engine.table(repeated, repeated_rows(d, spec, rows))
    engine.view(ranked, ranked_rows(d, spec, rows, repeated))


def ingest_source(engine: Engine, lake: Lake, source: str, deliveries: list[Delivery],
                  run_id: str) -> SourceResult:
    """Parse, type and split one source's deliveries, as many delivery dates at a time as the
    engine holds (``landing_bytes_at_once``); stage (not publish) its bronze and quarantine (a
    failure discards what was staged)."""
    dts = sorted({delivery.dt for delivery in deliveries})
    batches = storage.date_batches({dt: sum(text_bytes(p) for x in deliveries if x.dt == dt for p in data_files(x))
                                    for dt in dts}, engine.landing_bytes_at_once)
    delivered = f"{source}_delivered"
    known = source in MYDATA_SOURCES and engine.parquet(delivered, per_source(lake, COLLECTIONS, source))
    state = SourceIngest(engine, lake, source, run_id, dts, delivered if known else None)
    try:
        with progress.step("ingest", source, unit="files",
                           total=sum(len(data_files(x)) for x in deliveries)) as shown:
            for i, batch in enumerate(batches):
                mine = [x for x in deliveries if x.dt in batch]
                state.ingest(mine, more=i + 1 < len(batches))
                shown.advance(sum(len(data_files(x)) for x in mine),
                              rows=sum(sum(state.result.lines.get(str(dt), {}).values()) for dt in batch))
            shown.outcome = "staged"  # published only once every source of the run passed
    except BaseException as exc:
        storage.discard(state.result.staged)
        if isinstance(exc, UnreadableLanding):
            raise IngestFailed(f"{source}: {exc}; nothing of this run was published") from exc
        raise
    finally:
        engine.drop(delivered, *([state.earlier] if state.earlier else []))
    return state.result


def check_holders(lake: Lake, source: str, seen: dict[tuple[str, str], int]) -> None:
    """Every line's holder must be registered for the source since the delivery's date."""
    registry = HolderRegistry.open(Settings(data_root=lake.root))
    refused: dict[str, list[tuple[str, int]]] = {}
    for (dt, org_code), count in sorted(seen.items()):
        holder = registry.get(source, org_code)
        if holder is None or holder.since > date.fromisoformat(dt):
            refused.setdefault(org_code, []).append((dt, count))
    if refused:
        raise HoldersRefused([unregistered_message(source, [dt for dt, _ in dts], org_code, sum(n for _, n in dts),
                                                   registry.get(source, org_code))
                              for org_code, dts in refused.items()])


@writes_lake("ingest")
def run(settings: Settings, spark: Any = None) -> StageResult:
    """Ingest every complete delivery (or those of ``settings.delivery_date``) into bronze on the
    configured engine (``spark``: a running SparkSession to use): all of the run's partitions are
    published together at the end, or none are."""
    lake = settings.lake
    deliveries = find_deliveries(lake, settings.delivery_date)
    complete = [d for d in deliveries if d.complete]
    when = f" for dt={settings.delivery_date}" if settings.delivery_date else ""
    if not complete:
        check_landing(lake, settings.skip_bad_landing)  # what is there may be no delivery at all: say what
        waiting = ", ".join(f"{d.source} dt={d.dt}" for d in deliveries) or "none"
        raise NoDeliveryError(f"no complete delivery{when} under {lake.landing} "
                              f"(deliveries waiting for _SUCCESS: {waiting})")
    sources = [(source, mine) for source in SOURCES
               if (mine := [d for d in complete if d.source == source and data_files(d)])]
    with stage_run(settings, "ingest", spark=spark, dt=settings.delivery_date, engine=settings.engine,
                   max_quarantine_rate=settings.max_quarantine_rate) as run:
        run.manifest.notes += [f"waiting for _SUCCESS, not read: {d.source} dt={d.dt}"
                               for d in deliveries if not d.complete]
        run.manifest.notes += [f"empty delivery (no data files): {d.source} dt={d.dt}"
                               for d in complete if not data_files(d)]
        run.manifest.inputs = {"deliveries": [f"{d.source} dt={d.dt}" for d in complete]}
        _ingest(run, sources)
    document = run.manifest.document()
    (accepted, quarantined), totals = ingest_rows(document), reconciled(document)
    return run.result(run_id=run.manifest.run_id, rows_accepted=accepted, rows_quarantined=quarantined,
                      failed_collections=totals.get("failed_collections", 0), duplicates=totals.get("duplicates", 0))


def _ingest(run: StageRun, sources: list) -> None:
    """Every source's deliveries into staging, side by side where the engine gains, then one publish."""
    settings, lake, manifest = run.settings, run.lake, run.manifest
    # what is not a well-formed delivery fails the run, unless skipped: never read, never silent
    manifest.outputs["landing_problems"] = [p.said() for p in check_landing(lake, settings.skip_bad_landing)]
    engine = run.engine
    # on Spark two sources at a time: one's driver-side work overlaps the other's jobs
    with ThreadPoolExecutor(max_workers=engine.sources_at_once) as pool:
        futures = [pool.submit(ingest_source, engine, lake, source, mine, manifest.run_id)
                   for source, mine in sources]
    outcomes = [future.exception() or future.result() for future in futures]
    run.close_engine()
    staged = [write for outcome in outcomes if isinstance(outcome, SourceResult) for write in outcome.staged]
    try:
        with progress.step("ingest", "publish", unit="tables") as shown:
            _publish(lake, manifest, sources, outcomes, staged, settings.max_quarantine_rate)
            shown.advance(len(staged))
    finally:
        storage.discard(staged)  # a failed run's staging; nothing left after a publish


def _publish(lake: Lake, manifest: RunManifest, sources: list, outcomes: list, staged: list, threshold: float) -> None:
    """Publish every source's staging together, or nothing: a source that failed, the quarantine
    gate or a reconciliation that does not balance stops the whole run."""
    refused = [o for o in outcomes if isinstance(o, HoldersRefused)]
    if refused:  # every unregistered holder of the run at once, whichever source met it
        raise HoldersRefused([message for o in refused for message in o.messages])
    failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
    if failed is not None:
        raise failed
    record(manifest, sources, outcomes, threshold)
    if manifest.outputs["gate_failures"]:
        _report_failed(lake, manifest)
        raise IngestFailed(f"quarantine gate: {'; '.join(manifest.outputs['gate_failures'][:5])}; "
                           "nothing of this run was published")
    if not all(e["balanced"] for by_dt in manifest.outputs["reconciliation"].values() for e in by_dt.values()):
        raise IngestFailed("ingest did not reconcile: input rows differ from accepted + quarantined")
    storage.publish(staged, journal=lake.publish_journal)


def _report_failed(lake: Lake, manifest: RunManifest) -> None:
    """A run the gate stopped gets its report page too (validation never sees it)."""
    manifest.outputs["report"] = str(write_report(lake, {**manifest.document(), "status": "failed"}, []))
