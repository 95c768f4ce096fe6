"""The consent snapshot the fusion relies on: consent for (subject, purpose, source) is valid at t
when the latest event at or before t (ties: later in the chain) is a grant or renew and t is
before its end date."""
from __future__ import annotations

from datetime import date, datetime

from schemas.asof import as_of_moment
from schemas.dialects import Dialect


def consent_states_sql(d: Dialect, ledger: str, purpose: str, as_of: date | datetime) -> str:
    """SQL: per (link_key, key_version, source) the latest event of ``ledger`` at or before
    ``as_of`` and its ``state`` (valid, withdrawn or expired); subjects with no event yet are absent."""
    moment = d.moment(as_of_moment(as_of))
    return f"""
SELECT link_key, key_version, source, event_type, event_time, end_date, channel, event_id, seq,
       CASE WHEN event_type = 'withdraw' THEN 'withdrawn'
            WHEN {moment} >= CAST(end_date AS {d.sql_type('timestamp')}) THEN 'expired' ELSE 'valid' END AS state
FROM (SELECT *, row_number() OVER (PARTITION BY link_key, key_version, source
                                   ORDER BY event_time DESC, seq DESC) AS _n
      FROM (SELECT link_key, key_version, {d.explode('sources')} AS source, event_type, event_time, end_date,
                   channel, event_id, seq
            FROM {ledger} WHERE purpose = {d.lit(purpose)} AND event_time <= {moment}) e) l
WHERE _n = 1"""
