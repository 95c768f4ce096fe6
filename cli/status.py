"""`mydata status`: the lake at a glance, for a person or (``--json``) a machine."""
from __future__ import annotations

import argparse
import json

from cli.parsing import Commands
from cli.settings import settings_of


def cmd_status(args: argparse.Namespace) -> int:
    from jobs import status

    found = status.run(settings_of(args))
    print(json.dumps(found.as_dict(), indent=1, default=str) if args.json else describe(found))
    return 0 if found.healthy else 1


def sla_line(sla: dict) -> str:
    """The withdrawal SLA in one line: hours to purge, and who is still waiting."""
    took = (f"purges took median {sla['median_hours']:.1f}h, p95 {sla['p95_hours']:.1f}h, max {sla['max_hours']:.1f}h "
            f"over {sla['purged']:,} subject(s)" if sla["purged"] else "no subject has needed a purge yet")
    waiting = (f"; {sla['pending']:,} waiting, the longest {sla['longest_pending_hours']:.1f}h" if sla["pending"]
               else "; none waiting")
    return took + waiting


def describe(found) -> str:
    """``jobs.status.LakeStatus`` as lines a person reads."""
    lines = [f"lake {found.root}, purpose {found.purpose}", "", "latest runs"]
    lines += [f"  {r['job']:<10} {r['status']:<10} {(r['finished_at'] or '')[:19]:<20} {r['run_id']}"
              for r in found.runs] or ["  none yet"]
    if found.ingest:
        i = found.ingest
        lines += ["", f"ingest     {i['records_read']:,} records read, {i['rows_accepted']:,} rows accepted, "
                      f"{i['rows_quarantined']:,} quarantined ({i['quarantine_share']:.2%})"]
    for zone, tables in found.tables.items():
        lines += [f"{zone:<10} " + ", ".join(f"{name} {rows:,}" for name, rows in tables.items())]
    ledger = found.ledger
    lines += ["", f"consent    {ledger['events']:,} events, head {ledger['head'][:16]}…, "
                  + ("verifies" if ledger["verified"] else f"DOES NOT VERIFY: {ledger['problem']}")]
    release = found.release
    if release is not None:
        blank = release["blank_features"]
        lines.append(f"release    as of {release['as_of']}: {release['published'] or 0:,} published; "
                     + (f"{len(blank)} BLANK feature(s): {', '.join(blank)}" if blank else "no blank feature"))
    model = found.model
    lines += ["model      " + ("none promoted" if model is None else
                               f"{model['version']} (k={model['k']}, {(model['created_at'] or '')[:10]}), drift: "
                               + ("not checked" if model["drift"] is None else
                                  "retrain" if model["drift"]["retrain"] else "within threshold"))]
    w = found.withdrawals
    lines += [f"withdrawn  {w['withdrawn_subjects']:,} subject(s), {w['not_purged']:,} not yet purged"]
    lines += [f"           {sla_line(w['sla'])}"]
    used = w["used_after_withdrawal"]
    lines += ["           " + (f"{len(used)} use(s) after withdrawal (see below)" if used
                               else "no fusion run used a subject after their withdrawal")
              + (f" ({w['unrecorded_fusion_runs']} older run(s) kept no record of use and are not checked)"
                 if w["unrecorded_fusion_runs"] else "")]
    lines += ["", "needs attention:" if found.attention else "healthy: nothing needs attention"]
    lines += [f"  - {said}" for said in found.attention]
    return "\n".join(lines)


def register(commands: Commands) -> None:
    p = commands.add("status", cmd_status, "the lake at a glance: every job's latest run, quarantine share, the "
                                           "consent ledger's head and check, the current model and its drift, "
                                           "withdrawals not yet purged (exit 1 when something needs attention)",
                     lake="read")
    p.add_argument("--json", action="store_true", help="print it as JSON")
