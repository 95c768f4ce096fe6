"""Collecting from the data holders' MyData APIs: the client (``collector``) and a holder
simulator for tests (``simulator``), which share the standard's paths declared here."""
from __future__ import annotations

#: the standard API's path of every API the landing contract names (``schemas.landing.APIS``), and
#: the discovery call of card ids, which the landing does not keep
PATHS: dict[str, str] = {
    "bank.accounts": "/v1/bank/accounts",
    "bank.deposit.detail": "/v1/bank/accounts/deposit/basic",
    "bank.deposit.transactions": "/v1/bank/accounts/deposit/transactions",
    "bank.loan.detail": "/v1/bank/accounts/loan/basic",
    "card.cards": "/v1/cards",
    "card.approvals": "/v1/cards/approval-domestic",
    "card.bills": "/v1/cards/bills",
    "telecom.contracts": "/v1/telecoms",
    "telecom.bills": "/v1/telecoms/bills",
    "telecom.payments": "/v1/telecoms/transactions",
    "telecom.micropayments": "/v1/telecoms/paid-transactions",
}
TOKEN_PATH = "/oauth/2.0/token"
#: a holder's answer to a request for a resource it does not hold
NOT_FOUND_RSP_CODE = "40404"
