"""The whole way from landing to features on deliveries shaped like real holders' (the generator's
real shapes): one delivery collected on its own date, state collected again a week later, an
operator without payments, late card deliveries, negative card bills. Expected values come from
the generator's own subjects, not from the pipeline."""
from __future__ import annotations

import shutil
from datetime import date

import pyarrow.parquet as pq
import pytest

from jobs import consent, features, fuse, ingest
from mydata.devtools.synth.generator import REAL_SHAPES, SILENT_OPERATOR, GeneratorOptions, make_subject
from mydata.keys import KeyStore, purpose_pseudonym
from tests.tables import differing_cells

pytestmark = pytest.mark.slow


def _pipeline(settings, as_of: date) -> dict[str, dict]:
    ingest.run(settings)
    consent.run(settings)
    fuse.run(settings.replace(as_of=as_of))
    result = features.run(settings.replace(as_of=as_of))
    return {r["pseudonym"]: r for r in pq.read_table(result["candidate"]).to_pylist()}


def _subjects(settings, options: GeneratorOptions) -> dict[str, object]:
    """The generator's subjects by their marketing pseudonym."""
    keystore = KeyStore.open(settings)
    secrets = {1: keystore.link_secret(1)}  # as generate() hands them, with no key mismatch asked
    purpose = keystore.purpose_secret("marketing", keystore.current_purpose_version("marketing"))
    made = [make_subject(options.seed, i, options, secrets) for i in range(options.subjects)]
    return {purpose_pseudonym(purpose, s.link_key): s for s in made}


def test_one_month_collected_on_its_delivery_date_gives_the_state_as_of_that_date(make_landing, tmp_path):
    options = dict(subjects=150, months=1, seed=3, defect_rate=0.0, key_mismatch_rate=0.0, workers=1, **REAL_SHAPES)
    settings, summary = make_landing(tmp_path / "lake", **options)
    as_of = date.fromisoformat(summary.deliveries[-1])
    rows = _pipeline(settings, as_of)
    truth = _subjects(settings, GeneratorOptions(**options))
    assert len(rows) > 30
    for pseudonym, row in rows.items():
        subject = truth[pseudonym]
        listed = len(subject.accounts)  # every account, collected once or twice (the refresh is a week later)
        assert row["bank_accounts"] == listed, pseudonym
        assert row["bank_overdraft_accounts"] == sum(a.is_minus for a in subject.accounts)
        assert row["telecom_lines"] == len(subject.lines) and row["bank_balance_level"] is not None
        # the silent operator's subscribers: payments missing, not "everything unpaid"
        silent = subject.telecom_org == SILENT_OPERATOR
        assert (row["telecom_paid_6m"] is None) == silent and (row["telecom_unpaid_share_6m"] is None) == silent
        assert (row["telecom_micropay_3m"] is None) == silent
        # one bill month delivered of three: its average, not a third of it
        assert row["telecom_arpu_3m"] is None or row["telecom_arpu_3m"] * 3 != pytest.approx(row["telecom_billed_6m"])
    assert {truth[p].telecom_org for p in rows} == {SILENT_OPERATOR, "T100000001"}


def test_a_late_delivery_leaves_the_earlier_snapshot_unchanged_and_a_refresh_doubles_nothing(make_landing, tmp_path):
    options = dict(subjects=150, months=2, seed=4, defect_rate=0.0, key_mismatch_rate=0.0, workers=1, **REAL_SHAPES)
    settings, summary = make_landing(tmp_path / "lake", **options)
    as_of = date.fromisoformat(summary.deliveries[-1])
    # the first run sees only what had come by the as-of date
    later = [d for d in settings.lake.landing.glob("*/dt=*") if date.fromisoformat(d.name[3:]) > as_of]
    assert later, "the real shapes deliver refreshes and late card records after the month's delivery"
    aside = tmp_path / "aside"
    for folder in later:
        shutil.move(str(folder), str(aside / folder.parent.name / folder.name))
    before = _pipeline(settings, as_of)
    for folder in later:
        shutil.move(str(aside / folder.parent.name / folder.name), str(folder))
    after = _pipeline(settings, as_of)
    # equal, doubles to rounding (a standard deviation's sum depends on row order)
    assert not differing_cells(before, after, rel_tol=1e-12) and before.keys() == after.keys()
    truth = _subjects(settings, GeneratorOptions(**options))
    assert all(row["bank_accounts"] == len(truth[p].accounts) for p, row in after.items())
    # negative card bills are kept (refunds over charges), not quarantined
    bills = pq.read_table(settings.lake.bronze_table("card_bills"), columns=["charge_amt"]).column("charge_amt")
    assert any(v.as_py() < 0 for v in bills)
