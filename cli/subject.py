"""`mydata subject trace LINK_KEY`: everything held and derived about one subject, and under which consent."""
from __future__ import annotations

import argparse

from cli.consent import link_key_argument
from cli.parsing import Commands
from cli.settings import link_key_of, settings_of


def cmd_subject_trace(args: argparse.Namespace) -> int:
    from jobs import subject_trace

    link_key = link_key_of(args, "subject trace")
    result = subject_trace.run(settings_of(args), link_key, [args.purpose] if args.purpose else None)
    print(f"IN DERIVED TABLES: {result['why']}" if result["in_derived_tables"]
          else result["why"] if result.get("never_seen") else f"in no derived table: {result['why']}")
    print(f"held: {result['held']} bronze/quarantine table(s); used by {result['fusion_runs']} fusion run(s); "
          f"{result['derived']} derived partition(s); {result['segments']} segment assignment(s); "
          f"{result['purges']} purge(s)")
    print(f"report: {result['report']}")
    print(f"json: {result['json']}")
    return 0


def register(commands: Commands) -> None:
    subject = commands.group("subject", "one data subject (right of access)")
    p = subject.add("trace", cmd_subject_trace,
                    "a data subject's full trace: consent events and validity over time, rows held per table "
                    "(counts only), the fusion runs that used them under which consent snapshot, derived tables, "
                    "segments, models and purges; every purpose, or --purpose; consent as of --as-of (default now)")
    link_key_argument(p)
