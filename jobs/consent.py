"""The consent ledger: bronze consent events appended in chain order to an append-only Parquet
ledger, verified on every append; and the consent snapshot the fusion relies on.

Ledger: ``consent/ledger/dt=<delivery>/``, one partition per consent delivery, never rewritten.
Each event gets ``seq``, its position in the chain (0 for the first event of the whole log).
A chain proves order and content, but anyone may append a well-formed event or cut the tail,
so every append also records the head (events and last hash) in its run manifest, the anchor
``verify`` compares the ledger against.

Snapshot: consent for (subject, purpose, source) is valid at t when the latest event at or before
t (ties: later in the chain) is a grant or renew and t is before its end date.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Iterable

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType
from pyspark.sql.window import Window

from jobs import storage
from mydata.config import Settings
from mydata.lake import Lake
from mydata.manifest import RunManifest, write_json_atomic
from schemas.consent import GENESIS_HASH, ChainBreak, delivered_event, event_hash
from schemas.codes import CONSENT_SOURCES

JOB = "consent"
LEDGER_COLUMNS = ("seq", "event_id", "link_key", "key_version", "event_type", "event_time", "purpose",
                  "sources", "end_date", "channel", "notice_version", "prev_hash", "hash")


class ConsentChainBroken(RuntimeError):
    """The ledger or an incoming delivery does not verify; names the first bad event."""


def ledger_path(lake: Lake):
    return lake.consent / "ledger"


def read_ledger(spark: SparkSession, lake: Lake) -> DataFrame | None:
    return storage.read_table(spark, ledger_path(lake))


def anchors_path(lake: Lake):
    """Every append's head, one JSON document: what verify holds the ledger to."""
    return lake.consent / "anchors.json"


# -- hashing and checking, in Spark --------------------------------------------------------------

def _expected_hash(event) -> str:
    return event_hash(delivered_event(event.asDict()))


def expected_hash() -> SparkColumn:
    """The hash each event must carry, from its typed columns put back in their delivered form."""
    delivered = F.struct(
        "event_id", "link_key", "key_version", "event_type",
        F.date_format("event_time", "yyyyMMddHHmmss").alias("event_time"), "purpose", "sources",
        F.date_format("end_date", "yyyyMMdd").alias("end_date"), "channel", "notice_version", "prev_hash")
    # made at call time, so it is a Spark Connect UDF when the session is remote
    return F.udf(_expected_hash, StringType(), useArrow=True)(delivered)


def chain_breaks(events: DataFrame, first_prev_hash: str = GENESIS_HASH, first_seq: int = 0) -> DataFrame:
    """Every event (ordered by ``seq``) that does not verify, with the reason; empty when all do.

    Edits break the event's own hash; deletions, insertions and reorderings break the link of
    the event after them (its ``prev_hash`` is not the hash of the event now before it), or
    leave a gap or a repeat in ``seq``.
    """
    order = Window.orderBy("seq")
    checked = (events.select("seq", "event_id", "prev_hash", "hash", expected_hash().alias("_expected"))
               .withColumn("_position", F.row_number().over(order) - 1 + F.lit(first_seq))
               .withColumn("_before", F.coalesce(F.lag("hash").over(order), F.lit(first_prev_hash))))
    reason = (F.when(F.col("prev_hash") != F.col("_before"),
                     F.lit("prev_hash does not match the hash of the event before it "
                           "(an event was deleted, inserted or reordered here)"))
              .when(F.col("seq") != F.col("_position"),
                    F.format_string("seq is %d where %d was expected (an event is missing or repeated)",
                                    F.col("seq"), F.col("_position")))
              .when(F.col("hash") != F.col("_expected"),
                    F.lit("hash does not match the event's content (the event was edited)")))
    return (checked.withColumn("reason", reason).where(F.col("reason").isNotNull())
            .select(F.col("_position").alias("position"), "seq", "event_id", "reason"))


def first_break(events: DataFrame, first_prev_hash: str = GENESIS_HASH, first_seq: int = 0) -> ChainBreak | None:
    row = chain_breaks(events, first_prev_hash, first_seq).orderBy("position").limit(1).collect()
    return ChainBreak(int(row[0]["position"]), row[0]["event_id"], row[0]["reason"]) if row else None


# -- ordering a delivery by its links ------------------------------------------------------------

def chain_order(links: Iterable[tuple[str, str | None, str | None]], head: str
                ) -> tuple[list[str], ChainBreak | None]:
    """Event ids in chain order starting after ``head``, from (event_id, prev_hash, hash) triples.

    A chain is a linked list, so its order is a sequential walk (on the driver, over three short
    strings per event). The walk stops at the first event that does not link: the break names it.
    """
    following: dict[str | None, list[tuple[str, str | None]]] = {}
    total = 0
    for event_id, prev_hash, hash_ in links:
        following.setdefault(prev_hash, []).append((event_id, hash_))
        total += 1
    ordered: list[str] = []
    current = head
    while current in following:
        nxt = following.pop(current)
        if len(nxt) > 1:
            ids = sorted(e for e, _ in nxt)
            return ordered, ChainBreak(len(ordered), ids[1], f"{len(nxt)} events ({', '.join(ids)}) link to "
                                       "the same event (an event was inserted here)")
        event_id, current = nxt[0]
        ordered.append(event_id)
    if len(ordered) < total:
        stray = sorted(e for rest in following.values() for e, _ in rest)
        return ordered, ChainBreak(len(ordered), stray[0],
                                   f"{total - len(ordered)} event(s) do not link to the chain after the "
                                   f"event before them (an event before was deleted or altered)")
    return ordered, None


