"""Segment statistics under differential privacy: bounds from the declarations, noise with the
spread it promises, a budget that refuses overspending, and no true value in any output.

OpenDP draws its noise from the operating system's randomness and cannot be seeded (a seedable
sampler would be an attack surface), so the spread is checked over many draws with bounds loose
enough to fail about once in a million runs, and tight enough to catch a wrong scale."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli import main
from features.definitions import FEATURES, Feature
from jobs import score, segment
from jobs.release import dp_stats
from models.pipeline import ModelSpec
from mydata.config import Settings


def test_the_clamping_bounds_are_the_declarations():
    declared = {f.name: f.share_bounds for f in FEATURES if f.share_bounds}
    assert {f.name: f.share_bounds for f in dp_stats.shareable()} == declared and len(declared) >= 5
    for name, (low, high) in declared.items():  # a huge ε: the noise is negligible, the clamping is not
        clamped = dp_stats.noisy_sum((low, high), 1e4)([low - 1e9, high + 1e9, (low + high) / 2])
        assert clamped == pytest.approx(low + high + (low + high) / 2, abs=20 * (high - low) / 1e4), name
    with pytest.raises(ValueError, match="share_bounds"):
        Feature(name="age", description="", source="subjects", agg="expr", quasi_identifier=True,
                share_bounds=(0, 120))


@pytest.mark.parametrize("measurement, values, sensitivity, coverage", [
    # a count's noise is discrete: P(|noise| <= 6.43) = P(|noise| <= 6) = 0.962 at scale 2
    (dp_stats.noisy_count(0.5), [0.0] * 100, 1.0, 0.962),
    (dp_stats.noisy_sum((0, 60), 0.5), [30.0] * 50, 60.0, 0.95)])
def test_released_values_spread_as_the_noise_and_the_accuracy_say(measurement, values, sensitivity, coverage):
    true, draws = sum(values) if sensitivity > 1 else len(values), 4_000
    released = np.array([measurement(values) for _ in range(draws)], dtype=float)
    sigma = np.sqrt(2) * sensitivity / 0.5  # Laplace(b) has standard deviation b·√2, b = sensitivity / ε
    assert measurement.scale == pytest.approx(sensitivity / 0.5, rel=1e-6) and measurement.loss <= 0.5
    assert abs(released.mean() - true) < 5 * sigma / np.sqrt(draws)
    assert 0.85 * sigma < released.std() < 1.15 * sigma
    inside = np.mean(np.abs(released - true) <= measurement.accuracy)  # the report's 95% claim
    assert abs(inside - coverage) < 0.02  # six standard errors of the share at 4,000 draws


def test_an_epsilon_delta_release_composes_gaussian_noise_in_zcdp_within_its_epsilon():
    plan = dp_stats.Plan(1.0, tuple(dp_stats.shareable()), delta=1e-6)
    made = plan.measurements()
    assert all(m.measurement.output_measure == dp_stats.dp.zero_concentrated_divergence() for m in made.values())
    assert 0.99 < plan.spent(made) <= 1.0 + 1e-9  # OpenDP's conversion of the summed ρ at δ
    laplace = dp_stats.Plan(1.0, tuple(dp_stats.shareable())).measurements()
    assert made["count"].accuracy < laplace["count"].accuracy  # at this δ, Gaussian noise is the tighter


@pytest.fixture
def scored(tmp_path, blobs, publish_snapshot) -> Settings:
    publish_snapshot(tmp_path, blobs(150)[0], as_of="2026-10-01")
    settings = Settings(data_root=tmp_path, as_of="2026-10-01", dp_budget=3.0)
    segment.run(settings, ModelSpec(ks=[3]), promote=True)
    score.run(settings)
    return settings


def test_a_release_keeps_to_the_budget_and_holds_no_true_value(scored, capsys):
    lake = scored.lake
    first = dp_stats.run(scored, 1.0)
    release = json.loads(Path(first["release"]).read_text(encoding="utf-8"))
    assert first["epsilon"] == pytest.approx(1.0) and first["budget_spent"] == pytest.approx(1.0)
    assert [s["segment"] for s in release["segments"]] == [0, 1, 2]
    model, true_values = dp_stats.segment_values(lake, "marketing", "2026-10-01", tuple(dp_stats.shareable()))
    assert release["model"] == model == "v0001"
    for group in release["segments"]:  # near the truth, never the truth
        size = len(next(iter(true_values[group["segment"]].values())))
        assert abs(group["count"] - size) <= 3 * group["count_accuracy"]
        for name, released in group["means"].items():
            values = true_values[group["segment"]][name]
            assert released["mean"] != pytest.approx(np.nanmean(values), rel=1e-12)
    for path in (first["release"], first["report"], first["manifest"]):
        assert "P00" not in Path(path).read_text(encoding="utf-8")  # no pseudonym either

    root = ["--data-root", str(lake.root), "--as-of", "2026-10-01"]
    assert main([*root, "release", "stats", "--epsilon", "1.5", "--delta", "1e-6"]) == 0  # Gaussian noise
    assert "budget spent 2.5 of 3" in capsys.readouterr().out
    assert main([*root, "release", "stats", "--epsilon", "0.6"]) == 1
    assert "ε 2.5 of the budget 3 is spent; ε 0.6 more would exceed it" in capsys.readouterr().err
    assert dp_stats.spent(lake, "marketing", "2026-10-01") == pytest.approx(2.5)
    assert len(list(lake.segment_stats("marketing").rglob("*.json"))) == 2  # the refused one wrote nothing
