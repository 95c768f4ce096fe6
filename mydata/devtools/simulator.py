"""A data holder's MyData API, simulated on 127.0.0.1 for tests and benchmarks.

It serves one holder's records of a generated landing zone (the synthetic generator is the data
source) through the standard's paths: OAuth2 client-credential tokens bound to a subject, lists
in pages (``limit``, ``next_page``), ``rsp_code`` "00000" or the holder's error code. ``Faults``
switch on what real holders do: expired tokens, 429 with ``Retry-After``, 5xx bursts, slow
answers, malformed bodies, wrong counts, failures in the middle of a list, and subjects whose
collection always fails. Every successful answer is recorded in ``served``, so a test can compare
what landed with what was served.
"""
from __future__ import annotations

import collections
import gzip
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from mydata.collect import NOT_FOUND_RSP_CODE, PATHS, TOKEN_PATH
from schemas import codes
from schemas.landing import APIS

#: the rsp_code of a subject whose collection the holder refuses (a switch of ``Faults``)
REFUSED_RSP_CODE = "40301"
#: the rsp_codes of a 5xx burst and of a failure in the middle of a list
SERVER_ERROR_RSP_CODE, MID_PAGE_RSP_CODE = "50001", "50002"


@dataclass(frozen=True)
class Faults:
    """Deterministic faults, by call number (every ``n``-th call; 0 is off)."""

    expired_token_every: int = 0
    throttle_every: int = 0
    retry_after: float = 0.02
    server_error_every: int = 0
    server_error_burst: int = 1
    latency: float = 0.0
    malformed_every: int = 0
    wrong_count_every: int = 0
    mid_page_failure_every: int = 0
    #: link keys whose every data call answers REFUSED_RSP_CODE (a failed collection, however often asked)
    refused_subjects: frozenset[str] = frozenset()


