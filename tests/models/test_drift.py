"""PSI: zero for the same population, large for a shifted one, and the retrain flag follows it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.drift import drift, feature_psi, psi, segment_psi


def test_psi_of_known_shares():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    expected = 0.1 * np.log(0.6 / 0.5) + -0.1 * np.log(0.4 / 0.5)
    assert np.isclose(psi([0.5, 0.5], [0.6, 0.4]), expected)


def test_a_shift_drifts_and_the_same_population_does_not():
    rng = np.random.default_rng(0)
    before = pd.DataFrame({"spend": rng.lognormal(10, 1, 5000), "app": rng.normal(5, 1, 5000)})
    same = pd.DataFrame({"spend": rng.lognormal(10, 1, 5000), "app": rng.normal(5, 1, 5000)})
    shifted = pd.DataFrame({"spend": rng.lognormal(10.8, 1, 5000), "app": rng.normal(5, 1, 5000)})
    assert feature_psi(before["spend"], same["spend"]) < 0.02
    assert feature_psi(before["spend"], shifted["spend"]) > 0.25
    segments_before = pd.Series(rng.integers(0, 4, 5000))
    segments_after = pd.Series(np.where(rng.random(5000) < 0.5, 0, rng.integers(0, 4, 5000)))
    report = drift(before, shifted, ["spend", "app"], segments_before, segments_after)
    assert report.retrain and report.drifted == ["spend", "segment shares"]
    assert report.segments > 0.1 and report.features["app"] < 0.02
    assert not drift(before, same, ["spend", "app"]).retrain


def test_missing_values_are_a_bin_of_their_own():
    before = pd.Series([1.0, 2.0, 3.0, 4.0] * 50)
    after = pd.Series([1.0, 2.0, np.nan, np.nan] * 50)
    assert feature_psi(before, after) > 1
    assert segment_psi(pd.Series([0, 1] * 10), pd.Series([0, 1] * 10)) == 0
