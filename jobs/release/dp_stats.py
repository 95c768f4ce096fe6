"""Segment statistics for partners, released under differential privacy (OpenDP).

Per segment of a scored snapshot: the subject count and the mean of every shareable feature
(``share_bounds`` in ``features/definitions.py``), each a noisy count or a noisy clamped sum from
OpenDP's measurements: Laplace noise for pure ε-DP, or Gaussian noise for (ε, δ). The privacy unit
is one subject (one row). A segment's queries
compose in sequence; segments partition the subjects (their ids come from the model, not the
data), so they compose in parallel: a release costs the most any segment spent, at most ε.

Reads gold/features and gold/segments of the purpose as of a date; writes the release under
gold/segment_stats (JSON), its report and a line of the privacy-budget ledger. A release that
would take the snapshot past ``MYDATA_DP_BUDGET`` is refused. No true value reaches an output:
only noisy values and the accuracy each carries.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import opendp.prelude as dp
import pyarrow.parquet as pq

from features.definitions import FEATURES, Feature
from jobs.stage import StageResult, StageRun, stage_run
from mydata.config import Settings
from mydata.errors import MissingInput, StageFailed, UsageError
from mydata.lake import Lake
from mydata.lock import writes_lake
from schemas import asof

JOB = "dp_stats"
#: the accuracy reported: the half-width of each value's (1 - ALPHA) interval
ALPHA = 0.05

dp.enable_features("contrib")


class BudgetExceeded(StageFailed):
    """The release would spend more of a snapshot's privacy budget than is left: nothing released."""


def shareable() -> list[Feature]:
    """The features declared shareable, with their clamping bounds."""
    return [f for f in FEATURES if f.share_bounds is not None]


def _space():
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()


@dataclass(frozen=True)
class Noisy:
    """An OpenDP measurement and the noise scale it was calibrated to (its accuracy follows from it)."""

    measurement: dp.Measurement
    scale: float
    #: integer noise (a count's)
    discrete: bool = False

    def __call__(self, values: list[float]) -> float:
        return self.measurement(values)

    @property
    def loss(self) -> float:
        """The privacy loss of one subject more or less: ε (Laplace) or zCDP's ρ (Gaussian)."""
        return float(self.measurement.map(1))

    @property
    def accuracy(self) -> float:
        """Half-width of the (1 - ALPHA) interval around the noisy value."""
        gaussian = self.measurement.output_measure == dp.zero_concentrated_divergence()
        to_accuracy = {(False, False): dp.laplacian_scale_to_accuracy,
                       (False, True): dp.discrete_laplacian_scale_to_accuracy,
                       (True, False): dp.gaussian_scale_to_accuracy,
                       (True, True): dp.discrete_gaussian_scale_to_accuracy}[(gaussian, self.discrete)]
        return float(to_accuracy(self.scale, ALPHA))


def _noise(gaussian: bool):
    return dp.m.then_gaussian if gaussian else dp.m.then_laplace


def _calibrated(chain, loss: float, discrete: bool = False) -> Noisy:
    scale = dp.binary_search_param(chain, d_in=1, d_out=loss)
    return Noisy(chain(scale), scale, discrete)


def noisy_count(loss: float, gaussian: bool = False) -> Noisy:
    """A count of rows, its noise calibrated so that one subject more or less costs at most ``loss``
    (ε with Laplace noise, ρ with Gaussian)."""
    return _calibrated(lambda scale: _space() >> dp.t.then_count() >> _noise(gaussian)(scale), loss, True)


def noisy_sum(bounds: tuple[float, float], loss: float, gaussian: bool = False) -> Noisy:
    """A sum of values clamped to ``bounds``, its noise calibrated to ``loss``."""
    low, high = (float(b) for b in bounds)
    return _calibrated(lambda scale: _space() >> dp.t.then_clamp((low, high)) >> dp.t.then_sum()
                       >> _noise(gaussian)(scale), loss)


