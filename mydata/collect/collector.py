"""Collect one holder's records for a delivery date from its MyData API into the landing zone.

For each subject: an OAuth2 token bound to the subject (refreshed before it expires, and again
on a 401), the source's discovery calls (accounts, cards, contracts), then every data API for the
month before the delivery date, each list followed through ``next_page``. Calls carry a fresh
``x-api-tran-id`` in the standard's form and keep to the holder's concurrency and rate limits; a
429 waits its ``Retry-After``, and a 5xx, a malformed body or a count that is not its list's is
retried with exponential backoff and jitter. An answer that stays bad, or any ``rsp_code`` other
than "00000", is landed as a failed collection, as ingest expects it.

The holder's file is written aside and renamed into ``landing/<source>/dt=<date>/<org_code>.jsonl``
when it is complete; ``mark_complete`` writes the delivery's ``_SUCCESS`` last. A holder whose
file is there is not collected again unless asked. Tokens and credentials are never written.
"""
from __future__ import annotations

import calendar
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mydata.collect import PATHS, TOKEN_PATH
from mydata.config import SESSION_TIME_ZONE
from schemas import codes
from schemas.landing import APIS

#: rsp_codes the collector gives an answer that never came right (the holder's own code is kept when it sent one)
GAVE_UP = {429: "C0429", 500: "C0500", "malformed": "C0400", "count": "C0409", "unreachable": "C0503"}


@dataclass(frozen=True)
class Limits:
    """What one holder allows, and how patiently it is asked."""

    concurrency: int = 8
    calls_per_second: float = 100.0
    attempts: int = 6
    backoff: float = 0.05  # seconds before the second attempt; doubling after, with jitter
    page_size: int = 100
    token_margin: float = 10.0  # refresh a token this many seconds before it expires
    timeout: float = 30.0


@dataclass(frozen=True)
class HolderConnection:
    """Where and how to reach one holder: from an Airflow connection, never from a file."""

    source: str
    org_code: str
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    limits: Limits = Limits()


@dataclass
class Tally:
    """What a collection did, for its manifest and report."""

    subjects: int = 0
    calls: int = 0
    pages: int = 0
    retries: int = 0
    throttles: int = 0
    token_refreshes: int = 0
    bytes: int = 0
    failures: Counter = field(default_factory=Counter)  # rsp_code -> failed collections landed
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict:
        return {"subjects": self.subjects, "calls": self.calls, "pages": self.pages, "retries": self.retries,
                "throttles": self.throttles, "token_refreshes": self.token_refreshes, "bytes": self.bytes,
                "failures": dict(self.failures)}


class RateLimit:
    """At most ``per_second`` calls a second across threads (calls are spaced, not bunched)."""

    def __init__(self, per_second: float) -> None:
        self.interval, self.next = 1.0 / per_second, time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            at, self.next = max(now, self.next), max(now, self.next) + self.interval
        if at > now:
            time.sleep(at - now)


def period(dt: date) -> dict[str, str]:
    """The request window of a delivery: the calendar month before its date, in each API's form."""
    year, month = (dt.year, dt.month - 1) if dt.month > 1 else (dt.year - 1, 12)
    last = calendar.monthrange(year, month)[1]
    ym = f"{year}{month:02d}"
    return {"from_dtime": f"{ym}01000000", "to_dtime": f"{ym}{last}235959", "from_date": f"{ym}01",
            "to_date": f"{ym}{last}", "from_month": ym, "to_month": ym, "charge_month": ym}


