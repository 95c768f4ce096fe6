"""`mydata`: the command line for data engineers, data scientists and compliance reviewers.

Global flags override MYDATA_* environment variables, which override the embedded defaults. Each
cli module registers its own commands. A usage error (settings, flags, an input not there yet)
prints one readable line and exits 2, before any Spark work; a stage that fails on its data prints
one line and exits 1; anything else is a bug and keeps its traceback. Nothing printed ever holds a
secret or an identifier.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cli import airflow, consent, data, model, stages, status, subject
from cli.parsing import Commands, Parser
from cli.settings import settings_of
from mydata import progress, storage
from mydata.config import PURPOSES
from mydata.errors import StageFailed, UsageError
from schemas.landing import LINK_KEY_PATTERN

#: in the order `mydata --help` lists them
COMMAND_MODULES = (data, stages, consent, subject, model, status, airflow)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mydata", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="lake root (env MYDATA_DATA_ROOT; default ./var)")
    parser.add_argument("--engine", choices=("duckdb", "spark"),
                        help="engine the stages run on (env MYDATA_ENGINE; default duckdb, or spark when "
                             "the master is a spark:// or sc:// cluster)")
    parser.add_argument("--spark-master", help="Spark master URL (env MYDATA_SPARK_MASTER; default local[*])")
    parser.add_argument("--purpose", choices=PURPOSES, help="processing purpose (env MYDATA_PURPOSE)")
    parser.add_argument("--as-of", help="as-of date YYYY-MM-DD (env MYDATA_AS_OF)")
    parser.add_argument("--dt", help="delivery date YYYY-MM-DD (env MYDATA_DT)")
    commands = Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for module in COMMAND_MODULES:
        module.register(commands)
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
    said = f"mydata {' '.join(filter(None, (args.command, getattr(args, 'action', None))))}"
    settings = None
    try:
        settings = settings_of(args)
        settings.restrict_new_files()
        if args.lake is not None:  # before any Spark work: a wrong data root is a usage error
            settings.check_data_root(write=args.lake == "write")
        with progress.shown_by(progress.for_stream(sys.stderr)):
            return args.handler(args)
    except StageFailed as exc:  # the stage said why (and its manifest holds it): one line
        print(f"{said}: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"{said}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if (full := storage.disk_full(exc, settings.data_root if settings else Path.cwd())) is not None:
            print(f"{said}: {full}", file=sys.stderr)
            return 1
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        print(f"{said}: Spark failed: {first[:300]} (check MYDATA_SPARK_MASTER, Java 17 and the Spark logs)",
              file=sys.stderr)
        return 1
