"""Verifying the consent ledger: every event's hash and link, every recorded head's signature,
then the head against the signed anchors, the append runs' manifests and what was exported to
write-once storage. A chain anyone could append to or cut is held to heads only the pipeline signs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobs.consent.export import exported_heads
from jobs.consent.ledger import (
    JOB,
    LedgerHead,
    anchors_path,
    first_break,
    ledger_head,
    ledger_path,
    read_anchors,
)
from mydata import storage
from mydata.config import Settings
from mydata.engines import Engine
from mydata.lake import Lake
from schemas.consent import (
    GENESIS_HASH,
    ChainBreak,
)


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


def verify_ledger(engine: Engine, lake: Lake, keystore=None, ingested: bool = True) -> Verification:
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
