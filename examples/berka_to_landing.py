"""Convert the public PKDD'99 Czech bank data (Berka) into the landing contract, for ingest tests
against real records.

    python examples/berka_to_landing.py --berka ../shared/data/berka_pkdd99 --data-root DIR

What it writes under ``DIR/landing`` (one delivery a month, dated the 1st of the next month,
each with ``_SUCCESS``):

- ``bank``: for every account owner a ``bank.accounts`` response listing the accounts opened
  so far, and for every account and month with transactions a ``bank.deposit.transactions``
  response (trans_dtime = the day at 00:00:00, Berka has no times; trans_no = trans_id;
  trans_class = the Czech ``operation``; trans_memo = ``k_symbol``; amounts in CZK as they are,
  ``currency_code`` CZK; balances may be negative: overdrafts);
- ``customer``: the client master, a full snapshot in each delivery (birth year and sex decoded
  from ``birth_number``, where women's months carry +50; ``customer_since`` = the client's first
  account date; ``region_code``: see ``REGION_STAND_IN``).

Identities: Berka clients have no CI, so each gets a synthetic one (``subject_ci``, seeded) which
the project's tokenizer turns into a link key inside a private temporary folder; the CIs are
never written to the lake. ``type`` PRIJEM (credit) becomes trans_type ``01`` and VYDAJ (debit)
``02``; any other value is passed on as it is, so ingest quarantines it with a reason (the file
has 651 rows typed VYBER, a withdrawal value the data's documentation does not list).
A summary of what was written goes to ``DIR/truth/berka.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from mydata.config import Settings
from mydata.devtools.synth.generator import subject_ci
from mydata.holders import Holder, HolderRegistry
from mydata.keys import KeyStore
from mydata.lake import SUCCESS_MARKER
from mydata.tokenizer import tokenize_file
from schemas import codes
from schemas.landing import CSV_SOURCES

TRANSACTIONS = "trans.first49102rows.asc"
ORG_CODE = "0200000000"  # a bank org code of the contract; Berka's bank is anonymous
TRANS_TYPES = {"PRIJEM": "01", "VYDAJ": "02"}  # credit, debit
#: Berka's 8 Czech regions stand in for 시도 codes, so the customer master keeps its shape.
#: The mapping is arbitrary (no Korean geography is implied); it only keeps regions distinct.
REGION_STAND_IN = {
    "Prague": "11", "central Bohemia": "41", "south Bohemia": "43", "west Bohemia": "44",
    "north Bohemia": "51", "east Bohemia": "47", "south Moravia": "48", "north Moravia": "26",
}
PROD_NAMES = {"POPLATEK MESICNE": "monthly statement", "POPLATEK TYDNE": "weekly statement",
              "POPLATEK PO OBRATU": "statement after transaction"}


def read_asc(path: Path) -> list[dict[str, str]]:
    """A Berka table: ``;``-separated, quoted, CRLF line ends."""
    with open(path, encoding="utf-8", newline="") as handle:
        return [{k: (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(handle, delimiter=";", quotechar='"')]


def berka_date(yymmdd: str) -> date:
    """Berka dates are YYMMDD in the 1900s (``931107 00:00:00`` in card.asc)."""
    text = yymmdd.split()[0]
    return date(1900 + int(text[:2]), int(text[2:4]), int(text[4:6]))


def birth(birth_number: str) -> tuple[int, str]:
    """(birth year, sex) from ``birth_number`` YYMMDD, where women's months carry +50."""
    month = int(birth_number[2:4])
    return 1900 + int(birth_number[:2]), "F" if month > 50 else "M"


def next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def amount(text: str) -> str:
    return f"{float(text):.3f}"


@dataclass
class Converted:
    deliveries: list[str] = field(default_factory=list)
    transactions: int = 0
    transaction_types: dict[str, int] = field(default_factory=dict)
    transaction_responses: int = 0
    account_responses: int = 0
    customers_per_delivery: int = 0
    clients: int = 0


def link_keys(client_ids: list[str], settings: Settings, seed: int) -> dict[str, tuple[str, int]]:
    """client_id -> (link_key, key_version), through the project's tokenizer in a private folder."""
    store = KeyStore.open(settings)
    version = store.current_link_version
    secret = store.link_secret(version)
    with tempfile.TemporaryDirectory(prefix="berka-ci-") as private:
        cis, keyed = Path(private) / "clients.csv", Path(private) / "keyed.csv"
        with open(cis, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["client_id", "ci"])
            writer.writerows([cid, subject_ci(seed, int(cid))] for cid in client_ids)
        tokenize_file(cis, keyed, secret, version, ci_column="ci")
        with open(keyed, encoding="utf-8", newline="") as handle:
            return {row["client_id"]: (row["link_key"], int(row["key_version"]))
                    for row in csv.DictReader(handle)}


