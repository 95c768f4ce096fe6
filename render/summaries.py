"""One line per stage run, from its manifest: what the run did, in the words the CLI prints after
it, the demo prints for the latest run, and the front page shows beside every run. Written once
here, so the three never say it differently."""
from __future__ import annotations

from collections.abc import Callable

from mydata.manifest import ingest_rows, reconciled


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "–"


def landing(m: dict) -> str:
    return (f"{m['inputs'].get('deliveries_complete', 0)} complete deliveries, "
            f"{m['inputs'].get('deliveries_waiting', 0)} waiting, {m['outputs'].get('total_records', 0):,} records")


def collect(m: dict) -> str:
    holders = m["outputs"].get("holders", {}).values()
    return (f"{m['parameters'].get('source')} on {m['parameters'].get('dt')}: {len(holders)} holder(s), "
            f"{sum(h.get('calls', 0) for h in holders):,} calls, "
            f"{sum(sum(h.get('failures', {}).values()) for h in holders):,} failed collections"
            + ("" if m["outputs"].get("complete") else ", NOT complete"))


def ingest(m: dict) -> str:
    accepted, quarantined = ingest_rows(m)
    totals = reconciled(m)
    failed, duplicates = totals.get("failed_collections", 0), totals.get("duplicates", 0)
    return (f"{accepted:,} rows accepted, {quarantined:,} quarantined ({_share(quarantined, accepted + quarantined)}) "
            f"from {len(m['inputs'].get('deliveries', []))} deliveries; {failed:,} failed collections, "
            f"{duplicates:,} duplicate deliveries")


def quarantine(m: dict) -> str:
    """An ingest run's top quarantine rules."""
    rules = sorted(((n, f"{table}: {rule}") for table, by_rule in m.get("quarantined", {}).items()
                    for rule, n in by_rule.items()), reverse=True)
    return "; ".join(f"{what} {n:,}" for n, what in rules[:3]) or "nothing quarantined"


def validate(m: dict) -> str:
    out = m["outputs"]
    failed = f", {len(out['failed'])} failed" if out.get("failed") else ""
    return f"{out.get('expectations', 0):,} expectations over {out.get('rows_checked', 0):,} bronze rows{failed}"


def consent(m: dict) -> str:
    head = m["outputs"].get("ledger_head", {})
    return (f"{sum(m['outputs'].get('appended', {}).values()):,} events appended; ledger of "
            f"{head.get('events', 0):,} events (head {head.get('hash', '')[:16]}…)")


def fuse(m: dict) -> str:
    out = m["outputs"]
    left_out = ", ".join(f"{k} {v:,}" for k, v in out.get("linkage", {}).items() if k != "fused") or "nobody"
    return (f"{m['parameters'].get('purpose')} as of {m['parameters'].get('as_of')}: "
            f"{out.get('subjects_fused', 0):,} subjects fused (left out: {left_out})")


def features(m: dict) -> str:
    return f"{m['outputs'].get('features', 0)} features for {m['outputs'].get('subjects', 0):,} subjects"


def release(m: dict) -> str:
    out, k = m["outputs"], m["parameters"].get("k")
    if "published" not in out:
        return f"k={k} not reached: nothing published"
    blank = out.get("blank_features", {})
    return (f"k={k} reached at {out['level']}: {out['published']:,} subjects published, {out['suppressed']:,} "
            f"suppressed, smallest group {out.get('smallest_group')}; "
            + (f"{len(blank)} BLANK FEATURE(S): {', '.join(blank)}" if blank else "no blank feature"))


def train(m: dict) -> str:
    out, metrics = m["outputs"], m["outputs"].get("metrics", {})
    truth = f", ARI vs truth {metrics['ari_vs_latent_types']:.3f}" if "ari_vs_latent_types" in metrics else ""
    return (f"model {m['parameters'].get('purpose')} {out['version']}"
            f"{' (promoted to current)' if out.get('promoted') else ''}: k={metrics.get('k')}, silhouette "
            f"{metrics.get('silhouette', 0):.3f}, stability {metrics.get('stability_ari', 0):.3f}{truth}")


def drift(m: dict) -> str:
    out = m["outputs"]
    verdict = f"retraining is due: {', '.join(out['drifted'])}" if out.get("retrain") else "retraining not needed"
    return (f"{m['parameters'].get('baseline')} → {m['parameters'].get('as_of')}: largest feature PSI "
            f"{out.get('max_feature_psi', 0):.3f}, segment shares PSI {out.get('segments_psi', 0):.3f} "
            f"(threshold {out.get('threshold', 0):g}); {verdict}")


def score(m: dict) -> str:
    return f"{m['outputs'].get('rows', 0):,} subjects scored with {m['parameters'].get('model')}"


def consent_review(m: dict) -> str:
    out = m["outputs"]
    ledger = "ledger verifies" if out.get("ledger_verifies") else "LEDGER DOES NOT VERIFY"
    honoured = out.get("withdrawals", {}).values()
    used = sum(w["uses_after_withdrawal"] for w in honoured)
    waiting = sum(w["sla"]["pending"] for w in honoured)
    return (f"{ledger} ({m['inputs'].get('ledger_events', 0):,} events), {m['inputs'].get('fusion_runs', 0)} "
            f"fusion runs, {m['inputs'].get('purges', 0)} purges; {waiting} withdrawal(s) waiting, "
            + (f"{used} USE(S) AFTER WITHDRAWAL" if used else "no use after withdrawal"))


def subject_trace(m: dict) -> str:
    out = m["outputs"]
    found = (f"{out.get('why')}; " if out.get("never_seen") else
             f"{'in derived tables' if out.get('in_derived_tables') else 'in no derived table'}: {out.get('why')}; ")
    return found + f"{out.get('fusion_runs', 0)} fusion runs, {out.get('purges', 0)} purges"


def dp_stats(m: dict) -> str:
    out = m["outputs"]
    return (f"{out.get('segments', 0)} segments at ε {out.get('epsilon', 0):g}; budget spent "
            f"{out.get('budget_spent', 0):g} of {out.get('budget', 0):g}")


def purge(m: dict) -> str:
    out = m["outputs"]
    return (f"{m['inputs'].get('withdrawn_subjects', 0):,} withdrawn subjects, {out.get('pseudonyms_purged', 0):,} "
            f"purged, {out.get('rows_removed_total', 0):,} rows removed")


#: the line of each job, by the name its manifests are kept under
SUMMARIES: dict[str, Callable[[dict], str]] = {
    "landing": landing, "collect": collect, "ingest": ingest, "validate": validate, "consent": consent,
    "fuse": fuse, "features": features, "privacy": release, "train": train, "drift": drift, "score": score,
    "consent_review": consent_review, "subject_trace": subject_trace, "dp_stats": dp_stats, "purge": purge,
}


def summary(m: dict) -> str:
    """A run's line: its figures when it succeeded, else why it did not."""
    if m["status"] == "succeeded" and m["job"] in SUMMARIES:
        return SUMMARIES[m["job"]](m)
    if m["status"] == "succeeded":
        return "succeeded"
    return f"{m['status'].upper()}: {m.get('error') or 'no error recorded'}"
