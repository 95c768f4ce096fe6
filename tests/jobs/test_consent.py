"""The consent ledger: appended in chain order, verified, every kind of tampering named; the snapshot."""
from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import consent
from mydata import storage
from mydata.config import Settings
from schemas.bronze import CONSENT_EVENTS
from schemas.consent import GENESIS_HASH, chain, delivered_event, event_hash
from schemas.dialects import DUCKDB
from tests.on_spark import read_ledger, verify_ledger
from tests.tables import rows_table

BRONZE_SCHEMA = ", ".join(f"{c.name} {c.spark_type}" for c in CONSENT_EVENTS.columns) + ", dt date"
LK = ["A" * 43, "B" * 43, "C" * 43]
UTC = UTC
KST = ZoneInfo("Asia/Seoul")  # the session's time zone: timestamps mean what the landing says


def kst(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=KST)


def utc(text: str) -> datetime:
    """A KST landing time as the naive UTC value Parquet files hold."""
    return kst(text).astimezone(UTC).replace(tzinfo=None)


def make_events(count: int, start: int = 1, prev_hash: str = GENESIS_HASH) -> list[dict]:
    events = []
    for i in range(start, start + count):
        events.append({"event_id": f"c-{i:09d}", "link_key": LK[i % 3], "key_version": 1,
                       "event_type": "grant" if i % 4 else "withdraw",
                       "event_time": f"202610{i % 28 + 1:02d}103000", "purpose": "marketing",
                       "sources": ["bank", "card", "telecom"], "end_date": "20271014",
                       "channel": "app", "notice_version": "mkt-2026.2"})
    return list(chain(events, prev_hash))


def write_bronze(spark, settings: Settings, events: list[dict], dt: date) -> None:
    rows = [(e["event_id"], e["link_key"], e["key_version"], e["event_type"],
             kst(e["event_time"]), e["purpose"], e["sources"],
             datetime.strptime(e["end_date"], "%Y%m%d").date(), e["channel"], e["notice_version"],
             e["prev_hash"], e["hash"], dt) for e in events]
    random.Random(7).shuffle(rows)  # bronze keeps no line order: the chain gives it back
    storage.replace_partitions(spark.createDataFrame(rows, BRONZE_SCHEMA),
                               settings.lake.bronze_table("consent_events"), [dt], "test")


def appended_ledger(spark, root, engine: str) -> tuple[Settings, list[dict]]:
    """A lake whose ledger holds 8 events appended from one delivery by ``engine``."""
    settings = Settings(data_root=root, engine=engine)
    events = make_events(8)
    write_bronze(spark, settings, events, date(2026, 11, 1))
    consent.run(settings, spark)
    return settings, events


@pytest.fixture
def ledger(spark, tmp_path):
    """Appended by the embedded engine (the default); verified by Spark in most tests below."""
    return appended_ledger(spark, tmp_path, "duckdb")


@pytest.fixture
def spark_ledger(spark, tmp_path):
    return appended_ledger(spark, tmp_path, "spark")


def rewrite(settings: Settings, change) -> None:
    """Edit the ledger's Parquet files the way someone with file access could."""
    folder = consent.ledger_path(settings.lake) / "dt=2026-11-01"
    table = pq.read_table(folder)
    rows = change(sorted(table.to_pylist(), key=lambda r: r["seq"]))
    for old in folder.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / "part-0.parquet",
                   use_deprecated_int96_timestamps=True)  # as Spark writes them


def test_an_appended_ledger_is_in_chain_order_and_verifies(spark, ledger):
    settings, events = ledger
    rows = read_ledger(spark, settings.lake).orderBy("seq").collect()
    assert [r.event_id for r in rows] == [e["event_id"] for e in events]
    assert [r.seq for r in rows] == list(range(8))
    check = verify_ledger(spark, settings.lake)
    assert check.ok and check.events == 8 and check.head.hash == events[-1]["hash"]


def test_an_edited_event_is_named(spark, ledger):
    settings, events = ledger
    rewrite(settings, lambda rows: [dict(r, channel="web") if r["seq"] == 3 else r for r in rows])
    problem = verify_ledger(spark, settings.lake).problem
    assert (problem.position, problem.event_id) == (3, events[3]["event_id"])
    assert "edited" in problem.reason


