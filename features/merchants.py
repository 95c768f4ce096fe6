"""Merchant categories from merchant names: the first keyword found in a name decides.

Card approvals carry a merchant name, not a category code; these keyword lists (Korean chains
and common words) are the project's own dictionary, kept as data so a reviewer can read it.
"""
from __future__ import annotations

#: category -> keywords (a name containing any keyword is in the category); order matters
MERCHANT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "overseas": ("AMAZON", "AGODA", "EXPEDIA", "TOKYO", "HONG KONG", "APPLE.COM", ".COM"),
    "cafe": ("스타벅스", "투썸", "이디야", "메가MGC", "폴바셋", "커피", "카페"),
    "delivery": ("배달의민족", "쿠팡이츠", "요기요"),
    "convenience": ("GS25", "CU", "세븐일레븐", "이마트24"),
    "transport": ("카카오T", "티머니", "코레일", "SRT", "택시"),
    "business": ("트레이더스", "다이소", "오피스디포", "공구", "식자재"),
    "online": ("쿠팡", "네이버페이", "11번가", "G마켓", "무신사"),
    "mart": ("이마트", "홈플러스", "롯데마트", "코스트코", "하나로마트"),
    "department": ("백화점",),
    "dining": ("아웃백", "본죽", "김밥", "한일관", "봉피양", "식당"),
    "travel": ("항공", "하나투어", "호텔", "야놀자", "여행"),
    "golf": ("골프", "CC", "스카이72"),
    "education": ("학원", "메가스터디", "눈높이", "어학", "윤선생"),
    "kids": ("키즈", "토이저러스", "아가방"),
    "fuel": ("SK에너지", "GS칼텍스", "S-OIL", "오일뱅크", "주유소"),
    "health": ("약국", "병원", "의원"),
    "market": ("시장", "정육점", "청과"),
    "entertainment": ("CGV", "메가박스", "시네마", "티켓"),
    "beauty": ("올리브영", "아리따움", "이니스프리"),
}


def category_sql(column: str = "merchant_name") -> str:
    """A SQL CASE expression giving the category of ``column`` (``other`` when none matches); it
    reads the same in both engines: no keyword holds a quote or a backslash."""
    def any_of(keywords: tuple[str, ...]) -> str:
        return " OR ".join(f"contains({column}, '{keyword}')" for keyword in keywords)
    arms = " ".join(f"WHEN {any_of(keywords)} THEN '{category}'" for category, keywords in MERCHANT_CATEGORIES.items())
    return f"CASE {arms} ELSE 'other' END"


assert not any(set(k) & {"'", "\\"} for keywords in MERCHANT_CATEGORIES.values() for k in keywords)
