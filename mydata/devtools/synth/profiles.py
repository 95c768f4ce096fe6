"""Latent customer types and the Korean catalogs they draw from.

Each type drives correlated bank, card and telecom behaviour, so a good segmentation of the
fused features should find the types again (the ground truth is written outside the landing zone).
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: merchant category -> (merchant names, median amount in KRW)
MERCHANTS: dict[str, tuple[tuple[str, ...], int]] = {
    "cafe": (("스타벅스", "투썸플레이스", "이디야커피", "메가MGC커피", "폴바셋"), 6_500),
    "delivery": (("배달의민족", "쿠팡이츠", "요기요"), 26_000),
    "convenience": (("GS25", "CU", "세븐일레븐", "이마트24"), 7_500),
    "transport": (("카카오T", "티머니", "코레일", "SRT"), 14_000),
    "online": (("쿠팡", "네이버페이", "11번가", "G마켓", "무신사"), 42_000),
    "mart": (("이마트", "홈플러스", "롯데마트", "코스트코", "하나로마트"), 85_000),
    "department": (("롯데백화점", "신세계백화점", "현대백화점", "갤러리아백화점"), 210_000),
    "dining": (("아웃백스테이크하우스", "본죽", "김밥천국", "한일관", "봉피양"), 38_000),
    "travel": (("대한항공", "아시아나항공", "하나투어", "제주신라호텔", "야놀자"), 420_000),
    "golf": (("골프존", "스카이72", "남서울CC"), 240_000),
    "education": (("대성학원", "메가스터디", "눈높이", "YBM어학원", "윤선생"), 330_000),
    "kids": (("키즈카페", "토이저러스", "아가방앤컴퍼니"), 45_000),
    "fuel": (("SK에너지", "GS칼텍스", "S-OIL", "현대오일뱅크"), 72_000),
    "health": (("온누리약국", "서울아산병원", "세브란스병원", "튼튼정형외과의원", "하나이비인후과"), 28_000),
    "market": (("남대문시장", "망원시장", "동네정육점", "청과상회"), 27_000),
    "entertainment": (("CGV", "메가박스", "롯데시네마", "인터파크티켓"), 18_000),
    "beauty": (("올리브영", "아리따움", "이니스프리"), 31_000),
    "business": (("이마트트레이더스", "다이소", "오피스디포", "공구마트", "식자재마트"), 130_000),
    "overseas": (("AMAZON.COM", "AGODA", "EXPEDIA", "UNIQLO TOKYO", "DFS HONG KONG",
                  "APPLE.COM/BILL"), 160_000),
}
BRANCHES = ("강남", "역삼", "홍대", "잠실", "판교", "해운대", "서면", "동성로", "수원", "일산",
            "분당", "광화문", "여의도", "송도", "둔산", "상무")
BRANCHED = frozenset({"cafe", "convenience", "mart", "department", "dining", "beauty", "fuel"})

#: (merchant, title, median KRW) of micropayments charged to the phone bill
MICROPAYMENTS: tuple[tuple[str, str, int], ...] = (
    ("구글플레이", "게임 아이템", 9_900), ("애플 앱스토어", "앱 구매", 5_900),
    ("넷플릭스", "월 구독료", 13_500), ("유튜브 프리미엄", "월 구독료", 14_900),
    ("멜론", "음원 이용권", 10_900), ("카카오페이지", "웹툰 이용권", 3_000),
    ("네이버웹툰", "쿠키 충전", 5_000), ("넥슨", "게임 캐시", 22_000),
    ("엔씨소프트", "게임 캐시", 33_000), ("KT 지니뮤직", "부가서비스", 7_400),
)
GAMING_MICROPAYMENTS = (0, 6, 7, 8)
SUBSCRIPTION_MICROPAYMENTS = (2, 3, 4, 9)

#: (plan name, monthly fee KRW, network)
PLANS: dict[str, tuple[str, int, str]] = {
    "premium5g": ("5G 초이스 프리미엄", 130_000, "5G"),
    "special5g": ("5G 초이스 스페셜", 110_000, "5G"),
    "simple5g": ("5G 심플 110GB", 69_000, "5G"),
    "youth5g": ("Y 5G 슬림", 55_000, "5G"),
    "family5g": ("가족결합 5G", 80_000, "5G"),
    "lte_data": ("LTE 데이터ON 톡", 49_000, "LTE"),
    "lte_basic": ("LTE 베이직", 33_000, "LTE"),
    "teen": ("Y 틴 ON", 35_000, "LTE"),
    "senior": ("시니어 LTE 안심", 29_000, "LTE"),
    "legacy3g": ("3G 표준요금", 11_000, "3G"),
}

#: population share of each 시도 (approximate, 2025)
REGION_WEIGHTS: dict[str, float] = {
    "11": 18.1, "26": 6.4, "27": 4.6, "28": 5.9, "29": 2.8, "30": 2.8, "31": 2.1, "36": 0.8,
    "41": 26.9, "43": 3.1, "44": 4.1, "46": 3.5, "47": 4.9, "48": 6.3, "50": 1.3, "51": 2.9,
    "52": 3.4,
}
METRO = frozenset({"11", "41", "28"})


@dataclass(frozen=True)
class CustomerType:
    """One latent customer type: the parameters its members' behaviour is drawn from."""

    name: str
    description: str
    weight: float
    age: tuple[int, int]
    male_share: float
    metro_boost: float  # multiplies the weight of Seoul/Gyeonggi/Incheon
    income_kind: str  # salary | pension | allowance | gig
    income: int  # median monthly inflow, KRW
    income_sigma: float
    balance_months: float  # median balance in months of income
    savings_prob: float
    loan_prob: float
    loan_principal: int
    minus_prob: float
    card_prob: float
    card_txns: float  # approvals per month
    categories: dict[str, float]
    install_prob: float
    overseas_prob: float
    telecom_prob: float
    plans: dict[str, float]
    data_gb: float
    voice_min: float
    sms: float
    night_ratio: float
    roaming_prob: float
    finapp: float
    devices: dict[str, float]
    grades: dict[str, float]
    tenure: tuple[int, int]
    late_prob: float
    micro_count: float
    micro_gaming: float  # share of micropayments that are games
    second_line_prob: float
    transfers_out: float  # other transfers per month
    marketing_consent: float
    extra: dict[str, float] = field(default_factory=dict)


