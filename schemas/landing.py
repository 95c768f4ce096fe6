"""The landing contract: what data holders deliver (LANDING.md), as data.

Field names are pinned to the financial MyData standard API v1.x names listed in MYDATA.md
(account list, deposit detail/transactions, loan detail, card approvals/bills, telecom
통신-001..004). Everything else (generator, tokenizer, ingest, contract tests) reads field names
from here.

Layout: ``<data root>/landing/<source>/dt=YYYY-MM-DD/<name>.jsonl[.gz] | <name>.csv``, complete
once the folder holds ``_SUCCESS``. Every record carries ``link_key`` (43 chars, unpadded
base64url) and ``key_version`` (int). Amounts are decimal strings; times are KST
(``YYYYMMDDhhmmss``; dates ``YYYYMMDD``; months ``YYYYMM``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LINK_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
DTIME_FORMAT = "%Y%m%d%H%M%S"
DATE_FORMAT = "%Y%m%d"
MONTH_FORMAT = "%Y%m"

#: envelope of every MyData JSON line
ENVELOPE_FIELDS = ("link_key", "key_version", "org_code", "api", "x_api_tran_id", "collected_at",
                   "request", "response")
RESPONSE_STATUS_FIELDS = ("rsp_code", "rsp_msg")


@dataclass(frozen=True)
class ApiSpec:
    """One MyData API as delivered: which request fields, and the response's shape."""

    api: str
    source: str
    request_fields: tuple[str, ...]
    #: fields of a flat response (detail APIs), besides rsp_code/rsp_msg
    response_fields: tuple[str, ...] = ()
    #: for list responses: the count field, the list field and each item's fields
    count_field: str | None = None
    list_field: str | None = None
    item_fields: tuple[str, ...] = ()

    @property
    def is_list(self) -> bool:
        return self.list_field is not None


APIS: dict[str, ApiSpec] = {
    spec.api: spec
    for spec in (
        ApiSpec("bank.accounts", "bank", (), count_field="account_cnt", list_field="account_list",
                item_fields=("account_num", "is_consent", "seqno", "currency_code", "prod_name",
                             "is_minus", "account_type", "account_status")),
        ApiSpec("bank.deposit.detail", "bank", ("account_num",),
                response_fields=("balance_amt", "withdrawable_amt", "offered_rate",
                                 "last_paid_in_cnt")),
        ApiSpec("bank.deposit.transactions", "bank", ("account_num", "from_dtime", "to_dtime"),
                count_field="trans_cnt", list_field="trans_list",
                item_fields=("trans_dtime", "trans_no", "trans_type", "trans_class",
                             "currency_code", "trans_amt", "balance_amt", "paid_in_cnt",
                             "trans_memo")),
        ApiSpec("bank.loan.detail", "bank", ("account_num",),
                response_fields=("balance_amt", "loan_principal", "next_repay_date",
                                 "last_offered_rate", "repay_method")),
        ApiSpec("card.approvals", "card", ("card_id", "from_date", "to_date"),
                count_field="approved_cnt", list_field="approved_list",
                item_fields=("approved_num", "status", "pay_type", "approved_dtime",
                             "cancel_dtime", "merchant_name", "approved_amt",
                             "total_install_cnt")),
        ApiSpec("card.bills", "card", (), count_field="bill_cnt", list_field="bill_list",
                item_fields=("seqno", "charge_amt", "charge_day", "charge_month",
                             "paid_out_date")),
        ApiSpec("telecom.contracts", "telecom", (), count_field="telecom_cnt",
                list_field="telecom_list",
                item_fields=("mgmt_id", "is_consent", "telecom_num", "type", "status")),
        ApiSpec("telecom.bills", "telecom", ("charge_month",), count_field="bill_cnt",
                list_field="bill_list", item_fields=("mgmt_id", "charge_amt", "charge_date")),
        ApiSpec("telecom.payments", "telecom", ("mgmt_id", "from_month", "to_month"),
                count_field="trans_cnt", list_field="trans_list",
                item_fields=("trans_month", "paid_amt", "pay_method")),
        ApiSpec("telecom.micropayments", "telecom", ("mgmt_id", "from_date", "to_date"),
                count_field="trans_cnt", list_field="trans_list",
                item_fields=("trans_date", "trans_amt", "merchant_name", "trans_title")),
    )
}

#: MyData sources (JSON lines of API responses)
MYDATA_SOURCES = ("bank", "card", "telecom")

