"""`mydata`: the command line for data engineers, data scientists and compliance reviewers.

Global flags override MYDATA_* environment variables, which override the embedded defaults.
Setup errors (settings, the data root, the command line) print one readable line and exit 2, before
any Spark work; a stage that fails on its data prints one line and exits 1. Neither ever prints a
secret or an identifier.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

from mydata.config import PURPOSES, ConfigError, Settings
from mydata.keys import KeyStore, KeyStoreError
from schemas.landing import LINK_KEY_PATTERN, MYDATA_SOURCES


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(data_root=args.data_root, spark_master=args.spark_master, engine=args.engine,
                         purpose=args.purpose, as_of=args.as_of, delivery_date=args.dt)


def cmd_generate(args: argparse.Namespace) -> int:
    from mydata.synth import GeneratorOptions, generate

    settings = _settings(args)
    out = Path(args.out) if args.out else settings.data_root
    keystore = KeyStore.open(settings.replace(data_root=out) if args.out else settings)
    if args.key_mismatch_rate > 0 and 2 not in keystore.link_versions:
        ref = keystore.rotate_link()
        print(f"key store: added {ref} (the generator simulates a holder that already rotated)")
    options = GeneratorOptions(
        subjects=args.subjects, months=args.months, seed=args.seed,
        start_month=date.fromisoformat(args.start_month + "-01"), defect_rate=args.defect_rate,
        key_mismatch_rate=args.key_mismatch_rate, chunk_size=args.chunk_size,
        workers=args.workers, compress=args.gzip)
    started = time.perf_counter()
    summary = generate(out, options, keystore)
    elapsed = time.perf_counter() - started
    print(f"generated {summary.subjects:,} subjects x {args.months} months into {out / 'landing'} "
          f"in {elapsed:.1f}s")
    print(f"  deliveries: {', '.join(summary.deliveries)}")
    for source, count in summary.records.items():
        print(f"  {source:<14} {count:>12,} records")
    print(f"  planted defects: {summary.total_defects:,} ({summary.defect_rate:.3%} of "
          f"{summary.total_records:,} records; asked {args.defect_rate:.3%})")
    print(f"  ground truth: {out / 'truth'}")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from mydata.tokenizer import tokenize_file

    keystore = KeyStore.open(_settings(args))
    version = args.key_version or keystore.current_link_version
    result = tokenize_file(Path(args.input), Path(args.output), keystore.link_secret(version),
                           version, ci_column=args.ci_column)
    print(f"tokenized {result.records:,} records with link key version {result.key_version} "
          f"into {result.out}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    keystore = KeyStore.open(_settings(args))
    if args.action == "rotate-link":
        print(f"added {keystore.rotate_link()}")
    elif args.action == "rotate-purpose":
        print(f"added {keystore.rotate_purpose(args.name or _settings(args).purpose)}")
    print(json.dumps(keystore.describe(), indent=1))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mydata.demo import run_demo

    return run_demo(_settings(args), subjects=args.subjects, months=args.months, seed=args.seed)


def cmd_landing(args: argparse.Namespace) -> int:
    from jobs import landing

    print(json.dumps(landing.run(_settings(args)), indent=1))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from jobs import ingest

    try:
        result = ingest.run(_settings(args))
    except ingest.NoDeliveryError as exc:
        print(f"mydata ingest: {exc}", file=sys.stderr)
        return 2
    except ingest.IngestFailed as exc:
        print(f"mydata ingest FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"ingested: {result['rows_accepted']:,} rows accepted, {result['rows_quarantined']:,} "
          f"quarantined, {result['failed_collections']:,} failed collections, "
          f"{result['duplicates']:,} duplicate deliveries")
    print(f"manifest: {result['manifest']}")
    return _validate(args)


def cmd_validate(args: argparse.Namespace) -> int:
    return _validate(args, args.run)


def _validate(args: argparse.Namespace, ingest_run: str | None = None) -> int:
    from jobs import validate

    try:
        result = validate.run(_settings(args), ingest_run=ingest_run)
    except validate.ValidationFailed as exc:
        print(f"mydata validate: {exc}", file=sys.stderr)
        return 1
    print(f"validated: {result['expectations']:,} expectations met over {result['rows_checked']:,} bronze rows")
    print(f"report: {result['report']}")
    return 0


def cmd_consent(args: argparse.Namespace) -> int:
    from jobs import consent
    from mydata.engines import open_engine

    settings = _settings(args)
    if args.action == "append":
        try:
            result = consent.run(settings)
        except consent.ConsentChainBroken as exc:
            print(f"mydata consent append: {exc}", file=sys.stderr)
            return 1
        appended = ", ".join(f"dt={dt}: {n:,}" for dt, n in result["appended"].items()) or "nothing new"
        print(f"appended {appended}; ledger head after {result['head']['events']:,} events: {result['head']['hash']}")
        return 0
    if args.action == "export":
        dsn = args.postgres or (os.environ.get("MYDATA_ANCHOR_DSN") if not args.to else None)
        result = consent.export_anchors(settings.lake, Path(args.to) if args.to else None, dsn)
        print(f"exported {result['exported']:,} new signed head(s) of {result['heads']:,} to {result['target']}")
        if result["differing"]:
            print(f"mydata consent export: the heads after {result['differing']} events differ from what was "
                  "exported before: the lake's anchors were rewritten", file=sys.stderr)
            return 1
        return 0
    engine = open_engine(settings)
    try:
        return _consent_review(args, settings, engine)
    finally:
        engine.close()


def _consent_review(args: argparse.Namespace, settings: Settings, engine) -> int:
    from jobs import consent, consent_review

    if args.action == "verify":
        check = consent.verify_ledger(engine, settings.lake)
        if not check.ok:
            print(f"consent ledger BROKEN at {check.problem}", file=sys.stderr)
            return 1
        if check.events == 0:
            print(f"mydata consent verify: no consent ledger under {settings.lake.root}: nothing was appended "
                  "here (is --data-root right?); nothing to verify", file=sys.stderr)
            return 1
        print(f"consent ledger verifies: {check.events:,} events, head {check.head.hash}, "
              f"{len(consent.read_anchors(settings.lake))} signed heads")
        return 0
    as_of = settings.as_of or date.today()
    if args.action == "status":
        if not args.link_key:
            raise ConfigError("consent status needs the subject's link key")
        status = consent_review.subject_status(engine, settings.lake, args.link_key, as_of)
        if not status.events:
            print("no consent event for this link key")
            return 1
        print(f"{len(status.events)} event(s), in chain order:")
        for e in status.events:
            print(f"  #{e['seq']:<7} {e['event_id']:<14} {e['event_time']:%Y-%m-%d %H:%M} {e['event_type']:<8} "
                  f"{e['purpose']:<14} {','.join(e['sources']):<18} until {e['end_date']} via {e['channel']} "
                  f"({e['notice_version']})")
        print(f"consent as of {as_of}:")
        for s in status.states:
            print(f"  {s['purpose']:<14} {s['source']:<8} {s['state']:<9} since {s['since']:%Y-%m-%d} "
                  f"({s['event_id']}), until {s['until']}")
        return 0
    result = consent_review.write_report(settings, engine, as_of)
    print(f"consent report as of {as_of}: {result['report']}")
    return 0 if result["ledger_ok"] else 1


def cmd_fuse(args: argparse.Namespace) -> int:
    from jobs import consent, fuse

    try:
        result = fuse.run(_settings(args))
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

    result = features.run(_settings(args))
    print(f"features: {result['features']} features for {result['subjects']:,} subjects -> {result['candidate']} "
          "(release candidate; `mydata release` publishes it)")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from jobs import privacy

    try:
        result = privacy.run(_settings(args))
    except privacy.ReleaseBlocked as exc:
        print(f"mydata release: {exc}", file=sys.stderr)
        return 1
    print(f"released {result['published']:,} subjects ({result['suppressed']:,} suppressed) at {result['level']}")
    print(f"snapshot: {result['snapshot']}")
    print(f"privacy report: {result['report']}")
    print(f"feature catalog: {result['catalog']}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from jobs import purge

    result = purge.run(_settings(args))
    print(f"purged {result['pseudonyms_purged']:,} withdrawn subject(s), {result['rows_removed_total']:,} rows "
          f"from {len(result['rows_removed'])} partition(s)")
    print(f"manifest: {result['manifest']}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from models import drift, lifecycle, profile, registry
    from mydata.synth import generated_truth

    settings = _settings(args)
    lake, purpose = settings.lake, settings.purpose
    if args.action == "train":
        ks = range(args.k_min, args.k_max + 1)
        result = lifecycle.run(settings, args.algorithm, ks, args.seed, args.pca, args.k, args.promote,
                               generated_truth(settings) if args.truth else None)
        m = result["metrics"]
        extra = f", ARI vs latent types {m['ari_vs_latent_types']:.3f}" if "ari_vs_latent_types" in m else ""
        print(f"registered {purpose} {result['version']}{' (promoted to current)' if result['promoted'] else ''}: "
              f"k={m['k']}, silhouette {m['silhouette']:.3f}, stability {m['stability_ari']:.3f}{extra}")
        _print_segments(result["segments"])
        print(f"profile: {result['report']}")
        return 0
    if args.action == "list":
        current = registry.current_version(lake, purpose)
        found = registry.versions(lake, purpose)
        if not found:
            print(f"no models for {purpose} yet (`mydata model train`)")
            return 0
        print(f"{'':2}{'version':<8} {'created':<20} {'as of':<11} {'algorithm':<17} {'k':>3} {'silhouette':>10} "
              f"{'stability':>9} {'ARI truth':>9}")
        for v in found:
            meta, m = v.metadata, v.metadata.get("metrics", {})
            truth = f"{m['ari_vs_latent_types']:.3f}" if "ari_vs_latent_types" in m else "–"
            print(f"{'*' if v.version == current else '':2}{v.version:<8} {meta.get('created_at', '')[:19]:<20} "
                  f"{meta.get('as_of', ''):<11} {meta.get('parameters', {}).get('algorithm', ''):<17} "
                  f"{m.get('k', ''):>3} {m.get('silhouette', 0):>10.3f} {m.get('stability_ari', 0):>9.3f} {truth:>9}")
        print("* current")
        return 0
    if args.action == "show":
        v = registry.get(lake, purpose, args.versions[0] if args.versions else None)
        meta = v.metadata
        print(f"{purpose} {v.version}{' (current)' if registry.current_version(lake, purpose) == v.version else ''}, "
              f"created {meta.get('created_at', '')[:19]}")
        for key in ("snapshot", "snapshot_hash", "consent_snapshot"):
            print(f"  {key:<17} {meta.get(key)}")
        print(f"  {'parameters':<17} {json.dumps(meta.get('parameters'))}")
        print(f"  {'metrics':<17} {json.dumps(meta.get('metrics'))}")
        print(f"  {'features':<17} {len(meta.get('features', []))}")
        print(f"  {'libraries':<17} {json.dumps(meta.get('libraries'))}")
        _print_segments(meta.get("profile", {}).get("segments", []))
        if "profile" in meta:
            print(f"profile: {profile.write_report(lake, meta)}")
        return 0
    if args.action == "compare":
        if len(args.versions) != 2:
            raise ConfigError("model compare needs two versions, e.g. `mydata model compare 1 2`")
        a, b = (registry.get(lake, purpose, name) for name in args.versions)
        diff = registry.compare(a, b)
        print(f"{a.version} vs {b.version}")
        for key in ("parameters", "metrics", "inputs"):
            for name, (left, right) in diff[key].items():
                print(f"  {key[:-1] if key != 'inputs' else 'input'} {name}: {left} -> {right}")
        for key, names in diff["features"].items():
            if names:
                print(f"  features {key.replace('_', ' ')}: {', '.join(names)}")
        if not any(diff[k] for k in ("parameters", "metrics", "inputs")) and not any(diff["features"].values()):
            print("  no difference in parameters, metrics, inputs or features")
        return 0
    if args.action == "promote":
        if len(args.versions) != 1:
            raise ConfigError("model promote needs one version, e.g. `mydata model promote 3`")
        chosen = registry.promote(lake, purpose, args.versions[0])
        print(f"{purpose}: {chosen.version} is now current")
        return 0
    result = drift.run(settings, args.baseline, args.versions[0] if args.versions else None)
    print(f"drift {purpose}: largest feature PSI {result['max_feature_psi']:.3f}, segment shares PSI "
          f"{result['segments_psi']:.3f} (threshold {result['threshold']:g})")
    print(f"retraining {'is due: ' + ', '.join(result['drifted']) if result['retrain'] else 'not needed'}")
    print(f"report: {result['report']}")
    return 0


def _print_segments(segments: list[dict]) -> None:
    for s in segments:
        print(f"  segment {s['segment']:>2}: {s['size']:>8,} ({s['share']:6.1%})  {s['label']}")


def cmd_score(args: argparse.Namespace) -> int:
    from jobs import score

    result = score.run(_settings(args), version=args.model)
    sizes = ", ".join(f"{k}: {v:,}" for k, v in result["sizes"].items())
    print(f"scored {result['rows']:,} subjects with {result['model']} -> {result['segments']}")
    print(f"segment sizes: {sizes}")
    return 0


def cmd_holders(args: argparse.Namespace) -> int:
    from mydata.holders import Holder, HolderRegistry

    registry = HolderRegistry.open(_settings(args))
    if args.action == "add":
        if not (args.source and args.org_code and args.name):
            raise ConfigError("holders add needs --source, --org-code and --name")
        holder = registry.add(Holder(args.source, args.org_code, args.name, args.since or date.today()))
        print(f"registered {holder.source} holder {holder.org_code} ({holder.name}) since {holder.since}")
    elif args.action == "remove":
        if not (args.source and args.org_code):
            raise ConfigError("holders remove needs --source and --org-code")
        holder = registry.remove(args.source, args.org_code)
        print(f"removed {holder.source} holder {holder.org_code} ({holder.name})")
    holders = registry.holders()
    print(f"{len(holders)} registered holder(s) ({registry.source}):")
    for h in holders:
        print(f"  {h.source:<8} {h.org_code:<11} since {h.since}  {h.name}")
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    from mydata.airflow_runner import run_airflow

    result = run_airflow(_settings(args), args.airflow_args)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, like every other setup error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


#: commands that work on an existing lake, and their actions that only read it
LAKE_COMMANDS = ("landing", "ingest", "validate", "consent", "fuse", "features", "release", "purge", "model",
                 "score", "holders")
READ_ONLY_ACTIONS = {("consent", "verify"), ("consent", "status"), ("consent", "export"), ("holders", "list"),
                     ("model", "list")}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mydata", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="lake root (env MYDATA_DATA_ROOT; default ./var)")
    parser.add_argument("--engine", choices=("duckdb", "spark"),
                        help="engine the stages run on (env MYDATA_ENGINE; default duckdb, or spark when "
                             "the master is a spark:// or sc:// cluster)")
    parser.add_argument("--spark-master", help="Spark master URL (env MYDATA_SPARK_MASTER; default local[*])")
    parser.add_argument("--purpose", choices=PURPOSES, help="processing purpose (env MYDATA_PURPOSE)")
    parser.add_argument("--as-of", help="as-of date YYYY-MM-DD (env MYDATA_AS_OF)")
    parser.add_argument("--dt", help="delivery date YYYY-MM-DD (env MYDATA_DT)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = add("generate", cmd_generate, "write a synthetic landing zone (all sources, _SUCCESS markers)")
    p.add_argument("--subjects", type=int, required=True)
    p.add_argument("--months", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="data root to write landing/ and truth/ under (default: --data-root)")
    p.add_argument("--start-month", default="2026-05", help="first month, YYYY-MM (default 2026-05)")
    p.add_argument("--defect-rate", type=float, default=0.005)
    p.add_argument("--key-mismatch-rate", type=float, default=0.005,
                   help="share of subjects whose telecom records carry link key version 2")
    p.add_argument("--chunk-size", type=int, default=5_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--gzip", action="store_true", help="write .jsonl.gz")

    p = add("tokenize", cmd_tokenize, "replace a CI column by link_key and key_version (holders' tool)")
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--out", dest="output", required=True)
    p.add_argument("--ci-column", default="ci")
    p.add_argument("--key-version", type=int, help="link secret version (default: the newest)")

    p = add("keys", cmd_keys, "show key versions (never values), or rotate a secret")
    p.add_argument("action", nargs="?", default="show", choices=("show", "rotate-link", "rotate-purpose"))
    p.add_argument("--name", choices=PURPOSES, help="purpose to rotate")

    p = add("demo", cmd_demo, "generate sample data and run the pipeline DAG through Airflow")
    p.add_argument("--subjects", type=int, default=2_000)
    p.add_argument("--months", type=int, default=6)
    p.add_argument("--seed", type=int, default=7)

    add("landing", cmd_landing, "inventory the landing zone (complete deliveries, record counts)")
    add("ingest", cmd_ingest, "landing -> typed bronze with quarantine (all complete deliveries, or --dt), "
                              "then validate")
    p = add("validate", cmd_validate, "check an ingest run's bronze with Great Expectations; write its report")
    p.add_argument("--run", help="ingest run id (default: the latest)")

    p = add("consent", cmd_consent, "consent ledger: append bronze events, verify the chain, one subject's "
                                    "status, the review report (--as-of; default today)")
    p.add_argument("action", choices=("append", "verify", "status", "report", "export"))
    p.add_argument("link_key", nargs="?", help="for status: the subject's link key (one starting with '-' "
                                               "is taken as it is, or give --link-key=KEY)")
    p.add_argument("--link-key", dest="link_key_option", help=argparse.SUPPRESS)
    p.add_argument("--to", help="for export: append the signed heads to this JSON-lines file")
    p.add_argument("--postgres", help="for export: insert them into table consent_anchors of this Postgres DSN "
                                      "(default MYDATA_ANCHOR_DSN)")
    add("fuse", cmd_fuse, "bronze -> silver for --purpose as of --as-of, only subjects with valid consent "
                          "for every source; writes the linkage report")
    add("features", cmd_features, "silver -> feature release candidate for --purpose as of --as-of")
    add("release", cmd_release, "k-anonymity gate (MYDATA_K_ANONYMITY, MYDATA_MAX_SUPPRESSION), then publish the "
                                "feature snapshot to gold with its privacy report and catalog")
    add("purge", cmd_purge, "remove subjects who withdrew consent for --purpose from every derived table")

    p = add("model", cmd_model, "segmentation models for --purpose: train (and register) on the published "
                                "snapshot as of --as-of, list, show, compare two versions, promote one to "
                                "current, drift of a newer snapshot against the model's")
    p.add_argument("action", choices=("train", "list", "show", "compare", "promote", "drift"))
    p.add_argument("versions", nargs="*", help="version(s): v0003 or 3 (show/drift: default current)")
    p.add_argument("--algorithm", default="kmeans", choices=("kmeans", "minibatch_kmeans", "gmm"))
    p.add_argument("--k", type=int, help="fixed number of segments (default: chosen over --k-min..--k-max)")
    p.add_argument("--k-min", type=int, default=3)
    p.add_argument("--k-max", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pca", type=int, help="PCA components after scaling (default: none)")
    p.add_argument("--promote", action="store_true", help="make the new version current")
    p.add_argument("--truth", action="store_true",
                   help="generated data only: report the ARI against the generator's latent types")
    p.add_argument("--baseline", help="drift: as-of date of the baseline snapshot (default: the model's)")
    p = add("score", cmd_score, "assign segments to every subject of the snapshot as of --as-of (Spark) -> "
                                "gold/segments")
    p.add_argument("--model", help="model version (default: current)")

    p = add("holders", cmd_holders, "the data holders collected from: list, add or remove one "
                                    "(a delivery from an unregistered holder is refused)")
    p.add_argument("action", nargs="?", default="list", choices=("list", "add", "remove"))
    p.add_argument("--source", choices=MYDATA_SOURCES)
    p.add_argument("--org-code", help="the holder's org_code, 10 letters or digits")
    p.add_argument("--name", help="the holder's name")
    p.add_argument("--since", help="first delivery date accepted from it, YYYY-MM-DD (default today)")

    p = add("airflow", cmd_airflow, "run the airflow CLI against the project's Airflow home")
    p.add_argument("airflow_args", nargs=argparse.REMAINDER)
    return parser


def _link_keys_as_options(argv: list[str]) -> list[str]:
    """A link key may start with '-' (1 in 64 do); argparse would take it for an option."""
    return [f"--link-key={arg}" if arg.startswith("-") and LINK_KEY_PATTERN.match(arg) else arg for arg in argv]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_link_keys_as_options(list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "link_key_option", None):
        args.link_key = args.link_key_option
    try:
        if args.command in LAKE_COMMANDS:  # before any Spark work: a wrong data root is a setup error
            read_only = (args.command, getattr(args, "action", None)) in READ_ONLY_ACTIONS
            _settings(args).check_data_root(write=not read_only)
        return args.func(args)
    except (ConfigError, KeyStoreError, FileExistsError, FileNotFoundError, ValueError, LookupError) as exc:
        print(f"mydata {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(f"mydata {args.command}: Spark failed: {first[:300]} (check MYDATA_SPARK_MASTER, Java 17 and the "
              "Spark logs)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