def test_a_deleted_event_is_named_by_the_event_after_it(spark, ledger):
    settings, events = ledger
    rewrite(settings, lambda rows: [dict(r, seq=r["seq"] - (r["seq"] > 3)) for r in rows if r["seq"] != 3])
    problem = verify_ledger(spark, settings.lake).problem
    assert (problem.position, problem.event_id) == (3, events[4]["event_id"])
    assert "deleted, inserted or reordered" in problem.reason


def test_an_inserted_event_is_named(spark, ledger):
    settings, events = ledger

    def insert(rows):
        forged = dict(rows[2], event_id="c-forged", channel="web", seq=3, prev_hash=rows[2]["hash"])
        forged["hash"] = event_hash(delivered_event(dict(forged, event_time=forged["event_time"].replace(tzinfo=UTC).astimezone(KST))))
        return rows[:3] + [forged] + [dict(r, seq=r["seq"] + 1) for r in rows[3:]]
    rewrite(settings, insert)
    problem = verify_ledger(spark, settings.lake).problem
    # the forged event links and hashes (anyone can compute SHA-256): the event after it cannot
    assert (problem.position, problem.event_id) == (4, events[3]["event_id"])


def test_reordered_events_are_named(spark, ledger):
    settings, events = ledger
    rewrite(settings, lambda rows: [dict(r, seq={4: 5, 5: 4}.get(r["seq"], r["seq"])) for r in rows])
    problem = verify_ledger(spark, settings.lake).problem
    assert (problem.position, problem.event_id) == (4, events[5]["event_id"])


def test_a_cut_tail_and_a_forged_tail_break_the_recorded_head(spark, ledger):
    settings, events = ledger
    rewrite(settings, lambda rows: rows[:6])
    problem = verify_ledger(spark, settings.lake).problem
    assert "deleted from the end" in problem.reason and problem.position == 6

    def forge_tail(rows):  # events 7 and 8 again, then a 9th: a self-consistent chain, one too long
        extra = make_events(3, start=7, prev_hash=rows[-1]["hash"])
        return rows + [dict(e, seq=6 + i, event_time=utc(e["event_time"]), end_date=date(2027, 10, 14))
                       for i, e in enumerate(extra)]
    rewrite(settings, forge_tail)
    problem = verify_ledger(spark, settings.lake).problem
    assert problem.position == 8 and "not the one appended" in problem.reason


def test_a_tampered_ledger_stops_the_next_append(spark, ledger):
    settings, events = ledger
    rewrite(settings, lambda rows: [dict(r, channel="web") if r["seq"] == 1 else r for r in rows])
    write_bronze(spark, settings, make_events(2, start=9, prev_hash=events[-1]["hash"]), date(2026, 12, 1))
    with pytest.raises(consent.ConsentChainBroken, match=events[1]["event_id"]):
        consent.run(settings, spark)
    assert not (consent.ledger_path(settings.lake) / "dt=2026-12-01").exists()


def test_deliveries_continue_the_chain_and_a_broken_one_is_held_with_all_after_it(spark, ledger):
    settings, events = ledger
    december = make_events(3, start=9, prev_hash=events[-1]["hash"])
    write_bronze(spark, settings, december, date(2026, 12, 1))
    result = consent.run(settings, spark)
    assert result["appended"] == {"2026-12-01": 3} and result["head"]["events"] == 11
    january = make_events(3, start=12, prev_hash=december[-1]["hash"])
    january[1]["channel"] = "web"  # edited after hashing, before delivery
    february = make_events(1, start=15, prev_hash=january[-1]["hash"])
    write_bronze(spark, settings, january, date(2027, 1, 1))
    write_bronze(spark, settings, february, date(2027, 2, 1))
    with pytest.raises(consent.ConsentChainBroken, match="dt=2027-01-01.*c-000000013"):
        consent.run(settings, spark)
    assert sorted(p.name for p in consent.ledger_path(settings.lake).glob("dt=*")) == \
        ["dt=2026-11-01", "dt=2026-12-01"]
    manifest = json.loads(sorted((settings.lake.manifests / "consent").glob("*.json"),
                                 key=lambda p: p.stat().st_mtime)[-1].read_text())
    assert manifest["status"] == "failed" and any("2027-02-01" in n for n in manifest["notes"])
    assert verify_ledger(spark, settings.lake).ok


def test_chain_order_recovers_the_order_and_names_a_stray_event():
    events = make_events(5)
    links = [(e["event_id"], e["prev_hash"], e["hash"]) for e in reversed(events)]
    assert consent.chain_order(links, GENESIS_HASH) == ([e["event_id"] for e in events], None)
    ordered, problem = consent.chain_order(links[:2] + links[3:], GENESIS_HASH)  # events[2] missing
    assert ordered == [events[0]["event_id"], events[1]["event_id"]]
    assert problem.event_id == events[3]["event_id"] and problem.position == 2