def approx_epsilon(rho: float, delta: float) -> float:
    """ε at ``delta`` of a ρ-zCDP release, by OpenDP's conversion."""
    unit = _space() >> dp.t.then_count() >> dp.m.then_gaussian(math.sqrt(1 / (2 * rho)))
    return float(dp.c.make_zCDP_to_approxDP(unit).map(1).epsilon(delta))


def rho_within(epsilon: float, delta: float) -> float:
    """The largest ρ whose release stays within (``epsilon``, ``delta``)."""
    low, high = 0.0, epsilon
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if approx_epsilon(middle, delta) <= epsilon else (low, middle)
    return low


@dataclass(frozen=True)
class Plan:
    """Every query of one segment, each with its share of the budget: the count, a sum per
    shareable feature, and a count of present values for a feature that may be missing. Pure
    ε-DP with Laplace noise, or with ``delta`` Gaussian noise composed in zCDP and converted."""

    epsilon: float
    features: tuple[Feature, ...]
    delta: float = 0.0

    @property
    def queries(self) -> int:
        return 1 + len(self.features) + sum(f.fill is None for f in self.features)

    def measurements(self) -> dict[str, Noisy]:
        gaussian = self.delta > 0
        each = (rho_within(self.epsilon, self.delta) if gaussian else self.epsilon) / self.queries
        made = {"count": noisy_count(each, gaussian)}
        for f in self.features:
            made[f"sum:{f.name}"] = noisy_sum(f.share_bounds, each, gaussian)
            if f.fill is None:
                made[f"present:{f.name}"] = noisy_count(each, gaussian)
        return made

    def spent(self, made: dict[str, Noisy]) -> float:
        """ε of one segment's queries in sequence, from OpenDP's privacy maps (and, with ``delta``,
        its conversion of the summed ρ)."""
        loss = sum(m.loss for m in made.values())
        return approx_epsilon(loss, self.delta) if self.delta > 0 else loss


def release_segment(made: dict[str, Noisy], rows: dict[str, np.ndarray], features: tuple[Feature, ...]) -> dict:
    """One segment's noisy count and means, each with its accuracy; ``rows`` holds each feature's
    values (NaN where missing). Only measurement outputs leave this function."""
    any_column = next(iter(rows.values()))
    count = max(int(made["count"](np.zeros(len(any_column)).tolist())), 0)  # post-processing: no negative count
    released = {"count": count, "count_accuracy": made["count"].accuracy, "means": {}}
    for f in features:
        values = rows[f.name][~np.isnan(rows[f.name])]
        total = float(made[f"sum:{f.name}"](values.tolist()))
        counted = made[f"present:{f.name}"] if f.fill is None else made["count"]
        present = int(counted(values.tolist())) if f.fill is None else count
        present_accuracy, sum_accuracy = counted.accuracy, made[f"sum:{f.name}"].accuracy
        low, high = f.share_bounds
        mean = min(max(total / max(present, 1), low), high)  # post-processing: inside the declared bounds
        released["means"][f.name] = {
            "mean": mean, "unit": f.unit,
            # the ratio's interval, from the sum's and the count's (a first-order bound)
            "accuracy": (sum_accuracy + abs(mean) * present_accuracy) / max(present - present_accuracy, 1.0),
            "bounds": list(f.share_bounds)}
    return released


def segment_values(lake: Lake, purpose: str, as_of: str, features: tuple[Feature, ...]) -> tuple[str, dict[int, dict]]:
    """The model that scored the snapshot, and per segment each shareable feature's values (NaN
    where missing), joined in Arrow: the values go to OpenDP's measurements and nowhere else."""
    import pyarrow.compute as pc

    names = [f.name for f in features]
    snapshot = pq.read_table(lake.published_features(purpose) / f"as_of={as_of}", columns=["pseudonym", *names])
    scored = pq.read_table(lake.segments(purpose) / f"as_of={as_of}", columns=["pseudonym", "segment", "model_version"])
    joined = scored.join(snapshot, "pseudonym")
    model = joined["model_version"][0].as_py() if joined.num_rows else scored["model_version"][0].as_py()
    by_segment = {}
    for segment in pc.unique(joined["segment"]).to_pylist():
        mine = joined.filter(pc.equal(joined["segment"], segment))
        by_segment[int(segment)] = {n: mine[n].cast("float64").to_numpy(zero_copy_only=False) for n in names}
    return model, by_segment


