"""`mydata`: the command line for data engineers, data scientists and compliance reviewers.

Global flags override MYDATA_* environment variables, which override the embedded defaults.
Setup errors (settings, the data root, the command line) print one readable line and exit 2, before
any Spark work; a stage that fails on its data prints one line and exits 1. Neither ever prints a
secret or an identifier.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cli.airflow import cmd_airflow, cmd_demo
from cli.consent import cmd_consent
from cli.data import cmd_generate, cmd_holders, cmd_keys, cmd_tokenize
from cli.model import cmd_model
from cli.settings import settings_of
from cli.stages import (
    cmd_features,
    cmd_fuse,
    cmd_ingest,
    cmd_landing,
    cmd_purge,
    cmd_recover,
    cmd_release,
    cmd_score,
    cmd_validate,
)
from cli.status import cmd_status
from cli.subject import cmd_subject
from mydata import progress, storage
from mydata.config import PURPOSES, ConfigError
from mydata.keys import KeyStoreError
from mydata.lock import LakeBusy
from schemas.landing import LINK_KEY_PATTERN, MYDATA_SOURCES


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, like every other setup error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


#: commands that work on an existing lake, and their actions that only read it
LAKE_COMMANDS = ("recover", "landing", "ingest", "validate", "consent", "fuse", "features", "release", "purge", "model",
                 "score", "holders", "status", "subject")
READ_ONLY_ACTIONS = {("consent", "verify"), ("consent", "status"), ("consent", "export"), ("holders", "list"),
                     ("model", "list"), ("status", None)}


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
    p.add_argument("--real-shapes", action="store_true",
                   help="deliveries as real holders make them (the demo's default): state collected again a week "
                        "later, an operator without payments or micropayments, late card deliveries, negative "
                        "card bills (docs/stages/landing.md)")

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
    add("recover", cmd_recover, "hold the lake and finish what dead runs left: unfinished publishes, interrupted "
                                "swaps, staging (docs/concurrency.md)")
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
    p = add("subject", cmd_subject, "a data subject's full trace (right of access): consent events and validity "
                                    "over time, rows held per table (counts only), the fusion runs that used them "
                                    "under which consent snapshot, derived tables, segments, models and purges; "
                                    "every purpose, or --purpose; consent as of --as-of (default now)")
    p.add_argument("action", choices=("trace",))
    p.add_argument("link_key", nargs="?", help="the subject's link key (one starting with '-' is taken as it is)")
    p.add_argument("--link-key", dest="link_key_option", help=argparse.SUPPRESS)
    add("fuse", cmd_fuse, "bronze -> silver for --purpose as of --as-of, only subjects with valid consent "
                          "for every source; writes the linkage report")
    p = add("features", cmd_features, "silver -> feature release candidate for --purpose as of --as-of; "
                                      "historical: the point-in-time training frame of a spine")
    p.add_argument("action", nargs="?", default="build", choices=("build", "historical"),
                   help="build (default): the release candidate; historical: every feature for each --spine row "
                        "as of its own date, from the silver snapshot as of --as-of (default the newest)")
    p.add_argument("--spine", help="for historical: CSV or Parquet with columns pseudonym and as_of (a date, or a "
                                   "timestamp whose day counts)")
    p.add_argument("--out", help="for historical: the Parquet file to write (default <spine>-features.parquet)")
    p = add("release", cmd_release, "features: the k-anonymity gate (MYDATA_K_ANONYMITY, MYDATA_MAX_SUPPRESSION), "
                                    "then publish the feature snapshot to gold with its privacy report and catalog; "
                                    "stats: per-segment counts and means of the shareable features for partners, "
                                    "under differential privacy, within the snapshot's budget (MYDATA_DP_BUDGET)")
    p.add_argument("action", nargs="?", default="features", choices=("features", "stats", "health"),
                   help="features (default): gate and publish; stats: differentially private statistics; "
                        "health: every feature's health line in the latest release")
    p.add_argument("--epsilon", type=float, help="stats: the ε this release spends")
    p.add_argument("--delta", type=float, default=0.0,
                   help="stats: δ of an (ε, δ) release with Gaussian noise (default 0: pure ε-DP, Laplace noise)")
    add("purge", cmd_purge, "remove subjects who withdrew consent for --purpose from every derived table")
    p = add("status", cmd_status, "the lake at a glance: every job's latest run, quarantine share, the consent "
                                  "ledger's head and check, the current model and its drift, withdrawals not yet "
                                  "purged (exit 1 when something needs attention)")
    p.add_argument("--json", action="store_true", help="print it as JSON")

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
    p.add_argument("--truth", nargs="?", const="", metavar="FILE",
                   help="report the ARI against reference labels: a CSV of link_key, latent_type (alone: the "
                        "generator's truth/subjects.csv)")
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

    p = add("airflow", cmd_airflow, "run the airflow CLI against the project's Airflow home; `mydata airflow ui "
                                    "[--port 8080]` serves its UI at http://127.0.0.1:8080; `mydata airflow pool` "
                                    "sets the lake's pool of one slot")
    p.add_argument("airflow_args", nargs=argparse.REMAINDER)
    return parser


def _link_keys_as_options(argv: list[str]) -> list[str]:
    """A link key may start with '-' (1 in 64 do); argparse would take it for an option."""
    return [f"--link-key={arg}" if arg.startswith("-") and LINK_KEY_PATTERN.match(arg) else arg for arg in argv]


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # results and progress (on stderr) in the order they happen
        sys.stdout.reconfigure(line_buffering=True)
    args = build_parser().parse_args(_link_keys_as_options(list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "link_key_option", None):
        args.link_key = args.link_key_option
    settings = None
    try:
        settings = settings_of(args)
        settings.restrict_new_files()
        if args.command in LAKE_COMMANDS:  # before any Spark work: a wrong data root is a setup error
            read_only = (args.command, getattr(args, "action", None)) in READ_ONLY_ACTIONS
            settings.check_data_root(write=not read_only)
        with progress.shown_by(progress.for_stream(sys.stderr)):
            return args.func(args)
    except (LakeBusy, storage.UnfinishedPublish) as exc:  # another writer holds or is mid-publish: one line
        print(f"mydata {args.command}: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, KeyStoreError, FileExistsError, FileNotFoundError, ValueError, LookupError) as exc:
        print(f"mydata {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if (full := storage.disk_full(exc, settings.data_root if settings else Path.cwd())) is not None:
            print(f"mydata {args.command}: {full}", file=sys.stderr)
            return 1
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(f"mydata {args.command}: Spark failed: {first[:300]} (check MYDATA_SPARK_MASTER, Java 17 and the "
              "Spark logs)", file=sys.stderr)
        return 1

