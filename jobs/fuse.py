"""Consent-based fusion: bronze -> silver for one purpose and as-of date, on the configured engine.

A subject (a link key and its key version) is fused when its consent for the purpose is valid at
the as-of date for every fused source and each of those sources delivered records for it. Fused
records leave bronze re-keyed to the purpose pseudonym, without what the purpose may not use
(schemas/silver.py), into ``silver/<table>/purpose=<purpose>/as_of=<date>/``. Every other subject
is counted by why it was left out: the linkage report.
"""
from __future__ import annotations

import hashlib
import sys
from datetime import date

from jobs import consent
from jobs.pseudonym import pseudonym_sql, register_keys
from jobs.stage import StageResult, StageRun, stage_run
from mydata import progress, storage
from mydata.config import ConfigError, Settings
from mydata.engines import Engine
from mydata.errors import StageFailed
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import RunManifest
from render import html
from render.fusion import page as fusion_page
from schemas import asof
from schemas.bronze import CUSTOMERS, STATE, TableSpec
from schemas.dialects import Dialect
from schemas.silver import FUSED_SOURCES, ITEM, SUBJECTS, consent_source, dropped_columns, fused_tables, silver_columns
from schemas.sql import empty_table

JOB = "fuse"
IDENTITY = ("link_key", "key_version")
#: linkage outcomes, in the order the report lists them
OUTCOMES = ("fused", "no_consent", "withdrawn", "expired", "source_missing", "key_version_mismatch")



# -- pure transforms (SQL for the engine's dialect) --------------------------------------------------

def as_of_filter(as_of: date) -> str:
    """The deliveries known as of the date (schemas/asof.py): those dated on or before it."""
    return asof.known("dt", asof.AsOf(as_of))


def presence_sql(d: Dialect, tables: dict[str, str], as_of: date) -> str:
    """(link_key, key_version, source) for every subject a fused source delivered records for;
    ``tables``: registered bronze table -> its consent source."""
    parts = [f"SELECT link_key, key_version, {d.lit(source)} AS source FROM {table} WHERE {as_of_filter(as_of)}"
             for table, source in tables.items()]
    none = (f"SELECT CAST(NULL AS {d.sql_type('string')}) AS link_key, CAST(NULL AS {d.sql_type('int')}) "
            f"AS key_version, CAST(NULL AS {d.sql_type('string')}) AS source WHERE 1 = 0")
    return f"SELECT DISTINCT * FROM ({' UNION ALL '.join(parts) or none}) p"


def linkage_sql(d: Dialect, states: str, presence: str, customers: str, consent_versions: list[int]) -> str:
    """One row per subject seen anywhere (consent states, sources, customer master) with its outcome.

    Columns: link_key, key_version, consent_<source> (valid/withdrawn/expired/null), has_<source>,
    outcome, missing (the sources without records, comma-separated), consent_until.
    """
    consents = ", ".join(f"max(CASE WHEN source = {d.lit(s)} THEN state END) AS consent_{s}" for s in FUSED_SOURCES)
    has = ", ".join(f"max(CASE WHEN source = {d.lit(s)} THEN 1 ELSE 0 END) = 1 AS has_{s}" for s in FUSED_SOURCES)
    fused_sources = ", ".join(d.lit(s) for s in FUSED_SOURCES)

    def each(test: str, joiner: str = " AND ") -> str:
        return joiner.join(test.format(s=s) for s in FUSED_SOURCES)
    valid = each("coalesce(c.consent_{s} = 'valid', false)")
    withdrawn = each("coalesce(c.consent_{s} = 'withdrawn', false)", " OR ")
    expired = each("coalesce(c.consent_{s} = 'expired', false)", " OR ")
    versions = ", ".join(map(str, consent_versions))
    outside = f"s.key_version NOT IN ({versions})" if consent_versions else "true"
    outcome = (f"CASE WHEN {valid} AND {each('coalesce(h.has_{s}, false)')} THEN 'fused' "
               f"WHEN {valid} THEN 'source_missing' "
               f"WHEN {withdrawn} THEN 'withdrawn' WHEN {expired} THEN 'expired' "
               f"WHEN {each('c.consent_{s} IS NULL')} AND {outside} THEN 'key_version_mismatch' "
               "ELSE 'no_consent' END")
    missing = ", ".join(f"CASE WHEN NOT coalesce(h.has_{s}, false) THEN {d.lit(s)} END" for s in FUSED_SOURCES)
    return f"""
WITH consents AS (
  SELECT link_key, key_version, {consents}, min(CASE WHEN state = 'valid' THEN end_date END) AS consent_until
  FROM {states} WHERE source IN ({fused_sources}) GROUP BY link_key, key_version
), has AS (
  SELECT link_key, key_version, {has} FROM {presence} GROUP BY link_key, key_version
), subjects AS (
  SELECT link_key, key_version FROM {customers} UNION SELECT link_key, key_version FROM consents
  UNION SELECT link_key, key_version FROM has
)
SELECT s.link_key, s.key_version, {', '.join(f'c.consent_{s}' for s in FUSED_SOURCES)},
       {', '.join(f'coalesce(h.has_{s}, false) AS has_{s}' for s in FUSED_SOURCES)},
       {outcome} AS outcome, concat_ws(',', {missing}) AS missing, c.consent_until
FROM subjects s
LEFT JOIN consents c ON c.link_key = s.link_key AND c.key_version = s.key_version
LEFT JOIN has h ON h.link_key = s.link_key AND h.key_version = s.key_version"""


