"""Synthetic landing zone: every source of the landing contract, for N subjects over M months.

Deterministic: a subject's data depends only on (seed, subject index, key store), so chunks of
subjects are generated in parallel worker processes, each writing its own part files, and the
same seed with the same key store gives byte-identical output. Memory is bounded by one chunk
(plus one consent delivery while it is chained), so 1M subjects stream to disk.

CIs are drawn, turned into link keys with the holders' HMAC and dropped: they are written nowhere.
Ground truth (latent type per subject, planted defects) goes to ``<out>/truth``, outside landing.
"""
from __future__ import annotations

import base64
import calendar
import csv
import gzip
import heapq
import io
import json
import math
import os
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO

from mydata.devtools.synth import defects as planted
from mydata.devtools.synth.profiles import (
    BRANCHED,
    BRANCHES,
    CUSTOMER_TYPES,
    GAMING_MICROPAYMENTS,
    MERCHANTS,
    METRO,
    MICROPAYMENTS,
    PLANS,
    REGION_WEIGHTS,
    SUBSCRIPTION_MICROPAYMENTS,
    CustomerType,
)
from mydata.errors import UsageError
from mydata.keys import KeyStore, Secret, link_key
from mydata.lake import SUCCESS_MARKER, Lake
from schemas import codes
from schemas.consent import GENESIS_HASH, chain
from schemas.landing import CSV_SOURCES

DEFAULT_START_MONTH = date(2026, 5, 1)


@dataclass(frozen=True)
class GeneratorOptions:
    subjects: int
    months: int = 6
    seed: int = 0
    start_month: date = DEFAULT_START_MONTH
    defect_rate: float = 0.005
    key_mismatch_rate: float = 0.005
    chunk_size: int = 5_000
    workers: int = 2
    compress: bool = False
    #: shapes of real deliveries (docs/stages/landing.md), each off at 0 so older outputs stay the same:
    #: share of subjects whose bank and telecom state is collected again a week after each delivery
    #: (weekly scheduled transmission), delivered then
    refresh_share: float = 0.0
    #: share of subjects with the second operator, which delivers no payments and no micropayments
    silent_operator_share: float = 0.0
    #: share of (subject, month) whose card records arrive in a late delivery, ten days later
    late_share: float = 0.0
    #: share of card bills whose refunds exceed their charges (a negative amount due)
    negative_bill_share: float = 0.0

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError("subjects must be at least 1")
        if not 1 <= self.months <= 36:
            raise ValueError("months must be between 1 and 36")
        if not 0 <= self.defect_rate < 0.5:
            raise ValueError("defect_rate must be in [0, 0.5)")
        if not 0 <= self.key_mismatch_rate < 0.5:
            raise ValueError("key_mismatch_rate must be in [0, 0.5)")
        if self.start_month.day != 1:
            raise ValueError("start_month must be the first day of a month")
        for name in ("refresh_share", "silent_operator_share", "late_share", "negative_bill_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")

    @property
    def real_shapes(self) -> bool:
        return any((self.refresh_share, self.silent_operator_share, self.late_share, self.negative_bill_share))


#: the shapes a demo and the real-delivery tests use (GeneratorOptions.real_shapes)
REAL_SHAPES = {"refresh_share": 0.3, "silent_operator_share": 0.2, "late_share": 0.05, "negative_bill_share": 0.02}
REFRESH_DAYS, LATE_DAYS = 7, 10


@dataclass
class GenerationSummary:
    out: Path
    subjects: int
    deliveries: list[str]
    records: dict[str, int]
    defects: dict[str, dict[str, int]]
    consent_events: int
    types: dict[str, int]

    @property
    def total_records(self) -> int:
        return sum(self.records.values())

    @property
    def total_defects(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.defects.values())

    @property
    def defect_rate(self) -> float:
        return self.total_defects / self.total_records if self.total_records else 0.0


# -- calendar helpers ---------------------------------------------------------------------------

def month_starts(start: date, months: int) -> list[date]:
    out, year, month = [], start.year, start.month
    for _ in range(months + 1):
        out.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def delivery_dates(options: GeneratorOptions) -> list[date]:
    """Month i is delivered on the first day of month i+1."""
    return month_starts(options.start_month, options.months)[1:]


def writer_deliveries(options: GeneratorOptions) -> list[date]:
    """Every delivery the records go to: the monthly ones, then (with the real shapes) each month's
    refresh a week later and its late delivery ten days later."""
    monthly = delivery_dates(options)
    if not options.real_shapes:
        return monthly
    return [*monthly, *[d + timedelta(days=REFRESH_DAYS) for d in monthly],
            *[d + timedelta(days=LATE_DAYS) for d in monthly]]


def subject_ci(seed: int, index: int) -> str:
    """The synthetic CI of subject ``index``: 64 random bytes, base64 (88 characters)."""
    rng = random.Random(f"{seed}:ci:{index}")
    return base64.b64encode(rng.randbytes(64)).decode("ascii")


