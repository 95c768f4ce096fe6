"""Lake storage helpers on small explicit inputs."""
from __future__ import annotations

from datetime import date

from mydata import storage


def test_dates_are_batched_together_while_their_sizes_fit_the_budget():
    d1, d2, d3, d4 = (date(2026, m, 1) for m in (6, 7, 8, 9))
    sizes = {d3: 40, d1: 50, d2: 50, d4: 200}
    assert storage.date_batches(sizes, 100) == [[d1, d2], [d3], [d4]]
    assert storage.date_batches(sizes, None) == [[d1, d2, d3, d4]]
    assert storage.date_batches(sizes, 0) == [[d1], [d2], [d3], [d4]]
