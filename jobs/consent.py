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
from datetime import date, datetime
from pathlib import Path
from typing import Iterable

from typing import Any

import pyarrow as pa

from jobs.stage import stage_run
from mydata import progress, storage
from mydata.config import Settings
from mydata.engines import Engine, as_engine
from mydata.lake import Lake
from mydata.manifest import RunManifest, json_text
from mydata.lock import writes_lake
from schemas.asof import as_of_moment
from schemas.consent import EVENT_FIELDS, GENESIS_HASH, ChainBreak, delivered_event, event_hash
from schemas.dialects import Dialect

JOB = "consent"
LEDGER_COLUMNS = ("seq", "event_id", "link_key", "key_version", "event_type", "event_time", "purpose",
                  "sources", "end_date", "channel", "notice_version", "prev_hash", "hash")


class ConsentChainBroken(RuntimeError):
    """The ledger or an incoming delivery does not verify; names the first bad event."""


def ledger_path(lake: Lake):
    return lake.ledger


def read_ledger(spark, lake: Lake):
    """The ledger as a Spark DataFrame (for Spark-side consumers), or None when there is none."""
    return storage.read_table(spark, ledger_path(lake))


def anchors_path(lake: Lake):
    """Every append's signed head, one JSON document: what verify holds the ledger to."""
    return lake.anchors


# -- hashing and checking, on the engine -----------------------------------------------------------

HASH_FUNCTION = "consent_event_hash"
#: the hashed fields (every one but the hash) and their types, as the ledger holds them
HASHED = tuple((name, "int" if name == "key_version" else "array<string>" if name == "sources" else "string")
               for name in EVENT_FIELDS if name != "hash")


def _event_hash(*values: Any) -> str:
    return event_hash(delivered_event(dict(zip((name for name, _ in HASHED), values))))


def expected_hash(d: Dialect) -> str:
    """SQL: the hash each event must carry, from its typed columns put back in their delivered form."""
    delivered = {"event_time": d.strftime("event_time", "%Y%m%d%H%M%S"), "end_date": d.strftime("end_date", "%Y%m%d")}
    return f"{HASH_FUNCTION}({', '.join(delivered.get(name, name) for name, _ in HASHED)})"


def chain_breaks(d: Dialect, events: str, first_prev_hash: str = GENESIS_HASH, first_seq: int = 0) -> str:
    """SQL: every event of ``events`` (ordered by ``seq``) that does not verify, with the reason.

    Edits break the event's own hash; deletions, insertions and reorderings break the link of
    the event after them (its ``prev_hash`` is not the hash of the event now before it), or
    leave a gap or a repeat in ``seq``.
    """
    edited = d.lit("hash does not match the event's content (the event was edited)")
    return f"""
SELECT _position AS position, seq, event_id,
       CASE WHEN prev_hash <> _before THEN {d.lit("prev_hash does not match the hash of the event before it "
                                                   "(an event was deleted, inserted or reordered here)")}
            WHEN seq <> _position THEN concat('seq is ', {d.text('seq')}, ' where ', {d.text('_position')},
                                              ' was expected (an event is missing or repeated)')
            WHEN hash <> _expected THEN {edited} END AS reason
FROM (SELECT seq, event_id, prev_hash, hash, {expected_hash(d)} AS _expected,
             row_number() OVER (ORDER BY seq) - 1 + {first_seq} AS _position,
             coalesce(lag(hash) OVER (ORDER BY seq), {d.lit(first_prev_hash)}) AS _before
      FROM {events}) e
WHERE prev_hash <> _before OR seq <> _position OR hash <> _expected"""


def first_break(engine: Engine, events: str, first_prev_hash: str = GENESIS_HASH,
                first_seq: int = 0) -> ChainBreak | None:
    _with_hash_function(engine)
    rows = engine.rows(f"SELECT * FROM ({chain_breaks(engine.dialect, events, first_prev_hash, first_seq)}) b "
                       "ORDER BY position LIMIT 1")
    return ChainBreak(int(rows[0]["position"]), rows[0]["event_id"], rows[0]["reason"]) if rows else None


def _with_hash_function(engine: Engine) -> None:
    engine.function(HASH_FUNCTION, _event_hash, [kind for _, kind in HASHED], "string")


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

