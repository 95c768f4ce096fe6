"""Purpose pseudonyms at Spark speed: ``b64url(HMAC-SHA256(purpose secret, link_key))`` in the JVM.

Spark has SHA-256 but no HMAC, so the HMAC is spelled out (RFC 2104):
``H((K ^ opad) || H((K ^ ipad) || message))``. The two padded keys reach the executors as the
columns of a one-row broadcast frame, not as literals, so no query plan, log line or Spark UI
page ever shows them. The result is the same string as ``mydata.keys.purpose_pseudonym``.
"""
from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mydata.keys import Secret

_BLOCK = 64  # SHA-256 block size in bytes
_IPAD, _OPAD = "_hmac_ipad", "_hmac_opad"


def padded_keys(secret: Secret) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104), for engines that spell HMAC out from SHA-256."""
    key = secret.reveal()
    if len(key) > _BLOCK:  # RFC 2104: long keys are hashed first
        import hashlib
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _hmac_b64url(message: SparkColumn) -> SparkColumn:
    inner = F.unhex(F.sha2(F.concat(F.col(_IPAD), message.cast("binary")), 256))
    digest = F.unhex(F.sha2(F.concat(F.col(_OPAD), inner), 256))
    # 32 bytes are 44 base64 characters ending in one "=": url-safe alphabet, padding dropped
    return F.substring(F.translate(F.base64(digest), "+/", "-_"), 1, 43)


def with_pseudonym(frame: DataFrame, secret: Secret, source: str = "link_key",
                   target: str = "pseudonym") -> DataFrame:
    """``frame`` with ``target`` = HMAC pseudonym of ``source`` (null stays null); ``source`` is kept."""
    spark = SparkSession.getActiveSession() or frame.sparkSession
    ipad, opad = padded_keys(secret)
    keys = spark.createDataFrame([(bytearray(ipad), bytearray(opad))], f"{_IPAD} binary, {_OPAD} binary")
    return (frame.crossJoin(F.broadcast(keys))
            .withColumn(target, F.when(F.col(source).isNotNull(), _hmac_b64url(F.col(source))))
            .drop(_IPAD, _OPAD))
