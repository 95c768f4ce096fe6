"""The consent ledger's chain: ``consent/ledger/dt=<delivery>/``, one partition per consent
delivery, never rewritten. Each event gets ``seq``, its position in the chain (0 for the first
event of the whole log). A chain proves order and content; every append also records the head
(events and last hash), signed with the key store's anchor secret, in ``consent/anchors.json``.
Here: the paths, the hash checked on the engine, ordering a delivery by its links, the head."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mydata.engines import Engine
from mydata.errors import StageFailed
from mydata.lake import Lake
from schemas.consent import (
    EVENT_FIELDS,
    GENESIS_HASH,
    ChainBreak,
    delivered_event,
    event_hash,
)
from schemas.dialects import Dialect

JOB = "consent"
LEDGER_COLUMNS = ("seq", "event_id", "link_key", "key_version", "event_type", "event_time", "purpose",
                  "sources", "end_date", "channel", "notice_version", "prev_hash", "hash")


class ConsentChainBroken(StageFailed):
    """The ledger or an incoming delivery does not verify; names the first bad event."""


def ledger_path(lake: Lake):
    return lake.ledger


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
