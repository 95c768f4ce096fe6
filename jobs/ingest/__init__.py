"""Ingest: landing deliveries -> typed bronze tables, with quarantine, and nothing lost.

``sql`` writes the SQL (parse, type, rank), ``accounting`` counts what it became (gate and
reconciliation), ``job`` runs it per source and publishes the run's partitions together.
"""
from jobs.ingest.job import HoldersRefused, IngestFailed, NoDeliveryError, run

__all__ = ["HoldersRefused", "IngestFailed", "NoDeliveryError", "run"]
