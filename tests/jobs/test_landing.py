import json

from jobs import landing
from mydata.config import Settings
from schemas.dialects import DUCKDB


def test_count_records_excludes_csv_headers_and_blank_lines(duckdb_engine, tmp_path):
    files = {"bank/dt=2026-06-01/part-0.jsonl": '{"a": 1}\n',
             "bank/dt=2026-06-01/part-1.jsonl": '{"a": 2}\n   \n\n',
             "customer/dt=2026-06-01/part-0.csv": "link_key,key_version,birth_year\nk,1,1990\n",
             "bank/dt=2026-07-01/part-0.jsonl": "not json, still a record"}
    for name, text in files.items():
        (tmp_path / "landing" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "landing" / name).write_text(text, encoding="utf-8")
    duckdb_engine.lines("lines", sorted((tmp_path / "landing").rglob("part-*")))
    rows = [tuple(r.values()) for r in duckdb_engine.rows(landing.count_records_sql(DUCKDB, "lines"))]
    assert rows == [("bank", "2026-06-01", 2), ("bank", "2026-07-01", 1), ("customer", "2026-06-01", 1)]


def test_run_counts_complete_deliveries_and_lists_waiting_ones(spark, small_landing, copy_landing):
    settings, summary = small_landing
    settings = copy_landing(settings)
    waiting = settings.lake.delivery("card", __import__("datetime").date.fromisoformat(summary.deliveries[-1]))
    (waiting / "_SUCCESS").unlink()
    result = landing.run(settings, spark)
    manifest = json.loads(open(result["manifest"], encoding="utf-8").read())
    assert result["deliveries_waiting"] == 1
    assert manifest["notes"] == [f"waiting for _SUCCESS: card dt={summary.deliveries[-1]}"]
    card = manifest["outputs"]["records"]["card"]
    assert summary.deliveries[-1] not in card
    assert manifest["outputs"]["records"]["bank"] and sum(manifest["outputs"]["records"]["bank"].values()) \
        == summary.records["bank"]
    assert manifest["outputs"]["records"]["consent"][summary.deliveries[0]] > 0
    assert manifest["status"] == "succeeded" and manifest["code_version"]


def test_run_on_an_empty_lake_says_so(spark, tmp_path):
    result = landing.run(Settings(data_root=tmp_path), spark)
    manifest = json.loads(open(result["manifest"], encoding="utf-8").read())
    assert result["total_records"] == 0
    assert manifest["notes"] == [f"no deliveries under {tmp_path / 'landing'}"]


def test_a_gzipped_file_is_sized_as_the_text_it_holds(tmp_path):
    import gzip

    from jobs.landing import text_bytes

    text = ("x" * 999 + "\n").encode() * 1000
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(text))
    (tmp_path / "b.jsonl").write_bytes(text)
    assert text_bytes(tmp_path / "a.jsonl.gz") == text_bytes(tmp_path / "b.jsonl") == 1_000_000
    assert (tmp_path / "a.jsonl.gz").stat().st_size < 10_000