def spent(lake: Lake, purpose: str, as_of: str) -> float:
    """ε already spent on ``purpose``'s snapshot as of ``as_of``, from the privacy-budget ledger."""
    path = lake.privacy_budget
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []
    return sum(e["epsilon"] for e in entries if e["purpose"] == purpose and e["as_of"] == as_of)


def _record_spend(lake: Lake, entry: dict) -> None:
    lake.privacy_budget.parent.mkdir(parents=True, exist_ok=True)
    with open(lake.privacy_budget, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


@writes_lake("release stats")
def run(settings: Settings, epsilon: float, delta: float = 0.0) -> StageResult:
    """Release per-segment statistics of ``settings.purpose``'s snapshot as of ``settings.as_of``
    under (``epsilon``, ``delta``)-differential privacy, within the snapshot's budget (``settings.dp_budget``)."""
    lake, purpose = settings.lake, settings.purpose
    # the same default as the consent review: the purpose's newest snapshot
    settings = settings.replace(as_of=asof.report_as_of(settings.as_of, lake.silver_table("subjects", purpose),
                                                        date.today()))
    if not 0 < epsilon < float("inf") or not 0 <= delta < 1e-3:
        raise UsageError(f"epsilon must be above 0 and delta in [0, 0.001), got {epsilon} and {delta}")
    as_of, before = settings.as_of.isoformat(), spent(settings.lake, purpose, settings.as_of.isoformat())
    if before + epsilon > settings.dp_budget + 1e-9:
        raise BudgetExceeded(f"{purpose} as of {as_of}: ε {before:g} of the budget {settings.dp_budget:g} is spent; "
                             f"ε {epsilon:g} more would exceed it (MYDATA_DP_BUDGET); nothing released")
    if not (lake.segments(purpose) / f"as_of={as_of}").is_dir():
        raise MissingInput(f"no scored snapshot of {purpose} as of {as_of}: run `mydata --as-of {as_of} score`")
    with stage_run(settings, JOB, purpose=purpose, as_of=as_of, epsilon=epsilon, delta=delta, alpha=ALPHA) as run:
        figures = _release(run, epsilon, delta, before)
    return run.result(**figures)


def _release(run: StageRun, epsilon: float, delta: float, before: float) -> dict:
    """Measure every segment under the plan, write the release, its page and the spend."""
    from models import registry
    from render.dp import write_page

    settings, lake, manifest = run.settings, run.lake, run.manifest
    purpose, as_of = settings.purpose, settings.as_of.isoformat()
    plan = Plan(epsilon, tuple(shareable()), delta)
    model, by_segment = segment_values(lake, purpose, as_of, plan.features)
    labels = {s["segment"]: s["label"] for s in registry.get(lake, purpose, model).metadata["profile"]["segments"]}
    made = plan.measurements()
    released = [{"segment": s, "label": labels.get(s, ""), **release_segment(made, by_segment[s], plan.features)}
                for s in sorted(by_segment)]
    cost = round(plan.spent(made), 9)  # parallel over segments: one segment's queries in sequence
    document = {"release": manifest.run_id, "purpose": purpose, "as_of": as_of, "model": model, "epsilon": cost,
                "delta": delta, "noise": "gaussian" if delta else "laplace", "alpha": ALPHA, "privacy_unit": "one subject", "segments": released}
    path = lake.segment_stats(purpose) / f"as_of={as_of}" / f"{manifest.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    report = write_page(lake.report("dp") / purpose / f"{manifest.run_id}.html", document, before + cost,
                        settings.dp_budget)
    _record_spend(lake, {"release": manifest.run_id, "at": datetime.now(UTC).isoformat(), "purpose": purpose,
                         "as_of": as_of, "model": model, "epsilon": cost, "delta": delta})
    manifest.outputs = {"release": str(path), "report": str(report), "epsilon": cost, "segments": len(released),
                        "budget_spent": round(before + cost, 9), "budget": settings.dp_budget}
    return {}
