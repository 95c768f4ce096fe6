"""The generator writes exactly the landing contract, with the planted defects it says it planted."""
from __future__ import annotations

import csv
import filecmp
import json
import re
import shutil
from collections import Counter
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from mydata.config import Settings
from mydata.devtools.synth import GeneratorOptions, generate, subject_ci
from mydata.devtools.synth.generator import ORG_CODES
from mydata.devtools.synth.profiles import CUSTOMER_TYPES
from mydata.errors import UsageError
from mydata.keys import KeyStore
from schemas import codes
from schemas.consent import verify_chain
from schemas.landing import APIS, CONSENT_FIELDS, CSV_SOURCES, ENVELOPE_FIELDS, LINK_KEY_PATTERN, field_kind

CODE_SETS = {
    "currency_code": codes.CURRENCY_CODES, "account_type": codes.ACCOUNT_TYPES,
    "account_status": codes.ACCOUNT_STATUS, "trans_type": set(codes.TRANS_TYPES),
    "repay_method": codes.REPAY_METHODS, "pay_type": codes.CARD_PAY_TYPES,
    "type": codes.TELECOM_TYPES, "pay_method": codes.TELECOM_PAY_METHODS,
}
STATUS_SETS = {"card.approvals": codes.CARD_STATUS, "telecom.contracts": codes.TELECOM_STATUS}
FORMATS = {"dtime": "%Y%m%d%H%M%S", "date": "%Y%m%d", "month": "%Y%m"}


class ContractError(Exception):
    pass


def check_value(api: str, name: str, value) -> None:
    kind = field_kind(api, name)
    if value is None and name == "cancel_dtime":
        return
    if kind in FORMATS:
        try:
            datetime.strptime(value, FORMATS[kind])
        except (TypeError, ValueError):
            raise ContractError(f"{name}={value!r} is not {kind}") from None
        if len(value) != len(datetime(2000, 1, 1).strftime(FORMATS[kind])):
            raise ContractError(f"{name}={value!r} has the wrong length")
    elif kind in ("amount", "rate"):
        if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+)?", value):
            raise ContractError(f"{name}={value!r} is not a non-negative decimal string")
        try:
            Decimal(value)
        except InvalidOperation:
            raise ContractError(f"{name}={value!r} is not a decimal") from None
    elif kind == "signed":
        if not isinstance(value, str) or not re.fullmatch(r"-?\d+(\.\d+)?", value):
            raise ContractError(f"{name}={value!r} is not a decimal string")
    elif kind == "code":
        allowed = STATUS_SETS[api] if name == "status" else CODE_SETS[name]
        if value not in allowed:
            raise ContractError(f"{name}={value!r} is not a known code")
    elif kind == "bool":
        assert isinstance(value, bool), (name, value)
    elif kind == "int":
        assert isinstance(value, int) and value >= 0, (name, value)
    elif kind == "day":
        assert re.fullmatch(r"(0[1-9]|[12]\d|3[01])|[1-9]", value), (name, value)
    else:
        assert isinstance(value, str) and value, (name, value)


