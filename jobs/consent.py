"""The consent ledger: bronze consent events appended in chain order to an append-only Parquet
ledger, verified on every append; and the consent snapshot the fusion relies on.

Ledger: ``consent/ledger/dt=<delivery>/``, one partition per consent delivery, never rewritten.
Each event gets ``seq``, its position in the chain (0 for the first event of the whole log).
A chain proves order and content, but anyone may append a well-formed event or cut the tail,
so every append also records the head (events and last hash), signed with the key store's anchor
secret, in ``consent/anchors.json`` and in its run manifest: ``verify`` holds the ledger to both,
and a lake writer without the anchor secret cannot forge a head. ``export_anchors`` copies the
signed heads to write-once storage (a file or a Postgres table).

Snapshot: consent for (subject, purpose, source) is valid at t when the latest event at or before
t (ties: later in the chain) is a grant or renew and t is before its end date.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Iterable

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
    return lake.ledger


def read_ledger(spark: SparkSession, lake: Lake) -> DataFrame | None:
    return storage.read_table(spark, ledger_path(lake))


def anchors_path(lake: Lake):
    """Every append's signed head, one JSON document: what verify holds the ledger to."""
    return lake.anchors


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


def verify_ledger(spark: SparkSession, lake: Lake, keystore=None, ingested: bool = True) -> Verification:
    """Check every event's hash and link, every recorded head's signature, then the ledger's head
    against the signed anchors and the heads the append runs' manifests recorded. A missing ledger
    is a problem when heads were recorded or (``ingested``) consent was ingested or delivered."""
    from mydata.keys import KeyStore

    keystore = keystore or KeyStore.open(Settings(data_root=lake.root))
    anchors = read_anchors(lake)
    recorded = _recorded_heads(lake)
    problem = _unsigned(keystore, anchors, recorded)
    unreadable = _unreadable_file(lake)
    if unreadable is not None:
        return Verification(0, LedgerHead(0, GENESIS_HASH), unreadable)
    ledger = read_ledger(spark, lake)
    if ledger is None:
        evidence = _consent_evidence(lake, anchors, recorded, ingested)
        if problem is None and evidence:
            problem = ChainBreak(0, None, f"there is no consent ledger at {ledger_path(lake)}, but {evidence}: "
                                          "it was deleted or the data root is wrong")
        return Verification(0, LedgerHead(0, GENESIS_HASH), problem)
    ledger = ledger.cache()
    try:
        head = ledger_head(ledger)
        events = ledger.count()
        problem = problem or first_break(ledger)
        if problem is None and not anchors:
            problem = ChainBreak(head.events, None, f"the ledger holds {head.events} events but its signed "
                                 f"anchors ({anchors_path(lake)}) are missing: they were deleted")
        if problem is None:
            problem = _against_anchors(ledger, head, anchors + recorded)
    finally:
        ledger.unpersist()
    return Verification(events, head, problem)


def _recorded_heads(lake: Lake) -> list[dict]:
    """The signed heads that succeeded append runs wrote into their manifests, oldest first."""
    import json

    heads = []
    for path in sorted((lake.manifests / JOB).glob("*.json")) if (lake.manifests / JOB).is_dir() else []:
        document = json.loads(path.read_text(encoding="utf-8"))
        head = document.get("outputs", {}).get("ledger_head")
        if document.get("status") == "succeeded" and document.get("outputs", {}).get("appended") and head:
            heads.append({**head, "manifest": path.name})
    return sorted(heads, key=lambda h: h.get("events", 0))


def _unsigned(keystore, anchors: list[dict], recorded: list[dict]) -> ChainBreak | None:
    """The first anchor or manifest head whose signature is missing or wrong."""
    from mydata.keys import head_signature_problem

    for where, heads in (("anchor", anchors), ("head recorded in manifest", recorded)):
        for number, head in enumerate(heads):
            wrong = head_signature_problem(keystore, head)
            if wrong is not None:
                name = head.get("manifest", f"#{number}")
                return ChainBreak(int(head.get("events") or 0), None,
                                  f"the {where} {name} (after {head.get('events')} events) {wrong}: the recorded "
                                  "heads were rewritten outside the pipeline")
    return None


def _consent_evidence(lake: Lake, anchors: list[dict], recorded: list[dict], ingested: bool) -> str | None:
    """Why the lake should have a ledger: appends recorded, or consent ingested or delivered."""
    if anchors or recorded:
        last = max(anchors + recorded, key=lambda h: h.get("events", 0))
        return f"{last.get('events')} events were appended (recorded heads)"
    if not ingested:
        return None
    if storage.has_data(lake.bronze_table("consent_events")):
        return "consent events were ingested into bronze"
    delivered = sorted((lake.landing / "consent").glob("dt=*/_SUCCESS"))
    if delivered:
        return f"{len(delivered)} consent deliveries are in the landing zone"
    return None


def _unreadable_file(lake: Lake) -> ChainBreak | None:
    """The first ledger file that does not read whole, checked before Spark (which would fail the
    job and log it at length): a file edited in place fails its checksum or no longer parses."""
    import pyarrow.parquet as pq

    for path in sorted(ledger_path(lake).glob("dt=*/*.parquet")):
        crc = path.with_name(f".{path.name}.crc")
        if crc.is_file():  # the bytes Spark wrote, every one of them: Spark's own read will parse
            cause = _checksum_problem(path, crc)
        else:  # no checksum to hold it to: the file has to read whole
            try:
                pq.read_table(path)
                cause = None
            except Exception as exc:  # pyarrow raises several kinds for a damaged file
                cause = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if cause:
            return ChainBreak(0, None, f"ledger file {path.relative_to(lake.root)} cannot be read ({cause}): "
                                       "it was altered outside the pipeline")
    return None


