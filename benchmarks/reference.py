"""The fusion + features work written plainly, for the benchmark only: one SQL script, run by
Spark SQL and by DuckDB on the same bronze and consent ledger.

Same inputs, same outputs as ``jobs.fuse`` + ``jobs.features`` (the silver tables and the
feature table, same pseudonyms, same values), none of the project's machinery: no ledger
verification, no linkage outcomes or reports, no manifests, no atomic partition replacement,
no staging. ``bench_pipeline.py`` times both beside the project's jobs and checks that the three
feature tables agree, so a ratio compares the same work.

The SQL is written here once with a few words that differ between the two engines
(``Dialect``); the feature aggregates are spelled from ``features/definitions.py`` so the
references compute the declared features and not a look-alike.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from features.definitions import FEATURES, SOURCES, Feature, inputs_of
from jobs.pseudonym import padded_keys
from mydata.config import Settings
from mydata.keys import KeyStore
from schemas.bronze import CUSTOMERS, STATE
from schemas.codes import CONSENT_SOURCES
from schemas.silver import SUBJECTS, consent_source, fused_tables, silver_columns

KEYS = ("link_key", "key_version")


@dataclass(frozen=True)
class Dialect:
    name: str
    hmac_sha256: str  # {k}: the padded key column, {m}: the binary message
    to_binary: str  # {c}: a string column as bytes
    base64: str
    latest: str  # {v}: value, {o}: ordering struct
    ordering: str  # {t}, {v}

    def months_before(self, as_of: date, months: int) -> str:
        if self.name == "spark":
            return f"add_months(DATE'{as_of}', -{months})"
        return f"CAST(DATE '{as_of}' - INTERVAL {months} MONTH AS DATE)"

    def expression(self, sql: str, as_of: date) -> str:
        """A feature's SQL with its as-of date (the declarations are written in words both engines read)."""
        return sql.replace("{as_of}", f"DATE '{as_of}'")

    def digest(self, text: str) -> str:
        return f"sha2(cast({text} as binary), 256)" if self.name == "spark" else f"sha256({text})"

    @property
    def day(self) -> str:
        return "INTERVAL 24 HOURS" if self.name == "spark" else "INTERVAL 24 HOUR"


SPARK = Dialect("spark", "unhex(sha2(concat({k}, {m}), 256))", "cast({c} as binary)", "base64",
                "max_by({v}, {o})", "struct({t}, {v})")
DUCKDB = Dialect("duckdb", "unhex(sha256({k} || {m}))", "encode({c})", "to_base64",
                 "arg_max({v}, {o})", "struct_pack(t := {t}, v := {v})")


def pseudonym_sql(d: Dialect) -> str:
    """``b64url(HMAC-SHA256(secret, link_key))`` with the padded keys from the one-row ``hmac_keys``."""
    inner = d.hmac_sha256.format(k="h.ipad", m=d.to_binary.format(c="c.link_key"))
    outer = d.hmac_sha256.format(k="h.opad", m=inner)
    return f"substring(translate({d.base64}({outer}), '+/', '-_'), 1, 43)"


def fused_sql(d: Dialect, purpose: str, as_of: date) -> str:
    """Subjects with valid consent for every source at the as-of moment and records in each."""
    moment = f"TIMESTAMP '{as_of} 00:00:00'"
    explode = ("LATERAL VIEW explode(sources) s AS source" if d.name == "spark" else "")
    source = "source" if d.name == "spark" else "unnest(sources) AS source"
    sources = ", ".join(f"'{s}'" for s in CONSENT_SOURCES)
    presence = {s: " UNION ".join(f"SELECT link_key, key_version FROM {name} WHERE dt <= DATE '{as_of}'"
                                  for name, spec in fused_tables().items() if consent_source(spec) == s)
                for s in CONSENT_SOURCES}
    present = "\n".join(f"  JOIN ({sql}) p_{s} USING (link_key, key_version)" for s, sql in presence.items())
    return f"""
WITH events AS (
  SELECT link_key, key_version, {source}, event_type, event_time, end_date, seq
  FROM consent_ledger {explode}
  WHERE purpose = '{purpose}' AND event_time <= {moment}
), latest AS (
  SELECT *, row_number() OVER (PARTITION BY link_key, key_version, source
                                ORDER BY event_time DESC, seq DESC) AS n
  FROM events
), consented AS (
  SELECT link_key, key_version, min(end_date) AS consent_until
  FROM latest
  WHERE n = 1 AND source IN ({sources}) AND event_type <> 'withdraw'
    AND (end_date IS NULL OR {moment} < CAST(end_date AS TIMESTAMP))
  GROUP BY link_key, key_version
  HAVING count(DISTINCT source) = {len(CONSENT_SOURCES)}
)
SELECT c.link_key, c.key_version, c.consent_until, {pseudonym_sql(d)} AS pseudonym
FROM consented c
{present}
  CROSS JOIN hmac_keys h"""


