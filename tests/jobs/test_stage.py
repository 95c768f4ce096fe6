"""The stage skeleton: a manifest whatever happens, the engine closed, the front page refreshed."""
from __future__ import annotations

import json

import pytest

from jobs.stage import stage_run
from mydata.config import Settings


def _manifest(run) -> dict:
    return json.loads(run.manifest_path.read_text(encoding="utf-8"))


def test_a_run_that_ends_is_recorded_succeeded_with_its_engine_closed_and_the_page_refreshed(tmp_path):
    settings = Settings(data_root=tmp_path)
    with stage_run(settings, "features", purpose="marketing") as run:
        assert run.engine.rows("SELECT 41 + 1 AS n") == [{"n": 42}]
        run.manifest.outputs["subjects"] = 3
        assert not run.manifest_path.exists()  # written when the block ends, not before
    written = _manifest(run)
    assert (written["status"], written["parameters"], written["outputs"]) == ("succeeded", {"purpose": "marketing"},
                                                                              {"subjects": 3})
    assert run._engine is None
    assert run.manifest.run_id in (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")


def test_a_run_that_fails_is_recorded_failed_with_its_error_and_the_error_goes_on(tmp_path):
    settings = Settings(data_root=tmp_path)
    with pytest.raises(KeyError, match="bank"):
        with stage_run(settings, "fuse") as run:
            run.engine.rows("SELECT 1 AS n")
            raise KeyError("bank")
    written = _manifest(run)
    assert written["status"] == "failed" and written["error"] == "KeyError: 'bank'"
    assert run._engine is None
    assert run.manifest.run_id in (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")


def test_a_manifest_the_stage_wrote_itself_is_left_as_it_is(tmp_path):
    """A gate that fails a run with its own account (validate, the release gate) keeps it."""
    settings = Settings(data_root=tmp_path)
    with pytest.raises(RuntimeError):
        with stage_run(settings, "validate") as run:
            run.manifest.error = "bronze breaks 2 expectations"
            run.manifest.finish(run.lake, "failed")
            raise RuntimeError("bronze breaks 2 expectations; see the report")
    assert _manifest(run)["error"] == "bronze breaks 2 expectations"
    with stage_run(settings, "consent") as landed:
        landed.manifest.finish(landed.lake, "failed")  # as a journaled publish lands it, held back
    assert _manifest(landed)["status"] == "failed"


def test_a_failure_is_recorded_before_the_engine_closes_so_a_failing_close_loses_nothing(tmp_path):
    settings = Settings(data_root=tmp_path)
    with pytest.raises(KeyError, match="bank"):
        with stage_run(settings, "fuse") as run:
            engine = run.engine

            def broken_close() -> None:
                assert run.manifest_path.exists(), "the failure is on record before the engine closes"
                raise RuntimeError("the session went away")

            engine.close = broken_close
            raise KeyError("bank")
    assert _manifest(run)["error"] == "KeyError: 'bank'"


def test_a_result_says_its_run_in_the_line_the_demo_and_the_front_page_print(tmp_path):
    from mydata.manifest import latest_manifest
    from render.summaries import summary

    settings = Settings(data_root=tmp_path)
    with stage_run(settings, "features", purpose="marketing", as_of="2026-11-01") as run:
        run.manifest.outputs = {"features": 63, "subjects": 1_200}
    result = run.result(candidate="silver/features")
    assert result["subjects"] == 1_200 and result["candidate"] == "silver/features"
    assert result["manifest"] == str(run.manifest_path) and dict(result)["features"] == 63
    assert result.summary() == "63 features for 1,200 subjects"
    assert summary(latest_manifest(settings.lake, "features")) == result.summary()
    assert result.summary() in (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
