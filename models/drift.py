"""Drift between two feature snapshots: the population stability index (PSI).

``PSI = Σ (actual% − expected%) · ln(actual% / expected%)`` over bins fixed on the expected
(older) snapshot: deciles of each numeric feature, or the segments themselves for segment
shares. Usual reading: below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 a real change.
Retraining is due when any feature or the segment shares pass the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mydata.config import Settings

DEFAULT_THRESHOLD = Settings.drift_threshold  # MYDATA_DRIFT_THRESHOLD
_FLOOR = 1e-4  # an empty bin counts as this share, so the logarithm stays finite


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), _FLOOR, None)
    a = np.clip(np.asarray(actual, dtype=float), _FLOOR, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """PSI of one numeric feature, binned at the expected snapshot's quantiles; missing is its own bin."""
    reference = expected.dropna().to_numpy(dtype=float)
    if reference.size == 0:
        return 0.0
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: pd.Series) -> np.ndarray:
        present = values.dropna().to_numpy(dtype=float)
        counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        return np.append(counts, values.isna().sum()) / max(len(values), 1)

    return psi(shares(expected), shares(actual))


def segment_psi(expected: pd.Series, actual: pd.Series) -> float:
    """PSI of segment shares (segments as bins)."""
    segments = sorted(set(expected) | set(actual))
    return psi(expected.value_counts(normalize=True).reindex(segments, fill_value=0).to_numpy(),
               actual.value_counts(normalize=True).reindex(segments, fill_value=0).to_numpy())


@dataclass
class DriftReport:
    features: dict[str, float]
    segments: float | None
    threshold: float
    drifted: list[str] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return bool(self.drifted)


def drift(expected: pd.DataFrame, actual: pd.DataFrame, features: list[str],
          expected_segments: pd.Series | None = None, actual_segments: pd.Series | None = None,
          threshold: float = DEFAULT_THRESHOLD) -> DriftReport:
    """PSI of every feature and of the segment shares; what passes ``threshold`` is listed."""
    values = {name: feature_psi(expected[name], actual[name]) for name in features}
    segments = None
    if expected_segments is not None and actual_segments is not None:
        segments = segment_psi(expected_segments, actual_segments)
    drifted = sorted(name for name, value in values.items() if value > threshold)
    if segments is not None and segments > threshold:
        drifted.append("segment shares")
    return DriftReport(values, segments, threshold, drifted)