def _records(landing: Path, source: str, org_code: str, dt: str) -> dict[tuple, dict]:
    """(link_key, api, request as sorted JSON) -> response, for the holder's good lines of a delivery."""
    found = {}
    for path in sorted((landing / source / f"dt={dt}").glob("*.jsonl*")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    key = (record["link_key"], record["api"], json.dumps(record["request"], sort_keys=True))
                    served = record["org_code"] == org_code and record["response"]["rsp_code"] == codes.SUCCESS_RSP_CODE
                except (ValueError, KeyError, TypeError):
                    continue  # a planted defect: not something a holder would serve
                if served and isinstance(key[0], str) and key[1] in APIS:
                    found[key] = record["response"]
    return found


def busiest_holder(delivery: Path) -> str:
    """The org code with the most lines in a delivery (a planted defect's line is skipped)."""
    orgs: collections.Counter = collections.Counter()
    for path in delivery.glob("*.jsonl"):
        for line in open(path, encoding="utf-8", errors="replace"):
            try:
                orgs[json.loads(line).get("org_code")] += 1
            except (ValueError, AttributeError):
                continue
    return orgs.most_common(1)[0][0]


@dataclass
class HolderSimulator:
    """One holder's API over the records of ``source`` delivered on ``dt`` in a generated landing zone."""

    landing: Path
    source: str
    org_code: str
    dt: str
    client_id: str = "operator"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    token_lifetime: float = 60.0
    faults: Faults = field(default_factory=Faults)
    served: list[dict] = field(default_factory=list)  # every 00000 answer: link_key, api, request, response
    calls: int = 0

    def __post_init__(self) -> None:
        self.records = _records(self.landing, self.source, self.org_code, self.dt)
        self.subjects = sorted({key[0] for key in self.records})
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (subject, expiry)
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> HolderSimulator:
        handler = type("Handler", (_Handler,), {"simulator": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> HolderSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what a call gets --------------------------------------------------------------------------

    def issue_token(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = (form.get("subject", ""), time.monotonic() + self.token_lifetime)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime)}

    def answer(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, dict | bytes, dict]:
        """(HTTP status, body or raw bytes, headers) of one data call."""
        with self.lock:
            self.calls += 1
            n = self.calls
        f = self.faults
        if f.latency:
            time.sleep(f.latency)
        subject, expiry = self.tokens.get(authorization.removeprefix("Bearer "), (None, 0.0))
        if subject is None or time.monotonic() > expiry or (f.expired_token_every and n % f.expired_token_every == 0):
            return 401, {"rsp_code": "40101", "rsp_msg": "invalid or expired token"}, {}
        if f.throttle_every and n % f.throttle_every == 0:
            return 429, {"rsp_code": "42901", "rsp_msg": "too many requests"}, {"Retry-After": f"{f.retry_after:g}"}
        if f.server_error_every and n % f.server_error_every < f.server_error_burst:
            return 503, {"rsp_code": SERVER_ERROR_RSP_CODE, "rsp_msg": "holder unavailable"}, {}
        api = next((a for a, p in PATHS.items() if p == path), None)
        if api is None:
            return 404, {"rsp_code": "40400", "rsp_msg": "no such API"}, {}
        if subject in f.refused_subjects:
            return 200, {"rsp_code": REFUSED_RSP_CODE, "rsp_msg": "transmission request not valid"}, {}
        if f.malformed_every and n % f.malformed_every == 0:  # cut short: nothing was served
            return 200, b'{"rsp_code": "00000", "rsp_msg": "\xec\xa0\x95', {}
        status, body = self._page(subject, api, query, n)
        return status, body, {}

    def _page(self, subject: str, api: str, query: dict[str, str], n: int) -> tuple[int, dict]:
        if api == "card.cards":  # discovery: the card ids the holder's approvals name
            cards = sorted({json.loads(k[2])["card_id"] for k in self.records if k[0] == subject
                            and k[1] == "card.approvals"})
            return 200, {"rsp_code": codes.SUCCESS_RSP_CODE, "rsp_msg": codes.SUCCESS_RSP_MSG,
                         "card_cnt": len(cards), "card_list": [{"card_id": c} for c in cards]}
        spec = APIS[api]
        request = {k: query[k] for k in spec.request_fields if k in query}
        response = self.records.get((subject, api, json.dumps(request, sort_keys=True)))
        if response is None and not spec.is_list:
            return 200, {"rsp_code": NOT_FOUND_RSP_CODE, "rsp_msg": "no such resource"}
        full = response or {"rsp_code": codes.SUCCESS_RSP_CODE, "rsp_msg": codes.SUCCESS_RSP_MSG,
                            spec.count_field: 0, spec.list_field: []}
        if not spec.is_list:
            self._served(subject, api, request, full)
            return 200, full
        start, limit = int(query.get("next_page") or 0), int(query.get("limit") or 500)
        if start and self.faults.mid_page_failure_every and n % self.faults.mid_page_failure_every == 0:
            return 500, {"rsp_code": MID_PAGE_RSP_CODE, "rsp_msg": "failed in the middle of a list"}
        items = full[spec.list_field][start:start + limit]
        page = {**full, spec.count_field: len(items), spec.list_field: items}
        if start + limit < len(full[spec.list_field]):
            page["next_page"] = str(start + limit)
        if self.faults.wrong_count_every and n % self.faults.wrong_count_every == 0:
            return 200, {**page, spec.count_field: len(items) + 1}
        self._served(subject, api, request, page)
        return 200, page

    def _served(self, subject: str, api: str, request: dict, body: dict) -> None:
        with self.lock:
            self.served.append({"link_key": subject, "api": api, "request": request, "response": body})


class _Handler(BaseHTTPRequestHandler):
    simulator: HolderSimulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the tests' output stays readable
        pass

    def _send(self, status: int, body: dict | bytes, headers: dict[str, str]) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if urlparse(self.path).path != TOKEN_PATH:
            self._send(404, {"error": "not_found"}, {})
            return
        self._send(*self.simulator.issue_token(form), {})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self._send(*self.simulator.answer(url.path, query, self.headers.get("Authorization", "")))
