"""The release gate: k-anonymity on the quasi-identifiers, then publish the feature snapshot to gold.

The candidate (silver/features) is generalised up the ladder of features/release.py until
suppressing the subjects of groups smaller than k costs at most the allowed share; those are
suppressed and the rest published to ``gold/features/purpose=<p>/as_of=<date>/``. When no level
gets there, nothing is published and the run fails with its report. Either way the privacy
report (``reports/privacy/<purpose>-<as_of>.html``) shows group sizes before and after, what was
generalised and suppressed, and the l-diversity of a sensitive feature.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from features import health
from features.definitions import FEATURES, QUASI_IDENTIFIERS
from features.release import (
    AREAS,
    BUCKET_LABELS,
    LEVELS,
    RELEASED_QUASI_IDENTIFIERS,
    SENSITIVE_BANDS,
    SENSITIVE_FEATURE,
    SIZE_BUCKETS,
    SUPPRESSED,
    Level,
)
from features.sql import catalog_stats_sql, health_sql
from jobs.stage import StageResult, StageRun, stage_run
from mydata import progress, storage
from mydata.config import ConfigError, Settings
from mydata.engines import Engine
from mydata.errors import MissingInput, StageFailed
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import RunManifest, missing_input, runs
from render import html
from render.catalog import write_catalog
from render.privacy import page as privacy_page
from schemas.dialects import Dialect

JOB = "privacy"



class ReleaseBlocked(StageFailed):
    """k cannot be reached within the allowed suppression: nothing was published."""


class FeaturesWentBlank(ReleaseBlocked):
    """A feature informative in the previous release is constant or all null now: nothing was published."""


# -- pure transforms ---------------------------------------------------------------------------------

def generalise_sql(d: Dialect, candidates: str, columns: list[str], level: Level) -> str:
    """Raw age, gender and region code replaced by their released form at ``level``."""
    low = f"CAST(floor(age / {level.age_years}) * {level.age_years} AS {d.sql_type('int')})"
    age_band = (f"CASE WHEN age IS NULL THEN '{SUPPRESSED}' "
                f"ELSE concat({d.text(low)}, '-', {d.text(f'{low} + {level.age_years - 1}')}) END")
    gender = f"coalesce(gender, '{SUPPRESSED}')" if level.gender else f"'{SUPPRESSED}'"
    areas = " ".join(f"WHEN region_code IN ({', '.join(d.lit(c) for c in codes)}) THEN {d.lit(area)}"
                     for area, codes in AREAS.items())
    region = {"code": "region_code", "area": f"CASE {areas} END", "none": "NULL"}[level.region]
    others = "".join(f", {d.ident(c)}" for c in columns if c not in QUASI_IDENTIFIERS and c != "pseudonym")
    return (f"SELECT pseudonym, {age_band} AS age_band, {gender} AS gender, "
            f"coalesce({region}, '{SUPPRESSED}') AS region{others} FROM {candidates}")


_GROUP = ", ".join(RELEASED_QUASI_IDENTIFIERS)


@dataclass(frozen=True)
class LevelOutcome:
    level: Level
    groups: int
    small_groups: int
    suppressed: int
    subjects: int
    sizes: dict[str, int]  # size bucket -> groups
    smallest: int  # the smallest group's size

    @property
    def share(self) -> float:
        return self.suppressed / self.subjects if self.subjects else 0.0





def _bucket(size: str) -> str:
    arms = [f"WHEN {size} >= {low}" + (f" AND {size} <= {high}" if high is not None else "") + f" THEN '{label}'"
            for (low, high), label in zip(SIZE_BUCKETS, BUCKET_LABELS)]
    return f"CASE {' '.join(arms)} END"


def assess_sql(generalised: str, k: int) -> str:
    """Per group-size bucket: groups, subjects, groups below k, subjects in them, the smallest size."""
    return (f"SELECT {_bucket('n')} AS bucket, count(*) AS groups, sum(n) AS subjects, "
            f"sum(CASE WHEN n < {k} THEN 1 ELSE 0 END) AS small, sum(CASE WHEN n < {k} THEN n ELSE 0 END) AS suppressed, "
            f"min(n) AS smallest FROM (SELECT count(*) AS n FROM {generalised} GROUP BY {_GROUP}) g "
            f"GROUP BY {_bucket('n')}")


def assess(engine: Engine, generalised: str, level: Level, k: int) -> LevelOutcome:
    """Groups, groups below k, subjects in them, and the group-size distribution, in one pass."""
    rows = engine.rows(assess_sql(generalised, k))
    return LevelOutcome(level, sum(int(r["groups"]) for r in rows), sum(int(r["small"]) for r in rows),
                        sum(int(r["suppressed"]) for r in rows), sum(int(r["subjects"]) for r in rows),
                        {label: groups for label in BUCKET_LABELS
                         for groups in [sum(int(r["groups"]) for r in rows if r["bucket"] == label)] if groups},
                        min((int(r["smallest"]) for r in rows), default=0))


def suppress_sql(generalised: str, columns: list[str], k: int) -> str:
    """Only the subjects in groups of at least k."""
    return (f"SELECT {', '.join(columns)} FROM (SELECT *, count(*) OVER (PARTITION BY {_GROUP}) AS _group_size "
            f"FROM {generalised}) g WHERE _group_size >= {k}")


def cuts_sql(released: str, feature: str, bands: int) -> str:
    """The quantiles that cut ``feature`` into ``bands`` bands (interpolated, exact on both engines)."""
    return "SELECT " + ", ".join(f"percentile_cont({i / bands!r}) WITHIN GROUP (ORDER BY {feature}) AS q{i}"
                                 for i in range(1, bands)) + f" FROM {released}"


def l_diversity_sql(d: Dialect, released: str, feature: str, cuts: list[float]) -> str:
    """Distinct bands of ``feature`` per released group: the smallest l, the mean l, groups with l < 2."""
    band = "CASE " + " ".join(f"WHEN {feature} > {d.number(float(cut))} THEN {i}"
                              for i, cut in reversed(list(enumerate(cuts, start=1)))) + " ELSE 0 END" if cuts else "0"
    return (f"SELECT min(l) AS min_l, avg(l) AS mean_l, sum(CASE WHEN l < 2 THEN 1 ELSE 0 END) AS below_2, "
            f"count(*) AS groups FROM (SELECT count(DISTINCT {band}) AS l FROM {released} GROUP BY {_GROUP}) g")


def l_diversity(engine: Engine, released: str, feature: str) -> dict:
    cuts = sorted({float(v) for v in engine.rows(cuts_sql(released, feature, SENSITIVE_BANDS))[0].values()
                   if v is not None})
    row = engine.rows(l_diversity_sql(engine.dialect, released, feature, cuts))[0]
    return {"feature": feature, "bands": len(cuts) + 1, "min_l": int(row["min_l"] or 0),
            "mean_l": float(row["mean_l"] or 0), "groups_below_2": int(row["below_2"] or 0),
            "groups": int(row["groups"] or 0)}


# -- the run -----------------------------------------------------------------------------------------

def report_path(lake: Lake, purpose: str, as_of: date):
    return lake.report("privacy") / f"{purpose}-{as_of.isoformat()}.html"


def _choose_level(engine: Engine, columns: list[str], k: int, max_suppression: float
                  ) -> tuple[list[LevelOutcome], int | None]:
    """Climb the ladder: the outcome of each level tried, and the first within the allowed share."""
    outcomes: list[LevelOutcome] = []
    with progress.step("release", f"k={k} gate", unit="levels", total=len(LEVELS)) as shown:
        for index, level in enumerate(LEVELS):
            engine.view("generalised", generalise_sql(engine.dialect, "candidates", columns, level))
            outcomes.append(assess(engine, "generalised", level, k))
            shown.advance()
            if outcomes[-1].share <= max_suppression:
                return outcomes, index
    return outcomes, None


@writes_lake("release")
def run(settings: Settings, spark=None) -> StageResult:
    """Gate and publish the candidate for ``settings.purpose`` as of ``settings.as_of``."""
    if settings.as_of is None:
        raise ConfigError("the release gate needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of, k = settings.lake, settings.purpose, settings.as_of, settings.k_anonymity
    folder = lake.feature_candidates(purpose) / f"as_of={as_of.isoformat()}"
    if not storage.rows_in(folder):
        raise MissingInput(missing_input(lake, "feature candidate", "features", f"mydata features --as-of {as_of}",
                                              purpose=purpose, as_of=as_of.isoformat()))
    with stage_run(settings, JOB, spark=spark, purpose=purpose, as_of=as_of.isoformat(), k=k,
                   max_suppression=settings.max_suppression, engine=settings.engine) as run:
        figures = _release(run, folder)
    return run.result(**figures)


def _release(run: StageRun, folder: Path) -> dict:
    """Choose the least generalisation that reaches k, check feature health, publish, and catalog."""
    settings, lake, manifest, engine = run.settings, run.lake, run.manifest, run.engine
    purpose, as_of, k = settings.purpose, settings.as_of, settings.k_anonymity
    target, report = lake.published_features(purpose), report_path(lake, purpose, as_of)
    snapshot = target / folder.name
    engine.partition("candidate_rows", folder.parent, "as_of", as_of)
    engine.table("candidates", "SELECT * FROM candidate_rows")  # every level reads it
    outcomes, chosen = _choose_level(engine, engine.columns("candidates"), k, settings.max_suppression)
    manifest.inputs = {"candidate": str(folder), "subjects": outcomes[0].subjects}
    manifest.outputs = {"levels": [{"level": o.level.description, "groups": o.groups,
                                    "small_groups": o.small_groups, "suppressed": o.suppressed} for o in outcomes],
                        "report": str(report)}
    if chosen is None:
        html.write_page(report, privacy_page(manifest, outcomes, None))
        manifest.finish(lake, "failed")
        raise ReleaseBlocked(f"k={k} cannot be reached with at most {settings.max_suppression:.0%} of "
                             f"{outcomes[0].subjects:,} subjects suppressed (the widest level would suppress "
                             f"{outcomes[-1].share:.1%}); nothing published; see {report}")
    released = ["pseudonym", *RELEASED_QUASI_IDENTIFIERS,
                *[f.name for f in FEATURES if not f.quasi_identifier], "as_of"]
    engine.view("to_publish", suppress_sql("generalised", released, k))
    _check_health(engine, lake, settings, manifest, report, outcomes, chosen)
    with progress.step("release", "publish") as shown:
        storage.publish([engine.stage("SELECT * FROM to_publish", target, [as_of], manifest.run_id, key="as_of")])
        engine.partition("published_rows", target, "as_of", as_of)
        engine.table("published", "SELECT * FROM published_rows")  # the checks and the catalog read it
        after = assess(engine, "published", LEVELS[chosen], k)
        shown.advance(after.subjects)
    manifest.outputs.update({
        "snapshot": str(snapshot), "level": LEVELS[chosen].description, "published": after.subjects,
        "suppressed": outcomes[chosen].suppressed, "suppressed_share": round(outcomes[chosen].share, 6),
        "after_sizes": after.sizes, "l_diversity": l_diversity(engine, "published", SENSITIVE_FEATURE),
        "smallest_group": after.smallest})
    columns = engine.columns("published")
    stats = engine.rows(catalog_stats_sql(engine.dialect, "published", columns))[0]
    catalog = write_catalog(lake, purpose, as_of, stats, columns, manifest.outputs["feature_health"])
    run.close_engine()
    html.write_page(report, privacy_page(manifest, outcomes, chosen))
    manifest.outputs["catalog"] = str(catalog)
    return {"report": str(report), "catalog": str(catalog), "snapshot": str(snapshot),
            "published": after.subjects, "suppressed": outcomes[chosen].suppressed,
            "level": LEVELS[chosen].description, "blank_features": manifest.outputs["blank_features"]}


def _check_health(engine: Engine, lake: Lake, settings: Settings, manifest: RunManifest, report,
                  outcomes: list[LevelOutcome], chosen: int) -> None:
    """Feature health of what is about to be published, in the manifest; a feature informative in the
    previous release and blank now fails the release (unless ``allow_blank_features``)."""
    names = [f.name for f in FEATURES if not f.quasi_identifier]
    now = health.from_row(engine.rows(health_sql(engine.dialect, "to_publish", names))[0], names)
    manifest.outputs["feature_health"] = {h.name: h.as_dict() for h in now}
    manifest.outputs["blank_features"] = {h.name: h.status for h in now if h.blank}
    previous = _previous_release(lake, settings)
    before = health.from_manifest(previous["outputs"].get("feature_health", {})) if previous else []
    lost = health.went_blank(now, before)
    manifest.outputs["went_blank"] = [h.name for h in lost]
    if lost and not settings.allow_blank_features:
        manifest.error = (f"{len(lost)} feature(s) informative in the release as of {previous['parameters']['as_of']} "
                          f"are blank now: {health.named({h.name: h.status for h in lost})}; nothing published "
                          "(MYDATA_ALLOW_BLANK_FEATURES=true publishes anyway)")
        html.write_page(report, privacy_page(manifest, outcomes, None))
        path = manifest.finish(lake, "failed")
        raise FeaturesWentBlank(f"release {settings.purpose} as of {settings.as_of}: {manifest.error}; see {path}")


def _previous_release(lake: Lake, settings: Settings) -> dict | None:
    """The newest succeeded release of the purpose before this as-of date."""
    earlier = [m for m in runs(lake, JOB) if m.get("status") == "succeeded"
               and m["parameters"].get("purpose") == settings.purpose
               and m["parameters"].get("as_of", "") < settings.as_of.isoformat()]
    return max(earlier, key=lambda m: (m["parameters"]["as_of"], m.get("finished_at", "")), default=None)

