"""Shared by the collection tests: every fault on, and what a landed or served call is."""
from __future__ import annotations

import json
from collections.abc import Iterable

from mydata.collect.collector import GAVE_UP
from mydata.devtools.simulator import MID_PAGE_RSP_CODE, REFUSED_RSP_CODE, SERVER_ERROR_RSP_CODE, Faults

#: every fault on, at rates a few thousand calls meet many times
FAULTS = Faults(expired_token_every=13, throttle_every=17, server_error_every=19, server_error_burst=2,
                malformed_every=23, wrong_count_every=29, mid_page_failure_every=7, latency=0.001)

#: the rsp_codes a failed collection may land with: a refusal, or a call whose every attempt met a
#: fault (the holder's last code, or the collector's own)
FAILED_CODES = {REFUSED_RSP_CODE, SERVER_ERROR_RSP_CODE, MID_PAGE_RSP_CODE, *GAVE_UP.values()}


def kept(records: Iterable[dict]) -> list[str]:
    """Calls as comparable text: subject, API, request and response (not the tran id or the time)."""
    return sorted(json.dumps([r["link_key"], r["api"], r["request"], r["response"]], sort_keys=True) for r in records)
