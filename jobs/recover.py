"""Recover: hold the lake, finish every dead run's unfinished publish, undo its interrupted swaps and
drop its staging. Any writing stage does the first on its way in (mydata/lock.py); this does it alone,
for a data engineer who wants the lake clean before a reader runs (docs/concurrency.md)."""
from __future__ import annotations

import sys

from mydata import lock
from mydata.config import Settings
from mydata.lock import writes_lake


@writes_lake("recover")
def run(settings: Settings) -> list[str]:
    """What was finished or undone, in words; empty when the lake was clean."""
    return lock.announce("recover")  # taking the lake finished or undid what dead runs left


if __name__ == "__main__":
    print("\n".join(run(Settings.load())) or "nothing to recover", file=sys.stdout)
