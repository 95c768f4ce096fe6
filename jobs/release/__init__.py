"""Release: what leaves the lake for use. ``gate`` is the k-anonymity gate that publishes the
feature snapshot to gold (the ``release`` stage); ``dp_stats`` releases segment statistics to
partners under differential privacy (``release stats``)."""
from jobs.release.gate import FeaturesWentBlank, ReleaseBlocked, report_path, run

__all__ = ["FeaturesWentBlank", "ReleaseBlocked", "report_path", "run"]
