"""The pipeline's stages one at a time: `mydata landing`, `ingest`, `validate`, `fuse`, `features`,
`release`, `purge`, `score`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.parsing import Commands
from cli.settings import settings_of


def cmd_landing(args: argparse.Namespace) -> int:
    from jobs import landing

    result = landing.run(settings_of(args))
    print(json.dumps(dict(result), indent=1))
    for problem in result["skipped"]:
        print(f"skipped (MYDATA_SKIP_BAD_LANDING): {problem}", file=sys.stderr)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from jobs import ingest

    result = ingest.run(settings_of(args))
    print(f"ingested: {result.summary()}")
    print(f"manifest: {result['manifest']}")
    return _validate(args, result["run_id"])  # this run's bronze, whatever ran beside it


def cmd_validate(args: argparse.Namespace) -> int:
    return _validate(args, args.run)


def _validate(args: argparse.Namespace, ingest_run: str | None = None) -> int:
    from jobs import validate

    result = validate.run(settings_of(args), ingest_run=ingest_run)
    print(f"validated: {result.summary()}")
    print(f"report: {result['report']}")
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from jobs import fuse

    result = fuse.run(settings_of(args))
    print(f"fused: {result.summary()}; consent snapshot {result['snapshot']}")
    print(f"report: {result['report']}")
    print(f"manifest: {result['manifest']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from jobs import features

    result = features.run(settings_of(args))
    print(f"features: {result.summary()} -> {result['candidate']} (release candidate; `mydata release` publishes it)")
    return 0


def cmd_features_historical(args: argparse.Namespace) -> int:
    """The point-in-time training frame of a spine file, written as Parquet."""
    import pyarrow.parquet as pq

    from jobs import features

    settings = settings_of(args)
    built = features.historical(settings, args.spine)
    out = Path(args.out) if args.out else Path(args.spine).with_name(Path(args.spine).stem + "-features.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(built.frame, out)
    print(f"features historical: {built.rows:,} rows x {built.frame.num_columns - 2} features as of each row's date, "
          f"from the {settings.purpose} snapshot as of {built.snapshot} -> {out}"
          + (f"; {built.not_in_snapshot:,} row(s) name a pseudonym the snapshot does not hold (features null)"
             if built.not_in_snapshot else ""))
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from jobs import release

    result = release.run(settings_of(args))
    print(f"released: {result.summary()} (`mydata release health` for every feature)")
    print(f"snapshot: {result['snapshot']}")
    print(f"privacy report: {result['report']}")
    print(f"feature catalog: {result['catalog']}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    from jobs import recover

    done = recover.run(settings_of(args))
    print("\n".join(f"recovered: {line}" for line in done) if done else "recover: nothing to recover, the lake is clean")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from jobs import purge

    result = purge.run(settings_of(args))
    print(f"purged: {result.summary()} from {len(result['rows_removed'])} partition(s)")
    print(f"manifest: {result['manifest']}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from jobs import score

    result = score.run(settings_of(args), version=args.model)
    sizes = ", ".join(f"{k}: {v:,}" for k, v in result["sizes"].items())
    print(f"scored: {result.summary()} -> {result['segments']}")
    print(f"segment sizes: {sizes}")
    return 0


def cmd_release_health(args: argparse.Namespace) -> int:
    """Every feature's health line in the purpose's latest release (or the one as of --as-of)."""
    from features.health import from_manifest
    from mydata.manifest import latest_matching

    settings = settings_of(args)
    wanted = {"as_of": settings.as_of.isoformat()} if settings.as_of else {}
    release = latest_matching(settings.lake, "privacy", purpose=settings.purpose, **wanted)
    if release is None or "feature_health" not in release["outputs"]:
        print(f"mydata release health: no release of {settings.purpose} with feature health yet; run `mydata release`",
              file=sys.stderr)
        return 1
    print(f"feature health of the {settings.purpose} release as of {release['parameters']['as_of']} "
          f"({release['outputs']['published']:,} subjects):")
    for health in from_manifest(release["outputs"]["feature_health"]):
        print(f"  {health.line()}")
    return 0


def cmd_release_stats(args: argparse.Namespace) -> int:
    from jobs.release import dp_stats

    result = dp_stats.run(settings_of(args), args.epsilon, args.delta)
    print(f"released statistics: {result.summary()}")
    print(f"release: {result['release']}")
    print(f"report: {result['report']}")
    return 0


def register(commands: Commands) -> None:
    commands.add("landing", cmd_landing, "inventory the landing zone (complete deliveries, record counts)")
    commands.add("recover", cmd_recover, "hold the lake and finish what dead runs left: unfinished publishes, "
                                         "interrupted swaps, staging (docs/concurrency.md)")
    commands.add("ingest", cmd_ingest, "landing -> typed bronze with quarantine (all complete deliveries, or --dt), "
                                       "then validate")
    p = commands.add("validate", cmd_validate, "check an ingest run's bronze with Great Expectations; write its "
                                               "report")
    p.add_argument("--run", help="ingest run id (default: the latest)")
    commands.add("fuse", cmd_fuse, "bronze -> silver for --purpose as of --as-of, only subjects with valid consent "
                                   "for every source; writes the linkage report")

    features = commands.group("features", "silver -> feature release candidate for --purpose as of --as-of; "
                                          "historical: the point-in-time training frame of a spine",
                              default=cmd_features)
    features.add("build", cmd_features, "the release candidate (the default)")
    p = features.add("historical", cmd_features_historical,
                     "every feature for each --spine row as of its own date, from the silver snapshot as of "
                     "--as-of (default the newest)")
    p.add_argument("--spine", required=True, help="CSV or Parquet with columns pseudonym and as_of (a date, or a "
                                                  "timestamp whose day counts)")
    p.add_argument("--out", help="the Parquet file to write (default <spine>-features.parquet)")

    release = commands.group("release", "what leaves the lake: the k-anonymity gate and publish to gold, partner "
                                        "statistics under differential privacy, feature health",
                             default=cmd_release)
    release.add("features", cmd_release, "the k-anonymity gate (MYDATA_K_ANONYMITY, MYDATA_MAX_SUPPRESSION), then "
                                         "publish the feature snapshot to gold with its privacy report and catalog "
                                         "(the default)")
    p = release.add("stats", cmd_release_stats, "per-segment counts and means of the shareable features for "
                                                "partners, under differential privacy, within the snapshot's budget "
                                                "(MYDATA_DP_BUDGET)")
    p.add_argument("--epsilon", type=float, required=True, help="the ε this release spends")
    p.add_argument("--delta", type=float, default=0.0,
                   help="δ of an (ε, δ) release with Gaussian noise (default 0: pure ε-DP, Laplace noise)")
    release.add("health", cmd_release_health, "every feature's health line in the latest release", lake="read")

    commands.add("purge", cmd_purge, "remove subjects who withdrew consent for --purpose from every derived table")
    p = commands.add("score", cmd_score, "assign segments to every subject of the snapshot as of --as-of -> "
                                         "gold/segments")
    p.add_argument("--model", help="model version (default: current)")
