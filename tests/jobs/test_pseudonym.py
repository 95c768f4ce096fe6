"""The HMAC in SQL gives exactly the Python HMAC on both engines, and never shows the secret in a plan."""
from __future__ import annotations

import base64

import pytest

from jobs.pseudonym import pseudonym_sql, register_keys
from mydata.keys import Secret, purpose_pseudonym
from tests.on_spark import as_engine
from tests.tables import rows_table

SECRET = Secret(bytes(range(7, 39)))
KEYS = ["niAuzipqp0BAzR9rUoFN9Y_MALwEOf9ezn_P-HgVKY8", "a", "키-🙂", "x" * 200, None]


def pseudonyms(engine, secret: Secret) -> str:
    register_keys(engine, "purpose_keys", secret)
    rows_table(engine, "subjects", "link_key string", [(k,) for k in KEYS])
    return (f"SELECT s.link_key, {pseudonym_sql(engine.dialect, 's.link_key', 'k')} AS pseudonym "
            "FROM subjects s CROSS JOIN purpose_keys k")


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
@pytest.mark.parametrize("secret", [SECRET, Secret(bytes(range(100)))], ids=["32-byte", "100-byte"])
def test_sql_pseudonyms_equal_the_python_hmac(request, engine_name, secret):
    engine = request.getfixturevalue("duckdb_engine") if engine_name == "duckdb" \
        else as_engine(request.getfixturevalue("spark"))
    try:
        got = {r["link_key"]: r["pseudonym"] for r in engine.rows(pseudonyms(engine, secret))}
    finally:
        engine.close()
    assert got == {k: (purpose_pseudonym(secret, k) if k is not None else None) for k in KEYS}


def test_the_secret_is_not_in_the_query_plan(spark, capsys):
    engine = as_engine(spark)
    try:
        spark.sql(pseudonyms(engine, SECRET)).explain(extended=True)
    finally:
        engine.close()
    plan = capsys.readouterr().out
    raw = SECRET.reveal()
    padded = bytes(b ^ 0x36 for b in raw.ljust(64, b"\0"))
    for shown in (raw.hex(), padded.hex(), base64.b64encode(padded).decode()[:20], str(list(padded[:8]))):
        assert shown.lower() not in plan.lower()
    assert "ipad" in plan  # the keys are columns of the registered one-row table