def fused_sql(d: Dialect, linked: str, keys: str) -> str:
    """The fused subjects of ``linked`` with their purpose pseudonym (padded HMAC keys in ``keys``)."""
    return (f"SELECT l.link_key, l.key_version, l.consent_until, {pseudonym_sql(d, 'l.link_key', 'k')} AS pseudonym "
            f"FROM {linked} l CROSS JOIN {keys} k WHERE l.outcome = 'fused'")


def item_sql(d: Dialect, spec: TableSpec) -> str:
    """A state row's item (account, loan, line) under the purpose: a digest of the pseudonym and the
    holder's reference, so states can be told apart without carrying the reference past bronze."""
    return d.hex_digest(f"concat_ws('|', f.pseudonym, {', '.join(f'r.{d.ident(c)}' for c in spec.item)})")


def silver_sql(d: Dialect, records: str, fused: str, columns: list[str], as_of: date,
               spec: TableSpec | None = None) -> str:
    """Records of fused subjects only, re-keyed: ``pseudonym`` first, the purpose's columns, a state
    table's ``item``, the delivery date as ``delivered``, and the ``as_of`` partition column."""
    shown = "".join(f", r.{d.ident(c)}" for c in columns)
    if spec is not None and spec.timing == STATE:
        shown += f", {item_sql(d, spec)} AS {ITEM}"
    return (f"SELECT f.pseudonym{shown}, r.dt AS {asof.DELIVERED}, DATE '{as_of.isoformat()}' AS as_of "
            f"FROM {records} r JOIN {fused} f ON r.link_key = f.link_key AND r.key_version = f.key_version "
            f"WHERE r.{as_of_filter(as_of)}")


def subjects_sql(d: Dialect, fused: str, customers: str, as_of: date) -> str:
    """One row per fused subject: the latest customer-master delivery's attributes and the consent's end."""
    attributes = "".join(f", c.{d.ident(c.name)}" for c in CUSTOMERS.columns if c.name not in IDENTITY)
    return f"""
SELECT f.pseudonym{attributes}, f.consent_until, DATE '{as_of.isoformat()}' AS as_of
FROM {fused} f LEFT JOIN (
  SELECT *, row_number() OVER (PARTITION BY link_key, key_version ORDER BY dt DESC) AS _n
  FROM {customers} WHERE {as_of_filter(as_of)}) c
  ON c.link_key = f.link_key AND c.key_version = f.key_version AND c._n = 1"""


def snapshot_id(purpose: str, as_of: date, head: consent.LedgerHead) -> str:
    """Names the consent snapshot: the ledger head it was taken from, the purpose and the moment."""
    text = f"{head.hash}|{head.events}|{purpose}|{as_of.isoformat()}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