# -- the snapshot ----------------------------------------------------------------------------------

def as_of_moment(as_of: date | datetime) -> datetime:
    """An as-of date means its first moment (KST): consents and records strictly before it count."""
    return as_of if isinstance(as_of, datetime) else datetime.combine(as_of, time.min)


def moment_literal(as_of: date | datetime) -> SparkColumn:
    """The as-of moment as a Spark timestamp, read in the session's time zone (KST) like the data."""
    moment = as_of_moment(as_of)
    if moment.tzinfo is not None:
        from zoneinfo import ZoneInfo
        from mydata.spark import SESSION_TIME_ZONE
        moment = moment.astimezone(ZoneInfo(SESSION_TIME_ZONE)).replace(tzinfo=None)
    return F.to_timestamp(F.lit(moment.strftime("%Y-%m-%d %H:%M:%S.%f")))


def consent_states(ledger: DataFrame, purpose: str, as_of: date | datetime) -> DataFrame:
    """Per (link_key, key_version, source): the latest event at or before ``as_of`` and its state.

    ``state`` is ``valid``, ``withdrawn`` or ``expired``; subjects with no event yet are absent.
    """
    moment = moment_literal(as_of)
    latest = Window.partitionBy("link_key", "key_version", "source").orderBy(F.desc("event_time"), F.desc("seq"))
    events = (ledger.where((F.col("purpose") == purpose) & (F.col("event_time") <= moment))
              .select("link_key", "key_version", F.explode("sources").alias("source"), "event_type",
                      "event_time", "end_date", "channel", "event_id", "seq"))
    return (events.withColumn("_n", F.row_number().over(latest)).where("_n = 1").drop("_n")
            .withColumn("state", F.when(F.col("event_type") == "withdraw", "withdrawn")
                        .when(moment >= F.col("end_date").cast("timestamp"), "expired")
                        .otherwise("valid")))


def consent_snapshot(ledger: DataFrame, purpose: str, as_of: date | datetime) -> DataFrame:
    """The (link_key, key_version, source) with valid consent for ``purpose`` at ``as_of``."""
    return (consent_states(ledger, purpose, as_of).where(F.col("state") == "valid")
            .select("link_key", "key_version", "source"))


def consented_everywhere(snapshot: DataFrame, sources: Iterable[str] = CONSENT_SOURCES) -> DataFrame:
    """Subjects (link_key, key_version) whose consent covers every one of ``sources``."""
    wanted = sorted(set(sources))
    return (snapshot.where(F.col("source").isin(*wanted)).groupBy("link_key", "key_version")
            .agg(F.countDistinct("source").alias("_n")).where(F.col("_n") == len(wanted)).drop("_n"))


# -- the ledger head and verification ---------------------------------------------------------------

@dataclass(frozen=True)
class LedgerHead:
    events: int
    hash: str

    def as_dict(self) -> dict:
        return {"events": self.events, "hash": self.hash}


def ledger_head(ledger: DataFrame | None) -> LedgerHead:
    if ledger is None:
        return LedgerHead(0, GENESIS_HASH)
    row = ledger.orderBy(F.desc("seq")).select("seq", "hash").limit(1).collect()
    return LedgerHead(int(row[0]["seq"]) + 1, row[0]["hash"]) if row else LedgerHead(0, GENESIS_HASH)


def read_anchors(lake: Lake) -> list[dict]:
    import json
    path = anchors_path(lake)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


@dataclass(frozen=True)
class Verification:
    events: int
    head: LedgerHead
    problem: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_ledger(spark: SparkSession, lake: Lake) -> Verification:
    """Check every event's hash and link, then the ledger's head against the recorded anchors."""
    ledger = read_ledger(spark, lake)
    anchors = read_anchors(lake)
    if ledger is None:
        problem = (ChainBreak(0, None, f"the ledger is empty but {anchors[-1]['events']} events were appended")
                   if anchors and anchors[-1]["events"] else None)
        return Verification(0, LedgerHead(0, GENESIS_HASH), problem)
    ledger = ledger.cache()
    try:
        head = ledger_head(ledger)
        events = ledger.count()
        problem = first_break(ledger)
        if problem is None and anchors:
            problem = _against_anchors(ledger, head, anchors)
    except (Py4JJavaError, PySparkException) as unreadable:
        # a file edited in place fails its checksum, or no longer parses: tampering all the same
        cause = next((line.strip() for line in str(unreadable).splitlines()
                      if "Exception" in line or "error" in line.lower()), type(unreadable).__name__)
        return Verification(0, LedgerHead(0, GENESIS_HASH),
                            ChainBreak(0, None, f"the ledger's files cannot be read ({cause[:300]}): "
                                                "they were altered outside the pipeline"))
    finally:
        ledger.unpersist()
    return Verification(events, head, problem)