def consent_states_sql(d: Dialect, ledger: str, purpose: str, as_of: date | datetime) -> str:
    """SQL: per (link_key, key_version, source) the latest event of ``ledger`` at or before
    ``as_of`` and its ``state`` (valid, withdrawn or expired); subjects with no event yet are absent."""
    moment = d.moment(as_of_moment(as_of))
    return f"""
SELECT link_key, key_version, source, event_type, event_time, end_date, channel, event_id, seq,
       CASE WHEN event_type = 'withdraw' THEN 'withdrawn'
            WHEN {moment} >= CAST(end_date AS {d.sql_type('timestamp')}) THEN 'expired' ELSE 'valid' END AS state
FROM (SELECT *, row_number() OVER (PARTITION BY link_key, key_version, source
                                   ORDER BY event_time DESC, seq DESC) AS _n
      FROM (SELECT link_key, key_version, {d.explode('sources')} AS source, event_type, event_time, end_date,
                   channel, event_id, seq
            FROM {ledger} WHERE purpose = {d.lit(purpose)} AND event_time <= {moment}) e) l
WHERE _n = 1"""


# -- the ledger head and verification ---------------------------------------------------------------

@dataclass(frozen=True)
class LedgerHead:
    events: int
    hash: str

    def as_dict(self) -> dict:
        return {"events": self.events, "hash": self.hash}


def ledger_head(engine: Engine, ledger: str | None) -> LedgerHead:
    if ledger is None:
        return LedgerHead(0, GENESIS_HASH)
    row = engine.rows(f"SELECT seq, hash FROM {ledger} ORDER BY seq DESC LIMIT 1")
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
    #: consent events bronze holds from deliveries after the ledger's last: not appended yet (or cut
    #: from the end: only an export to write-once storage tells the two apart)
    pending: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_ledger(session, lake: Lake, keystore=None, ingested: bool = True) -> Verification:
    """Check every event's hash and link, every recorded head's signature, then the ledger's head
    against the signed anchors and the heads the append runs' manifests recorded. A missing ledger
    is a problem when heads were recorded or (``ingested``) consent was ingested or delivered.
    ``session``: an engine, or a SparkSession."""
    from mydata.keys import KeyStore

    engine = as_engine(session)
    keystore = keystore or KeyStore.open(Settings(data_root=lake.root))
    anchors = read_anchors(lake)
    recorded = _recorded_heads(lake)
    problem = _unsigned(keystore, anchors, recorded)
    unreadable = _unreadable_file(lake)
    if unreadable is not None:
        return Verification(0, LedgerHead(0, GENESIS_HASH), unreadable)
    if not engine.parquet("ledger_read", ledger_path(lake)):
        evidence = _consent_evidence(lake, anchors, recorded, ingested)
        if problem is None and evidence:
            problem = ChainBreak(0, None, f"there is no consent ledger at {ledger_path(lake)}, but {evidence}: "
                                          "it was deleted or the data root is wrong")
        return Verification(0, LedgerHead(0, GENESIS_HASH), problem)
    engine.table("ledger_verified", "SELECT * FROM ledger_read")
    try:
        head = ledger_head(engine, "ledger_verified")
        events = engine.rows("SELECT count(*) AS n FROM ledger_verified")[0]["n"]
        problem = problem or first_break(engine, "ledger_verified")
        if problem is None and not anchors:
            problem = ChainBreak(head.events, None, f"the ledger holds {head.events} events but its signed "
                                 f"anchors ({anchors_path(lake)}) are missing: they were deleted")
        if problem is None:
            problem = _against_anchors(engine, "ledger_verified", head, anchors + recorded)
        pending = 0
        if problem is None and ingested:
            problem, pending = _cut_events(engine, lake, "ledger_verified")
        if problem is None:
            problem = _behind_export(head, exported_heads(lake))
    finally:
        engine.drop("ledger_verified", "ledger_read")
    return Verification(events, head, problem, pending)


def _cut_events(engine: Engine, lake: Lake, ledger: str) -> tuple[ChainBreak | None, int]:
    """Consent events bronze holds and the ledger does not: from deliveries the ledger already covers
    they were cut from it (a problem); from later ones they are pending (counted)."""
    if not engine.parquet("consent_delivered", lake.bronze_table("consent_events")):
        return None, 0
    try:
        row = engine.rows(f"SELECT count(CASE WHEN b.dt <= l.last THEN 1 END) AS cut, "
                          f"count(CASE WHEN b.dt > l.last THEN 1 END) AS pending, "
                          f"min(CASE WHEN b.dt <= l.last THEN b.event_id END) AS first, "
                          f"min(CASE WHEN b.dt <= l.last THEN b.dt END) AS dt "
                          f"FROM consent_delivered b CROSS JOIN (SELECT max(dt) AS last FROM {ledger}) l "
                          f"WHERE b.event_id NOT IN (SELECT event_id FROM {ledger})")[0]
    finally:
        engine.drop("consent_delivered")
    if not row["cut"]:
        return None, int(row["pending"] or 0)
    return ChainBreak(0, row["first"], f"{row['cut']} consent event(s) delivered on or before the ledger's last "
                                       f"delivery (from dt={row['dt']}) are in bronze but not in the ledger: it was "
                                       "cut back"), int(row["pending"] or 0)


