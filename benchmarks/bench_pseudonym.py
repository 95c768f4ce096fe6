"""Purpose pseudonyms per second: `python benchmarks/bench_pseudonym.py [ROWS]`.

Compares the HMAC in SQL (jobs.pseudonym, what fusion and purge use) on each engine with the same
HMAC in Python (``mydata.keys.purpose_pseudonym``, one call per key), over ROWS 43-character
link keys (default 2,000,000). All must give the same strings; the table says what the SQL path saves.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from jobs.pseudonym import pseudonym_sql, register_keys
from mydata.config import Settings
from mydata.engines import open_engine
from mydata.keys import Secret, purpose_pseudonym


def keys_sql(engine, rows: int) -> str:
    d = engine.dialect
    digest = d.sha256(d.utf8(d.text("id")))
    source = f"range({rows})" + (" t(id)" if d.name == "duckdb" else "")
    return f"SELECT substring(translate({d.base64(digest)}, '+/', '-_'), 1, 43) AS link_key FROM {source}"


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    secret = Secret(bytes(range(32)))
    timings, samples = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-pseudonym-") as tmp:
        for name in ("duckdb", "spark"):
            engine = open_engine(Settings(data_root=Path(tmp), engine=name))
            engine.table("link_keys", keys_sql(engine, rows))
            engine.rows("SELECT count(*) AS n FROM link_keys")
            register_keys(engine, "purpose_keys", secret)
            query = f"SELECT l.link_key, {pseudonym_sql(engine.dialect, 'l.link_key', 'k')} AS p " \
                    "FROM link_keys l CROSS JOIN purpose_keys k"
            started = time.perf_counter()
            engine.rows(f"SELECT max(p) AS p FROM ({query}) q")
            timings[f"SQL HMAC on {name} (jobs.pseudonym)"] = time.perf_counter() - started
            samples[name] = {r["link_key"]: r["p"] for r in engine.rows(f"{query} ORDER BY l.link_key LIMIT 1000")}
            if name == "duckdb":
                keys = [r["link_key"] for r in engine.rows("SELECT link_key FROM link_keys")]
            engine.close()
    started = time.perf_counter()
    python = [purpose_pseudonym(secret, k) for k in keys]
    timings["Python hmac, one call per key"] = time.perf_counter() - started
    expected = dict(zip(keys, python))
    assert all(samples[name] == {k: expected[k] for k in samples[name]} for name in samples), "the HMACs disagree"
    print("| implementation | rows | seconds | pseudonyms/s |")
    print("|---|---|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} |")


if __name__ == "__main__":
    main()