def silver_sql(d: Dialect, table: str, purpose: str, as_of: date) -> str:
    spec = fused_tables()[table]
    columns = ", ".join(f"r.{c}" for c in silver_columns(spec, purpose))
    if spec.timing == STATE:  # which account, loan or line: the pseudonym and the holder's reference, digested
        parts = ", ".join(f"r.{c}" for c in spec.item)
        columns += ", " + d.digest(f"concat_ws('|', f.pseudonym, {parts})") + " AS item"
    return (f"SELECT f.pseudonym, {columns}, r.dt AS delivered, DATE '{as_of}' AS as_of "
            f"FROM {table} r JOIN fused f USING (link_key, key_version) WHERE r.dt <= DATE '{as_of}'")


def subjects_sql(as_of: date) -> str:
    attributes = [c.name for c in CUSTOMERS.columns if c.name not in KEYS]
    shown = ", ".join(f"c.{a}" for a in attributes)
    return f"""
SELECT f.pseudonym, {shown}, f.consent_until, DATE '{as_of}' AS as_of
FROM fused f LEFT JOIN (
  SELECT *, row_number() OVER (PARTITION BY link_key, key_version ORDER BY dt DESC) AS n
  FROM {CUSTOMERS.name} WHERE dt <= DATE '{as_of}') c
  ON c.link_key = f.link_key AND c.key_version = f.key_version AND c.n = 1"""


def _aggregate(d: Dialect, f: Feature, as_of: date) -> str:
    condition = "true"
    if f.window:
        condition = f"_t < DATE '{as_of}' AND _t >= {d.months_before(as_of, f.window)}"
    if f.where:
        condition += f" AND coalesce(({d.expression(f.where, as_of)}), false)"
    value = f"CASE WHEN {condition} THEN ({d.expression(f.expr, as_of)}) END"
    if f.agg == "latest":
        ordering = d.ordering.format(t="_t", v=value)
        return d.latest.format(v=value, o=f"CASE WHEN {condition} AND ({value}) IS NOT NULL THEN {ordering} END")
    return {"sum": f"sum({value})", "monthly": f"sum({value})", "mean": f"avg({value})",
            "count": f"count({value})", "max": f"max({value})", "min": f"min({value})",
            "stddev": f"stddev_samp({value})"}[f.agg]


def _records(d: Dialect, name: str, as_of: date) -> str:
    """A silver table's records as of the date: a state table's newest collection per subject and
    holder (calls within a day of the newest), one row per item; an event table as it is."""
    table = f"silver_{name}"
    extra = "".join(f", {d.expression(sql, as_of)} AS {col}" for col, sql in SOURCES[name].columns)
    if SOURCES[name].timing != STATE:
        return f"SELECT *, {SOURCES[name].time_column} AS _t{extra} FROM {table}"
    return f"""SELECT *, collected_at AS _t{extra} FROM (
  SELECT *, row_number() OVER (PARTITION BY pseudonym, item ORDER BY collected_at DESC, delivered DESC) AS n,
         max(collected_at) OVER (PARTITION BY pseudonym, org_code) AS newest FROM {table}) s
WHERE n = 1 AND collected_at > newest - {{day}}"""