class Client:
    """Calls to one holder, with its tokens, limits and retries; ``tally`` counts what happened."""

    def __init__(self, holder: HolderConnection, limits: Limits, tally: Tally, operator_code: str) -> None:
        self.holder, self.limits, self.tally, self.operator_code = holder, limits, tally, operator_code
        self.rate = RateLimit(limits.calls_per_second)
        self.tokens: dict[str, tuple[str, float]] = {}  # subject -> (token, expiry); in memory only

    def token(self, subject: str, renew: bool = False) -> str:
        cached = self.tokens.get(subject)
        if cached and not renew and time.monotonic() < cached[1] - self.limits.token_margin:
            return cached[0]
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.holder.client_id,
                                       "client_secret": self.holder.client_secret, "subject": subject}).encode()
        with urllib.request.urlopen(urllib.request.Request(self.holder.base_url + TOKEN_PATH, data=form),
                                    timeout=self.limits.timeout) as answer:  # noqa: S310 - the holder's URL
            granted = json.loads(answer.read())
        self.tokens[subject] = (granted["access_token"], time.monotonic() + float(granted["expires_in"]))
        self.tally.add(token_refreshes=1)
        return granted["access_token"]

    def tran_id(self) -> str:
        """x-api-tran-id: the requester's org code, 'M', 14 characters unique to the call (AN(25))."""
        return f"{self.operator_code}M{secrets.token_hex(7).upper()}"

    def _get(self, subject: str, api: str, query: dict[str, str], tran_id: str, renew: bool) -> tuple[int, bytes, dict]:
        self.rate.wait()
        url = f"{self.holder.base_url}{PATHS[api]}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token(subject, renew)}",
                                                       "x-api-tran-id": tran_id})
        self.tally.add(calls=1)
        try:
            with urllib.request.urlopen(request, timeout=self.limits.timeout) as answer:  # noqa: S310
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read(), dict(refused.headers)
        except OSError:
            return 0, b"", {}

    def call(self, subject: str, api: str, query: dict[str, str]) -> tuple[str, dict]:
        """One call until it answers well or the attempts run out: (x-api-tran-id, response body)."""
        tran_id, renew, gave_up = self.tran_id(), False, GAVE_UP["unreachable"]
        spec = APIS.get(api)
        for attempt in range(self.limits.attempts):
            status, raw, headers = self._get(subject, api, query, tran_id, renew)
            self.tally.add(bytes=len(raw))
            renew = status == 401
            body = _json(raw)
            if status == 200 and body is not None:
                wrong = (spec is not None and spec.is_list and body.get("rsp_code") == codes.SUCCESS_RSP_CODE
                         and body.get(spec.count_field) != len(body.get(spec.list_field) or []))
                if not wrong:
                    return tran_id, body
                gave_up = GAVE_UP["count"]
            elif status == 200:
                gave_up = GAVE_UP["malformed"]
            elif status == 429:
                self.tally.add(throttles=1)
                gave_up = GAVE_UP[429]
            elif status >= 500:
                gave_up = (body or {}).get("rsp_code") or GAVE_UP[500]
            elif status not in (0, 401):
                return tran_id, body or {"rsp_code": f"C0{status}", "rsp_msg": "refused by the holder"}
            if attempt + 1 < self.limits.attempts:
                self.tally.add(retries=1)
                time.sleep(_pause(headers, self.limits.backoff * 2 ** attempt))
        return tran_id, {"rsp_code": gave_up, "rsp_msg": f"no good answer after {self.limits.attempts} attempts"}

    def pages(self, subject: str, api: str, request: dict[str, str]) -> list[tuple[str, str, dict]]:
        """Every page of a list (or the one answer of a detail API): (x-api-tran-id, collected at, body)."""
        found, next_page = [], None
        while True:
            query = {**request, **({"limit": str(self.limits.page_size)} if APIS[api].is_list else {}),
                     **({"next_page": next_page} if next_page else {})}
            tran_id, body = self.call(subject, api, query)
            found.append((tran_id, datetime.now(ZoneInfo(SESSION_TIME_ZONE)).strftime("%Y%m%d%H%M%S"), body))
            self.tally.add(pages=1)
            next_page = body.get("next_page") if body.get("rsp_code") == codes.SUCCESS_RSP_CODE else None
            if not next_page:
                return found


def _json(raw: bytes) -> dict | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _pause(headers: dict, backoff: float) -> float:
    """``Retry-After`` when the holder says it, else the backoff with full jitter."""
    said = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(said)) if said is not None else random.uniform(backoff / 2, backoff)
    except ValueError:
        return backoff


def _listed(pages: list[tuple[str, str, dict]], api: str) -> list[dict]:
    spec = APIS[api]
    return [item for _, _, body in pages if body.get("rsp_code") == codes.SUCCESS_RSP_CODE
            for item in body.get(spec.list_field) or []]