# -- the snapshot ------------------------------------------------------------------------------------

SOURCES = ("bank", "card", "telecom")
T0 = datetime(2026, 1, 1, tzinfo=KST)
event_strategy = st.fixed_dictionaries({
    "event_type": st.sampled_from(["grant", "renew", "withdraw"]),
    "hour": st.integers(0, 20).map(lambda h: h * 12),  # few distinct times: ties happen
    "purpose": st.sampled_from(["marketing", "analytics"]),
    "sources": st.lists(st.sampled_from(SOURCES), min_size=1, max_size=3, unique=True),
    "end_day": st.integers(0, 12),
})
histories_strategy = st.lists(st.lists(event_strategy, min_size=0, max_size=6), min_size=60, max_size=60)


def reference_snapshot(histories, purpose, t):
    """The rule as DESIGN.md words it, on plain lists (chain order = list order)."""
    valid = set()
    for subject, events in enumerate(histories):
        for source in SOURCES:
            latest = None
            for e in events:
                moment = T0 + timedelta(hours=e["hour"])
                if e["purpose"] == purpose and source in e["sources"] and moment <= t:
                    if latest is None or moment >= latest[0]:
                        latest = (moment, e)
            if latest and latest[1]["event_type"] != "withdraw" \
                    and t < datetime.combine(T0.date() + timedelta(days=latest[1]["end_day"]), datetime.min.time(), KST):
                valid.add((f"subject-{subject}", source))
    return valid


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    from mydata.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine.connect(Settings(data_root=tmp_path_factory.mktemp("snapshot"), duckdb_threads=2))
    yield engine
    engine.close()


@hsettings(max_examples=20, deadline=None)
@given(histories=histories_strategy, as_of_hour=st.integers(0, 260))
def test_snapshot_matches_the_reference_over_random_histories(embedded, histories, as_of_hour):
    rows, seq = [], 0
    for subject, events in enumerate(histories):
        for e in events:
            rows.append((seq, f"e-{seq}", f"subject-{subject}", 1, e["event_type"], T0 + timedelta(hours=e["hour"]),
                         e["purpose"], e["sources"], T0.date() + timedelta(days=e["end_day"]), "app"))
            seq += 1
    rows_table(embedded, "ledger", "seq long, event_id string, link_key string, key_version int, event_type string, "
                                   "event_time timestamp, purpose string, sources array<string>, "
                                   "end_date date, channel string", rows)
    t = T0 + timedelta(hours=as_of_hour)
    states = consent.consent_states_sql(DUCKDB, "ledger", "marketing", t)
    got = {(r["link_key"], r["source"]) for r in embedded.rows(f"SELECT * FROM ({states}) s WHERE state = 'valid'")}
    assert got == reference_snapshot(histories, "marketing", t)


# -- signed heads: a lake writer cannot rewrite the proof ---------------------------------------------

def _forge_tail(rows):
    """Events 7 and 8 again, then a 9th: a self-consistent chain, one event longer."""
    extra = make_events(3, start=7, prev_hash=rows[-1]["hash"])
    return rows + [dict(e, seq=6 + i, event_time=utc(e["event_time"]), end_date=date(2027, 10, 14))
                   for i, e in enumerate(extra)]


def test_every_recorded_head_is_signed_with_the_anchor_secret(spark, ledger):
    from mydata.keys import KeyStore, head_signature_problem

    settings, events = ledger
    [anchor] = consent.read_anchors(settings.lake)
    assert anchor["events"] == 8 and anchor["hash"] == events[-1]["hash"] and anchor["anchor_version"] == 1
    assert head_signature_problem(KeyStore.open(settings), anchor) is None
    manifest = json.loads(next((settings.lake.manifests / "consent").glob("*.json")).read_text())
    assert manifest["outputs"]["ledger_head"]["signature"] == anchor["signature"]