def _coverage(d: Dialect, name: str, tables: set[str], windows: list[int], as_of: date) -> str:
    """Months of each window in which one of the subject's holders of the source delivered the table."""
    family = "bank" if name == "loans" else name.split("_")[0]
    if SOURCES[name].holder_column is None:  # the operator's extract: one holder for everyone
        holders, on = f"SELECT pseudonym, '*' AS h FROM silver_{SUBJECTS}", "'*'"
    else:
        holders = " UNION ".join(f"SELECT pseudonym, org_code AS h FROM silver_{t}" for t in sorted(tables)
                                 if t != SUBJECTS and SOURCES[t].holder_column
                                 and ("bank" if t == "loans" else t.split("_")[0]) == family)
        on = "org_code"
    if SOURCES[name].timing == STATE:
        return (f"SELECT s.pseudonym, 1 AS cover FROM ({holders}) s JOIN (SELECT DISTINCT {on} AS h FROM "
                f"silver_{name}) k ON k.h = s.h GROUP BY s.pseudonym")
    time = SOURCES[name].time_column
    widest = max(windows)
    slot = "CASE " + " ".join(f"WHEN k.day >= {d.months_before(as_of, n)} THEN {n}" for n in range(1, widest + 1)) + " END"
    counts = ", ".join(f"count(DISTINCT CASE WHEN k.day >= {d.months_before(as_of, n)} THEN {slot} END) AS cover_{n}"
                       for n in windows)
    return (f"SELECT s.pseudonym, {counts} FROM ({holders}) s JOIN (SELECT DISTINCT {on} AS h, CAST({time} AS DATE) "
            f"AS day FROM silver_{name}) k ON k.h = s.h AND k.day < DATE '{as_of}' AND k.day >= "
            f"{d.months_before(as_of, widest)} GROUP BY s.pseudonym")


def features_sql(d: Dialect, as_of: date, tables: set[str]) -> str:
    """One aggregation and one coverage count per silver table, joined on the pseudonym; then
    null where nothing was delivered, fills, monthly averages over the months delivered, derived
    features (null when a part is), types."""
    parts, joins = [], []
    for name, source in SOURCES.items():
        mine = [f for f in FEATURES if f.source == name]
        if name == SUBJECTS or not mine:
            continue
        if name not in tables:
            parts += [f"CAST(NULL AS double) AS {f.name}" for f in mine]
            continue
        windows = sorted({f.window for f in mine if f.window})
        widest = max(windows, default=None)
        where = f"_t < DATE '{as_of}' AND _t >= {d.months_before(as_of, widest)}" if widest else "true"
        aggregates = ", ".join(f"{_aggregate(d, f, as_of)} AS {f.name}" for f in mine)
        counted = ", ".join(f"count(CASE WHEN {_aggregate_condition(d, f, as_of)} THEN 1 END) AS n_{f.name}" for f in mine)
        joins.append(f"LEFT JOIN (SELECT pseudonym, {aggregates}, {counted} FROM ("
                     f"{_records(d, name, as_of).replace('{day}', d.day)}) x WHERE {where} GROUP BY pseudonym) a_{name} "
                     f"USING (pseudonym)")
        joins.append(f"LEFT JOIN ({_coverage(d, name, tables, windows, as_of)}) c_{name} USING (pseudonym)")
        for f in mine:
            cover = f"c_{name}.cover" if source.timing == STATE else f"c_{name}.cover_{f.window}"
            value = f"CAST(a_{name}.{f.name} AS double) / {cover}" if f.agg == "monthly" else f"a_{name}.{f.name}"
            empty = f"coalesce(a_{name}.n_{f.name}, 0) = 0"
            filled = f"WHEN {empty} THEN {f.fill} " if f.fill is not None else ""
            parts.append(f"CASE WHEN coalesce({cover}, 0) < {f.min_months} THEN NULL {filled}ELSE {value} END AS {f.name}")
    subject = [f"{d.expression(f.expr, as_of)} AS {f.name}" for f in FEATURES if f.source == SUBJECTS]
    inner = (f"SELECT s.pseudonym, {', '.join(subject)}, {', '.join(parts)} FROM silver_{SUBJECTS} s\n"
             + "\n".join(joins))
    query = f"SELECT * FROM ({inner}) i"
    for f in (f for f in FEATURES if f.source == "derived"):
        missing = " OR ".join(f"{name} IS NULL" for name in inputs_of(f)) or "false"
        query = f"SELECT *, CASE WHEN {missing} THEN NULL ELSE {f.expr} END AS {f.name} FROM ({query}) q_{f.name}"
    typed = ", ".join(f"CAST({f.name} AS {f.dtype}) AS {f.name}" for f in FEATURES)
    return f"SELECT pseudonym, {typed} FROM ({query}) w"