def check_mydata_line(line: str) -> tuple[str, dict]:
    """Return ("ok" | "failed_collection", record); raise ContractError on a contract breach."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        raise ContractError("malformed JSON") from None
    if not LINK_KEY_PATTERN.match(record.get("link_key") or ""):
        raise ContractError("missing or malformed link_key")
    assert tuple(record) == ENVELOPE_FIELDS, tuple(record)
    assert isinstance(record["key_version"], int)
    spec = APIS[record["api"]]
    assert record["org_code"] in ORG_CODES[spec.source]
    assert len(record["x_api_tran_id"]) == 25
    check_value(spec.api, "collected_at", record["collected_at"])
    assert tuple(record["request"]) == spec.request_fields
    for name, value in record["request"].items():
        check_value(spec.api, name, value)
    response = record["response"]
    if response["rsp_code"] != codes.SUCCESS_RSP_CODE:
        assert set(response) == {"rsp_code", "rsp_msg"}
        return "failed_collection", record
    if spec.is_list:
        assert tuple(response) == ("rsp_code", "rsp_msg", spec.count_field, spec.list_field)
        items = response[spec.list_field]
        assert response[spec.count_field] == len(items)
        for item in items:
            assert tuple(item) == spec.item_fields, (spec.api, tuple(item))
            for name, value in item.items():
                check_value(spec.api, name, value)
    else:
        assert tuple(response) == ("rsp_code", "rsp_msg", *spec.response_fields)
        for name in spec.response_fields:
            check_value(spec.api, name, response[name])
    return "ok", record


def check_csv_row(source: str, row: list[str]) -> None:
    columns = CSV_SOURCES[source]
    if len(row) != len(columns):
        raise ContractError("wrong number of fields")
    r = dict(zip(columns, row))
    if not LINK_KEY_PATTERN.match(r["link_key"]):
        raise ContractError("missing link_key")
    try:
        if source == "customer":
            datetime.strptime(r["customer_since"], "%Y%m%d")
            if len(r["customer_since"]) != 8:
                raise ValueError
            if not (r["birth_year"].isdigit() and 1900 < int(r["birth_year"]) < 2026):
                raise ValueError
            if r["gender"] not in codes.GENDERS or r["region_code"] not in codes.REGION_CODES:
                raise ContractError("unknown code")
        else:
            datetime.strptime(r["usage_month"], "%Y%m")
            if len(r["usage_month"]) != 6:
                raise ValueError
            for name in ("plan_fee", "voice_min", "sms_cnt", "roaming_days",
                         "finance_app_sessions", "tenure_months", "key_version"):
                if not r[name].isdigit():
                    raise ValueError
            if not re.fullmatch(r"\d+(\.\d+)?", r["data_mb"]):
                raise ValueError
            if not re.fullmatch(r"\d+(\.\d+)?", r["night_data_ratio"]) or float(r["night_data_ratio"]) > 1:
                raise ValueError
            if r["network"] not in codes.NETWORKS or r["device_tier"] not in codes.DEVICE_TIERS:
                raise ContractError("unknown code")
            assert r["membership_grade"] in codes.MEMBERSHIP_GRADES
    except ValueError:
        raise ContractError("bad number or date") from None


def data_files(root: Path, source: str) -> list[Path]:
    return sorted(p for p in (root / "landing" / source).glob("dt=*/*") if not p.name.startswith("_"))


def test_every_delivery_is_marked_complete_and_sources_are_all_there(small_landing):
    settings, summary = small_landing
    landing = settings.lake.landing
    assert sorted(p.name for p in landing.iterdir()) == sorted(
        ["bank", "card", "telecom", "telecom_usage", "customer", "consent"])
    for source in landing.iterdir():
        folders = sorted(source.iterdir())
        assert [f.name for f in folders] == [f"dt={d}" for d in summary.deliveries]
        for folder in folders:
            assert (folder / "_SUCCESS").is_file()


def test_mydata_sources_follow_the_contract_except_exactly_the_planted_defects(small_landing):
    settings, summary = small_landing
    root = settings.data_root
    for source in ("bank", "card", "telecom"):
        breaches, failed, duplicates, lines = Counter(), 0, 0, 0
        seen: set[str] = set()
        apis = Counter()
        for path in data_files(root, source):
            for line in path.read_text(encoding="utf-8").splitlines():
                lines += 1
                try:
                    outcome, record = check_mydata_line(line)
                except ContractError as exc:
                    breaches[str(exc).split("=")[0]] += 1
                    continue
                apis[record["api"]] += 1
                failed += outcome == "failed_collection"
                duplicates += record["x_api_tran_id"] in seen
                seen.add(record["x_api_tran_id"])
        planted = summary.defects.get(source, {})
        assert lines == summary.records[source]
        assert duplicates == planted.get("duplicate_delivery", 0)
        assert failed == planted.get("failed_collection", 0)
        expected_breaches = sum(n for kind, n in planted.items()
                                if kind not in ("duplicate_delivery", "failed_collection"))
        assert sum(breaches.values()) == expected_breaches, (source, breaches, planted)
        assert set(apis) == {api for api, spec in APIS.items() if spec.source == source}


def test_csv_sources_follow_the_contract_except_exactly_the_planted_defects(small_landing):
    settings, summary = small_landing
    for source, columns in CSV_SOURCES.items():
        breaches = rows = duplicates = 0
        for path in data_files(settings.data_root, source):
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                assert tuple(next(reader)) == columns
                seen = set()
                for row in reader:
                    rows += 1
                    duplicates += tuple(row) in seen
                    seen.add(tuple(row))
                    try:
                        check_csv_row(source, row)
                    except ContractError:
                        breaches += 1
        planted = summary.defects.get(source, {})
        assert rows == summary.records[source]
        assert duplicates == planted.get("duplicate_row", 0)
        assert breaches == sum(n for k, n in planted.items() if k != "duplicate_row")


def test_consent_log_is_well_formed_and_its_chain_verifies_across_deliveries(small_landing):
    settings, summary = small_landing
    events = []
    for path in data_files(settings.data_root, "consent"):
        events += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(events) == summary.consent_events > 0
    assert verify_chain(events) is None
    assert len({e["event_id"] for e in events}) == len(events)
    for event in events:
        assert tuple(event) == CONSENT_FIELDS
        assert LINK_KEY_PATTERN.match(event["link_key"])
        assert event["event_type"] in codes.CONSENT_EVENT_TYPES
        assert event["purpose"] in codes.CONSENT_PURPOSES
        assert event["sources"] and set(event["sources"]) <= set(codes.CONSENT_SOURCES)
        assert event["channel"] in codes.CONSENT_CHANNELS
        datetime.strptime(event["event_time"], "%Y%m%d%H%M%S")
        datetime.strptime(event["end_date"], "%Y%m%d")
    kinds = Counter(e["event_type"] for e in events)
    assert kinds["grant"] and kinds["renew"] and kinds["withdraw"], kinds
    # a delivery holds the events up to its date
    for path in data_files(settings.data_root, "consent"):
        dt = path.parent.name[3:].replace("-", "")
        assert all(json.loads(line)["event_time"] < dt + "000000" or dt == summary.deliveries[-1].replace("-", "")
                   for line in path.read_text(encoding="utf-8").splitlines())


def test_tampering_with_one_consent_event_breaks_the_chain_there(small_landing):
    settings, _ = small_landing
    path = data_files(settings.data_root, "consent")[0]
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    events[3]["end_date"] = "20991231"
    broken = verify_chain(events)
    assert broken is not None and broken.position == 3 and "edited" in broken.reason


def test_planted_defect_rate_is_within_20_percent_of_the_asked_rate(small_landing, tmp_path,
                                                                  make_landing):
    _, summary = small_landing
    assert summary.defect_rate == pytest.approx(0.05, rel=0.2)
    _, default = make_landing(tmp_path, subjects=1500, months=2, seed=3)
    assert default.defect_rate == pytest.approx(0.005, rel=0.2)
    kinds = {kind for by_kind in summary.defects.values() for kind in by_kind}
    assert {"malformed_json", "bad_date", "bad_amount", "unknown_code", "missing_link_key",
            "duplicate_delivery", "failed_collection", "malformed_row", "duplicate_row"} <= kinds


def test_same_seed_and_keys_give_byte_identical_output(tmp_path, make_landing):
    first, _ = make_landing(tmp_path / "a", subjects=120, months=2, seed=5, chunk_size=50,
                            workers=2)
    second_root = tmp_path / "b"
    shutil.copytree(first.lake.keys, second_root / "keys")
    generate(second_root, GeneratorOptions(subjects=120, months=2, seed=5, chunk_size=50, workers=1),
             KeyStore.open(Settings(data_root=second_root), env={}))
    files = sorted(p.relative_to(first.data_root) for p in first.data_root.rglob("*")
                   if p.is_file() and "keys" not in p.parts)
    assert files == sorted(p.relative_to(second_root) for p in second_root.rglob("*")
                           if p.is_file() and "keys" not in p.parts)
    match, mismatch, errors = filecmp.cmpfiles(first.data_root, second_root, [str(f) for f in files],
                                               shallow=False)
    assert not mismatch and not errors and len(match) == len(files) > 30
    # a different seed gives different data
    other, _ = make_landing(tmp_path / "c", subjects=120, months=2, seed=6)
    assert (other.data_root / "truth" / "subjects.csv").read_bytes() != \
        (first.data_root / "truth" / "subjects.csv").read_bytes()


def test_no_ci_is_written_anywhere(small_landing):
    settings, summary = small_landing
    cis = {subject_ci(11, i) for i in range(summary.subjects)}
    base64_88 = re.compile(r"[A-Za-z0-9+/]{86}==")
    scanned = 0
    for path in settings.data_root.rglob("*"):
        if not path.is_file() or "keys" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        scanned += 1
        found = set(base64_88.findall(text))
        assert not found, f"{path} holds CI-shaped values"
        assert not any(ci[:40] in text for ci in list(cis)[:50])
    assert scanned > 20


def test_ground_truth_lies_outside_landing_and_covers_every_type(small_landing):
    settings, summary = small_landing
    with (settings.lake.truth / "subjects.csv").open(encoding="utf-8") as handle:
        truth = list(csv.DictReader(handle))
    assert len(truth) == summary.subjects
    types = Counter(row["latent_type"] for row in truth)
    assert set(types) == {t.name for t in CUSTOMER_TYPES}
    assert sum(row["telecom_key_version"] == "2" for row in truth) >= 1
    customers = set()
    for path in data_files(settings.data_root, "customer"):
        customers |= {line.split(",")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]}
    assert {row["link_key"] for row in truth if row["has_bank"] == "1"} <= customers
    generation = json.loads((settings.lake.truth / "generation.json").read_text(encoding="utf-8"))
    assert generation["total_defects"] == summary.total_defects


def test_types_drive_correlated_bank_and_telecom_behaviour(tmp_path, make_landing):
    settings, _ = make_landing(tmp_path, subjects=600, months=1, seed=2, defect_rate=0)
    truth = {r["link_key"]: r["latent_type"]
             for r in csv.DictReader((settings.lake.truth / "subjects.csv").open(encoding="utf-8"))}
    data_gb, salary = {}, {}
    for path in data_files(settings.data_root, "telecom_usage"):
        for row in csv.DictReader(path.open(encoding="utf-8")):
            data_gb.setdefault(truth.get(row["link_key"]), []).append(float(row["data_mb"]) / 1024)
    for path in data_files(settings.data_root, "bank"):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["api"] == "bank.deposit.transactions":
                for item in record["response"]["trans_list"]:
                    if item["trans_memo"] == "급여":
                        salary.setdefault(truth[record["link_key"]], []).append(float(item["trans_amt"]))
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    assert mean(data_gb["young_commuter"]) > 4 * mean(data_gb["senior"])
    assert mean(salary["affluent_saver"]) > 2 * mean(salary["young_commuter"])
    assert "senior" not in salary  # pensions, not salaries


def test_writing_into_a_landing_zone_that_has_deliveries_is_refused(small_landing):
    settings, _ = small_landing
    with pytest.raises(UsageError, match="already holds deliveries"):
        generate(settings.data_root, GeneratorOptions(subjects=1), KeyStore.open(settings, env={}))


@pytest.mark.parametrize("kwargs", [{"subjects": 0}, {"subjects": 1, "months": 0},
                                    {"subjects": 1, "defect_rate": 0.9}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        GeneratorOptions(**kwargs)