def _checksum_problem(path: Path, crc: Path) -> str | None:
    """The Hadoop checksum file Spark wrote beside ``path`` (``.<name>.crc``: ``crc\\0``, the
    bytes per checksum, then a big-endian CRC-32 per chunk) against the file's bytes."""
    import struct
    import zlib

    sums, data = crc.read_bytes(), path.read_bytes()
    if sums[:4] != b"crc\x00" or len(sums) < 8:
        return "its checksum file is not one Spark wrote"
    size = struct.unpack(">i", sums[4:8])[0]
    expected = [struct.unpack(">I", sums[i:i + 4])[0] for i in range(8, len(sums) - 3, 4)]
    actual = [zlib.crc32(data[i:i + size]) for i in range(0, len(data), size)]
    return None if expected == actual else "it does not match its checksum"


def _against_anchors(ledger: DataFrame, head: LedgerHead, anchors: list[dict]) -> ChainBreak | None:
    """A self-consistent chain that is not the one appended: a cut tail, or forged events."""
    hashes = {int(r["seq"]): r["hash"] for r in ledger.where(
        F.col("seq").isin(*[a["events"] - 1 for a in anchors if a["events"]])).select("seq", "hash").collect()}
    within = [a for a in anchors if 0 < a["events"] <= head.events]
    agreeing = [a for a in within if hashes.get(a["events"] - 1) == a["hash"]]
    last = max(anchors, key=lambda a: a["events"])
    if head.events == last["events"] and head.hash == last["hash"] and len(agreeing) == len(within):
        return None
    if head.events < last["events"] and len(agreeing) == len(within):
        return ChainBreak(head.events, None, f"the ledger ends after {head.events} events but "
                          f"{last['events']} were appended (events were deleted from the end)")
    matched = max((a["events"] for a in agreeing), default=0)
    row = ledger.where(F.col("seq") == matched).select("event_id").collect()
    return ChainBreak(matched, row[0]["event_id"] if row else None,
                      f"the chain from here on is not the one appended (the recorded head after "
                      f"{last['events']} events differs): events were rewritten, inserted or added")


# -- exporting the signed heads ---------------------------------------------------------------------

ANCHOR_TABLE = "consent_anchors"


def export_anchors(lake: Lake, to_file: Path | None = None, postgres_dsn: str | None = None) -> dict:
    """Copy every signed head to write-once storage: appended to a JSON-lines file, or inserted
    into a Postgres table (``consent_anchors``, one row per head; grant the writer INSERT only).
    Heads exported before are kept as they are; one that differs from the lake's is reported."""
    anchors = read_anchors(lake)
    if to_file is None and postgres_dsn is None:
        raise ValueError("export needs a target: a file (--to) or a Postgres DSN (--postgres or MYDATA_ANCHOR_DSN)")
    exported = _export_file(Path(to_file), anchors) if to_file is not None else _export_postgres(postgres_dsn, anchors)
    return {"heads": len(anchors), **exported}


def _differing(kept: dict[int, dict], anchors: list[dict]) -> list[int]:
    return [a["events"] for a in anchors if a["events"] in kept and
            (kept[a["events"]]["hash"], kept[a["events"]]["signature"]) != (a["hash"], a["signature"])]


def _export_file(path: Path, anchors: list[dict]) -> dict:
    import json

    kept = {}
    if path.is_file():
        kept = {h["events"]: h for h in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if h}
    new = [a for a in anchors if a["events"] not in kept]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        for head in new:
            out.write(json.dumps(head, sort_keys=True) + "\n")
    return {"exported": len(new), "differing": _differing(kept, anchors), "target": str(path)}


def _export_postgres(dsn: str, anchors: list[dict]) -> dict:
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ANCHOR_TABLE} (events bigint PRIMARY KEY, hash text NOT NULL, "
                       "dt date, run_id text, anchor_version int NOT NULL, signature text NOT NULL, "
                       "exported_at timestamptz NOT NULL DEFAULT now())")
        cursor.execute(f"SELECT events, hash, signature FROM {ANCHOR_TABLE}")
        kept = {events: {"hash": hash_, "signature": signature} for events, hash_, signature in cursor.fetchall()}
        new = [a for a in anchors if a["events"] not in kept]
        for head in new:
            cursor.execute(f"INSERT INTO {ANCHOR_TABLE} (events, hash, dt, run_id, anchor_version, signature) "
                           "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (events) DO NOTHING",
                           (head["events"], head["hash"], head["dt"], head["run_id"], head["anchor_version"],
                            head["signature"]))
    target = dsn.rsplit("@", 1)[-1]  # host and database, never a password
    return {"exported": len(new), "differing": _differing(kept, anchors), "target": f"postgres {target} {ANCHOR_TABLE}"}


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
    from mydata.keys import KeyStore, sign_head

    keystore = KeyStore.open(Settings(data_root=lake.root))
    verification = verify_ledger(spark, lake, keystore, ingested=False)
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
        signed = sign_head(keystore, {**head.as_dict(), "dt": dt.isoformat(), "run_id": run_id})
        write_json_atomic(anchors_path(lake), [*read_anchors(lake), signed])
        spark.catalog.clearCache()
    return {"appended": appended, "held": held, "head": signed if appended else verification.head.as_dict(),
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
        manifest.error = str(broken)
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
