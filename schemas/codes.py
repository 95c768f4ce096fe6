"""Code sets of the landing contract.

MyData code values follow those seen in public implementations of the financial MyData standard
API (v1.x field names, see ``schemas.landing``); MYDATA.md notes they are not verified against the
standard's own tables. Holders' org codes are not code sets: which holders are collected from is
configuration (``mydata.holders``).
"""
from __future__ import annotations

#: 2-digit 시도 codes (행정표준코드) -> English name
REGION_CODES: dict[str, str] = {
    "11": "Seoul", "26": "Busan", "27": "Daegu", "28": "Incheon", "29": "Gwangju",
    "30": "Daejeon", "31": "Ulsan", "36": "Sejong", "41": "Gyeonggi", "43": "Chungbuk",
    "44": "Chungnam", "45": "Jeonnam(old)", "46": "Jeonnam", "47": "Gyeongbuk", "48": "Gyeongnam",
    "50": "Jeju", "51": "Gangwon", "52": "Jeonbuk",
}

SUCCESS_RSP_CODE = "00000"
SUCCESS_RSP_MSG = "정상처리"

CURRENCY_CODES = frozenset({"KRW", "USD", "EUR", "JPY", "CNY", "CZK"})

#: account_type: deposit 1001/1002/1003/1999, investment 2001-2003/2999, loan 3100-3999
DEPOSIT_ACCOUNT_TYPES = frozenset({"1001", "1002", "1003", "1999"})
INVESTMENT_ACCOUNT_TYPES = frozenset({"2001", "2002", "2003", "2999"})
LOAN_ACCOUNT_TYPES = frozenset({str(code) for code in range(3100, 4000)})
ACCOUNT_TYPES = DEPOSIT_ACCOUNT_TYPES | INVESTMENT_ACCOUNT_TYPES | LOAN_ACCOUNT_TYPES
#: account_status: 01 active, 02 dormant, 03 closed
ACCOUNT_STATUS = frozenset({"01", "02", "03"})

#: trans_type: 01 paid in (입금), 02 paid out (출금), 03 other (이자, 수수료, 신규)
TRANS_TYPES = {"01": "입금", "02": "출금", "03": "기타"}

#: repay_method: 01 만기일시상환, 02 원리금균등, 03 원금균등, 04 한도(마이너스)
REPAY_METHODS = frozenset({"01", "02", "03", "04"})

#: card approval status: 01 승인, 02 승인취소, 03 정정, 04 무승인매입
CARD_STATUS = frozenset({"01", "02", "03", "04"})
#: pay_type: 01 일시불, 02 할부
CARD_PAY_TYPES = frozenset({"01", "02"})

#: telecom contract type: 01 mobile, 02 internet, 03 IPTV
TELECOM_TYPES = frozenset({"01", "02", "03"})
#: telecom contract status: 01 active, 02 suspended, 03 terminated
TELECOM_STATUS = frozenset({"01", "02", "03"})
#: telecom pay_method: 01 auto-debit (account), 02 card, 03 giro/virtual account
TELECOM_PAY_METHODS = frozenset({"01", "02", "03"})

NETWORKS = frozenset({"5G", "LTE", "3G"})
DEVICE_TIERS = frozenset({"premium", "mid", "budget"})
MEMBERSHIP_GRADES = frozenset({"VVIP", "VIP", "GOLD", "SILVER", "WHITE", "BASIC"})
GENDERS = frozenset({"M", "F"})

CONSENT_EVENT_TYPES = frozenset({"grant", "renew", "withdraw"})
CONSENT_PURPOSES = frozenset({"marketing", "credit_scoring", "analytics"})
CONSENT_SOURCES = ("bank", "card", "telecom")
CONSENT_CHANNELS = frozenset({"app", "web", "branch", "call_center"})
