"""How quasi-identifiers are released: the generalisation ladder the release gate climbs.

A released snapshot carries ``age_band``, ``gender`` and ``region`` in place of the raw age,
gender and 시도 code. The gate takes the first level of ``LEVELS`` at which suppressing the
subjects in groups smaller than k costs at most the allowed share, and suppresses them.
"""
from __future__ import annotations

from dataclasses import dataclass

#: wider areas over the 2-digit 시도 codes of the customer master
AREAS: dict[str, tuple[str, ...]] = {
    "capital": ("11", "28", "41"),                  # Seoul, Incheon, Gyeonggi
    "chungcheong": ("30", "36", "43", "44"),        # Daejeon, Sejong, Chungbuk, Chungnam
    "honam": ("29", "45", "46", "52"),              # Gwangju, Jeonbuk (old and new code), Jeonnam
    "yeongnam": ("26", "27", "31", "47", "48"),     # Busan, Daegu, Ulsan, Gyeongbuk, Gyeongnam
    "gangwon_jeju": ("42", "51", "50"),             # Gangwon (old and new code), Jeju
}
RELEASED_QUASI_IDENTIFIERS = ("age_band", "gender", "region")
SUPPRESSED = "*"


@dataclass(frozen=True)
class Level:
    age_years: int  # width of the age bands
    region: str  # "code" (시도), "area" (AREAS) or "none"
    gender: bool  # released, or suppressed to "*"

    @property
    def description(self) -> str:
        region = {"code": "시도", "area": "wider area", "none": "no region"}[self.region]
        return f"{self.age_years}-year age bands, {'gender' if self.gender else 'no gender'}, {region}"


LEVELS: tuple[Level, ...] = (
    Level(5, "code", True),
    Level(10, "code", True),
    Level(10, "area", True),
    Level(20, "area", True),
    Level(20, "none", True),
    Level(20, "none", False),
)

#: the feature whose diversity within each released group is reported (l-diversity), in bands
SENSITIVE_FEATURE = "bank_inflow_3m_avg"
SENSITIVE_BANDS = 5

#: group sizes the privacy report counts groups in
SIZE_BUCKETS = ((1, 1), (2, 4), (5, 9), (10, 19), (20, 49), (50, None))
BUCKET_LABELS = tuple(f"{low}+" if high is None else (f"{low}" if low == high else f"{low}-{high}")
                      for low, high in SIZE_BUCKETS)
