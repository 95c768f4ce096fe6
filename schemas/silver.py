"""Silver: what a purpose may use of bronze, keyed by the purpose pseudonym.

Fusion joins the bank, card and telecom sources; a subject enters silver only with valid consent
for every one of them. Past bronze no table carries a link key, a holder's reference (account,
card, line or approval numbers; the API transaction id) or, for the purposes that may not use
it, the transaction memo. ``subjects`` holds one row per fused subject: the customer master's
quasi-identifiers and the end of the subject's consent.
"""
from __future__ import annotations

from schemas.bronze import TABLES, TableSpec
from schemas.codes import CONSENT_SOURCES

FUSED_SOURCES: tuple[str, ...] = CONSENT_SOURCES
SUBJECTS = "subjects"
#: a state table's item in silver: which account, loan or line a row describes (jobs/fuse.item_sql)
ITEM = "item"

#: never past bronze, whatever the purpose: the key itself and handles back to the holders' records
ALWAYS_DROPPED = frozenset({"link_key", "key_version", "x_api_tran_id"})
DROPPED_KINDS = frozenset({"ref"})
#: what each purpose may not use on top of that
PURPOSE_DROPPED: dict[str, frozenset[str]] = {
    "marketing": frozenset({"trans_memo"}),
    "analytics": frozenset({"trans_memo"}),
    "credit_scoring": frozenset(),
}


def consent_source(spec: TableSpec) -> str | None:
    """The consent source a bronze table's records fall under (the usage extract is telecom's)."""
    if spec.source in CONSENT_SOURCES:
        return spec.source
    return "telecom" if spec.source == "telecom_usage" else None


def fused_tables() -> dict[str, TableSpec]:
    """Bronze record tables that fusion carries into silver, by name."""
    return {name: spec for name, spec in TABLES.items() if consent_source(spec) in FUSED_SOURCES}


def silver_columns(spec: TableSpec, purpose: str) -> list[str]:
    """The bronze columns of ``spec`` that ``purpose`` may use, in bronze order."""
    dropped = ALWAYS_DROPPED | PURPOSE_DROPPED[purpose]
    return [c.name for c in spec.columns if c.name not in dropped and c.kind not in DROPPED_KINDS]


def dropped_columns(spec: TableSpec, purpose: str) -> list[str]:
    keep = set(silver_columns(spec, purpose))
    return [c.name for c in spec.columns if c.name not in keep]