# -- the run ---------------------------------------------------------------------------------------

def _register_bronze(engine: Engine, lake: Lake) -> dict[str, str]:
    """Every fused bronze table with data as ``bronze_<table>`` (-> its consent source), and the
    customer master as ``bronze_customers`` (empty when never delivered)."""
    sources = {f"bronze_{name}": consent_source(spec) for name, spec in fused_tables().items()
               if engine.parquet(f"bronze_{name}", lake.bronze_table(name))}
    if not engine.parquet(f"bronze_{CUSTOMERS.name}", lake.bronze_table(CUSTOMERS.name)):
        engine.view(f"bronze_{CUSTOMERS.name}", empty_table(engine.dialect, CUSTOMERS))
    return sources


def _verified_head(engine: Engine, lake: Lake) -> consent.LedgerHead:
    verification = consent.verify_ledger(engine, lake)
    if not verification.ok:
        raise consent.ConsentChainBroken(f"the consent ledger does not verify at {verification.problem}; "
                                         "no fusion until a reviewer acts")
    if not verification.events:
        raise consent.ConsentChainBroken("the consent ledger is empty: run the consent job before fusion")
    return verification.head


def _link(engine: Engine, lake: Lake, sources: dict[str, str], purpose: str, as_of: date) -> list[int]:
    """Register ``linked`` (every subject and its outcome); return the ledger's link key versions."""
    d = engine.dialect
    engine.parquet("ledger", lake.ledger)
    engine.table("consent_states", consent.consent_states_sql(d, "ledger", purpose, as_of))
    engine.view("presence", presence_sql(d, sources, as_of))
    versions = sorted(int(r["key_version"]) for r in engine.rows(
        f"SELECT DISTINCT key_version FROM ledger WHERE purpose = {d.lit(purpose)}"))
    engine.table("linked", linkage_sql(d, "consent_states", "presence", f"bronze_{CUSTOMERS.name}", versions))
    return versions


