"""The consent event log's hash chain (LANDING.md, "consent").

``hash = sha256_hex(prev_hash + canonical_json(event without "hash"))``, canonical JSON being
sorted keys, ``,``/``:`` separators, non-ASCII as itself. The first event of the whole log links
to 64 zeros; the first event of a delivery links to the last event of the one before.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

GENESIS_HASH = "0" * 64


def canonical_json(event: Mapping) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


#: the fields of an event as delivered, in the order LANDING.md lists them
EVENT_FIELDS = ("event_id", "link_key", "key_version", "event_type", "event_time", "purpose", "sources",
                "end_date", "channel", "notice_version", "prev_hash", "hash")


def delivered_event(typed: Mapping) -> dict:
    """An event back in its delivered JSON form from typed values (bronze, ledger), for hashing."""
    event = {name: typed.get(name) for name in EVENT_FIELDS}
    if isinstance(event["event_time"], datetime):
        event["event_time"] = event["event_time"].strftime("%Y%m%d%H%M%S")
    if isinstance(event["end_date"], date):
        event["end_date"] = event["end_date"].strftime("%Y%m%d")
    if event["key_version"] is not None:
        event["key_version"] = int(event["key_version"])
    if event["sources"] is not None:
        event["sources"] = list(event["sources"])
    return event


def event_hash(event: Mapping) -> str:
    """The hash an event must carry, given its own ``prev_hash``."""
    payload = str(event.get("prev_hash", "")) + canonical_json(event)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chain(events: Iterable[dict], prev_hash: str = GENESIS_HASH) -> Iterable[dict]:
    """Set ``prev_hash`` and ``hash`` on events in order (the consent service's side)."""
    for event in events:
        event["prev_hash"] = prev_hash
        event.pop("hash", None)
        event["hash"] = prev_hash = event_hash(event)
        yield event


@dataclass(frozen=True)
class ChainBreak:
    """The first event at which a chain stops verifying."""

    position: int
    event_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"event #{self.position} ({self.event_id or 'no event_id'}): {self.reason}"


def verify_chain(events: Iterable[Mapping], prev_hash: str = GENESIS_HASH) -> ChainBreak | None:
    """None when every event links to the one before and carries its own hash, else the first break."""
    for position, event in enumerate(events):
        event_id = event.get("event_id")
        if event.get("prev_hash") != prev_hash:
            return ChainBreak(position, event_id,
                              "prev_hash does not match the hash of the event before it "
                              "(an event was deleted, inserted or reordered here)")
        if event.get("hash") != event_hash(event):
            return ChainBreak(position, event_id,
                              "hash does not match the event's content (the event was edited)")
        prev_hash = event["hash"]
    return None
