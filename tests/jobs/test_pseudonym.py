"""The Spark HMAC gives exactly the Python HMAC, and never shows the secret in a plan."""
from __future__ import annotations

import base64

import pytest

from jobs.pseudonym import with_pseudonym
from mydata.keys import Secret, purpose_pseudonym

SECRET = Secret(bytes(range(7, 39)))


@pytest.mark.parametrize("secret", [SECRET, Secret(bytes(range(100)))], ids=["32-byte", "100-byte"])
def test_spark_pseudonyms_equal_the_python_hmac(spark, secret):
    keys = ["niAuzipqp0BAzR9rUoFN9Y_MALwEOf9ezn_P-HgVKY8", "a", "키-🙂", "x" * 200, None]
    frame = spark.createDataFrame([(k,) for k in keys], "link_key string")
    got = {r.link_key: r.pseudonym for r in with_pseudonym(frame, secret).collect()}
    assert got == {k: (purpose_pseudonym(secret, k) if k is not None else None) for k in keys}


def test_the_secret_is_not_in_the_query_plan(spark, capsys):
    frame = with_pseudonym(spark.createDataFrame([("k",)], "link_key string"), SECRET)
    frame.explain(extended=True)
    plan = capsys.readouterr().out
    raw = SECRET.reveal()
    padded = bytes(b ^ 0x36 for b in raw.ljust(64, b"\0"))
    for shown in (raw.hex(), padded.hex(), base64.b64encode(padded).decode()[:20], str(list(padded[:8]))):
        assert shown.lower() not in plan.lower()
    assert "_hmac_ipad" in plan  # the keys are columns of the broadcast frame