CUSTOMER_TYPES: tuple[CustomerType, ...] = (
    CustomerType(
        name="young_commuter", description="young heavy-data commuters",
        weight=0.22, age=(24, 34), male_share=0.52, metro_boost=2.0,
        income_kind="salary", income=3_100_000, income_sigma=0.18, balance_months=0.8,
        savings_prob=0.35, loan_prob=0.08, loan_principal=15_000_000, minus_prob=0.25,
        card_prob=0.95, card_txns=34,
        categories={"cafe": 5, "delivery": 4, "convenience": 3, "transport": 4, "online": 4,
                    "entertainment": 1.5, "beauty": 1, "dining": 2},
        install_prob=0.05, overseas_prob=0.15, telecom_prob=0.95,
        plans={"premium5g": 2, "special5g": 2, "simple5g": 3, "youth5g": 3},
        data_gb=62, voice_min=140, sms=15, night_ratio=0.38, roaming_prob=0.06, finapp=70,
        devices={"premium": 5, "mid": 4, "budget": 1},
        grades={"VIP": 2, "GOLD": 3, "SILVER": 3, "WHITE": 2}, tenure=(6, 96), late_prob=0.04,
        micro_count=4.0, micro_gaming=0.45, second_line_prob=0.05, transfers_out=4,
        marketing_consent=0.8,
    ),
    CustomerType(
        name="affluent_saver", description="affluent savers",
        weight=0.14, age=(45, 64), male_share=0.55, metro_boost=1.6,
        income_kind="salary", income=8_800_000, income_sigma=0.25, balance_months=9.0,
        savings_prob=0.95, loan_prob=0.15, loan_principal=120_000_000, minus_prob=0.05,
        card_prob=0.98, card_txns=24,
        categories={"department": 4, "dining": 4, "golf": 2.5, "travel": 2, "mart": 2,
                    "fuel": 1.5, "health": 1, "online": 1},
        install_prob=0.20, overseas_prob=0.55, telecom_prob=0.93,
        plans={"premium5g": 5, "special5g": 3, "lte_data": 2},
        data_gb=9, voice_min=320, sms=30, night_ratio=0.10, roaming_prob=0.35, finapp=28,
        devices={"premium": 8, "mid": 2},
        grades={"VVIP": 4, "VIP": 4, "GOLD": 2}, tenure=(60, 240), late_prob=0.005,
        micro_count=0.4, micro_gaming=0.05, second_line_prob=0.20, transfers_out=3,
        marketing_consent=0.65,
    ),
    CustomerType(
        name="thin_file_student", description="thin-file students",
        weight=0.14, age=(19, 24), male_share=0.5, metro_boost=1.5,
        income_kind="allowance", income=650_000, income_sigma=0.35, balance_months=0.6,
        savings_prob=0.05, loan_prob=0.0, loan_principal=0, minus_prob=0.0,
        card_prob=0.6, card_txns=16,
        categories={"convenience": 6, "cafe": 3, "transport": 3, "online": 2,
                    "entertainment": 2, "delivery": 1.5},
        install_prob=0.02, overseas_prob=0.03, telecom_prob=0.97,
        plans={"teen": 4, "youth5g": 3, "lte_data": 2},
        data_gb=34, voice_min=70, sms=40, night_ratio=0.47, roaming_prob=0.01, finapp=18,
        devices={"budget": 5, "mid": 4, "premium": 1},
        grades={"WHITE": 4, "BASIC": 6}, tenure=(1, 48), late_prob=0.10,
        micro_count=6.5, micro_gaming=0.75, second_line_prob=0.0, transfers_out=2,
        marketing_consent=0.85,
    ),
    CustomerType(
        name="family_with_loans", description="families with mortgages",
        weight=0.22, age=(35, 49), male_share=0.5, metro_boost=1.2,
        income_kind="salary", income=5_600_000, income_sigma=0.2, balance_months=1.5,
        savings_prob=0.55, loan_prob=0.92, loan_principal=260_000_000, minus_prob=0.25,
        card_prob=0.97, card_txns=30,
        categories={"mart": 6, "education": 3, "kids": 3, "fuel": 2.5, "online": 3,
                    "dining": 2, "health": 1.5, "delivery": 1.5},
        install_prob=0.30, overseas_prob=0.12, telecom_prob=0.95,
        plans={"family5g": 6, "simple5g": 2, "lte_data": 2},
        data_gb=22, voice_min=240, sms=20, night_ratio=0.18, roaming_prob=0.06, finapp=35,
        devices={"mid": 5, "premium": 3, "budget": 2},
        grades={"GOLD": 4, "VIP": 2, "SILVER": 3}, tenure=(36, 180), late_prob=0.03,
        micro_count=1.5, micro_gaming=0.3, second_line_prob=0.55, transfers_out=5,
        marketing_consent=0.72,
    ),
    CustomerType(
        name="senior", description="seniors on pensions",
        weight=0.16, age=(65, 82), male_share=0.45, metro_boost=0.8,
        income_kind="pension", income=1_500_000, income_sigma=0.3, balance_months=7.0,
        savings_prob=0.7, loan_prob=0.05, loan_principal=20_000_000, minus_prob=0.0,
        card_prob=0.7, card_txns=10,
        categories={"health": 6, "market": 5, "mart": 3, "dining": 1},
        install_prob=0.03, overseas_prob=0.02, telecom_prob=0.9,
        plans={"senior": 6, "legacy3g": 3, "lte_basic": 2},
        data_gb=1.2, voice_min=430, sms=55, night_ratio=0.04, roaming_prob=0.01, finapp=2,
        devices={"budget": 7, "mid": 3},
        grades={"GOLD": 3, "SILVER": 4, "VIP": 1}, tenure=(120, 300), late_prob=0.015,
        micro_count=0.2, micro_gaming=0.0, second_line_prob=0.05, transfers_out=2,
        marketing_consent=0.55,
    ),
    CustomerType(
        name="gig_self_employed", description="self-employed and gig workers",
        weight=0.12, age=(30, 58), male_share=0.65, metro_boost=1.0,
        income_kind="gig", income=4_300_000, income_sigma=0.45, balance_months=1.2,
        savings_prob=0.2, loan_prob=0.6, loan_principal=45_000_000, minus_prob=0.6,
        card_prob=0.92, card_txns=26,
        categories={"fuel": 5, "business": 5, "dining": 3, "convenience": 2, "online": 1.5},
        install_prob=0.18, overseas_prob=0.04, telecom_prob=0.96,
        plans={"simple5g": 3, "lte_data": 4, "special5g": 1},
        data_gb=16, voice_min=780, sms=35, night_ratio=0.22, roaming_prob=0.02, finapp=55,
        devices={"mid": 5, "premium": 3, "budget": 2},
        grades={"SILVER": 4, "GOLD": 3, "WHITE": 2}, tenure=(12, 160), late_prob=0.12,
        micro_count=1.2, micro_gaming=0.3, second_line_prob=0.25, transfers_out=9,
        marketing_consent=0.7,
    ),
)
TYPE_BY_NAME = {t.name: t for t in CUSTOMER_TYPES}
