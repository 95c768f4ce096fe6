"""Bronze tables: for each, where its rows come from in the landing form, their Spark types, the
natural key and the rules a row must meet. The single truth for bronze column names.

Rules are data (``Rule``): ingest compiles them into Spark conditions that send failing rows to
quarantine with the rule and a readable reason, and into the table's Great Expectations suite.
Every table is partitioned by delivery date ``dt``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from schemas import codes
from schemas.landing import (
    APIS,
    CONSENT_FIELDS,
    CSV_SOURCES,
    OPTIONAL_FIELDS,
    REQUIRED_WHEN,
    TELECOM_USAGE_REQUIRED,
    field_kind,
    max_length,
)

#: landing kind -> Spark SQL type of the parsed column
SPARK_TYPES = {
    "dtime": "timestamp", "date": "date", "month": "date", "amount": "decimal(18,3)",
    "signed": "decimal(18,3)",
    "rate": "decimal(9,5)", "code": "string", "bool": "boolean", "int": "int", "day": "int",
    "text": "string", "ref": "string", "link_key": "string", "version": "int", "str": "string",
    "ratio": "double", "number": "double", "count": "int", "year": "int", "sources": "array<string>",
}


#: kinds whose value is kept as text, so their length is bounded
TEXT_KINDS = frozenset({"code", "text", "ref", "str"})


@dataclass(frozen=True)
class Column:
    """One bronze column: where it is in the landing record, its type and the rules it meets.

    ``required``: a missing or empty value quarantines the row; an optional one is null in bronze.
    ``required_when``: (other column, values) for which an optional value is required after all.
    ``max_length``: the most characters a text value may have (text kinds only).
    """

    name: str
    kind: str
    #: where the value is in the landing record: "envelope", "request", "response", "item", "csv"
    origin: str
    required: bool = True
    allowed: frozenset[str] | None = None
    #: inclusive numeric bounds for parsed numbers
    low: float | None = None
    high: float | None = None
    required_when: tuple[str, frozenset[str]] | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SPARK_TYPES:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}")
        if self.max_length is None and self.kind in TEXT_KINDS and self.allowed is None:
            object.__setattr__(self, "max_length", max_length(self.name))  # a code set bounds it already
        if self.required and self.required_when is not None:
            raise ValueError(f"column {self.name}: required_when only makes sense for an optional column")

    @property
    def spark_type(self) -> str:
        return SPARK_TYPES[self.kind]


#: how a table's rows stand in time (docs/stages/features.md): an event counts by its own time,
#: a state row is what a holder reported about an item when it was collected
EVENT, STATE = "event", "state"


@dataclass(frozen=True)
class TableSpec:
    """A bronze table: its columns and keys, and how its rows stand in time.

    ``timing``: ``event`` (``time_column`` is when it happened) or ``state`` (``item`` names the
    account, loan or line a row describes; its time is ``collected_at``); None for tables that
    are neither (the customer master, consent events).
    """

    name: str
    source: str
    columns: tuple[Column, ...]
    natural_key: tuple[str, ...]
    api: str | None = None
    description: str = ""
    #: columns never written to bronze for any purpose (none so far; memos are dropped at fusion)
    dropped: tuple[str, ...] = field(default=())
    timing: str | None = None
    time_column: str | None = None
    item: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = {c.name for c in self.columns}
        if self.timing == EVENT and self.time_column not in names:
            raise ValueError(f"table {self.name}: an event table names its time column")
        if self.timing == STATE and (not self.item or not set(self.item) <= names or "collected_at" not in names):
            raise ValueError(f"table {self.name}: a state table names its item columns and has collected_at")
        if self.timing not in (None, EVENT, STATE):
            raise ValueError(f"table {self.name}: timing is {EVENT!r}, {STATE!r} or None")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_ENVELOPE = (
    Column("link_key", "link_key", "envelope"),
    Column("key_version", "version", "envelope", low=1),
    # which holders are collected from is configuration (mydata.holders), checked per delivery
    Column("org_code", "code", "envelope", max_length=10),
    Column("x_api_tran_id", "str", "envelope"),
    Column("collected_at", "dtime", "envelope"),
)
_STATUS_SETS = {"card.approvals": codes.CARD_STATUS, "telecom.contracts": codes.TELECOM_STATUS}
_CODE_SETS = {
    "currency_code": codes.CURRENCY_CODES, "account_type": codes.ACCOUNT_TYPES,
    "account_status": codes.ACCOUNT_STATUS, "trans_type": frozenset(codes.TRANS_TYPES),
    "repay_method": codes.REPAY_METHODS, "pay_type": codes.CARD_PAY_TYPES,
    "type": codes.TELECOM_TYPES, "pay_method": codes.TELECOM_PAY_METHODS,
}
def _mydata_column(api: str, name: str, origin: str) -> Column:
    kind = field_kind(api, name)
    allowed = None
    if kind == "code":
        allowed = frozenset(_STATUS_SETS[api] if name == "status" else _CODE_SETS[name])
    low, high = (0, None) if kind in ("amount", "rate", "int") else (None, None)
    if kind == "day":
        low, high = 1, 31
    return Column(name, kind, origin, required=name not in OPTIONAL_FIELDS, allowed=allowed,
                  low=low, high=high, required_when=REQUIRED_WHEN.get((api, name)))


def _mydata_table(name: str, api: str, key: tuple[str, ...], description: str, *, time: str | None = None,
                  item: tuple[str, ...] = ()) -> TableSpec:
    spec = APIS[api]
    envelope = _ENVELOPE
    request = tuple(_mydata_column(api, f, "request") for f in spec.request_fields)
    body = spec.item_fields if spec.is_list else spec.response_fields
    origin = "item" if spec.is_list else "response"
    position = (Column("item_no", "count", "position", low=0),) if spec.is_list else ()
    columns = envelope + request + position + tuple(_mydata_column(api, f, origin) for f in body)
    return TableSpec(name, spec.source, columns, key, api=api, description=description,
                     timing=STATE if item else EVENT, time_column=time, item=item)


MYDATA_TABLES: tuple[TableSpec, ...] = (
    _mydata_table("bank_accounts", "bank.accounts", ("link_key", "org_code", "account_num"),
                  "accounts held, as listed at each collection", item=("org_code", "account_num")),
    _mydata_table("bank_balances", "bank.deposit.detail", ("link_key", "org_code", "account_num"),
                  "deposit account balance and rate at collection", item=("org_code", "account_num")),
    _mydata_table("bank_transactions", "bank.deposit.transactions",
                  ("link_key", "org_code", "account_num", "trans_no"),
                  "deposit account transactions", time="trans_dtime"),
    _mydata_table("loans", "bank.loan.detail", ("link_key", "org_code", "account_num"),
                  "loan balance, principal and repayment at collection", item=("org_code", "account_num")),
    _mydata_table("card_approvals", "card.approvals",
                  ("link_key", "org_code", "card_id", "approved_num", "approved_dtime"),
                  "domestic card approvals", time="approved_dtime"),
    _mydata_table("card_bills", "card.bills", ("link_key", "org_code", "charge_month", "seqno"),
                  "monthly card bills", time="charge_month"),
    _mydata_table("telecom_contracts", "telecom.contracts", ("link_key", "mgmt_id"),
                  "telecom lines (contracts) as listed at each collection", item=("org_code", "mgmt_id")),
    _mydata_table("telecom_bills", "telecom.bills", ("link_key", "mgmt_id", "charge_date"),
                  "monthly telecom bills per line", time="charge_month"),
    _mydata_table("telecom_payments", "telecom.payments", ("link_key", "mgmt_id", "trans_month"),
                  "telecom bill payments per line and month", time="trans_month"),
    _mydata_table("telecom_micropayments", "telecom.micropayments",
                  ("x_api_tran_id", "item_no"),
                  "micropayments charged to the phone bill", time="trans_date"),
)

def _usage_columns(*columns: Column) -> tuple[Column, ...]:
    """Only the line and month are required: a row with the usage it does have is worth keeping."""
    return tuple(Column(c.name, c.kind, c.origin, required=c.name in TELECOM_USAGE_REQUIRED,
                        allowed=c.allowed, low=c.low, high=c.high) for c in columns)


TELECOM_USAGE = TableSpec(
    "telecom_usage", "telecom_usage",
    _usage_columns(
        Column("link_key", "link_key", "csv"), Column("key_version", "version", "csv", low=1),
        Column("mgmt_id", "ref", "csv"), Column("usage_month", "month", "csv"),
        Column("plan_name", "text", "csv"), Column("plan_fee", "count", "csv", low=0),
        Column("network", "code", "csv", allowed=codes.NETWORKS),
        Column("voice_min", "count", "csv", low=0), Column("sms_cnt", "count", "csv", low=0),
        Column("data_mb", "number", "csv", low=0), Column("night_data_ratio", "ratio", "csv", low=0, high=1),
        Column("roaming_days", "count", "csv", low=0, high=31),
        Column("finance_app_sessions", "count", "csv", low=0),
        Column("device_tier", "code", "csv", allowed=codes.DEVICE_TIERS),
        Column("membership_grade", "code", "csv", allowed=codes.MEMBERSHIP_GRADES),
        Column("tenure_months", "count", "csv", low=0),
    ),
    ("link_key", "mgmt_id", "usage_month"), description="monthly usage per line (operator extract)",
    timing=EVENT, time_column="usage_month")

CUSTOMERS = TableSpec(
    "customers", "customer",
    (
        Column("link_key", "link_key", "csv"), Column("key_version", "version", "csv", low=1),
        Column("birth_year", "year", "csv", low=1900, high=2026),
        Column("gender", "code", "csv", allowed=codes.GENDERS),
        Column("region_code", "code", "csv", allowed=frozenset(codes.REGION_CODES)),
        Column("customer_since", "date", "csv"),
    ),
    ("link_key",), description="bank customer master (quasi-identifiers)")

CONSENT_EVENTS = TableSpec(
    "consent_events", "consent",
    (
        Column("event_id", "str", "envelope"), Column("link_key", "link_key", "envelope"),
        Column("key_version", "version", "envelope", low=1),
        Column("event_type", "code", "envelope", allowed=codes.CONSENT_EVENT_TYPES),
        Column("event_time", "dtime", "envelope"),
        Column("purpose", "code", "envelope", allowed=codes.CONSENT_PURPOSES),
        Column("sources", "sources", "envelope", allowed=frozenset(codes.CONSENT_SOURCES)),
        Column("end_date", "date", "envelope"),
        Column("channel", "code", "envelope", allowed=codes.CONSENT_CHANNELS),
        Column("notice_version", "str", "envelope"),
        Column("prev_hash", "str", "envelope"), Column("hash", "str", "envelope"),
    ),
    ("event_id",), description="consent events as delivered (the ledger is built from these)")

assert tuple(c.name for c in CONSENT_EVENTS.columns) == CONSENT_FIELDS
assert {s: tuple(c.name for c in t.columns) for s, t in
        (("telecom_usage", TELECOM_USAGE), ("customer", CUSTOMERS))} == CSV_SOURCES

TABLES: dict[str, TableSpec] = {t.name: t for t in (*MYDATA_TABLES, TELECOM_USAGE, CUSTOMERS,
                                                     CONSENT_EVENTS)}


def tables_of(source: str) -> list[TableSpec]:
    return [t for t in TABLES.values() if t.source == source]