@pytest.mark.parametrize("signing", ["unsigned", "another key", "old signature"])
def test_a_forged_event_with_rewritten_anchors_and_manifests_fails(spark, ledger, signing):
    import hashlib
    import hmac

    settings, events = ledger
    rewrite(settings, _forge_tail)
    forged_hash = sorted(pq.read_table(consent.ledger_path(settings.lake)).to_pylist(), key=lambda r: r["seq"])[-1]["hash"]
    paths = [consent.anchors_path(settings.lake), *(settings.lake.manifests / "consent").glob("*.json")]
    for path in paths:  # whoever writes the lake rewrites every recorded head to the forged one
        document = json.loads(path.read_text())
        heads = document if isinstance(document, list) else [document["outputs"]["ledger_head"]]
        for head in heads:
            head.update(events=9, hash=forged_hash)
            if signing == "unsigned":
                head.pop("signature")
            elif signing == "another key":
                payload = json.dumps({k: head[k] for k in ("events", "hash", "dt", "run_id")}, sort_keys=True,
                                     separators=(",", ":")).encode()
                head["signature"] = hmac.new(b"k" * 32, payload, hashlib.sha256).hexdigest()
        path.write_text(json.dumps(document))
    problem = verify_ledger(spark, settings.lake).problem
    assert problem is not None and "rewritten outside the pipeline" in problem.reason
    assert {"unsigned": "is not signed", "another key": "does not match", "old signature": "does not match"}[signing] \
        in problem.reason


def test_no_ledger_at_all_fails_when_anything_shows_consent_was_ingested(spark, ledger, tmp_path, capsys):
    import shutil

    from cli import main

    settings, _ = ledger
    shutil.rmtree(settings.lake.consent)  # ledger and anchors gone; the append's manifest remains
    problem = verify_ledger(spark, settings.lake).problem
    assert "there is no consent ledger" in problem.reason and "8 events were appended" in problem.reason
    shutil.rmtree(settings.lake.manifests)  # the bronze consent events still show it
    problem = verify_ledger(spark, settings.lake).problem
    assert "consent events were ingested into bronze" in problem.reason
    assert main(["--data-root", str(settings.data_root), "consent", "verify"]) == 1
    assert "BROKEN" in capsys.readouterr().err
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    assert main(["--data-root", str(empty), "consent", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no consent ledger" in err and "nothing was appended here" in err


def test_a_ledger_without_its_anchors_fails(spark, ledger):
    settings, _ = ledger
    consent.anchors_path(settings.lake).unlink()
    for path in (settings.lake.manifests / "consent").glob("*.json"):
        path.unlink()
    problem = verify_ledger(spark, settings.lake).problem
    assert "signed anchors" in problem.reason and "are missing" in problem.reason


def test_a_damaged_ledger_file_is_named_in_one_line(spark, spark_ledger, capsys):
    """Spark writes a checksum beside each file, which verify holds the file to."""
    from cli import main

    settings, _ = spark_ledger
    path = sorted((consent.ledger_path(settings.lake) / "dt=2026-11-01").glob("*.parquet"))[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    assert main(["--data-root", str(settings.data_root), "consent", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"ledger file consent/ledger/dt=2026-11-01/{path.name} cannot be read" in err
    path.with_name(f".{path.name}.crc").unlink()  # without its checksum, the file's own structure is checked
    data[-1] ^= 0xFF  # the footer's magic bytes
    path.write_bytes(bytes(data))
    assert main(["--data-root", str(settings.data_root), "consent", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path.name} cannot be read" in err, err


def test_signed_heads_export_to_a_file_and_to_postgres(spark, ledger, tmp_path):
    import psycopg2

    from mydata.devtools.airflow_stack import local_postgres

    settings, events = ledger
    target = tmp_path / "worm" / "anchors.jsonl"
    assert consent.export_anchors(settings.lake, to_file=target)["exported"] == 1
    assert consent.export_anchors(settings.lake, to_file=target)["exported"] == 0  # kept, never rewritten
    [line] = target.read_text().splitlines()
    assert json.loads(line) == consent.read_anchors(settings.lake)[0]
    anchors = consent.read_anchors(settings.lake)
    consent.anchors_path(settings.lake).write_text(json.dumps([dict(anchors[0], hash="0" * 64)]))
    assert consent.export_anchors(settings.lake, to_file=target)["differing"] == [8]
    consent.anchors_path(settings.lake).write_text(json.dumps(anchors))
    with local_postgres("anchors") as pg:
        dsn = pg.url.replace("postgresql+psycopg2://", "postgresql://")
        result = consent.export_anchors(settings.lake, postgres_dsn=dsn)
        assert result["exported"] == 1 and "@" not in result["target"]
        assert consent.export_anchors(settings.lake, postgres_dsn=dsn)["exported"] == 0
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT events, hash, signature FROM consent_anchors")
            assert cursor.fetchall() == [(8, events[-1]["hash"], anchors[0]["signature"])]