def _weighted(rng: random.Random, table: dict[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _ref(rng: random.Random, prefix: str) -> str:
    """A holder-pseudonymised reference (account, card, line): opaque, not a real number."""
    return f"{prefix}{rng.getrandbits(60):015x}"


def _amt(value: float) -> str:
    return f"{max(0, int(round(value)))}.000"


def _signed_amt(value: float) -> str:
    """An amount that may be negative (a card bill whose refunds exceed its charges)."""
    return f"{int(round(value))}.000"


# -- subjects -----------------------------------------------------------------------------------

@dataclass
class Account:
    num: str
    account_type: str
    prod_name: str
    is_minus: bool
    balance: float
    rate: float
    principal: float = 0.0
    seq: int = 0


@dataclass
class PhoneLine:
    mgmt_id: str
    telecom_num: str
    plan: str
    device_tier: str
    tenure: int
    data_factor: float


@dataclass
class Subject:
    index: int
    link_key: str
    telecom_link_key: str
    telecom_key_version: int
    ctype: CustomerType
    birth_year: int
    gender: str
    region_code: str
    customer_since: str
    bank_org: str
    card_org: str
    income: float
    spend_factor: float
    accounts: list[Account]
    cards: list[str]
    lines: list[PhoneLine]
    grade: str
    late_prob: float
    has_bank: bool = True
    telecom_org: str = "T100000001"
    last_card_total: float = 0.0
    consent_events: list[dict] = field(default_factory=list)


_TYPE_WEIGHTS = [t.weight for t in CUSTOMER_TYPES]


def make_subject(seed: int, index: int, options: GeneratorOptions,
                 link_secrets: dict[int, Secret]) -> Subject:
    rng = random.Random(f"{seed}:subject:{index}")
    ci = subject_ci(seed, index)
    lk = link_key(link_secrets[1], ci)
    mismatch = 2 in link_secrets and rng.random() < options.key_mismatch_rate
    telecom_lk = link_key(link_secrets[2], ci) if mismatch else lk
    del ci  # the CI stops here: only link keys leave this function

    ctype = rng.choices(CUSTOMER_TYPES, weights=_TYPE_WEIGHTS)[0]
    ref_year = options.start_month.year
    age = rng.randint(*ctype.age)
    regions = {code: w * (ctype.metro_boost if code in METRO else 1.0)
               for code, w in REGION_WEIGHTS.items()}
    since_years = rng.randint(0, max(1, min(25, age - 18)))
    since = date(ref_year - since_years, rng.randint(1, 12), rng.randint(1, 28))
    income = ctype.income * math.exp(rng.gauss(0, ctype.income_sigma))

    accounts = [Account(_ref(rng, "A"), "1001", rng.choice(("입출금통장", "급여통장", "자유입출금")),
                        rng.random() < ctype.minus_prob,
                        income * ctype.balance_months * math.exp(rng.gauss(0, 0.5)),
                        0.1)]
    if rng.random() < ctype.savings_prob:
        accounts.append(Account(_ref(rng, "A"), rng.choice(("1002", "1003")),
                                rng.choice(("정기적금", "자유적금", "정기예금")), False,
                                income * ctype.balance_months * 2 * math.exp(rng.gauss(0, 0.6)),
                                round(rng.uniform(2.8, 4.2), 2)))
    if rng.random() < ctype.loan_prob:
        principal = ctype.loan_principal * math.exp(rng.gauss(0, 0.35))
        accounts.append(Account(_ref(rng, "A"), rng.choice(("3150", "3170", "3210", "3400")),
                                rng.choice(("주택담보대출", "신용대출", "전세자금대출", "사업자대출")),
                                False, principal * rng.uniform(0.35, 0.95),
                                round(rng.uniform(3.5, 6.9), 2), principal))

    has_card = rng.random() < ctype.card_prob
    cards = [_ref(rng, "C") for _ in range(1 if rng.random() < 0.7 else 2)] if has_card else []
    lines: list[PhoneLine] = []
    if rng.random() < ctype.telecom_prob:
        line_count = 2 if rng.random() < ctype.second_line_prob else 1
        for _ in range(line_count):
            lines.append(PhoneLine(_ref(rng, "M"), _ref(rng, "P"), _weighted(rng, ctype.plans),
                                   _weighted(rng, ctype.devices), rng.randint(*ctype.tenure),
                                   math.exp(rng.gauss(0, 0.35))))
    return Subject(
        index=index, link_key=lk, telecom_link_key=telecom_lk,
        telecom_key_version=2 if mismatch else 1, ctype=ctype,
        birth_year=ref_year - age, gender="M" if rng.random() < ctype.male_share else "F",
        region_code=_weighted(rng, regions), customer_since=since.strftime("%Y%m%d"),
        bank_org=rng.choice(list(BANK_ORGS)), card_org=rng.choice(list(CARD_ORGS)),
        income=income, spend_factor=math.exp(rng.gauss(0, 0.3)), accounts=accounts, cards=cards,
        lines=lines, grade=_weighted(rng, ctype.grades),
        late_prob=min(0.9, ctype.late_prob * math.exp(rng.gauss(0, 0.5))),
        has_bank=rng.random() < 0.98,
        # its own stream, so subjects stay the same whatever the share
        telecom_org=SILENT_OPERATOR if random.Random(f"{seed}:operator:{index}").random()
        < options.silent_operator_share else "T100000001",
    )


# -- consent ------------------------------------------------------------------------------------

_SOURCE_SUBSETS = (("bank", "card"), ("bank", "telecom"), ("card", "telecom"), ("bank",),
                   ("telecom",), ("card",))
_NOTICES = {"marketing": "mkt", "credit_scoring": "crd", "analytics": "anl"}
_PURPOSE_PROPENSITY = {"credit_scoring": 0.45, "analytics": 0.5}


def _dtime(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def _notice(purpose: str, moment: datetime) -> str:
    half = 1 if moment.month <= 6 else 2
    return f"{_NOTICES[purpose]}-{moment.year}.{half}"


def consent_history(subject: Subject, rng: random.Random, window_start: date,
                    last_delivery: date) -> list[dict]:
    """Grants, renewals, withdrawals and expiries of one subject, in time order."""
    events: list[dict] = []
    begin = datetime.combine(window_start, datetime.min.time()) - timedelta(days=300)
    end = datetime.combine(last_delivery, datetime.min.time()) - timedelta(seconds=1)
    span = (end - begin).total_seconds()
    for purpose in ("marketing", "credit_scoring", "analytics"):
        propensity = (subject.ctype.marketing_consent if purpose == "marketing"
                      else _PURPOSE_PROPENSITY[purpose])
        if rng.random() >= propensity:
            continue
        full = rng.random() < (0.85 if purpose == "marketing" else 0.7)
        sources = ["bank", "card", "telecom"] if full else list(rng.choice(_SOURCE_SUBSETS))
        # most grants predate the window so that the as-of population is large
        offset = rng.random() ** 1.6 * span
        granted = begin + timedelta(seconds=int(offset))
        channel = rng.choices(("app", "web", "branch", "call_center"), weights=(6, 2, 1.5, 0.5))[0]
        ends = (granted + timedelta(days=365)).date()
        events.append(_consent_event(subject, "grant", granted, purpose, sources, ends, channel))
        moment = granted
        while True:
            end_moment = datetime.combine(ends, datetime.min.time())
            if end_moment > end:
                break
            if rng.random() >= 0.6:
                break  # lets it expire
            moment = end_moment - timedelta(days=rng.randint(1, 25), seconds=rng.randint(0, 86_399))
            ends = (moment + timedelta(days=365)).date()
            events.append(_consent_event(subject, "renew", moment, purpose, sources, ends,
                                         rng.choice(("app", "web"))))
        if rng.random() < 0.05:
            gap = (end - moment).total_seconds()
            if gap > 3_600:
                withdrawn = moment + timedelta(seconds=int(rng.uniform(3_600, gap)))
                events.append(_consent_event(subject, "withdraw", withdrawn, purpose, sources,
                                             withdrawn.date(), channel))
    events.sort(key=lambda e: (e["event_time"], e["purpose"]))
    return events


def _consent_event(subject: Subject, event_type: str, moment: datetime, purpose: str,
                   sources: list[str], end_date: date, channel: str) -> dict:
    return {
        "event_id": None, "link_key": subject.link_key, "key_version": 1,
        "event_type": event_type, "event_time": _dtime(moment), "purpose": purpose,
        "sources": sources, "end_date": end_date.strftime("%Y%m%d"), "channel": channel,
        "notice_version": _notice(purpose, moment),
    }


# -- writing ------------------------------------------------------------------------------------

class ChunkWriter:
    """Part files of one chunk of subjects, with defects planted as records go out."""

    def __init__(self, landing: Path, chunk: int, deliveries: list[date], compress: bool,
                 defects: planted.DefectPlanter, monthly: int | None = None) -> None:
        self.landing = landing
        self.chunk = chunk
        self.deliveries = deliveries
        self.monthly = monthly or len(deliveries)
        self.compress = compress
        self.defects = defects
        self._handles: dict[tuple[str, int], IO[str]] = {}
        self._csv: dict[tuple[str, int], csv._writer] = {}

    def _handle(self, source: str, month: int, suffix: str) -> IO[str]:
        key = (source, month)
        handle = self._handles.get(key)
        if handle is None:
            folder = self.landing / source / f"dt={self.deliveries[month].isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{self.chunk:05d}.{suffix}"
            if self.compress and suffix == "jsonl":
                # level 6 (gzip's own default): 9 costs 3.4x the time for 7% less
                raw = gzip.GzipFile(folder / (name + ".gz"), "wb", compresslevel=6, mtime=0)
                handle = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
            else:
                handle = open(folder / name, "w", encoding="utf-8", newline="")
            self._handles[key] = handle
        return handle

    def json_line(self, source: str, month: int, record: dict) -> None:
        # a re-delivered line goes to the next month's delivery, never to a refresh or a late one
        for target_month, line in self.defects.plant_json(source, month, record, self.monthly):
            self._handle(source, target_month, "jsonl").write(line + "\n")

    def csv_row(self, source: str, month: int, row: list) -> None:
        key = (source, month)
        writer = self._csv.get(key)
        if writer is None:
            writer = csv.writer(self._handle(source, month, "csv"), lineterminator="\n")
            writer.writerow(CSV_SOURCES[source])
            self._csv[key] = writer
        for out_row in self.defects.plant_csv(source, row):
            writer.writerow(out_row)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()


class MonthWriter:
    """Emits one subject's records for one month (all sources)."""

    def __init__(self, out: ChunkWriter, rng: random.Random, subject: Subject, month: int,
                 month_start: date, delivery: date, options: GeneratorOptions | None = None) -> None:
        self.out, self.rng, self.s, self.m = out, rng, subject, month
        self.start = month_start
        self.ym = month_start.strftime("%Y%m")
        self.days = calendar.monthrange(month_start.year, month_start.month)[1]
        self.delivery = delivery
        self.last_day = self.ym + f"{self.days:02d}"
        self._tran = 0
        # the real shapes draw from their own stream, so the records of the defaults never change
        self.options = options
        self.shapes = random.Random(f"{options.seed if options else 0}:shapes:{subject.index}:{month}")
        self._state: list[tuple[str, dict]] = []  # (source, line) of the state APIs, for a refresh
        months = options.months if options else 0
        self.card_delivery = month + 2 * months if options and self.shapes.random() < options.late_share else month

    # envelope ----------------------------------------------------------------
    def _envelope(self, org: str, api: str, request: dict, response: dict,
                  lk: str | None = None, version: int = 1) -> dict:
        self._tran += 1
        rng = self.rng
        collected = (f"{self.delivery:%Y%m%d}0{rng.randint(1, 5)}"
                     f"{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}")
        return self._line(org, api, request, response, collected, lk, version)

    def _line(self, org: str, api: str, request: dict, response: dict, collected: str,
              lk: str | None = None, version: int = 1) -> dict:
        if api in STATE_APIS:
            self._state.append((api.split(".")[0], {"org": org, "api": api, "request": request,
                                                    "response": response, "lk": lk, "version": version}))
        return {
            "link_key": lk or self.s.link_key, "key_version": version, "org_code": org,
            "api": api,
            "x_api_tran_id": f"{org}M{self.m:02d}{self.s.index:08d}{self._tran:04d}",
            "collected_at": collected, "request": request,
            "response": {"rsp_code": codes.SUCCESS_RSP_CODE, "rsp_msg": codes.SUCCESS_RSP_MSG,
                         **response},
        }

    def refresh(self) -> None:
        """A second collection of the month's state (weekly scheduled transmission), delivered a week later."""
        if not self.options or not self._state or self.shapes.random() >= self.options.refresh_share:
            return
        day = self.delivery + timedelta(days=REFRESH_DAYS)
        states, self._state = self._state, []
        for source, call in states:
            self._tran += 1
            collected = f"{day:%Y%m%d}0{self.shapes.randint(1, 5)}{self.shapes.randint(0, 59):02d}00"
            line = self._line(call["org"], call["api"], call["request"], call["response"], collected,
                              call["lk"], call["version"])
            self.out.json_line(source, self.m + self.options.months, line)
        self._state = []

    def _moment(self, day: int | None = None, hours: tuple[int, int] = (7, 23)) -> str:
        rng = self.rng
        day = day or rng.randint(1, self.days)
        return (f"{self.ym}{min(day, self.days):02d}{rng.randint(*hours):02d}"
                f"{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}")

    # bank --------------------------------------------------------------------
    def bank(self) -> None:
        s, rng, org = self.s, self.rng, self.s.bank_org
        accounts = s.accounts
        self.out.json_line("bank", self.m, self._envelope(org, "bank.accounts", {}, {
            "account_cnt": len(accounts),
            "account_list": [{"account_num": a.num, "is_consent": True, "seqno": i + 1,
                              "currency_code": "KRW", "prod_name": a.prod_name,
                              "is_minus": a.is_minus, "account_type": a.account_type,
                              "account_status": "01"} for i, a in enumerate(accounts)],
        }))
        main = accounts[0]
        savings = [a for a in accounts[1:] if a.account_type in codes.DEPOSIT_ACCOUNT_TYPES]
        loans = [a for a in accounts if a.account_type in codes.LOAN_ACCOUNT_TYPES]
        movements: list[tuple[str, str, float, str, str]] = []  # (dtime, type, amount, class, memo)
        ct = s.ctype
        if ct.income_kind == "salary":
            movements.append((self._moment(25, (9, 11)), "01", s.income * rng.uniform(0.97, 1.03),
                              "입금", "급여"))
            if self.start.month in (1, 7) and rng.random() < 0.6:
                movements.append((self._moment(25, (9, 11)), "01", s.income * rng.uniform(0.5, 1.5),
                                  "입금", "상여금"))
        elif ct.income_kind == "pension":
            movements.append((self._moment(25, (9, 10)), "01", s.income * 0.7, "입금", "국민연금"))
            movements.append((self._moment(20, (9, 10)), "01", s.income * 0.3, "입금", "기초연금"))
        elif ct.income_kind == "allowance":
            movements.append((self._moment(rng.randint(1, 10)), "01", s.income * rng.uniform(0.4, 0.8),
                              "입금", "용돈"))
            if rng.random() < 0.6:
                movements.append((self._moment(10, (9, 12)), "01", s.income * rng.uniform(0.3, 0.7),
                                  "입금", "아르바이트급여"))
        else:  # gig: many irregular settlements
            pieces = max(3, _poisson(rng, 9))
            weights = [rng.random() ** 2 for _ in range(pieces)]
            total = s.income * math.exp(rng.gauss(0, 0.35))
            for w in weights:
                movements.append((self._moment(), "01", total * w / sum(weights), "입금",
                                  rng.choice(("카드매출정산", "배달대행정산", "플랫폼정산", "매출입금"))))
        for _ in range(_poisson(rng, 1.2)):
            movements.append((self._moment(), "01", rng.lognormvariate(math.log(150_000), 0.9),
                              "입금", "이체입금"))
        if s.last_card_total:
            movements.append((self._moment(14, (6, 8)), "02", s.last_card_total, "출금", "카드대금"))
        telecom_fee = sum(PLANS[line.plan][1] for line in s.lines)
        if telecom_fee:
            movements.append((self._moment(21, (6, 8)), "02", telecom_fee * 1.1, "출금", "KT통신요금"))
        for loan in loans:
            repay = loan.principal / 240 + loan.balance * loan.rate / 1200
            movements.append((self._moment(rng.choice((5, 10, 15)), (6, 8)), "02", repay, "출금",
                              "대출이자상환"))
        if ct.income_kind != "allowance":
            movements.append((self._moment(rng.randint(20, 28), (6, 9)), "02",
                              rng.uniform(120_000, 380_000), "출금", "관리비"))
        if savings:
            movements.append((self._moment(26, (8, 9)), "02", s.income * rng.uniform(0.08, 0.25),
                              "출금", "적금이체"))
        for _ in range(_poisson(rng, ct.transfers_out)):
            movements.append((self._moment(), "02",
                              rng.lognormvariate(math.log(max(40_000, s.income * 0.04)), 0.8),
                              "출금", rng.choice(("이체", "송금", "모임통장이체"))))
        for _ in range(_poisson(rng, 1.5 if ct.name == "senior" else 0.6)):
            movements.append((self._moment(), "02", rng.choice((50_000, 100_000, 200_000, 300_000)),
                              "출금", "ATM출금"))
        if self.start.month in (3, 6, 9, 12):
            movements.append((self._moment(self.days, (2, 3)), "03", max(10, main.balance * 0.001),
                              "이자", "예금이자"))
        movements.sort()
        items = []
        balance = main.balance
        for dtime, ttype, amount, tclass, memo in movements:
            amount = round(amount)
            if ttype == "02":
                if balance - amount < 0 and not main.is_minus:
                    amount = max(0, round(balance * rng.uniform(0.3, 0.9)))
                    if amount == 0:
                        continue
                balance -= amount
            else:
                balance += amount
            main.seq += 1
            items.append({"trans_dtime": dtime, "trans_no": f"{self.ym}{main.seq:05d}",
                          "trans_type": ttype, "trans_class": tclass, "currency_code": "KRW",
                          "trans_amt": _amt(amount), "balance_amt": _amt(max(0, balance)),
                          "paid_in_cnt": 0, "trans_memo": memo})
        main.balance = max(0.0, balance)
        self._deposit(org, main, items)
        for sav in savings:
            paid = s.income * rng.uniform(0.08, 0.25)
            sav.balance += paid
            sav.seq += 1
            self._deposit(org, sav, [{
                "trans_dtime": self._moment(26, (9, 10)), "trans_no": f"{self.ym}{sav.seq:05d}",
                "trans_type": "01", "trans_class": "입금", "currency_code": "KRW",
                "trans_amt": _amt(paid), "balance_amt": _amt(sav.balance), "paid_in_cnt": sav.seq,
                "trans_memo": "적금납입"}])
        for loan in loans:
            loan.balance = max(0.0, loan.balance - loan.principal / 240)
            next_repay = (self.start + timedelta(days=self.days + 9)).strftime("%Y%m%d")
            self.out.json_line("bank", self.m, self._envelope(org, "bank.loan.detail",
                {"account_num": loan.num},
                {"balance_amt": _amt(loan.balance), "loan_principal": _amt(loan.principal),
                 "next_repay_date": next_repay, "last_offered_rate": f"{loan.rate:.3f}",
                 "repay_method": "02" if loan.account_type != "3400" else "01"}))

    def _deposit(self, org: str, account: Account, items: list[dict]) -> None:
        self.out.json_line("bank", self.m, self._envelope(org, "bank.deposit.detail",
            {"account_num": account.num},
            {"balance_amt": _amt(account.balance),
             "withdrawable_amt": _amt(account.balance * (1.0 if account.account_type == "1001" else 0.0)),
             "offered_rate": f"{account.rate:.5f}", "last_paid_in_cnt": account.seq}))
        self.out.json_line("bank", self.m, self._envelope(org, "bank.deposit.transactions",
            {"account_num": account.num, "from_dtime": f"{self.ym}01000000",
             "to_dtime": f"{self.last_day}235959"},
            {"trans_cnt": len(items), "trans_list": items}))

    # card --------------------------------------------------------------------
    def card(self) -> None:
        s, rng = self.s, self.rng
        if not s.cards:
            return
        ct = s.ctype
        cats = list(ct.categories)
        weights = list(ct.categories.values())
        overseas = rng.random() < ct.overseas_prob
        total = 0.0
        for card_no, card_id in enumerate(s.cards):
            count = _poisson(rng, ct.card_txns * s.spend_factor * (0.75 if card_no else 1.0)
                             / len(s.cards))
            items = []
            for _ in range(count):
                cat = "overseas" if overseas and rng.random() < 0.15 else rng.choices(cats, weights)[0]
                names, median = MERCHANTS[cat]
                name = rng.choice(names)
                if cat in BRANCHED:
                    name = f"{name} {rng.choice(BRANCHES)}점"
                amount = round(median * s.spend_factor * math.exp(rng.gauss(0, 0.6)), -1)
                approved = self._moment(hours=(8, 23))
                instalments = rng.random() < ct.install_prob and amount >= 100_000
                cancelled = rng.random() < 0.025
                items.append({
                    "approved_num": f"{rng.randrange(10**8):08d}",
                    "status": "02" if cancelled else "01",
                    "pay_type": "02" if instalments else "01",
                    "approved_dtime": approved,
                    "cancel_dtime": (approved[:8] + f"{min(23, int(approved[8:10]) + 1):02d}"
                                     + approved[10:]) if cancelled else None,
                    "merchant_name": name, "approved_amt": _amt(amount),
                    "total_install_cnt": rng.choice((2, 3, 6, 10, 12)) if instalments else 0,
                })
                if not cancelled:
                    total += amount
            items.sort(key=lambda item: item["approved_dtime"])
            self.out.json_line("card", self.card_delivery, self._envelope(s.card_org, "card.approvals",
                {"card_id": card_id, "from_date": f"{self.ym}01", "to_date": self.last_day},
                {"approved_cnt": len(items), "approved_list": items}))
        charge = s.last_card_total or total
        if self.options and self.shapes.random() < self.options.negative_bill_share:
            charge = -round(charge * self.shapes.uniform(0.02, 0.3), -1) - 10  # refunds over charges
        self.out.json_line("card", self.card_delivery, self._envelope(s.card_org, "card.bills", {}, {
            "bill_cnt": 1,
            "bill_list": [{"seqno": 1, "charge_amt": _signed_amt(charge) if charge < 0 else _amt(charge), "charge_day": "14",
                           "charge_month": self.ym, "paid_out_date": f"{self.ym}14"}],
        }))
        s.last_card_total = total

    # telecom -----------------------------------------------------------------
    def telecom(self) -> None:
        s, rng = self.s, self.rng
        if not s.lines:
            return
        lk, version, org = s.telecom_link_key, s.telecom_key_version, s.telecom_org
        silent = org == SILENT_OPERATOR  # delivers no payments and no micropayments
        ct = s.ctype
        self.out.json_line("telecom", self.m, self._envelope(org, "telecom.contracts", {}, {
            "telecom_cnt": len(s.lines),
            "telecom_list": [{"mgmt_id": line.mgmt_id, "is_consent": True,
                              "telecom_num": line.telecom_num, "type": "01", "status": "01"}
                             for line in s.lines],
        }, lk, version))
        bills, late = [], rng.random() < s.late_prob
        for line in s.lines:
            micro_items = []
            for _ in range(_poisson(rng, ct.micro_count)):
                pool = GAMING_MICROPAYMENTS if rng.random() < ct.micro_gaming else SUBSCRIPTION_MICROPAYMENTS
                merchant, title, median = MICROPAYMENTS[rng.choice(pool)]
                micro_items.append({"trans_date": self._moment()[:8],
                                    "trans_amt": _amt(round(median * math.exp(rng.gauss(0, 0.4)), -2)),
                                    "merchant_name": merchant, "trans_title": title})
            micro_items.sort(key=lambda item: item["trans_date"])
            micro_total = sum(float(item["trans_amt"]) for item in micro_items)
            device = {"premium": 58_000, "mid": 31_000, "budget": 12_000}[line.device_tier]
            charge = PLANS[line.plan][1] + micro_total + (device if line.tenure % 36 < 24 else 0)
            bills.append({"mgmt_id": line.mgmt_id, "charge_amt": _amt(charge),
                          "charge_date": f"{self.ym}{min(25, self.days)}"})
            paid = charge * (rng.uniform(0.0, 0.6) if late else 1.0)
            if silent:
                self._usage(line, lk, version)
                continue
            self.out.json_line("telecom", self.m, self._envelope(org, "telecom.payments",
                {"mgmt_id": line.mgmt_id, "from_month": self.ym, "to_month": self.ym},
                {"trans_cnt": 1, "trans_list": [{"trans_month": self.ym, "paid_amt": _amt(paid),
                                                 "pay_method": "01" if rng.random() < 0.8 else "02"}]},
                lk, version))
            self.out.json_line("telecom", self.m, self._envelope(org, "telecom.micropayments",
                {"mgmt_id": line.mgmt_id, "from_date": f"{self.ym}01", "to_date": self.last_day},
                {"trans_cnt": len(micro_items), "trans_list": micro_items}, lk, version))
            self._usage(line, lk, version)
        self.out.json_line("telecom", self.m, self._envelope(org, "telecom.bills",
            {"charge_month": self.ym}, {"bill_cnt": len(bills), "bill_list": bills}, lk, version))

    def _usage(self, line: PhoneLine, lk: str, version: int) -> None:
        s, rng, ct = self.s, self.rng, self.s.ctype
        plan_name, fee, network = PLANS[line.plan]
        jitter = math.exp(rng.gauss(0, 0.2))
        data_mb = ct.data_gb * 1024 * line.data_factor * jitter
        self.out.csv_row("telecom_usage", self.m, [
            lk, version, line.mgmt_id, self.ym, plan_name, fee, network,
            max(0, round(ct.voice_min * line.data_factor ** 0.3 * math.exp(rng.gauss(0, 0.3)))),
            max(0, round(ct.sms * math.exp(rng.gauss(0, 0.4)))),
            round(data_mb, 1),
            round(min(0.95, max(0.0, rng.gauss(ct.night_ratio, 0.06))), 3),
            _poisson(rng, 4.0) if rng.random() < ct.roaming_prob else 0,
            _poisson(rng, ct.finapp),
            line.device_tier, s.grade, line.tenure + self.m,
        ])

    def customer(self) -> None:
        s = self.s
        self.out.csv_row("customer", self.m, [s.link_key, 1, s.birth_year, s.gender,
                                              s.region_code, s.customer_since])


# -- the chunk worker and the driver ----------------------------------------------------------

@dataclass
class _ChunkResult:
    chunk: int
    records: Counter
    defects: Counter
    types: Counter
    consent_files: list[Path]


def _generate_chunk(args: tuple) -> _ChunkResult:
    chunk, first, last, options, link_secrets, landing, truth_dir, tmp_dir = args
    deliveries = delivery_dates(options)
    starts = month_starts(options.start_month, options.months)
    defect_rng = random.Random(f"{options.seed}:defects:{chunk}")
    planter = planted.DefectPlanter(defect_rng, options.defect_rate)
    writer = ChunkWriter(landing, chunk, writer_deliveries(options), options.compress, planter, options.months)
    types: Counter = Counter()
    consent_by_month: list[list[str]] = [[] for _ in range(options.months)]
    first_delivery_moment = [d.strftime("%Y%m%d") + "000000" for d in deliveries]
    truth = open(truth_dir / f"subjects-{chunk:05d}.csv", "w", encoding="utf-8", newline="")
    truth_writer = csv.writer(truth, lineterminator="\n")
    try:
        for index in range(first, last):
            subject = make_subject(options.seed, index, options, link_secrets)
            types[subject.ctype.name] += 1
            truth_writer.writerow([subject.link_key, subject.ctype.name, int(subject.has_bank),
                                   int(bool(subject.cards)), int(bool(subject.lines)),
                                   subject.telecom_key_version])
            rng = random.Random(f"{options.seed}:months:{index}")
            for month in range(options.months):
                mw = MonthWriter(writer, rng, subject, month, starts[month], deliveries[month], options)
                if subject.has_bank:
                    mw.customer()
                    mw.bank()
                mw.card()
                mw.telecom()
                if options.real_shapes:
                    mw.refresh()
            for event in consent_history(subject, rng, options.start_month, deliveries[-1]):
                month = next((i for i, moment in enumerate(first_delivery_moment)
                              if event["event_time"] < moment), options.months - 1)
                consent_by_month[month].append(
                    f"{_consent_order(event)}\t{json.dumps(event, ensure_ascii=False)}\n")
    finally:
        writer.close()
        truth.close()
    consent_files = []
    for month, lines in enumerate(consent_by_month):  # each chunk file sorted, for a k-way merge
        path = tmp_dir / f"consent-{month:03d}-{chunk:05d}.tsv"
        path.write_text("".join(sorted(lines)), encoding="utf-8")
        consent_files.append(path)
    return _ChunkResult(chunk, planter.records, planter.defects, types, consent_files)


def _consent_order(event: dict) -> str:
    return f"{event['event_time']}|{event['link_key']}|{event['purpose']}|{event['event_type']}"


def _write_consent(landing: Path, deliveries: list[date], results: list[_ChunkResult]) -> int:
    """Merge the chunks' sorted consent files per delivery (streaming), number and chain them."""
    prev_hash, next_id = GENESIS_HASH, 1
    for month, dt in enumerate(deliveries):
        handles = [open(r.consent_files[month], encoding="utf-8") for r in results]
        try:
            events = (json.loads(line.split("\t", 1)[1]) for line in heapq.merge(*handles))
            folder = landing / "consent" / f"dt={dt.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "events.jsonl", "w", encoding="utf-8", newline="") as out:
                for event in chain(_numbered(events, next_id), prev_hash):
                    out.write(json.dumps(event, ensure_ascii=False) + "\n")
                    prev_hash = event["hash"]
                    next_id += 1
        finally:
            for handle in handles:
                handle.close()
    return next_id - 1


def _numbered(events: Iterator[dict], first_id: int) -> Iterator[dict]:
    for number, event in enumerate(events, start=first_id):
        event["event_id"] = f"c-{number:09d}"
        yield event


#: the synthetic holders, in the MyData ``aN(10)`` shape (bank codes: the 3-digit Korean bank code
#: padded with zeros); registered in the lake's holder registry by ``generate``
BANK_ORGS: dict[str, str] = {
    "0040000000": "KB국민은행", "0880000000": "신한은행", "0200000000": "우리은행",
    "0810000000": "하나은행", "0110000000": "NH농협은행", "0900000000": "카카오뱅크",
    "0920000000": "토스뱅크",
}
CARD_ORGS: dict[str, str] = {
    "D100000001": "신한카드", "D100000002": "삼성카드", "D100000003": "현대카드",
    "D100000004": "KB국민카드", "D100000005": "롯데카드", "D100000006": "우리카드",
}
TELECOM_ORGS: dict[str, str] = {"T100000001": "KT", "T100000002": "알뜰폰통신"}
#: the operator that delivers no payments and no micropayments (GeneratorOptions.silent_operator_share)
SILENT_OPERATOR = "T100000002"
#: the APIs whose answers are state (an account list, a balance, a loan, the lines), collected again on refresh
STATE_APIS = frozenset({"bank.accounts", "bank.deposit.detail", "bank.loan.detail", "telecom.contracts"})
ORG_CODES: dict[str, dict[str, str]] = {"bank": BANK_ORGS, "card": CARD_ORGS, "telecom": TELECOM_ORGS}


def register_holders(lake: Lake, since: date) -> None:
    """The generator's holders join the lake's registry (the embedded file), as an operator would."""
    from mydata.config import Settings
    from mydata.holders import Holder, HolderRegistry

    registry = HolderRegistry.open(Settings(data_root=lake.root), env={})
    for source, orgs in ORG_CODES.items():
        for org_code, name in orgs.items():
            if registry.get(source, org_code) is None:
                registry.add(Holder(source, org_code, name, since))


def generate(out: Path, options: GeneratorOptions, keystore: KeyStore) -> GenerationSummary:
    """Write a complete landing zone (with ``_SUCCESS`` markers) and its ground truth under ``out``."""
    lake = Lake(out)
    landing, truth_dir = lake.landing, lake.truth
    if landing.exists() and any(landing.iterdir()):
        raise UsageError(f"{landing} already holds deliveries; pick an empty --out or remove it")
    deliveries = delivery_dates(options)
    link_secrets = {1: keystore.link_secret(1)}
    if options.key_mismatch_rate > 0 and 2 in keystore.link_versions:
        link_secrets[2] = keystore.link_secret(2)
    tmp_dir = out / ".generate-tmp"
    for folder in (landing, truth_dir, tmp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    chunks = [(i, first, min(first + options.chunk_size, options.subjects), options, link_secrets,
               landing, truth_dir, tmp_dir)
              for i, first in enumerate(range(0, options.subjects, options.chunk_size))]
    workers = max(1, min(options.workers, len(chunks), os.cpu_count() or 1))
    if workers == 1:
        results = [_generate_chunk(args) for args in chunks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_generate_chunk, chunks))
    consent_events = _write_consent(landing, deliveries, results)
    shutil.rmtree(tmp_dir)

    for source_dir in landing.iterdir():
        for delivery in source_dir.iterdir():
            (delivery / SUCCESS_MARKER).touch()
    records, defects, types = Counter(), Counter(), Counter()
    for result in results:
        records.update(result.records)
        defects.update(result.defects)
        types.update(result.types)
    records["consent"] = consent_events
    _merge_truth(truth_dir, len(chunks))
    register_holders(lake, options.start_month)
    summary = GenerationSummary(
        out=out, subjects=options.subjects, deliveries=[d.isoformat() for d in deliveries],
        records=dict(sorted(records.items())),
        defects={source: dict(sorted((k, n) for (s, k), n in defects.items() if s == source))
                 for source in sorted({s for s, _ in defects})},
        consent_events=consent_events, types=dict(sorted(types.items())),
    )
    options_doc = {k: (v.isoformat() if isinstance(v, date) else v)
                   for k, v in asdict(options).items() if k not in ("workers", "chunk_size")}
    (truth_dir / "generation.json").write_text(json.dumps({
        "options": options_doc, "deliveries": summary.deliveries, "records": summary.records,
        "defects": summary.defects, "total_records": summary.total_records,
        "total_defects": summary.total_defects, "defect_rate": round(summary.defect_rate, 6),
        "types": summary.types,
    }, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return summary


def _merge_truth(truth_dir: Path, chunks: int) -> None:
    with open(truth_dir / "subjects.csv", "w", encoding="utf-8", newline="") as out:
        out.write("link_key,latent_type,has_bank,has_card,has_telecom,telecom_key_version\n")
        for chunk in range(chunks):
            part = truth_dir / f"subjects-{chunk:05d}.csv"
            with open(part, encoding="utf-8") as handle:
                shutil.copyfileobj(handle, out)
            part.unlink()


def iter_landing_files(landing: Path) -> Iterator[Path]:
    for path in sorted(landing.rglob("*")):
        if path.is_file():
            yield path