def _against_anchors(ledger: DataFrame, head: LedgerHead, anchors: list[dict]) -> ChainBreak | None:
    """A self-consistent chain that is not the one appended: a cut tail, or forged events."""
    last = anchors[-1]
    if head.events == last["events"] and head.hash == last["hash"]:
        return None
    hashes = {int(r["seq"]): r["hash"] for r in ledger.where(
        F.col("seq").isin(*[a["events"] - 1 for a in anchors if a["events"]])).select("seq", "hash").collect()}
    within = [a for a in anchors if 0 < a["events"] <= head.events]
    agreeing = [a for a in within if hashes.get(a["events"] - 1) == a["hash"]]
    if head.events < last["events"] and len(agreeing) == len(within):
        return ChainBreak(head.events, None, f"the ledger ends after {head.events} events but "
                          f"{last['events']} were appended (events were deleted from the end)")
    matched = max((a["events"] for a in agreeing), default=0)
    row = ledger.where(F.col("seq") == matched).select("event_id").collect()
    return ChainBreak(matched, row[0]["event_id"] if row else None,
                      f"the chain from here on is not the one appended (the recorded head after "
                      f"{last['events']} events differs): events were rewritten, inserted or added")


# -- appending ------------------------------------------------------------------------------------

def delivery_in_chain_order(events: DataFrame, head: LedgerHead) -> tuple[DataFrame, ChainBreak | None]:
    """The delivery's events with ``seq`` (continuing the ledger), or the first that does not link."""
    links = events.select("event_id", "prev_hash", "hash").toLocalIterator()
    ordered, problem = chain_order(((r[0], r[1], r[2]) for r in links), head.hash)
    if problem is not None:
        return events.limit(0), problem
    spark = events.sparkSession
    positions = spark.createDataFrame([(e, head.events + i) for i, e in enumerate(ordered)],
                                      "event_id string, seq long")
    return events.join(positions, "event_id").select(*LEDGER_COLUMNS, "dt"), None


def append(spark: SparkSession, lake: Lake, run_id: str) -> dict:
    """Append every bronze consent delivery not yet in the ledger, oldest first, each verified."""
    verification = verify_ledger(spark, lake)
    if not verification.ok:
        raise ConsentChainBroken(f"the consent ledger does not verify at {verification.problem}; "
                                 "nothing appended until a reviewer acts")
    bronze = storage.read_table(spark, lake.bronze_table("consent_events"))
    ledger = read_ledger(spark, lake)
    done = {r["dt"] for r in ledger.select("dt").distinct().collect()} if ledger is not None else set()
    pending = sorted({r["dt"] for r in bronze.select("dt").distinct().collect()} - done) \
        if bronze is not None else []
    head = verification.head
    appended: dict[str, int] = {}
    held: dict[str, str] = {}
    for dt in pending:
        if held:  # nothing after a broken delivery is trusted
            held[dt.isoformat()] = "not appended: an earlier delivery broke the chain"
            continue
        events = bronze.where(F.col("dt") == dt).drop("dt").withColumn("dt", F.lit(dt)).cache()
        ordered, problem = delivery_in_chain_order(events, head)
        if problem is None:
            ordered = ordered.cache()
            problem = first_break(ordered, head.hash, head.events)
        if problem is not None:
            held[dt.isoformat()] = f"chain breaks at {problem}"
            spark.catalog.clearCache()
            continue
        count = ordered.count()
        storage.replace_partitions(ordered, ledger_path(lake), [dt], run_id)
        head = ledger_head(ordered)
        appended[dt.isoformat()] = count
        anchors = read_anchors(lake)
        anchors.append({**head.as_dict(), "dt": dt.isoformat(), "run_id": run_id})
        write_json_atomic(anchors_path(lake), anchors)
        spark.catalog.clearCache()
    return {"appended": appended, "held": held, "head": head.as_dict(),
            "verified_before": verification.events}


def run(settings: Settings, spark: SparkSession | None = None) -> dict:
    """Append new consent deliveries to the ledger; fails (and says where) when a chain breaks."""
    from mydata.spark import spark_session

    lake = settings.lake
    spark = spark or spark_session(settings, "consent")
    manifest = RunManifest.start(JOB)
    try:
        result = append(spark, lake, manifest.run_id)
    except ConsentChainBroken as broken:
        manifest.notes.append(str(broken))
        manifest.finish(lake, "failed")
        raise
    manifest.inputs = {"bronze": "consent_events", "verified_events": result["verified_before"]}
    manifest.outputs = {"appended": result["appended"], "ledger_head": result["head"]}
    manifest.notes += [f"consent dt={dt}: {why}" for dt, why in result["held"].items()]
    path = manifest.finish(lake, "failed" if result["held"] else "succeeded")
    if result["held"]:
        first = next(iter(result["held"].items()))
        raise ConsentChainBroken(f"consent delivery dt={first[0]} {first[1]}; "
                                 f"{len(result['held'])} delivery(ies) held back; see {path}")
    return {"manifest": str(path), **result}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
