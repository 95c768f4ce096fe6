"""`mydata consent`: append, verify, a subject's status, the review report, export of the signed heads."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from cli.parsing import Commands
from cli.settings import link_key_of, settings_of


def cmd_consent_append(args: argparse.Namespace) -> int:
    from jobs import consent

    result = consent.run(settings_of(args))
    print(f"consent: {result.summary()}")
    for dt, events in result["appended"].items():
        print(f"  appended dt={dt}: {events:,} events")
    return 0


def cmd_consent_export(args: argparse.Namespace) -> int:
    from jobs import consent

    dsn = args.postgres or (os.environ.get("MYDATA_ANCHOR_DSN") if not args.to else None)
    result = consent.export_anchors(settings_of(args).lake, Path(args.to) if args.to else None, dsn)
    print(f"exported {result['exported']:,} new signed head(s) of {result['heads']:,} to {result['target']}")
    if result["differing"]:
        print(f"mydata consent export: the heads after {result['differing']} events differ from what was "
              "exported before: the lake's anchors were rewritten", file=sys.stderr)
        return 1
    return 0


def cmd_consent_report(args: argparse.Namespace) -> int:
    from cli.status import sla_line
    from jobs import consent_review

    result = consent_review.run(settings_of(args))
    for purpose, honoured in result["withdrawals"].items():
        used = honoured["uses_after_withdrawal"]
        print(f"{purpose}: {sla_line(honoured['sla'])}; "
              + (f"{used} USE(S) AFTER WITHDRAWAL" if used else "no use after withdrawal"))
    print(f"consent review: {result.summary()}")
    print(f"consent report as of {result['as_of']}: {result['report']}")
    return 0 if result["ledger_ok"] else 1


def cmd_consent_verify(args: argparse.Namespace) -> int:
    from jobs import consent
    from mydata.engines import open_engine

    settings = settings_of(args)
    engine = open_engine(settings)
    try:
        check = consent.verify_ledger(engine, settings.lake)
    finally:
        engine.close()
    if not check.ok:
        print(f"consent ledger BROKEN at {check.problem}", file=sys.stderr)
        return 1
    if check.events == 0:
        print(f"mydata consent verify: no consent ledger under {settings.lake.root}: nothing was appended "
              "here (is --data-root right?); nothing to verify", file=sys.stderr)
        return 1
    if check.pending:
        print(f"consent: {check.pending:,} delivered event(s) are not in the ledger yet: run `mydata consent "
              "append`", file=sys.stderr)
    print(f"consent ledger verifies: {check.events:,} events, head {check.head.hash}, "
          f"{len(consent.read_anchors(settings.lake))} signed heads")
    return 0


def cmd_consent_status(args: argparse.Namespace) -> int:
    from jobs import consent_review
    from mydata.engines import open_engine

    settings = settings_of(args)
    as_of = settings.as_of or date.today()
    link_key = link_key_of(args, "consent status")
    engine = open_engine(settings)
    try:
        status = consent_review.subject_status(engine, settings.lake, link_key, as_of)
    finally:
        engine.close()
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


def register(commands: Commands) -> None:
    consent = commands.group("consent", "the consent ledger: append bronze events, verify the chain, one "
                                        "subject's status, the review report, export of the signed heads")
    consent.add("append", cmd_consent_append, "append new bronze consent deliveries, each verified first")
    consent.add("verify", cmd_consent_verify, "check every event's hash and link against the signed heads",
                lake="read")
    p = consent.add("status", cmd_consent_status, "one subject's consent events and state as of --as-of "
                                                  "(default today)", lake="read")
    link_key_argument(p)
    consent.add("report", cmd_consent_report, "the compliance review report as of --as-of (default today): "
                                              "events by month, withdrawals honoured, the ledger's check")
    p = consent.add("export", cmd_consent_export, "copy the signed heads to write-once storage", lake="read")
    p.add_argument("--to", help="append the signed heads to this JSON-lines file")
    p.add_argument("--postgres", help="insert them into table consent_anchors of this Postgres DSN "
                                      "(default MYDATA_ANCHOR_DSN)")


def link_key_argument(parser: argparse.ArgumentParser) -> None:
    """A subject's link key, positional; one starting with '-' reaches it as --link-key (cli.main)."""
    parser.add_argument("link_key", nargs="?", help="the subject's link key (one starting with '-' is taken as "
                                                    "it is, or give --link-key=KEY)")
    parser.add_argument("--link-key", dest="link_key_option", help=argparse.SUPPRESS)