TELECOM_USAGE_COLUMNS = (
    "link_key", "key_version", "mgmt_id", "usage_month", "plan_name", "plan_fee", "network",
    "voice_min", "sms_cnt", "data_mb", "night_data_ratio", "roaming_days",
    "finance_app_sessions", "device_tier", "membership_grade", "tenure_months",
)
CUSTOMER_COLUMNS = ("link_key", "key_version", "birth_year", "gender", "region_code",
                    "customer_since")
#: CSV sources -> header
CSV_SOURCES: dict[str, tuple[str, ...]] = {
    "telecom_usage": TELECOM_USAGE_COLUMNS,
    "customer": CUSTOMER_COLUMNS,
}

CONSENT_FIELDS = ("event_id", "link_key", "key_version", "event_type", "event_time", "purpose",
                  "sources", "end_date", "channel", "notice_version", "prev_hash", "hash")

#: every landing source, in the order a delivery day is best read
SOURCES = ("consent", "customer", "bank", "card", "telecom", "telecom_usage")


def apis_of(source: str) -> list[ApiSpec]:
    return [spec for spec in APIS.values() if spec.source == source]

#: the landing form of each MyData field: what ingest parses it as and checks it against
FIELD_KINDS: dict[str, str] = {
    # KST timestamps YYYYMMDDhhmmss
    "collected_at": "dtime", "from_dtime": "dtime", "to_dtime": "dtime", "trans_dtime": "dtime",
    "approved_dtime": "dtime", "cancel_dtime": "dtime",
    # dates YYYYMMDD
    "next_repay_date": "date", "charge_date": "date", "paid_out_date": "date",
    "trans_date": "date", "from_date": "date", "to_date": "date",
    # months YYYYMM
    "charge_month": "month", "trans_month": "month", "from_month": "month", "to_month": "month",
    # balances: signed decimal strings (an overdraft, 마이너스 통장, is below zero)
    "balance_amt": "signed",
    # non-negative decimal strings (card bills' charge_amt is signed: see SIGNED_FIELDS)
    "withdrawable_amt": "amount", "trans_amt": "amount",
    "loan_principal": "amount", "approved_amt": "amount", "charge_amt": "amount",
    "paid_amt": "amount",
    # rates (decimal strings, percent)
    "offered_rate": "rate", "last_offered_rate": "rate",
    # codes from schemas.codes
    "currency_code": "code", "account_type": "code", "account_status": "code",
    "trans_type": "code", "repay_method": "code", "status": "code", "pay_type": "code",
    "type": "code", "pay_method": "code",
    # booleans, counts, day of month
    "is_consent": "bool", "is_minus": "bool",
    "seqno": "int", "paid_in_cnt": "int", "last_paid_in_cnt": "int", "total_install_cnt": "int",
    "charge_day": "day",
    # free text and holder-pseudonymised references
    "trans_class": "text", "trans_memo": "text", "prod_name": "text", "merchant_name": "text",
    "trans_title": "text",
    "account_num": "ref", "card_id": "ref", "mgmt_id": "ref", "telecom_num": "ref",
    "approved_num": "ref", "trans_no": "ref",
}

#: (api, field) whose amount is signed in that API although the field name is non-negative
#: elsewhere: a card statement whose refunds and credits exceed its charges is below zero
#: (telecom bills' charge_amt stays non-negative)
SIGNED_FIELDS = frozenset({("card.bills", "charge_amt")})

#: descriptive fields a holder may leave absent or empty (LANDING.md, "Required and optional")
OPTIONAL_FIELDS = frozenset({"trans_class", "trans_memo", "prod_name", "merchant_name", "trans_title",
                             "cancel_dtime", "paid_out_date", "next_repay_date", "last_offered_rate",
                             "offered_rate"})
#: optional fields that are required when another field has one of some values:
#: a cancelled approval (status 02, 승인취소) says when it was cancelled
REQUIRED_WHEN = {("card.approvals", "cancel_dtime"): ("status", frozenset({"02"}))}
#: every CSV column but these may be empty: operators differ in what they measure
TELECOM_USAGE_REQUIRED = frozenset({"link_key", "key_version", "mgmt_id", "usage_month"})

#: the longest a text value may be, in characters; every other string is at most SHORT_TEXT_MAX
LONG_TEXT_FIELDS = frozenset({"trans_memo", "merchant_name", "trans_title", "prod_name", "plan_name"})
LONG_TEXT_MAX, SHORT_TEXT_MAX = 200, 64


def field_kind(api: str, name: str) -> str:
    """The landing form of ``name`` in ``api``'s records (``FIELD_KINDS``, with per-API signs)."""
    return "signed" if (api, name) in SIGNED_FIELDS else FIELD_KINDS[name]


def max_length(name: str) -> int:
    return LONG_TEXT_MAX if name in LONG_TEXT_FIELDS else SHORT_TEXT_MAX
