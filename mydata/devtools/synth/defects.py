"""Planted defects: what real deliveries get wrong, at a known rate, counted for the ground truth.

One decision per record (a JSON line or a CSV row). Kinds for MyData JSON lines:
malformed_json, bad_date, bad_amount, unknown_code, missing_link_key, duplicate_delivery,
failed_collection (rsp_code not "00000"). Kinds for CSV rows: malformed_row, bad_date,
bad_number, unknown_code, missing_link_key, duplicate_row. The consent log gets none: it is the
system of record, and its failure mode (tampering) is tested on the ledger.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator

from schemas.landing import APIS, CSV_SOURCES, field_kind

JSON_KINDS = ("malformed_json", "bad_date", "bad_amount", "unknown_code", "missing_link_key",
              "duplicate_delivery", "failed_collection")
CSV_KINDS = ("malformed_row", "bad_date", "bad_number", "unknown_code", "missing_link_key",
             "duplicate_row")

_FIELD_FOR_KIND = {"bad_date": ("dtime", "date", "month"), "bad_amount": ("amount",),
                   "unknown_code": ("code",)}
_BAD_DATES = {"dtime": ("20261341120000", "2026-10-02 12:15:30", "20260231093000"),
              "date": ("20261341", "2026-10-02", "20260230"),
              "month": ("202613", "2026-10", "000000")}
_FAILED = (("40101", "인증 실패: 접근토큰 만료"), ("50001", "시스템 장애"),
           ("40403", "정보주체의 전송요구 내역 없음"))
_CSV_NUMERIC = {"telecom_usage": ("plan_fee", "voice_min", "sms_cnt", "data_mb",
                                  "night_data_ratio", "finance_app_sessions"),
                "customer": ("birth_year",)}
_CSV_DATES = {"telecom_usage": ("usage_month",), "customer": ("customer_since",)}
_CSV_CODES = {"telecom_usage": {"network": "4G", "device_tier": "ultra"},
              "customer": {"gender": "X", "region_code": "99"}}


def _dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class DefectPlanter:
    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.records: Counter = Counter()
        self.defects: Counter = Counter()

    def _targets(self, record: dict, kind: str) -> list[tuple[dict, str]]:
        """(container, field) pairs in the record whose kind fits the defect."""
        wanted = _FIELD_FOR_KIND[kind]
        spec = APIS[record["api"]]
        response = record["response"]
        kind = lambda name: field_kind(spec.api, name)  # noqa: E731 (card bills' charge_amt is signed)
        targets = [(record["request"], f) for f in spec.request_fields if kind(f) in wanted]
        targets += [(response, f) for f in spec.response_fields if kind(f) in wanted]
        if spec.is_list:
            for item in response.get(spec.list_field, ()):
                targets += [(item, f) for f in spec.item_fields
                            if kind(f) in wanted and item.get(f) is not None]
        return targets

    def plant_json(self, source: str, month: int, record: dict,
                   months: int) -> Iterator[tuple[int, str]]:
        """Yield (delivery month, line) for this record: usually itself, sometimes spoilt."""
        rng = self.rng
        self.records[source] += 1
        if self.rate == 0 or rng.random() >= self.rate:
            yield month, _dumps(record)
            return
        kinds = list(JSON_KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            if kind in _FIELD_FOR_KIND:
                targets = self._targets(record, kind)
                if not targets:
                    continue
                container, name = rng.choice(targets)
                if kind == "bad_date":
                    container[name] = rng.choice(_BAD_DATES[field_kind(record["api"], name)])
                elif kind == "bad_amount":
                    value = container[name]
                    container[name] = rng.choice((f"-{value}", f"{value.split('.')[0]}원", "N/A"))
                else:
                    container[name] = {"currency_code": "ZZZ", "account_type": "0000"}.get(name, "99")
                line = _dumps(record)
            elif kind == "malformed_json":
                text = _dumps(record)
                line = text[: rng.randint(10, max(11, len(text) - 2))]
            elif kind == "missing_link_key":
                if rng.random() < 0.5:
                    record.pop("link_key")
                else:
                    record["link_key"] = ""
                line = _dumps(record)
            elif kind == "failed_collection":
                rsp_code, rsp_msg = rng.choice(_FAILED)
                record["response"] = {"rsp_code": rsp_code, "rsp_msg": rsp_msg}
                line = _dumps(record)
            else:  # duplicate_delivery: the same response again, same day or next delivery
                line = _dumps(record)
                self.defects[(source, kind)] += 1
                self.records[source] += 1
                yield month, line
                again = month + 1 if month + 1 < months and rng.random() < 0.5 else month
                yield again, line
                return
            self.defects[(source, kind)] += 1
            yield month, line
            return

    def plant_csv(self, source: str, row: list) -> Iterator[list]:
        rng = self.rng
        self.records[source] += 1
        if self.rate == 0 or rng.random() >= self.rate:
            yield row
            return
        columns = CSV_SOURCES[source]
        kind = rng.choice(CSV_KINDS)
        self.defects[(source, kind)] += 1
        row = list(row)
        if kind == "malformed_row":
            yield row[: rng.randint(2, len(row) - 2)]
        elif kind == "bad_date":
            name = rng.choice(_CSV_DATES[source])
            row[columns.index(name)] = rng.choice(("2026-13", "202613", "20261341", "unknown"))
            yield row
        elif kind == "bad_number":
            name = rng.choice(_CSV_NUMERIC[source])
            row[columns.index(name)] = rng.choice(("n/a", "12,5", "-7", "1e400x"))
            yield row
        elif kind == "unknown_code":
            name, value = rng.choice(list(_CSV_CODES[source].items()))
            row[columns.index(name)] = value
            yield row
        elif kind == "missing_link_key":
            row[0] = ""
            yield row
        else:  # duplicate_row
            self.records[source] += 1
            yield row
            yield row