def _behind_export(head: LedgerHead, exported: list[dict]) -> ChainBreak | None:
    """The heads exported to write-once storage must be a prefix of the ledger: one past its end is a rollback."""
    ahead = [h for h in exported if int(h.get("events", 0)) > head.events]
    if not ahead:
        return None
    last = max(ahead, key=lambda h: int(h["events"]))
    return ChainBreak(head.events, None, f"the ledger ends after {head.events} events, but a head after "
                                         f"{last['events']} events was exported to write-once storage: the ledger "
                                         "was rolled back")


def exported_heads(lake: Lake, to_file: Path | None = None, postgres_dsn: str | None = None) -> list[dict]:
    """The heads the export target holds (the configured one: MYDATA_ANCHOR_FILE or MYDATA_ANCHOR_DSN)."""
    import json
    import os

    to_file = to_file or (Path(os.environ["MYDATA_ANCHOR_FILE"]) if os.environ.get("MYDATA_ANCHOR_FILE") else None)
    postgres_dsn = postgres_dsn or os.environ.get("MYDATA_ANCHOR_DSN")
    if to_file is not None:
        return [json.loads(line) for line in to_file.read_text(encoding="utf-8").splitlines() if line.strip()] \
            if to_file.is_file() else []
    if postgres_dsn:
        import psycopg2

        with psycopg2.connect(postgres_dsn) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT to_regclass('{ANCHOR_TABLE}') IS NOT NULL")
            if not cursor.fetchone()[0]:
                return []
            cursor.execute(f"SELECT events, hash, signature FROM {ANCHOR_TABLE}")
            return [{"events": e, "hash": h, "signature": sig} for e, h, sig in cursor.fetchall()]
    return []


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


def _against_anchors(engine: Engine, ledger: str, head: LedgerHead, anchors: list[dict]) -> ChainBreak | None:
    """A self-consistent chain that is not the one appended: a cut tail, or forged events."""
    positions = ", ".join(str(a["events"] - 1) for a in anchors if a["events"]) or "-1"
    hashes = {int(r["seq"]): r["hash"] for r in engine.rows(f"SELECT seq, hash FROM {ledger} WHERE seq IN ({positions})")}
    within = [a for a in anchors if 0 < a["events"] <= head.events]
    agreeing = [a for a in within if hashes.get(a["events"] - 1) == a["hash"]]
    last = max(anchors, key=lambda a: a["events"])
    if head.events == last["events"] and head.hash == last["hash"] and len(agreeing) == len(within):
        return None
    if head.events < last["events"] and len(agreeing) == len(within):
        return ChainBreak(head.events, None, f"the ledger ends after {head.events} events but "
                          f"{last['events']} were appended (events were deleted from the end)")
    matched = max((a["events"] for a in agreeing), default=0)
    row = engine.rows(f"SELECT event_id FROM {ledger} WHERE seq = {matched}")
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
    current = max((a["events"] for a in anchors), default=0)
    before = exported_heads(lake, Path(to_file) if to_file is not None else None, postgres_dsn)
    if any(int(h["events"]) > current for h in before):
        raise ConsentChainBroken(f"the ledger's head ({current} events) is behind what was exported before "
                                 f"({max(int(h['events']) for h in before)} events): the ledger was rolled back; "
                                 "nothing exported")
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

def delivery_in_chain_order(engine: Engine, events: str, head: LedgerHead, ordered: str) -> ChainBreak | None:
    """Register ``ordered``: the delivery's events with ``seq`` (continuing the ledger); or return
    the first event that does not link."""
    links = engine.rows(f"SELECT event_id, prev_hash, hash FROM {events}")
    order, problem = chain_order(((r["event_id"], r["prev_hash"], r["hash"]) for r in links), head.hash)
    if problem is not None:
        return problem
    engine.arrow("chain_positions", pa.table({"event_id": pa.array(order, pa.string()),
                                              "seq": pa.array(range(head.events, head.events + len(order)), pa.int64())}))
    columns = ", ".join(f"e.{engine.dialect.ident(c)}" if c != "seq" else "p.seq" for c in LEDGER_COLUMNS)
    # chain_positions stays registered while ``ordered`` is in use (the caller drops both)
    engine.table(ordered, f"SELECT {columns}, e.dt FROM {events} e JOIN chain_positions p ON e.event_id = p.event_id")
    return None


