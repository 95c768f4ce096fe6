"""The release gate: k-anonymity on the quasi-identifiers, then publish the feature snapshot to gold.

The candidate (silver/features) is generalised up the ladder of features/release.py until
suppressing the subjects of groups smaller than k costs at most the allowed share; those are
suppressed and the rest published to ``gold/features/purpose=<p>/as_of=<date>/``. When no level
gets there, nothing is published and the run fails with its report. Either way the privacy
report (``reports/privacy/<purpose>-<as_of>.html``) shows group sizes before and after, what was
generalised and suppressed, and the l-diversity of a sensitive feature.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from features.definitions import FEATURES, QUASI_IDENTIFIERS
from features.release import (AREAS, LEVELS, RELEASED_QUASI_IDENTIFIERS, SENSITIVE_BANDS, SENSITIVE_FEATURE,
                              SUPPRESSED, Level)
from jobs import features as features_job
from jobs import storage
from jobs.fuse import silver_table
from mydata import html
from mydata.config import ConfigError, Settings
from mydata.lake import Lake
from mydata.manifest import RunManifest, missing_input

JOB = "privacy"
PUBLISHED = "features"  # gold table
SIZE_BUCKETS = ((1, 1), (2, 4), (5, 9), (10, 19), (20, 49), (50, None))


class ReleaseBlocked(RuntimeError):
    """k cannot be reached within the allowed suppression: nothing was published."""


def gold_table(lake: Lake, purpose: str):
    return lake.gold / PUBLISHED / f"purpose={purpose}"


# -- pure transforms ---------------------------------------------------------------------------------

def _area(region: SparkColumn) -> SparkColumn:
    column = F.lit(None).cast("string")
    for area, codes in reversed(list(AREAS.items())):
        column = F.when(region.isin(*codes), F.lit(area)).otherwise(column)
    return column


def generalise(candidates: DataFrame, level: Level) -> DataFrame:
    """Raw age, gender and region code replaced by their released form at ``level``."""
    low = F.floor(F.col("age") / level.age_years) * level.age_years
    age_band = F.when(F.col("age").isNull(), F.lit(SUPPRESSED)).otherwise(
        F.concat(low.cast("int").cast("string"), F.lit("-"), (low + level.age_years - 1).cast("int").cast("string")))
    gender = F.coalesce(F.col("gender"), F.lit(SUPPRESSED)) if level.gender else F.lit(SUPPRESSED)
    region = {"code": F.col("region_code"), "area": _area(F.col("region_code")),
              "none": F.lit(SUPPRESSED)}[level.region]
    others = [c for c in candidates.columns if c not in QUASI_IDENTIFIERS and c != "pseudonym"]
    return candidates.select("pseudonym", age_band.alias("age_band"), gender.alias("gender"),
                             F.coalesce(region, F.lit(SUPPRESSED)).alias("region"), *others)


def with_group_size(generalised: DataFrame) -> DataFrame:
    return generalised.withColumn("_group_size", F.count(F.lit(1)).over(Window.partitionBy(*RELEASED_QUASI_IDENTIFIERS)))


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


def _bucket(size: SparkColumn) -> SparkColumn:
    column = F.lit(None).cast("string")
    for low, high in reversed(SIZE_BUCKETS):
        label = f"{low}+" if high is None else (f"{low}" if low == high else f"{low}-{high}")
        test = size >= low if high is None else size.between(low, high)
        column = F.when(test, F.lit(label)).otherwise(column)
    return column


def assess(generalised: DataFrame, level: Level, k: int) -> LevelOutcome:
    """Groups, groups below k, subjects in them, and the group-size distribution, in one pass."""
    sizes = generalised.groupBy(*RELEASED_QUASI_IDENTIFIERS).count()
    rows = sizes.groupBy(_bucket(F.col("count")).alias("bucket")).agg(
        F.count(F.lit(1)).alias("groups"), F.sum("count").alias("subjects"),
        F.sum(F.when(F.col("count") < k, 1).otherwise(0)).alias("small"),
        F.sum(F.when(F.col("count") < k, F.col("count")).otherwise(0)).alias("suppressed"),
        F.min("count").alias("smallest")).collect()
    return LevelOutcome(level, sum(r["groups"] for r in rows), sum(r["small"] for r in rows),
                        sum(r["suppressed"] for r in rows), sum(r["subjects"] for r in rows),
                        {r["bucket"]: int(r["groups"]) for r in rows},
                        min((int(r["smallest"]) for r in rows), default=0))


def suppress(generalised: DataFrame, k: int) -> DataFrame:
    """Only the subjects in groups of at least k."""
    return with_group_size(generalised).where(F.col("_group_size") >= k).drop("_group_size")


def l_diversity(released: DataFrame, feature: str, cuts: list[float]) -> dict:
    """Distinct bands of ``feature`` per released group: the smallest l and how many groups have l < 2."""
    band = F.lit(0)
    for i, cut in enumerate(cuts, start=1):
        band = F.when(F.col(feature) > cut, F.lit(i)).otherwise(band)
    per_group = released.groupBy(*RELEASED_QUASI_IDENTIFIERS).agg(F.countDistinct(band).alias("l"))
    row = per_group.agg(F.min("l").alias("min_l"), F.avg("l").alias("mean_l"),
                        F.sum(F.when(F.col("l") < 2, 1).otherwise(0)).alias("below_2"),
                        F.count(F.lit(1)).alias("groups")).first()
    return {"feature": feature, "bands": len(cuts) + 1, "min_l": int(row["min_l"] or 0),
            "mean_l": float(row["mean_l"] or 0), "groups_below_2": int(row["below_2"] or 0),
            "groups": int(row["groups"] or 0)}


# -- the run -----------------------------------------------------------------------------------------

def render_report(manifest: RunManifest, outcomes: list[LevelOutcome], chosen: int | None) -> str:
    p, out = manifest.parameters, manifest.outputs
    k = p["k"]
    levels = [(i, o.level.description, o.groups, o.small_groups, o.suppressed, f"{o.share:.2%}",
               html.status(o.share <= p["max_suppression"], "within", "over"),
               html.Markup("<b>chosen</b>") if i == chosen else "")
              for i, o in enumerate(outcomes)]
    buckets = [label for label in (f"{lo}+" if hi is None else (f"{lo}" if lo == hi else f"{lo}-{hi}")
                                   for lo, hi in SIZE_BUCKETS)]
    first, after = outcomes[0], out.get("after_sizes", {})
    most = max([*first.sizes.values(), *after.values(), 1])
    sizes = [(b, first.sizes.get(b, 0), html.bar(first.sizes.get(b, 0), most), after.get(b, 0),
              html.bar(after.get(b, 0), most)) for b in buckets]
    facts = {"purpose": p["purpose"], "as of": p["as_of"], "k": k,
             "max suppression": f"{p['max_suppression']:.0%}",
             "release": html.status(chosen is not None, "PUBLISHED", "BLOCKED")}
    sections = [
        html.section("Generalisation levels", html.table(
            ("level", "quasi-identifiers released as", "groups", f"groups < {k}", "subjects in them",
             "share", "allowed", ""), levels),
            note="The gate takes the first level whose suppression stays within the allowed share."),
        html.section("Group sizes (groups per size)", html.table(
            ("group size", "before (raw: level 0)", "", "after (released)", ""), sizes)),
    ]
    if chosen is not None:
        o = outcomes[chosen]
        div = out["l_diversity"]
        sections += [
            html.section("What was released", html.table(("", ""), [
                ("generalised", o.level.description), ("subjects in the candidate", o.subjects),
                ("subjects suppressed", f"{o.suppressed:,} ({o.share:.2%})"),
                ("subjects published", out["published"]), ("smallest group", out["smallest_group"]),
                ("published to", html.code(out["snapshot"]))])),
            html.section(f"l-diversity of {div['feature']}", html.table(("", ""), [
                ("bands (quantiles)", div["bands"]), ("smallest l in a group", div["min_l"]),
                ("mean l", f"{div['mean_l']:.2f}"), ("groups with l < 2", f"{div['groups_below_2']:,} of "
                                                                         f"{div['groups']:,}")]),
                note="A group with l = 1 reveals the sensitive band of all its members; reported, not "
                     "gated."),
        ]
    else:
        sections.append(html.section("Not released", html.Markup(
            f"<p class='bad'>No level reaches k = {k} with at most {p['max_suppression']:.0%} of subjects "
            f"suppressed; nothing was published.</p>").text))
    return html.page(f"Release gate: {p['purpose']} features as of {p['as_of']}", facts, sections)


def report_path(lake: Lake, purpose: str, as_of: date):
    return lake.report("privacy") / f"{purpose}-{as_of.isoformat()}.html"


def run(settings: Settings, spark: SparkSession | None = None) -> dict:
    """Gate and publish the candidate for ``settings.purpose`` as of ``settings.as_of``."""
    from mydata.spark import spark_session

    if settings.as_of is None:
        raise ConfigError("the release gate needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of, k = settings.lake, settings.purpose, settings.as_of, settings.k_anonymity
    spark = spark or spark_session(settings, "privacy")
    folder = silver_table(lake, features_job.CANDIDATES, purpose) / f"as_of={as_of.isoformat()}"
    if not folder.is_dir():
        raise FileNotFoundError(missing_input(lake, "feature candidate", "features", f"mydata features --as-of {as_of}",
                                              purpose=purpose, as_of=as_of.isoformat()))
    candidates = spark.read.parquet(str(folder)).cache()
    manifest = RunManifest.start(JOB, purpose=purpose, as_of=as_of.isoformat(), k=k,
                                 max_suppression=settings.max_suppression)
    outcomes: list[LevelOutcome] = []
    chosen = None
    for index, level in enumerate(LEVELS):
        outcomes.append(assess(generalise(candidates, level), level, k))
        if outcomes[-1].share <= settings.max_suppression:
            chosen = index
            break
    manifest.inputs = {"candidate": str(folder), "subjects": outcomes[0].subjects}
    manifest.outputs = {"levels": [{"level": o.level.description, "groups": o.groups, "small_groups": o.small_groups,
                                    "suppressed": o.suppressed} for o in outcomes]}
    report = report_path(lake, purpose, as_of)
    manifest.outputs["report"] = str(report)
    if chosen is None:
        html.write_page(report, render_report(manifest, outcomes, None))
        manifest.finish(lake, "failed")
        candidates.unpersist()
        raise ReleaseBlocked(f"k={k} cannot be reached with at most {settings.max_suppression:.0%} of "
                             f"{outcomes[0].subjects:,} subjects suppressed (the widest level would suppress "
                             f"{outcomes[-1].share:.1%}); nothing published; see {report}")
    released = suppress(generalise(candidates, LEVELS[chosen]), k).withColumn("as_of", F.lit(as_of))
    target = gold_table(lake, purpose)
    storage.replace_partitions(released, target, [as_of], manifest.run_id, key="as_of")
    snapshot = target / f"as_of={as_of.isoformat()}"
    published = spark.read.parquet(str(snapshot)).cache()
    after = assess(published, LEVELS[chosen], k)
    cuts = published.approxQuantile(SENSITIVE_FEATURE, [i / SENSITIVE_BANDS for i in range(1, SENSITIVE_BANDS)],
                                    0.001) if after.subjects else []
    manifest.outputs.update({
        "snapshot": str(snapshot), "level": LEVELS[chosen].description, "published": after.subjects,
        "suppressed": outcomes[chosen].suppressed, "suppressed_share": round(outcomes[chosen].share, 6),
        "after_sizes": after.sizes, "l_diversity": l_diversity(published, SENSITIVE_FEATURE, sorted(set(cuts)))})
    manifest.outputs["smallest_group"] = after.smallest
    html.write_page(report, render_report(manifest, outcomes, chosen))
    catalog = features_job.write_catalog(lake, purpose, as_of, published)
    manifest.outputs["catalog"] = str(catalog)
    path = manifest.finish(lake)
    spark.catalog.clearCache()
    return {"manifest": str(path), "report": str(report), "catalog": str(catalog), "snapshot": str(snapshot),
            "published": after.subjects, "suppressed": outcomes[chosen].suppressed,
            "level": LEVELS[chosen].description}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
