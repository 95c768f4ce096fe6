"""Every feature as data: what it means, where it comes from, over which window, how it aggregates,
and what it is when its source is missing.

Expressions are SQL in the words both engines share (``features/sql.py`` compiles the rest per
dialect); ``{as_of}`` stands for the as-of date. The features job compiles these into one
aggregation per silver table (all of a table's features in one pass), joins the results on the
purpose pseudonym and evaluates the derived ones. Time follows ``schemas/asof.py``: an event
table's feature counts records in ``[as_of - window months, as_of)``; a state table's feature
reads the latest state known at the as-of date, and has no window. Amounts are KRW. The catalog
page is generated from this file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from features.merchants import category_sql
from schemas.bronze import EVENT, STATE, TABLES


@dataclass(frozen=True)
class Source:
    """A silver table as features see it: how its rows stand in time (from its contract), and
    extra columns computed before aggregating."""
    table: str
    columns: tuple[tuple[str, str], ...] = ()  # (name, SQL both engines read)

    @property
    def timing(self) -> str | None:
        """``event``, ``state``, or None for the subjects table (one row per subject, no window)."""
        spec = TABLES.get(self.table)
        return spec.timing if spec is not None else None

    @property
    def time_column(self) -> str | None:
        spec = TABLES.get(self.table)
        if spec is None:
            return None
        return spec.time_column if spec.timing == EVENT else "collected_at"

    @property
    def holder_column(self) -> str | None:
        """The column naming the holder that delivered a row (the usage extract has none)."""
        spec = TABLES.get(self.table)
        return "org_code" if spec is not None and "org_code" in spec.column_names else None


SOURCES: dict[str, Source] = {s.table: s for s in (
    Source("subjects"),
    Source("bank_transactions"),
    Source("bank_balances"),
    Source("bank_accounts"),
    Source("loans"),
    Source("card_approvals", (("category", category_sql()),)),
    Source("card_bills"),
    Source("telecom_contracts"),
    Source("telecom_bills"),
    Source("telecom_payments"),
    Source("telecom_micropayments"),
    Source("telecom_usage"),
)}

#: aggregations a feature may use; "monthly" is a sum divided by the window's months the holder
#: delivered, "latest" the value of the newest record in the window (of records equally new, the
#: largest value), "expr" a per-subject expression (subjects, derived)
AGGREGATIONS = ("sum", "monthly", "mean", "count", "max", "min", "stddev", "latest", "expr")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class Feature:
    name: str
    description: str
    source: str  # a key of SOURCES, or "derived" (an expression over features declared before it)
    agg: str
    expr: str = "1"
    window: int | None = None  # months before the as-of date (event tables only)
    where: str | None = None
    dtype: str = "double"  # double, int or string
    unit: str = ""
    quasi_identifier: bool = False
    #: value for a subject without records when its holder delivered the table (sums and counts:
    #: 0); None leaves it null. A table the holder did not deliver is null whatever the fill.
    fill: float | str | None = 0.0
    #: the fewest months of the window the subject's holder must have delivered, else null
    min_months: int = 1
    #: shareable with partners as a differentially private mean per segment, clamped to these
    #: bounds (declared, never read from the data: bounds taken from the data would leak it)
    share_bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"feature {self.name!r}: a name is lowercase letters, digits and _")
        if self.agg not in AGGREGATIONS:
            raise ValueError(f"feature {self.name}: aggregation {self.agg!r} is not one of {AGGREGATIONS}")
        if self.source != "derived" and self.source not in SOURCES:
            raise ValueError(f"feature {self.name}: source {self.source!r} is not a silver table or 'derived'")
        timing = SOURCES[self.source].timing if self.source in SOURCES else None
        if timing == EVENT and not self.window:
            raise ValueError(f"feature {self.name}: an event table's feature has a window of months")
        if timing != EVENT and self.window is not None:
            raise ValueError(f"feature {self.name}: only event tables have windows ({self.source} is "
                             f"{timing or 'not timed'}: its latest state counts)")
        if not 1 <= self.min_months <= (self.window or 1):
            raise ValueError(f"feature {self.name}: min_months must be between 1 and its window")
        if self.share_bounds is not None:
            low, high = self.share_bounds
            if not low < high or self.dtype == "string" or self.quasi_identifier:
                raise ValueError(f"feature {self.name}: share_bounds must be (low, high) with low < high, on a "
                                 "numeric feature that is not a quasi-identifier")

    @property
    def timing(self) -> str | None:
        return SOURCES[self.source].timing if self.source in SOURCES else None

    @property
    def missing_rule(self) -> str:
        """What the feature is when data is missing, in words (the catalog shows it)."""
        if self.source == "derived":
            return "null when any feature it uses is null"
        if self.source == "subjects":
            return "null when the customer master lacks the field"
        undelivered = f"null when the subject's holder delivered no {self.source}"
        if self.window:
            undelivered += (" in the window" if self.min_months == 1
                            else f" for at least {self.min_months} of its {self.window} months")
        rule = [undelivered]
        if self.fill is not None:
            rule.append(f"{self.fill:g} when delivered and the subject had none" if isinstance(self.fill, float)
                        else f"{self.fill} when delivered and the subject had none")
        else:
            rule.append("null when the subject had none")
        if self.agg == "monthly":
            rule.append("averaged over the months delivered")
        return "; ".join(rule)


def _f(name, description, source, agg, expr="1", window=None, where=None, dtype="double", unit="KRW",
       quasi_identifier=False, fill=0.0, share_bounds=None, min_months=1) -> Feature:
    return Feature(name=name, description=description, source=source, agg=agg, expr=expr, window=window,
                   where=where, dtype=dtype, unit=unit, quasi_identifier=quasi_identifier, fill=fill,
                   min_months=min_months, share_bounds=share_bounds)


_PAID = "status = '01'"  # a card approval that was not cancelled
_INFLOW, _OUTFLOW = "trans_type = '01'", "trans_type = '02'"
#: whole months from customer_since to the as-of date, as Spark's floor(months_between(...)) counts
#: them (a month's last day to another's is a whole month), in SQL both engines read
_WHOLE_MONTHS = ("(year({as_of}) - year(customer_since)) * 12 + month({as_of}) - month(customer_since)"
                 " - CASE WHEN day({as_of}) < day(customer_since) AND NOT (last_day({as_of}) = "
                 "{as_of} AND last_day(customer_since) = customer_since) THEN 1 ELSE 0 END")
_TIER = "CASE device_tier WHEN 'premium' THEN 3 WHEN 'mid' THEN 2 WHEN 'budget' THEN 1 END"

FEATURES: tuple[Feature, ...] = (
    # -- subject (customer master) ------------------------------------------------------------------
    _f("age", "age in years at the as-of date (from birth year); released as a band", "subjects", "expr",
       "year({as_of}) - birth_year", dtype="int", unit="years", quasi_identifier=True, fill=None),
    _f("gender", "gender as the customer master holds it (M/F)", "subjects", "expr", "gender",
       dtype="string", unit="", quasi_identifier=True, fill=None),
    _f("region_code", "시도 code of residence; released as a wider area when needed", "subjects", "expr",
       "region_code", dtype="string", unit="", quasi_identifier=True, fill=None),
    _f("customer_tenure_months", "months since the subject became a bank customer", "subjects", "expr",
       _WHOLE_MONTHS, dtype="int", unit="months", fill=None, share_bounds=(0, 600)),
    # -- bank: flows -----------------------------------------------------------------------------
    _f("bank_inflow_1m", "deposits into bank accounts in the last month", "bank_transactions", "sum",
       "trans_amt", 1, _INFLOW),
    _f("bank_inflow_3m_avg", "monthly average of deposits over 3 months (income-like inflows)",
       "bank_transactions", "monthly", "trans_amt", 3, _INFLOW, share_bounds=(0, 20_000_000)),
    _f("bank_large_inflow_3m_avg", "monthly average of single deposits of 1,000,000 KRW or more over 3 "
       "months (salary- and pension-like credits)", "bank_transactions", "monthly", "trans_amt", 3,
       f"{_INFLOW} AND trans_amt >= 1000000"),
    _f("bank_outflow_1m", "withdrawals from bank accounts in the last month", "bank_transactions", "sum",
       "trans_amt", 1, _OUTFLOW),
    _f("bank_outflow_3m_avg", "monthly average of withdrawals over 3 months", "bank_transactions", "monthly",
       "trans_amt", 3, _OUTFLOW),
    _f("bank_txn_count_3m", "bank transactions over 3 months", "bank_transactions", "count", window=3,
       dtype="int", unit="count"),
    _f("bank_balance_mean_3m", "mean running balance after transactions over 3 months", "bank_transactions",
       "mean", "balance_amt", 3, fill=None, share_bounds=(-5_000_000, 100_000_000)),
    _f("bank_balance_volatility_3m", "standard deviation of the running balance over 3 months",
       "bank_transactions", "stddev", "balance_amt", 3, fill=None),
    _f("bank_balance_level", "total deposit balance at the latest collection", "bank_balances", "sum",
       "balance_amt"),
    _f("bank_withdrawable", "total withdrawable amount at the latest collection", "bank_balances", "sum",
       "withdrawable_amt"),
    _f("bank_rate_mean", "mean offered deposit rate at the latest collection", "bank_balances", "mean",
       "offered_rate", unit="%", fill=None),
    _f("bank_accounts", "accounts listed at the latest collection", "bank_accounts", "count",
       dtype="int", unit="count"),
    _f("bank_overdraft_accounts", "accounts with an overdraft facility at the latest collection",
       "bank_accounts", "count", where="is_minus", dtype="int", unit="count"),
    # -- bank: loans -------------------------------------------------------------------------------
    _f("loan_balance", "outstanding loan balance at the latest collection", "loans", "sum", "balance_amt"),
    _f("loan_principal", "original principal of the loans at the latest collection", "loans", "sum",
       "loan_principal"),
    _f("loan_count", "loans at the latest collection", "loans", "count", dtype="int", unit="count"),
    _f("loan_rate_mean", "mean loan interest rate at the latest collection", "loans", "mean",
       "last_offered_rate", unit="%", fill=None),
    # -- card --------------------------------------------------------------------------------------
    _f("card_spend_1m", "card spending (approvals not cancelled) in the last month", "card_approvals", "sum",
       "approved_amt", 1, _PAID),
    _f("card_spend_3m_avg", "monthly average card spending over 3 months", "card_approvals", "monthly",
       "approved_amt", 3, _PAID, share_bounds=(0, 5_000_000)),
    _f("card_spend_6m_avg", "monthly average card spending over 6 months", "card_approvals", "monthly",
       "approved_amt", 6, _PAID),
    _f("card_txn_count_3m", "card approvals not cancelled over 3 months", "card_approvals", "count", window=3,
       where=_PAID, dtype="int", unit="count"),
    _f("card_ticket_mean_3m", "mean amount per card approval over 3 months", "card_approvals", "mean",
       "approved_amt", 3, _PAID, fill=None),
    _f("card_instalment_spend_3m", "card spending paid in instalments over 3 months", "card_approvals", "sum",
       "approved_amt", 3, f"{_PAID} AND pay_type = '02'"),
    _f("card_cancellations_3m", "cancelled card approvals over 3 months", "card_approvals", "count", window=3,
       where="status = '02' OR cancel_dtime IS NOT NULL", dtype="int", unit="count"),
    *[_f(f"card_{category}_3m", f"card spending at {label} over 3 months (category from merchant names)",
         "card_approvals", "sum", "approved_amt", 3, f"{_PAID} AND category = '{category}'")
      for category, label in (("overseas", "overseas merchants"), ("cafe", "cafés"),
                              ("delivery", "food delivery apps"), ("online", "online shops"),
                              ("mart", "supermarkets"), ("department", "department stores"),
                              ("travel", "airlines, hotels and travel agents"), ("golf", "golf"),
                              ("education", "academies and education"), ("kids", "children's shops"),
                              ("transport", "transport"), ("fuel", "fuel stations"))],
    _f("card_bill_mean_3m", "mean monthly card bill over 3 months", "card_bills", "mean", "charge_amt", 3,
       fill=None),
    # -- telecom -----------------------------------------------------------------------------------
    _f("telecom_arpu_3m", "monthly average telecom bill over 3 months (ARPU)", "telecom_bills", "monthly",
       "charge_amt", 3, share_bounds=(0, 400_000)),
    _f("telecom_lines", "active telecom lines at the latest collection", "telecom_contracts", "count",
       where="status = '01'", dtype="int", unit="count"),
    _f("telecom_data_mb_3m_avg", "monthly mobile data over 3 months", "telecom_usage", "monthly", "data_mb", 3,
       unit="MB", share_bounds=(0, 100_000)),
    _f("telecom_voice_min_3m_avg", "monthly voice minutes over 3 months", "telecom_usage", "monthly",
       "voice_min", 3, unit="minutes"),
    _f("telecom_sms_3m_avg", "monthly text messages over 3 months", "telecom_usage", "monthly", "sms_cnt", 3,
       unit="count"),
    _f("telecom_night_ratio_3m", "share of mobile data used at night, mean over 3 months", "telecom_usage",
       "mean", "night_data_ratio", 3, unit="ratio", fill=None),
    _f("telecom_roaming_days_6m", "days roaming abroad over 6 months", "telecom_usage", "sum", "roaming_days",
       6, unit="days", share_bounds=(0, 60)),
    _f("telecom_finance_app_3m_avg", "monthly sessions in finance apps over 3 months", "telecom_usage",
       "monthly", "finance_app_sessions", 3, unit="sessions", share_bounds=(0, 300)),
    _f("telecom_device_tier", "device tier of the newest usage record (1 budget, 2 mid, 3 premium)",
       "telecom_usage", "latest", _TIER, 3, unit="tier", fill=None),
    _f("telecom_plan_fee", "monthly plan fee of the newest usage record", "telecom_usage", "latest",
       "plan_fee", 3, fill=None),
    _f("telecom_tenure_months", "longest tenure with the operator across lines", "telecom_usage", "max",
       "tenure_months", 3, dtype="int", unit="months", fill=None),
    _f("telecom_billed_6m", "telecom bills over 6 months", "telecom_bills", "sum", "charge_amt", 6),
    _f("telecom_paid_6m", "telecom bill payments over 6 months", "telecom_payments", "sum", "paid_amt", 6),
    _f("telecom_micropay_3m", "micropayments charged to the phone bill over 3 months",
       "telecom_micropayments", "sum", "trans_amt", 3),
    _f("telecom_micropay_gaming_3m", "game micropayments over 3 months", "telecom_micropayments", "sum",
       "trans_amt", 3, "trans_title LIKE '%게임%'"),
    # -- derived: ratios within and across sources -------------------------------------------------
    _f("bank_savings_rate_3m", "share of 3-month inflows not withdrawn again", "derived", "expr",
       "(bank_inflow_3m_avg - bank_outflow_3m_avg) / NULLIF(bank_inflow_3m_avg, 0)", unit="ratio", fill=None),
    _f("loan_utilisation", "outstanding loan balance over original principal", "derived", "expr",
       "loan_balance / NULLIF(loan_principal, 0)", unit="ratio", fill=None),
    _f("card_instalment_share_3m", "share of 3-month card spending paid in instalments", "derived", "expr",
       "card_instalment_spend_3m / NULLIF(card_spend_3m_avg * 3, 0)", unit="ratio", fill=None),
    _f("telecom_unpaid_share_6m", "share of 6-month telecom bills not paid (late or partial payments)",
       "derived", "expr", "greatest(telecom_billed_6m - telecom_paid_6m, 0) / NULLIF(telecom_billed_6m, 0)",
       unit="ratio", fill=None),
    _f("telecom_bill_share_of_income", "telecom bill as a share of monthly bank inflows", "derived", "expr",
       "telecom_arpu_3m / NULLIF(bank_inflow_3m_avg, 0)", unit="ratio", fill=None),
    _f("card_spend_share_of_income", "card spending as a share of monthly bank inflows", "derived", "expr",
       "card_spend_3m_avg / NULLIF(bank_inflow_3m_avg, 0)", unit="ratio", fill=None),
    _f("micropay_vs_card_spend", "micropayments over card spending (3 months)", "derived", "expr",
       "telecom_micropay_3m / NULLIF(card_spend_3m_avg * 3, 0)", unit="ratio", fill=None),
)

BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
QUASI_IDENTIFIERS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.quasi_identifier)
assert len(BY_NAME) == len(FEATURES), "feature names are unique"
assert {s.timing for s in SOURCES.values()} == {None, EVENT, STATE}


def inputs_of(feature: Feature) -> tuple[str, ...]:
    """The features a derived feature's expression reads, in declaration order."""
    words = set(re.findall(r"[a-z][a-z0-9_]*", feature.expr))
    return tuple(f.name for f in FEATURES if f.name in words and f.name != feature.name)