def append(engine: Engine, lake: Lake, manifest: RunManifest) -> dict:
    """Append every bronze consent delivery not yet in the ledger, oldest first, each verified; the
    ledger partitions, their signed heads and the run's manifest land in one journaled publish,
    so a run killed at any point leaves all of them or none (the next writer finishes it)."""
    from mydata.keys import KeyStore, sign_head

    keystore = KeyStore.open(Settings(data_root=lake.root))
    verification = verify_ledger(engine, lake, keystore, ingested=False)
    if not verification.ok:
        raise ConsentChainBroken(f"the consent ledger does not verify at {verification.problem}; "
                                 "nothing appended until a reviewer acts")
    has_bronze = engine.parquet("consent_bronze", lake.bronze_table("consent_events"))
    done = ({r["dt"] for r in engine.rows("SELECT DISTINCT dt FROM ledger_done")}
            if engine.parquet("ledger_done", ledger_path(lake)) else set())
    pending = sorted({r["dt"] for r in engine.rows("SELECT DISTINCT dt FROM consent_bronze")} - done) if has_bronze else []
    head, anchors = verification.head, read_anchors(lake)
    appended: dict[str, int] = {}
    held: dict[str, str] = {}
    staged: list[storage.Staged] = []
    with progress.step("consent", "append", unit="deliveries", total=len(pending)) as shown:
        for dt in pending:
            if held:  # nothing after a broken delivery is trusted
                held[dt.isoformat()] = "not appended: an earlier delivery broke the chain"
                shown.advance()
                continue
            engine.table("delivery", f"SELECT * FROM consent_bronze WHERE dt = DATE '{dt.isoformat()}'")
            problem = delivery_in_chain_order(engine, "delivery", head, "ordered")
            if problem is None:
                problem = first_break(engine, "ordered", head.hash, head.events)
            if problem is not None:
                held[dt.isoformat()] = f"chain breaks at {problem}"
                engine.drop("ordered", "chain_positions", "delivery")
                shown.advance()
                continue
            count = engine.rows("SELECT count(*) AS n FROM ordered")[0]["n"]
            staged.append(engine.stage("SELECT * FROM ordered", ledger_path(lake), [dt], manifest.run_id))
            head = ledger_head(engine, "ordered")
            appended[dt.isoformat()] = count
            anchors.append(sign_head(keystore, {**head.as_dict(), "dt": dt.isoformat(), "run_id": manifest.run_id}))
            engine.drop("ordered", "chain_positions", "delivery")
            shown.advance(rows=count)
    engine.drop("consent_bronze", "ledger_done")
    result = {"appended": appended, "held": held, "head": anchors[-1] if appended else verification.head.as_dict(),
              "verified_before": verification.events}
    manifest.inputs = {"bronze": "consent_events", "verified_events": result["verified_before"]}
    manifest.outputs = {"appended": result["appended"], "ledger_head": result["head"]}
    manifest.notes += [f"consent dt={dt}: {why}" for dt, why in result["held"].items()]
    if appended:
        staged.append(storage.stage_file(anchors_path(lake), json_text(anchors), manifest.run_id))
    staged.append(storage.stage_file(lake.manifest(JOB, manifest.run_id),
                                     json_text(manifest.finished("failed" if held else "succeeded")), manifest.run_id))
    try:
        storage.publish(staged, journal=lake.publish_journal)
    finally:
        storage.discard(staged)  # nothing is left after a publish; a failed one leaves no staging
    return result


@writes_lake(JOB)
def run(settings: Settings, spark: Any = None) -> dict:
    """Append new consent deliveries to the ledger on the configured engine; fails (and says where)
    when a chain breaks."""
    with stage_run(settings, JOB, spark=spark, engine=settings.engine) as run:
        result = append(run.engine, run.lake, run.manifest)
    path = run.manifest.landed(run.lake)
    if result["held"]:
        first = next(iter(result["held"].items()))
        raise ConsentChainBroken(f"consent delivery dt={first[0]} {first[1]}; "
                                 f"{len(result['held'])} delivery(ies) held back; see {path}")
    return {"manifest": str(path), **result}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
