"""The one place that knows where things live under the data root."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

SUCCESS_MARKER = "_SUCCESS"


@dataclass(frozen=True)
class Lake:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    # zones -----------------------------------------------------------------
    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def bronze(self) -> Path:
        return self.root / "bronze"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def consent(self) -> Path:
        return self.root / "consent"

    @property
    def silver(self) -> Path:
        return self.root / "silver"

    @property
    def gold(self) -> Path:
        return self.root / "gold"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    # runtime state that is not data ----------------------------------------
    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def truth(self) -> Path:
        """Generator ground truth (latent types, planted defects): never read by the pipeline."""
        return self.root / "truth"

    @property
    def holders(self) -> Path:
        """The registry of data holders collected from (``mydata.holders``)."""
        return self.root / "config" / "holders.json"

    @property
    def publish_journal(self) -> Path:
        """Publishes under way: a run killed while swapping its partitions in is finished from here."""
        return self.root / "_journal"

    @property
    def anchors(self) -> Path:
        """Every consent append's signed head: what ``consent verify`` holds the ledger to."""
        return self.consent / "anchors.json"

    @property
    def ledger(self) -> Path:
        return self.consent / "ledger"

    @property
    def spill(self) -> Path:
        """Where the embedded engine spills what does not fit its memory limit."""
        return self.root / "_spill"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    # named places ------------------------------------------------------------
    def delivery(self, source: str, dt: date) -> Path:
        return self.landing / source / f"dt={dt.isoformat()}"

    def bronze_table(self, table: str) -> Path:
        return self.bronze / table

    def quarantine_table(self, table: str) -> Path:
        return self.quarantine / table

    def silver_table(self, table: str, purpose: str) -> Path:
        """A purpose's silver table (fused records, feature candidates), partitioned by ``as_of``."""
        return self.silver / table / f"purpose={purpose}"

    def gold_table(self, table: str, purpose: str) -> Path:
        """A purpose's published table (released features, segments), partitioned by ``as_of``."""
        return self.gold / table / f"purpose={purpose}"

    def feature_candidates(self, purpose: str) -> Path:
        """Features as computed, before the release gate (internal): ``silver/features``."""
        return self.silver_table("features", purpose)

    def published_features(self, purpose: str) -> Path:
        """Features the release gate published: ``gold/features``."""
        return self.gold_table("features", purpose)

    def segments(self, purpose: str) -> Path:
        """Segment assignments of published subjects: ``gold/segments``."""
        return self.gold_table("segments", purpose)

    def fusion_members(self, purpose: str) -> Path:
        """Who each fusion run of ``purpose`` used: its subjects' pseudonyms under ``run=<run_id>/``,
        kept as the record of use (never a link key), so a withdrawal can be checked against every run."""
        return self.consent / "fusion_members" / f"purpose={purpose}"

    def segment_stats(self, purpose: str) -> Path:
        """Per-segment statistics released under differential privacy: ``gold/segment_stats``."""
        return self.gold_table("segment_stats", purpose)

    @property
    def privacy_budget(self) -> Path:
        """Every differentially private release's ε, per purpose and snapshot, one JSON line each."""
        return self.root / "privacy" / "budget.jsonl"

    @property
    def subject_traces(self) -> Path:
        """Subject traces (a data subject's access request): HTML and JSON, no link key in either."""
        return self.report("subjects")

    @property
    def purge_audit(self) -> Path:
        """What every purge removed (pseudonyms and row counts, never link keys), one JSON line each."""
        return self.consent / "purge_audit.jsonl"

    def manifest(self, job: str, run_id: str) -> Path:
        return self.manifests / job / f"{run_id}.json"

    def report(self, name: str) -> Path:
        return self.reports / name

    def zones(self) -> dict[str, Path]:
        names = ("landing", "bronze", "quarantine", "consent", "silver", "gold",
                 "models", "reports", "manifests")
        return {name: getattr(self, name) for name in names}


def is_complete(delivery: Path) -> bool:
    """A delivery may be read only once its holder has dropped the ``_SUCCESS`` marker."""
    return (delivery / SUCCESS_MARKER).is_file()
