"""Consent: the append-only, signed consent ledger and the snapshot fusion relies on.

``ledger`` is the chain (paths, hashes, ordering, head), ``verify`` holds it to its signed heads,
``export`` copies those to write-once storage, ``snapshot`` reads consent as of a moment, and
``job`` appends new deliveries.
"""
from jobs.consent.export import export_anchors
from jobs.consent.job import append, run
from jobs.consent.ledger import ConsentChainBroken, LedgerHead, anchors_path, chain_order, ledger_path, read_anchors
from jobs.consent.snapshot import consent_states_sql
from jobs.consent.verify import Verification, verify_ledger

__all__ = ["ConsentChainBroken", "LedgerHead", "Verification", "anchors_path", "append", "chain_order",
           "consent_states_sql", "export_anchors", "ledger_path", "read_anchors", "run", "verify_ledger"]