def _tallies(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """Subjects per outcome, and per set of missing sources for ``source_missing``: one query."""
    counts: dict[str, int] = {}
    missing: dict[str, int] = {}
    for row in engine.rows("SELECT outcome, missing, count(*) AS n FROM linked GROUP BY outcome, missing"):
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + int(row["n"])
        if row["outcome"] == "source_missing":
            missing[row["missing"]] = int(row["n"])
    return counts, missing


def _publish_silver(engine: Engine, lake: Lake, sources: dict[str, str], purpose: str, as_of: date,
                    run_id: str) -> dict[str, dict]:
    """Every silver table of the run staged, then published together; rows in and out per table."""
    d, names = engine.dialect, [view.removeprefix("bronze_") for view in sources]
    queries = {name: silver_sql(d, f"bronze_{name}", "fused", silver_columns(fused_tables()[name], purpose), as_of,
                                fused_tables()[name]) for name in names}
    queries[SUBJECTS] = subjects_sql(d, "fused", f"bronze_{CUSTOMERS.name}", as_of)
    bronze = {row["t"]: int(row["n"]) for row in engine.rows(" UNION ALL ".join(
        f"SELECT {d.lit(name)} AS t, count(*) AS n FROM bronze_{name} WHERE {as_of_filter(as_of)}"
        for name in [*names, CUSTOMERS.name]))}
    bronze[SUBJECTS] = bronze.pop(CUSTOMERS.name)
    staged = engine.concurrently([(engine.stage, sql, lake.silver_table(name, purpose), [as_of], run_id, None, "as_of")
                                  for name, sql in queries.items()])
    # the record of use, published with the silver it describes
    staged.append(engine.stage(f"SELECT pseudonym, DATE '{as_of.isoformat()}' AS as_of FROM fused",
                               lake.fusion_members(purpose) / f"run={run_id}", [as_of], run_id, key="as_of"))
    storage.publish(staged, journal=lake.publish_journal)
    dropped = {name: dropped_columns(fused_tables()[name], purpose) for name in names} | {SUBJECTS: list(IDENTITY)}
    return {name: {"bronze_rows": bronze[name],
                   "silver_rows": storage.rows_in(lake.silver_table(name, purpose) / f"as_of={as_of.isoformat()}"),
                   "dropped_columns": dropped[name]} for name in queries}


@writes_lake(JOB)
def run(settings: Settings, spark=None) -> StageResult:
    """Fuse bronze into silver for ``settings.purpose`` as of ``settings.as_of``."""
    if settings.as_of is None:
        raise ConfigError("fuse needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    with stage_run(settings, JOB, spark=spark, purpose=settings.purpose, as_of=settings.as_of.isoformat(),
                   engine=settings.engine) as run:
        figures = _fuse(run)
    return run.result(**figures)


def _fuse(run: StageRun) -> dict:
    """Verify the ledger, link consenting subjects, and publish their silver with its report."""
    settings, lake, manifest, engine = run.settings, run.lake, run.manifest, run.engine
    purpose, as_of = settings.purpose, settings.as_of
    head = _verified_head(engine, lake)
    keystore = KeyStore.open(settings)
    purpose_version = keystore.current_purpose_version(purpose)
    manifest.inputs["consent_snapshot"] = {"id": snapshot_id(purpose, as_of, head), "purpose": purpose,
                                           "as_of": asof.as_of_moment(as_of).isoformat(),
                                           "ledger_head": head.as_dict()}
    with progress.step("fuse", "consent and linkage", unit="subjects") as shown:
        sources = _register_bronze(engine, lake)
        versions = _link(engine, lake, sources, purpose, as_of)
        counts, missing = _tallies(engine)
        shown.advance(sum(counts.values()))
    if not counts.get("fused"):
        _fused_nobody(lake, manifest, counts, missing)
    register_keys(engine, "purpose_keys", keystore.purpose_secret(purpose, purpose_version))
    engine.table("fused", fused_sql(engine.dialect, "linked", "purpose_keys"))
    with progress.step("fuse", "silver", unit="tables", total=len(sources) + 1) as shown:
        tables = _publish_silver(engine, lake, sources, purpose, as_of, manifest.run_id)
        shown.advance(len(tables), rows=sum(t["silver_rows"] for t in tables.values()))
    run.close_engine()
    manifest.outputs = {
        "silver": {t: str(lake.silver_table(t, purpose) / f"as_of={as_of.isoformat()}") for t in tables},
        "linkage": {o: counts.get(o, 0) for o in OUTCOMES}, "source_missing": missing,
        "subjects_fused": counts["fused"], "tables": tables,
        "key_versions": {"purpose": purpose_version, "link": versions}}
    report = lake.report("fusion") / f"{manifest.run_id}.html"
    manifest.outputs["report"] = str(report)
    html.write_page(report, fusion_page(manifest))
    return {"report": str(report), "snapshot": manifest.inputs["consent_snapshot"]["id"],
            "linkage": manifest.outputs["linkage"], "subjects_fused": counts["fused"]}


class FusedNobody(StageFailed):
    """Fusion found no subject to fuse: nothing is published, and the linkage says why."""


def _fused_nobody(lake: Lake, manifest: RunManifest, counts: dict[str, int], missing: dict[str, int]) -> None:
    """Fail the run, loudly and with the breakdown: an empty silver would only fail later stages."""
    seen = sum(counts.values())
    breakdown = ", ".join(f"{o.replace('_', ' ')} {counts.get(o, 0):,}" for o in OUTCOMES if o != "fused")
    lacking = "; ".join(f"missing {m}: {n:,}" for m, n in sorted(missing.items()))
    manifest.outputs = {"linkage": {o: counts.get(o, 0) for o in OUTCOMES}, "source_missing": missing,
                        "subjects_fused": 0}
    manifest.error = (f"fused no subject of the {seen:,} seen ({breakdown}{'; ' + lacking if lacking else ''}); "
                      "silver was left as it was")
    path = manifest.finish(lake, "failed")
    raise FusedNobody(f"fuse {manifest.parameters['purpose']} as of {manifest.parameters['as_of']} {manifest.error}; "
                      f"see {path}")


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
