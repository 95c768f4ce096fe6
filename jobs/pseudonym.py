"""Purpose pseudonyms inside the engine: ``b64url(HMAC-SHA256(purpose secret, link_key))`` in SQL.

Neither engine has HMAC, so it is spelled out from SHA-256 (RFC 2104):
``H((K ^ opad) || H((K ^ ipad) || message))``. The two padded keys reach the engine as the
columns of a one-row table registered under a name, not as literals, so no query plan, log line
or Spark UI page ever shows them. The result is the same string as ``mydata.keys.purpose_pseudonym``.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa

from mydata.engines import Engine
from mydata.keys import Secret
from schemas.dialects import Dialect

_BLOCK = 64  # SHA-256 block size in bytes


def padded_keys(secret: Secret) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104)."""
    key = secret.reveal()
    if len(key) > _BLOCK:  # RFC 2104: long keys are hashed first
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def register_keys(engine: Engine, name: str, secret: Secret) -> None:
    """The padded keys of ``secret`` as the one-row table ``name`` (``ipad``, ``opad``)."""
    ipad, opad = padded_keys(secret)
    engine.arrow(name, pa.table({"ipad": pa.array([ipad], pa.binary()), "opad": pa.array([opad], pa.binary())}))


def pseudonym_sql(d: Dialect, message: str, keys: str) -> str:
    """SQL of the pseudonym of the string ``message`` (null stays null), with the padded keys of
    the table aliased ``keys`` in the query's FROM (a cross join with the one-row table)."""
    inner = d.sha256(f"{keys}.ipad || {d.utf8(message)}")
    digest = d.sha256(f"{keys}.opad || {inner}")
    # 32 bytes are 44 base64 characters ending in one "=": url-safe alphabet, padding dropped
    return f"CASE WHEN {message} IS NOT NULL THEN substring(translate({d.base64(digest)}, '+/', '-_'), 1, 43) END"
