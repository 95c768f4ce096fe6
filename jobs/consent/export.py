"""Exporting the signed heads to write-once storage (a JSON-lines file or a Postgres table), and
reading back what the target holds."""
from __future__ import annotations

from pathlib import Path

from jobs.consent.ledger import ConsentChainBroken, read_anchors
from mydata.errors import UsageError
from mydata.lake import Lake

ANCHOR_TABLE = "consent_anchors"


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


def export_anchors(lake: Lake, to_file: Path | None = None, postgres_dsn: str | None = None) -> dict:
    """Copy every signed head to write-once storage: appended to a JSON-lines file, or inserted
    into a Postgres table (``consent_anchors``, one row per head; grant the writer INSERT only).
    Heads exported before are kept as they are; one that differs from the lake's is reported."""
    anchors = read_anchors(lake)
    if to_file is None and postgres_dsn is None:
        raise UsageError("export needs a target: a file (--to) or a Postgres DSN (--postgres or MYDATA_ANCHOR_DSN)")
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