def convert(berka: Path, settings: Settings, seed: int = 1) -> Converted:
    lake = settings.lake
    clients = {r["client_id"]: r for r in read_asc(berka / "client.asc")}
    districts = {r["A1"]: r["A3"] for r in read_asc(berka / "district.asc")}
    accounts = {r["account_id"]: r for r in read_asc(berka / "account.asc")}
    dispositions = read_asc(berka / "disp.asc")
    owner = {r["account_id"]: r["client_id"] for r in dispositions if r["type"] == "OWNER"}
    transactions = read_asc(berka / TRANSACTIONS)
    keys = link_keys(sorted(clients, key=int), settings, seed)

    by_account_month: dict[tuple[str, date], list[dict[str, str]]] = defaultdict(list)
    for row in transactions:
        day = berka_date(row["date"])
        by_account_month[(row["account_id"], date(day.year, day.month, 1))].append(row)
    months = sorted({m for _, m in by_account_month})
    first_account: dict[str, date] = {}
    for disposition in dispositions:  # owners and disponents alike: a client since their first account
        client_id, opened = disposition["client_id"], berka_date(accounts[disposition["account_id"]]["date"])
        first_account[client_id] = min(opened, first_account.get(client_id, opened))

    result = Converted(clients=len(clients), transactions=len(transactions))
    for row in transactions:
        result.transaction_types[row["type"]] = result.transaction_types.get(row["type"], 0) + 1
    for month in months:
        dt = next_month(month)
        stamp = f"{dt:%Y%m%d}"
        bank = lake.delivery("bank", dt)
        bank.mkdir(parents=True, exist_ok=True)
        tran = 0

        def envelope(client_id: str, api: str, request: dict, response: dict, stamp: str = stamp) -> str:
            nonlocal tran
            tran += 1
            link_key, version = keys[client_id]
            return json.dumps({
                "link_key": link_key, "key_version": version, "org_code": ORG_CODE, "api": api,
                "x_api_tran_id": f"{ORG_CODE}B{stamp}{tran:09d}", "collected_at": f"{stamp}090000",
                "request": request,
                "response": {"rsp_code": codes.SUCCESS_RSP_CODE, "rsp_msg": codes.SUCCESS_RSP_MSG, **response},
            }, ensure_ascii=False)

        with open(bank / "berka.jsonl", "w", encoding="utf-8") as out:
            held: dict[str, list[str]] = defaultdict(list)
            for account_id, client_id in owner.items():
                if berka_date(accounts[account_id]["date"]) < dt:
                    held[client_id].append(account_id)
            for client_id, ids in sorted(held.items(), key=lambda kv: int(kv[0])):
                listed = [{"account_num": f"BERKA-{a}", "is_consent": True, "seqno": i + 1,
                           "currency_code": "CZK",
                           "prod_name": PROD_NAMES.get(accounts[a]["frequency"], accounts[a]["frequency"]),
                           "is_minus": False, "account_type": "1001", "account_status": "01"}
                          for i, a in enumerate(sorted(ids, key=int))]
                out.write(envelope(client_id, "bank.accounts", {},
                                   {"account_cnt": len(listed), "account_list": listed}) + "\n")
                result.account_responses += 1
            last_day = next_month(month).toordinal() - 1
            for (account_id, m), rows in sorted(by_account_month.items(), key=lambda kv: int(kv[0][0])):
                if m != month:
                    continue
                items = []
                for row in sorted(rows, key=lambda r: (r["date"], int(r["trans_id"]))):
                    item = {"trans_dtime": f"{berka_date(row['date']):%Y%m%d}000000",
                            "trans_no": row["trans_id"],
                            "trans_type": TRANS_TYPES.get(row["type"], row["type"]),
                            "currency_code": "CZK", "trans_amt": amount(row["amount"]),
                            "balance_amt": amount(row["balance"]), "paid_in_cnt": 0}
                    if row["operation"]:
                        item["trans_class"] = row["operation"]
                    if row["k_symbol"]:
                        item["trans_memo"] = row["k_symbol"]
                    items.append(item)
                request = {"account_num": f"BERKA-{account_id}", "from_dtime": f"{month:%Y%m%d}000000",
                           "to_dtime": f"{date.fromordinal(last_day):%Y%m%d}235959"}
                out.write(envelope(owner[account_id], "bank.deposit.transactions", request,
                                   {"trans_cnt": len(items), "trans_list": items}) + "\n")
                result.transaction_responses += 1
        (bank / SUCCESS_MARKER).touch()

        customer = lake.delivery("customer", dt)
        customer.mkdir(parents=True, exist_ok=True)
        with open(customer / "berka.csv", "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(CSV_SOURCES["customer"])
            written = 0
            for client_id in sorted(clients, key=int):
                link_key, version = keys[client_id]
                year, sex = birth(clients[client_id]["birth_number"])
                region = REGION_STAND_IN[districts[clients[client_id]["district_id"]]]
                since = first_account.get(client_id)
                writer.writerow([link_key, version, year, sex, region, f"{since:%Y%m%d}" if since else ""])
                written += 1
        (customer / SUCCESS_MARKER).touch()
        result.customers_per_delivery = written
        result.deliveries.append(dt.isoformat())
    # the operator collects from this one bank: registered, or ingest would refuse its deliveries
    registry = HolderRegistry.open(settings, env={})
    registry.add(Holder("bank", ORG_CODE, "Berka (PKDD'99 Czech bank, anonymised)", next_month(months[0])))
    lake.truth.mkdir(parents=True, exist_ok=True)
    (lake.truth / "berka.json").write_text(json.dumps(result.__dict__, indent=1) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--berka", type=Path, required=True, help="folder with the PKDD'99 .asc files")
    parser.add_argument("--data-root", type=Path, required=True, help="lake root to write landing/ under")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic CIs")
    args = parser.parse_args(argv)
    if not (args.berka / TRANSACTIONS).is_file():
        print(f"berka_to_landing: {args.berka / TRANSACTIONS} not found", file=sys.stderr)
        return 2
    result = convert(args.berka, Settings.load(data_root=args.data_root), args.seed)
    print(f"{result.transactions:,} transactions of {result.clients:,} clients in "
          f"{len(result.deliveries)} monthly deliveries ({result.deliveries[0]} .. {result.deliveries[-1]}) "
          f"under {args.data_root / 'landing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