def subject_calls(client: Client, source: str, subject: str, window: dict[str, str]) -> list[tuple[str, dict, list]]:
    """(api, request, pages) of every call for one subject of ``source``: discovery first."""
    def take(api: str, **request: str) -> tuple[str, dict, list]:
        return api, request, client.pages(subject, api, request)

    def months(api: str) -> dict[str, str]:
        return {f: window[f] for f in APIS[api].request_fields if f in window}

    if source == "bank":
        accounts = take("bank.accounts")
        done = [accounts]
        for account in _listed(accounts[2], "bank.accounts"):
            number = {"account_num": account["account_num"]}
            if account.get("account_type") in codes.DEPOSIT_ACCOUNT_TYPES:
                done += [take("bank.deposit.detail", **number),
                         take("bank.deposit.transactions", **number, **months("bank.deposit.transactions"))]
            elif account.get("account_type") in codes.LOAN_ACCOUNT_TYPES:
                done.append(take("bank.loan.detail", **number))
        return done
    if source == "card":
        _, cards = client.call(subject, "card.cards", {})
        if cards.get("rsp_code") != codes.SUCCESS_RSP_CODE:  # not a landing API: counted, not landed
            client.tally.failures[f"card.cards {cards.get('rsp_code')}"] += 1
        ids = [c["card_id"] for c in cards.get("card_list") or []] if cards.get("rsp_code") == codes.SUCCESS_RSP_CODE else []
        return [*(take("card.approvals", card_id=i, **months("card.approvals")) for i in ids), take("card.bills")]
    contracts = take("telecom.contracts")
    lines = [c["mgmt_id"] for c in _listed(contracts[2], "telecom.contracts")]
    return [contracts, take("telecom.bills", **months("telecom.bills")),
            *(take(api, mgmt_id=m, **months(api)) for m in lines for api in ("telecom.payments", "telecom.micropayments"))]


def collect(landing: Path, holder: HolderConnection, dt: date, subjects: list[tuple[str, int]],
            limits: Limits | None = None, operator_code: str = "MYDATAOP01", refetch: bool = False) -> dict:
    """Collect ``subjects`` (link key, key version) from ``holder`` for the delivery of ``dt`` into
    ``landing/<source>/dt=<dt>/<org_code>.jsonl``, written aside and renamed when complete; a file
    already there is kept unless ``refetch``. ``limits``: the holder's own unless given. Returns
    what the collection did."""
    limits = limits or holder.limits
    target = landing / holder.source / f"dt={dt.isoformat()}" / f"{holder.org_code}.jsonl"
    if target.exists() and not refetch:
        return {"file": str(target), "skipped": True}
    aside = landing / holder.source / "_collecting" / f"dt={dt.isoformat()}"
    for stale in aside.glob(f"{holder.org_code}.*.jsonl"):  # a killed run's: never visible to ingest
        stale.unlink()
    aside.mkdir(parents=True, exist_ok=True)
    partial = aside / f"{holder.org_code}.{secrets.token_hex(4)}.jsonl"
    tally, window, started = Tally(subjects=len(subjects)), period(dt), time.monotonic()
    client = Client(holder, limits, tally, operator_code)
    with ThreadPoolExecutor(limits.concurrency) as pool, open(partial, "w", encoding="utf-8") as out:
        collected = pool.map(lambda s: subject_calls(client, holder.source, s[0], window), subjects)
        for (subject, version), calls in zip(subjects, collected):
            for api, request, pages in calls:
                for tran_id, at, body in pages:
                    if body.get("rsp_code") != codes.SUCCESS_RSP_CODE:
                        tally.failures[body.get("rsp_code")] += 1
                    out.write(json.dumps({"link_key": subject, "key_version": version, "org_code": holder.org_code,
                                          "api": api, "x_api_tran_id": tran_id, "collected_at": at,
                                          "request": request, "response": body}, ensure_ascii=False) + "\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial.replace(target)
    return {"file": str(target), "skipped": False, "seconds": round(time.monotonic() - started, 3), **tally.as_dict()}


def mark_complete(landing: Path, source: str, dt: date) -> Path:
    """The delivery of ``source`` on ``dt`` is complete: ``_SUCCESS``, written last."""
    marker = landing / source / f"dt={dt.isoformat()}" / "_SUCCESS"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return marker