def _aggregate_condition(d: Dialect, f: Feature, as_of: date) -> str:
    condition = f"_t < DATE '{as_of}' AND _t >= {d.months_before(as_of, f.window)}" if f.window else "true"
    return condition + (f" AND coalesce(({d.expression(f.where, as_of)}), false)" if f.where else "")


def _bronze_tables(lake) -> dict[str, Path]:
    names = [*fused_tables(), CUSTOMERS.name]
    return {name: lake.bronze_table(name) for name in names if lake.bronze_table(name).is_dir()}


def hmac_keys(settings: Settings) -> tuple[bytes, bytes]:
    keystore = KeyStore.open(settings)
    return padded_keys(keystore.purpose_secret(settings.purpose, keystore.current_purpose_version(settings.purpose)))


def run_spark(spark, settings: Settings, out: Path) -> Path:
    """Fusion + features as Spark SQL statements; silver and features written under ``out``."""
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    shutil.rmtree(out, ignore_errors=True)
    for name, path in _bronze_tables(lake).items():
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} USING parquet OPTIONS (path '{path}')")
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW consent_ledger USING parquet "
              f"OPTIONS (path '{lake.consent / 'ledger'}')")
    ipad, opad = hmac_keys(settings)
    spark.createDataFrame([(bytearray(ipad), bytearray(opad))], "ipad binary, opad binary") \
        .createOrReplaceTempView("hmac_keys")
    spark.sql(f"CACHE TABLE fused AS {fused_sql(SPARK, purpose, as_of)}")
    tables = {name for name in _bronze_tables(lake) if name in fused_tables()} | {SUBJECTS}
    for name in sorted(tables):
        query = subjects_sql(as_of) if name == SUBJECTS else silver_sql(SPARK, name, purpose, as_of)
        spark.sql(query).write.parquet(str(out / "silver" / name))
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW silver_{name} USING parquet "
                  f"OPTIONS (path '{out / 'silver' / name}')")
    spark.sql(features_sql(SPARK, as_of, tables)).write.parquet(str(out / "features"))
    spark.sql("UNCACHE TABLE fused")
    return out / "features"


def run_duckdb(settings: Settings, out: Path, threads: int = 2, memory: str = "8GB") -> Path:
    """The same in DuckDB: bronze Parquet read in place, silver and features written as Parquet.
    Timestamps are read as KST wall time, as the Spark session does."""
    import duckdb
    import pyarrow as pa

    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    shutil.rmtree(out, ignore_errors=True)
    (out / "silver").mkdir(parents=True)
    con = duckdb.connect(config={"threads": threads, "memory_limit": memory})

    con.execute("SET TimeZone = 'Asia/Seoul'")

    def view(name: str, path: Path) -> None:
        scan = f"read_parquet('{path}/dt=*/*.parquet', hive_partitioning = true)"
        columns = con.sql(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        # instants as KST wall time, as the Spark session reads them: UTC-adjusted instants (what
        # both engines write now) through the session's zone, legacy INT96 (naive UTC) shifted
        shifted = ", ".join(f"CAST({c} AS TIMESTAMP) AS {c}" if t == "TIMESTAMP WITH TIME ZONE"
                            else f"{c} + INTERVAL 9 HOUR AS {c}" if t == "TIMESTAMP" else c for c, t, *_ in columns)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {shifted} FROM {scan}")

    for name, path in _bronze_tables(lake).items():
        view(name, path)
    view("consent_ledger", lake.consent / "ledger")
    ipad, opad = hmac_keys(settings)
    keys = pa.table({"ipad": pa.array([ipad], pa.binary()), "opad": pa.array([opad], pa.binary())})
    con.register("hmac_keys", keys)
    con.execute(f"CREATE TEMPORARY TABLE fused AS {fused_sql(DUCKDB, purpose, as_of)}")
    tables = {name for name in _bronze_tables(lake) if name in fused_tables()} | {SUBJECTS}
    for name in sorted(tables):
        query = subjects_sql(as_of) if name == SUBJECTS else silver_sql(DUCKDB, name, purpose, as_of)
        target = out / "silver" / f"{name}.parquet"
        con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        con.execute(f"CREATE OR REPLACE VIEW silver_{name} AS SELECT * FROM read_parquet('{target}')")
    con.execute(f"COPY ({features_sql(DUCKDB, as_of, tables)}) TO '{out / 'features.parquet'}' "
                f"(FORMAT parquet, COMPRESSION zstd)")
    con.close()
    return out / "features.parquet"
