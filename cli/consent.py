"""`mydata consent`: append, verify, a subject's status, the review report, export of the signed heads."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from cli.settings import link_key_of, settings_of
from mydata.config import Settings


def cmd_consent(args: argparse.Namespace) -> int:
    from jobs import consent, consent_review
    from mydata.engines import open_engine

    settings = settings_of(args)
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
        try:
            result = consent.export_anchors(settings.lake, Path(args.to) if args.to else None, dsn)
        except consent.ConsentChainBroken as exc:
            print(f"mydata consent export: {exc}", file=sys.stderr)
            return 1
        print(f"exported {result['exported']:,} new signed head(s) of {result['heads']:,} to {result['target']}")
        if result["differing"]:
            print(f"mydata consent export: the heads after {result['differing']} events differ from what was "
                  "exported before: the lake's anchors were rewritten", file=sys.stderr)
            return 1
        return 0
    if args.action == "report":
        from cli.status import sla_line

        result = consent_review.run(settings)
        for purpose, honoured in result["withdrawals"].items():
            used = honoured["uses_after_withdrawal"]
            print(f"{purpose}: {sla_line(honoured['sla'])}; "
                  + (f"{used} USE(S) AFTER WITHDRAWAL" if used else "no use after withdrawal"))
        print(f"consent report as of {result['as_of']}: {result['report']}")
        return 0 if result["ledger_ok"] else 1
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
        if check.pending:
            print(f"consent: {check.pending:,} delivered event(s) are not in the ledger yet: run `mydata consent "
                  "append`", file=sys.stderr)
        print(f"consent ledger verifies: {check.events:,} events, head {check.head.hash}, "
              f"{len(consent.read_anchors(settings.lake))} signed heads")
        return 0
    as_of = settings.as_of or date.today()
    if args.action == "status":
        status = consent_review.subject_status(engine, settings.lake, link_key_of(args, "consent status"), as_of)
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
