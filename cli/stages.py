"""The pipeline's stages one at a time: `mydata landing`, `ingest`, `validate`, `fuse`, `features`,
`release`, `purge`, `score`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.settings import settings_of


def cmd_landing(args: argparse.Namespace) -> int:
    from jobs import landing

    try:
        result = landing.run(settings_of(args))
    except landing.BadLanding as exc:
        print(f"mydata landing: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    for problem in result["skipped"]:
        print(f"skipped (MYDATA_SKIP_BAD_LANDING): {problem}", file=sys.stderr)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from jobs import ingest
    from jobs.landing import BadLanding

    try:
        result = ingest.run(settings_of(args))
    except ingest.NoDeliveryError as exc:
        print(f"mydata ingest: {exc}", file=sys.stderr)
        return 2
    except (ingest.IngestFailed, BadLanding) as exc:
        print(f"mydata ingest FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"ingested: {result['rows_accepted']:,} rows accepted, {result['rows_quarantined']:,} "
          f"quarantined, {result['failed_collections']:,} failed collections, "
          f"{result['duplicates']:,} duplicate deliveries")
    print(f"manifest: {result['manifest']}")
    return _validate(args, result["run_id"])  # this run's bronze, whatever ran beside it


def cmd_validate(args: argparse.Namespace) -> int:
    return _validate(args, args.run)


def _validate(args: argparse.Namespace, ingest_run: str | None = None) -> int:
    from jobs import validate

    try:
        result = validate.run(settings_of(args), ingest_run=ingest_run)
    except validate.ValidationFailed as exc:
        print(f"mydata validate: {exc}", file=sys.stderr)
        return 1
    print(f"validated: {result['expectations']:,} expectations met over {result['rows_checked']:,} bronze rows")
    print(f"report: {result['report']}")
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from jobs import consent, fuse

    try:
        result = fuse.run(settings_of(args))
    except (consent.ConsentChainBroken, fuse.FusedNobody) as exc:
        print(f"mydata fuse: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k} {v:,}" for k, v in result["linkage"].items())
    print(f"fused {result['subjects_fused']:,} subjects (consent snapshot {result['snapshot']}); {counts}")
    print(f"report: {result['report']}")
    print(f"manifest: {result['manifest']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from jobs import features

    if args.action == "historical":
        return _historical(args)
    result = features.run(settings_of(args))
    print(f"features: {result['features']} features for {result['subjects']:,} subjects -> {result['candidate']} "
          "(release candidate; `mydata release` publishes it)")
    return 0


def _historical(args: argparse.Namespace) -> int:
    """The point-in-time training frame of a spine file, written as Parquet."""
    import pyarrow.parquet as pq

    from jobs import features

    if not args.spine:
        print("mydata features historical needs --spine FILE (CSV or Parquet with pseudonym and as_of)", file=sys.stderr)
        return 2
    settings = settings_of(args)
    try:
        built = features.historical(settings, args.spine)
    except features.BadSpine as bad:
        print(f"features historical: {bad}", file=sys.stderr)
        return 1
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

    if args.action == "stats":
        return _release_stats(args)
    if args.action == "health":
        return _release_health(args)
    try:
        result = release.run(settings_of(args))
    except release.ReleaseBlocked as exc:
        print(f"mydata release: {exc}", file=sys.stderr)
        return 1
    print(f"released {result['published']:,} subjects ({result['suppressed']:,} suppressed) at {result['level']}")
    from features.health import named

    blank = result["blank_features"]
    print("feature health: " + (f"{len(blank)} BLANK for every subject: {named(blank)}" if blank
                                else "no feature is constant or all null") + " (`mydata release health`)")
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
    print(f"purged {result['pseudonyms_purged']:,} withdrawn subject(s), {result['rows_removed_total']:,} rows "
          f"from {len(result['rows_removed'])} partition(s)")
    print(f"manifest: {result['manifest']}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from jobs import score

    result = score.run(settings_of(args), version=args.model)
    sizes = ", ".join(f"{k}: {v:,}" for k, v in result["sizes"].items())
    print(f"scored {result['rows']:,} subjects with {result['model']} -> {result['segments']}")
    print(f"segment sizes: {sizes}")
    return 0


def _release_health(args: argparse.Namespace) -> int:
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


def _release_stats(args: argparse.Namespace) -> int:
    from jobs.release import dp_stats

    if args.epsilon is None:
        raise ValueError("release stats needs --epsilon (the ε this release spends)")
    try:
        result = dp_stats.run(settings_of(args), args.epsilon, args.delta)
    except dp_stats.BudgetExceeded as exc:
        print(f"mydata release stats: {exc}", file=sys.stderr)
        return 1
    print(f"released noisy statistics of {result['segments']} segment(s) at ε {result['epsilon']:g} "
          f"(budget spent {result['budget_spent']:g} of {result['budget']:g})")
    print(f"release: {result['release']}")
    print(f"report: {result['report']}")
    return 0
