"""The linkage report of a fusion run: who was fused, who was left out and why, from what consent
snapshot (``reports/fusion/<run id>.html``)."""
from __future__ import annotations

from mydata.manifest import RunManifest
from render import html

OUTCOME_TEXT = {
    "fused": "fused: valid consent for every source and records from each",
    "no_consent": "no consent for the purpose (for at least one source, never given)",
    "withdrawn": "consent withdrawn for at least one source",
    "expired": "consent expired for at least one source",
    "source_missing": "consent valid, but a source delivered no records for the subject",
    "key_version_mismatch": "records under a link key version the consent log does not use "
                            "(the holder keyed them with another secret version)",
}


def page(manifest: RunManifest) -> str:
    """The linkage report: who was fused, who was left out and why, from what consent snapshot."""
    out, snap = manifest.outputs, manifest.inputs["consent_snapshot"]
    counts = out["linkage"]
    most = max(counts.values(), default=0)
    rows = [(html.code(o), OUTCOME_TEXT[o], counts.get(o, 0), html.bar(counts.get(o, 0), most))
            for o in counts]
    missing = [(k or "-", v) for k, v in sorted(out["source_missing"].items())]
    tables = [(html.code(t), v["bronze_rows"], v["silver_rows"], ", ".join(v["dropped_columns"]))
              for t, v in sorted(out["tables"].items())]
    facts = {"purpose": manifest.parameters["purpose"], "as of": manifest.parameters["as_of"],
             "run": manifest.run_id, "subjects fused": f"{counts.get('fused', 0):,}"}
    sections = [
        html.section("Consent snapshot", html.table(("", ""), [
            ("snapshot id", html.code(snap["id"])), ("valid at", snap["as_of"]),
            ("ledger events", snap["ledger_head"]["events"]), ("ledger head hash", html.code(snap["ledger_head"]["hash"])),
            ("purpose key version", out["key_versions"]["purpose"]),
            ("link key versions in the consent log", ", ".join(map(str, out["key_versions"]["link"])))]),
            note="The ledger head this run verified and relied on: `mydata consent verify` proves the "
                 "ledger still holds exactly these events."),
        html.section("Subjects by outcome", html.table(("outcome", "meaning", "subjects", ""), rows),
                     note="A subject is a link key with its key version; the same person keyed with two "
                          "secret versions counts twice, as pseudonymisation intends."),
        html.section("Consent valid, source missing", html.table(("sources without records", "subjects"), missing)),
        html.section("Tables", html.table(("table", "bronze rows by the as-of date", "silver rows",
                                           "columns not carried"), tables)),
    ]
    return html.page(f"Fusion: {manifest.parameters['purpose']} as of {manifest.parameters['as_of']}",
                     facts, sections)
