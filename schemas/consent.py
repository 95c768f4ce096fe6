"""The consent event log's hash chain (LANDING.md, "consent").

``hash = sha256_hex(prev_hash + canonical_json(event without "hash"))``, canonical JSON being
sorted keys, ``,``/``:`` separators, non-ASCII as itself. The first event of the whole log links
to 64 zeros; the first event of a delivery links to the last event of the one before.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Mapping

GENESIS_HASH = "0" * 64


def canonical_json(event: Mapping) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
