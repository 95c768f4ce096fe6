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
    unit: str = "KRW"  # money, unless said
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
    Feature(
        name="age",
        description="age in years at the as-of date (from birth year); released as a band",
        source="subjects",
        agg="expr",
        expr="year({as_of}) - birth_year",
        dtype="int",
        unit="years",
        quasi_identifier=True,
        fill=None,
    ),
    Feature(
        name="gender",
        description="gender as the customer master holds it (M/F)",
        source="subjects",
        agg="expr",
        expr="gender",
        dtype="string",
        unit="",
        quasi_identifier=True,
        fill=None,
    ),
    Feature(
        name="region_code",
        description="시도 code of residence; released as a wider area when needed",
        source="subjects",
        agg="expr",
        expr="region_code",
        dtype="string",
        unit="",
        quasi_identifier=True,
        fill=None,
    ),
    Feature(
        name="customer_tenure_months",
        description="months since the subject became a bank customer",
        source="subjects",
        agg="expr",
        expr=_WHOLE_MONTHS,
        dtype="int",
        unit="months",
        fill=None,
        share_bounds=(0, 600),
    ),
    # -- bank: flows -----------------------------------------------------------------------------
    Feature(
        name="bank_inflow_1m",
        description="deposits into bank accounts in the last month",
        source="bank_transactions",
        agg="sum",
        expr="trans_amt",
        window=1,
        where=_INFLOW,
    ),
    Feature(
        name="bank_inflow_3m_avg",
        description="monthly average of deposits over 3 months (income-like inflows)",
        source="bank_transactions",
        agg="monthly",
        expr="trans_amt",
        window=3,
        where=_INFLOW,
        share_bounds=(0, 20_000_000),
    ),
    Feature(
        name="bank_large_inflow_3m_avg",
        description="monthly average of single deposits of 1,000,000 KRW or more over 3 "
            "months (salary- and pension-like credits)",
        source="bank_transactions",
        agg="monthly",
        expr="trans_amt",
        window=3,
        where=f"{_INFLOW} AND trans_amt >= 1000000",
    ),
    Feature(
        name="bank_outflow_1m",
        description="withdrawals from bank accounts in the last month",
        source="bank_transactions",
        agg="sum",
        expr="trans_amt",
        window=1,
        where=_OUTFLOW,
    ),
    Feature(
        name="bank_outflow_3m_avg",
        description="monthly average of withdrawals over 3 months",
        source="bank_transactions",
        agg="monthly",
        expr="trans_amt",
        window=3,
        where=_OUTFLOW,
    ),
    Feature(
        name="bank_txn_count_3m",
        description="bank transactions over 3 months",
        source="bank_transactions",
        agg="count",
        window=3,
        dtype="int",
        unit="count",
    ),
    Feature(
        name="bank_balance_mean_3m",
        description="mean running balance after transactions over 3 months",
        source="bank_transactions",
        agg="mean",
        expr="balance_amt",
        window=3,
        fill=None,
        share_bounds=(-5_000_000, 100_000_000),
    ),
    Feature(
        name="bank_balance_volatility_3m",
        description="standard deviation of the running balance over 3 months",
        source="bank_transactions",
        agg="stddev",
        expr="balance_amt",
        window=3,
        fill=None,
    ),
    Feature(
        name="bank_balance_level",
        description="total deposit balance at the latest collection",
        source="bank_balances",
        agg="sum",
        expr="balance_amt",
    ),
    Feature(
        name="bank_withdrawable",
        description="total withdrawable amount at the latest collection",
        source="bank_balances",
        agg="sum",
        expr="withdrawable_amt",
    ),
    Feature(
        name="bank_rate_mean",
        description="mean offered deposit rate at the latest collection",
        source="bank_balances",
        agg="mean",
        expr="offered_rate",
        unit="%",
        fill=None,
    ),
    Feature(
        name="bank_accounts",
        description="accounts listed at the latest collection",
        source="bank_accounts",
        agg="count",
        dtype="int",
        unit="count",
    ),
    Feature(
        name="bank_overdraft_accounts",
        description="accounts with an overdraft facility at the latest collection",
        source="bank_accounts",
        agg="count",
        where="is_minus",
        dtype="int",
        unit="count",
    ),
    # -- bank: loans -------------------------------------------------------------------------------
    Feature(
        name="loan_balance",
        description="outstanding loan balance at the latest collection",
        source="loans",
        agg="sum",
        expr="balance_amt",
    ),
    Feature(
        name="loan_principal",
        description="original principal of the loans at the latest collection",
        source="loans",
        agg="sum",
        expr="loan_principal",
    ),
    Feature(
        name="loan_count",
        description="loans at the latest collection",
        source="loans",
        agg="count",
        dtype="int",
        unit="count",
    ),
    Feature(
        name="loan_rate_mean",
        description="mean loan interest rate at the latest collection",
        source="loans",
        agg="mean",
        expr="last_offered_rate",
        unit="%",
        fill=None,
    ),
    # -- card --------------------------------------------------------------------------------------
    Feature(
        name="card_spend_1m",
        description="card spending (approvals not cancelled) in the last month",
        source="card_approvals",
        agg="sum",
        expr="approved_amt",
        window=1,
        where=_PAID,
    ),
    Feature(
        name="card_spend_3m_avg",
        description="monthly average card spending over 3 months",
        source="card_approvals",
        agg="monthly",
        expr="approved_amt",
        window=3,
        where=_PAID,
        share_bounds=(0, 5_000_000),
    ),
    Feature(
        name="card_spend_6m_avg",
        description="monthly average card spending over 6 months",
        source="card_approvals",
        agg="monthly",
        expr="approved_amt",
        window=6,
        where=_PAID,
    ),
    Feature(
        name="card_txn_count_3m",
        description="card approvals not cancelled over 3 months",
        source="card_approvals",
        agg="count",
        window=3,
        where=_PAID,
        dtype="int",
        unit="count",
    ),
    Feature(
        name="card_ticket_mean_3m",
        description="mean amount per card approval over 3 months",
        source="card_approvals",
        agg="mean",
        expr="approved_amt",
        window=3,
        where=_PAID,
        fill=None,
    ),
    Feature(
        name="card_instalment_spend_3m",
        description="card spending paid in instalments over 3 months",
        source="card_approvals",
        agg="sum",
        expr="approved_amt",
        window=3,
        where=f"{_PAID} AND pay_type = '02'",
    ),
    Feature(
        name="card_cancellations_3m",
        description="cancelled card approvals over 3 months",
        source="card_approvals",
        agg="count",
        window=3,
        where="status = '02' OR cancel_dtime IS NOT NULL",
        dtype="int",
        unit="count",
    ),
    *[Feature(
          name=f"card_{category}_3m",
          description=f"card spending at {label} over 3 months (category from merchant names)",
          source="card_approvals",
          agg="sum",
          expr="approved_amt",
          window=3,
          where=f"{_PAID} AND category = '{category}'",
      )
      for category, label in (("overseas", "overseas merchants"), ("cafe", "cafés"),
                              ("delivery", "food delivery apps"), ("online", "online shops"),
                              ("mart", "supermarkets"), ("department", "department stores"),
                              ("travel", "airlines, hotels and travel agents"), ("golf", "golf"),
                              ("education", "academies and education"), ("kids", "children's shops"),
                              ("transport", "transport"), ("fuel", "fuel stations"))],
    Feature(
        name="card_bill_mean_3m",
        description="mean monthly card bill over 3 months",
        source="card_bills",
        agg="mean",
        expr="charge_amt",
        window=3,
        fill=None,
    ),
    # -- telecom -----------------------------------------------------------------------------------
    Feature(
        name="telecom_arpu_3m",
        description="monthly average telecom bill over 3 months (ARPU)",
        source="telecom_bills",
        agg="monthly",
        expr="charge_amt",
        window=3,
        share_bounds=(0, 400_000),
    ),
    Feature(
        name="telecom_lines",
        description="active telecom lines at the latest collection",
        source="telecom_contracts",
        agg="count",
        where="status = '01'",
        dtype="int",
        unit="count",
    ),
    Feature(
        name="telecom_data_mb_3m_avg",
        description="monthly mobile data over 3 months",
        source="telecom_usage",
        agg="monthly",
        expr="data_mb",
        window=3,
        unit="MB",
        share_bounds=(0, 100_000),
    ),
    Feature(
        name="telecom_voice_min_3m_avg",
        description="monthly voice minutes over 3 months",
        source="telecom_usage",
        agg="monthly",
        expr="voice_min",
        window=3,
        unit="minutes",
    ),
    Feature(
        name="telecom_sms_3m_avg",
        description="monthly text messages over 3 months",
        source="telecom_usage",
        agg="monthly",
        expr="sms_cnt",
        window=3,
        unit="count",
    ),
    Feature(
        name="telecom_night_ratio_3m",
        description="share of mobile data used at night, mean over 3 months",
        source="telecom_usage",
        agg="mean",
        expr="night_data_ratio",
        window=3,
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="telecom_roaming_days_6m",
        description="days roaming abroad over 6 months",
        source="telecom_usage",
        agg="sum",
        expr="roaming_days",
        window=6,
        unit="days",
        share_bounds=(0, 60),
    ),
    Feature(
        name="telecom_finance_app_3m_avg",
        description="monthly sessions in finance apps over 3 months",
        source="telecom_usage",
        agg="monthly",
        expr="finance_app_sessions",
        window=3,
        unit="sessions",
        share_bounds=(0, 300),
    ),
    Feature(
        name="telecom_device_tier",
        description="device tier of the newest usage record (1 budget, 2 mid, 3 premium)",
        source="telecom_usage",
        agg="latest",
        expr=_TIER,
        window=3,
        unit="tier",
        fill=None,
    ),
    Feature(
        name="telecom_plan_fee",
        description="monthly plan fee of the newest usage record",
        source="telecom_usage",
        agg="latest",
        expr="plan_fee",
        window=3,
        fill=None,
    ),
    Feature(
        name="telecom_tenure_months",
        description="longest tenure with the operator across lines",
        source="telecom_usage",
        agg="max",
        expr="tenure_months",
        window=3,
        dtype="int",
        unit="months",
        fill=None,
    ),
    Feature(
        name="telecom_billed_6m",
        description="telecom bills over 6 months",
        source="telecom_bills",
        agg="sum",
        expr="charge_amt",
        window=6,
    ),
    Feature(
        name="telecom_paid_6m",
        description="telecom bill payments over 6 months",
        source="telecom_payments",
        agg="sum",
        expr="paid_amt",
        window=6,
    ),
    Feature(
        name="telecom_micropay_3m",
        description="micropayments charged to the phone bill over 3 months",
        source="telecom_micropayments",
        agg="sum",
        expr="trans_amt",
        window=3,
    ),
    Feature(
        name="telecom_micropay_gaming_3m",
        description="game micropayments over 3 months",
        source="telecom_micropayments",
        agg="sum",
        expr="trans_amt",
        window=3,
        where="trans_title LIKE '%게임%'",
    ),
    # -- derived: ratios within and across sources -------------------------------------------------
    Feature(
        name="bank_savings_rate_3m",
        description="share of 3-month inflows not withdrawn again",
        source="derived",
        agg="expr",
        expr="(bank_inflow_3m_avg - bank_outflow_3m_avg) / NULLIF(bank_inflow_3m_avg, 0)",
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="loan_utilisation",
        description="outstanding loan balance over original principal",
        source="derived",
        agg="expr",
        expr="loan_balance / NULLIF(loan_principal, 0)",
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="card_instalment_share_3m",
        description="share of 3-month card spending paid in instalments",
        source="derived",
        agg="expr",
        expr="card_instalment_spend_3m / NULLIF(card_spend_3m_avg * 3, 0)",
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="telecom_unpaid_share_6m",
        description="share of 6-month telecom bills not paid (late or partial payments)",
        source="derived",
        agg="expr",
        expr="greatest(telecom_billed_6m - telecom_paid_6m, 0) / NULLIF(telecom_billed_6m, 0)",
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="telecom_bill_share_of_income",
        description="telecom bill as a share of monthly bank inflows",
        source="derived",
        agg="expr",
        expr="telecom_arpu_3m / NULLIF(bank_inflow_3m_avg, 0)",
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="card_spend_share_of_income",
        description="card spending as a share of monthly bank inflows",
        source="derived",
        agg="expr",
        expr="card_spend_3m_avg / NULLIF(bank_inflow_3m_avg, 0)",
        unit="ratio",
        fill=None,
    ),
    Feature(
        name="micropay_vs_card_spend",
        description="micropayments over card spending (3 months)",
        source="derived",
        agg="expr",
        expr="telecom_micropay_3m / NULLIF(card_spend_3m_avg * 3, 0)",
        unit="ratio",
        fill=None,
    ),
)

BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
QUASI_IDENTIFIERS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.quasi_identifier)
assert len(BY_NAME) == len(FEATURES), "feature names are unique"
assert {s.timing for s in SOURCES.values()} == {None, EVENT, STATE}


def inputs_of(feature: Feature) -> tuple[str, ...]:
    """The features a derived feature's expression reads, in declaration order."""
    words = set(re.findall(r"[a-z][a-z0-9_]*", feature.expr))
    return tuple(f.name for f in FEATURES if f.name in words and f.name != feature.name)
