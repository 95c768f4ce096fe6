import json

from jobs import landing
from mydata.config import Settings


def test_count_records_excludes_csv_headers_and_blank_lines(spark):
    lines = spark.createDataFrame([
        ("/d/landing/bank/dt=2026-06-01/part-0.jsonl", '{"a": 1}'),
        ("/d/landing/bank/dt=2026-06-01/part-1.jsonl", '{"a": 2}'),
        ("/d/landing/bank/dt=2026-06-01/part-1.jsonl", "   "),
        ("/d/landing/customer/dt=2026-06-01/part-0.csv", "link_key,key_version,birth_year"),
        ("/d/landing/customer/dt=2026-06-01/part-0.csv", "k,1,1990"),
        ("/d/landing/bank/dt=2026-07-01/part-0.jsonl", "not json, still a record"),
    ], ["file_path", "value"])
    rows = [tuple(r) for r in landing.count_records(lines).collect()]
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
