"""Progress: what a step says when it ends, on a plain display and on a terminal's live one."""
import io
import re
import threading

import pytest

from mydata import progress


def test_a_step_says_its_count_time_and_throughput():
    step = progress.Step("ingest", "card", unit="files", total=6, done=6, rows=120_345, started=0.0, ended=4.0)
    assert step.line() == "ingest card: 6/6 files, 120,345 rows in 4.0s (30.1k rows/s)"
    assert progress.Step("score", "v0001", done=2_000, started=0.0, ended=0.5).line() == \
        "score v0001: 2,000 rows in 0.5s (4.0k rows/s)"
    assert progress.Step("airflow", "ingest", outcome="success", started=0.0, ended=4.2).line() == \
        "airflow ingest: success in 4.2s"


def test_steps_in_worker_threads_reach_the_installed_display_and_a_failure_is_told():
    said: list[str] = []

    def ingest(source: str) -> None:
        with progress.step("ingest", source, unit="files", total=2) as shown:
            shown.advance(2, rows=10)

    with progress.shown_by(progress.LineDisplay(said.append)):
        workers = [threading.Thread(target=ingest, args=(source,)) for source in ("bank", "card")]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with pytest.raises(KeyError), progress.step("fuse", "silver", unit="tables", total=3) as shown:
            shown.advance(rows=5)
            raise KeyError("x")
    assert sorted(line.split(" in ")[0] for line in said[:2]) == ["ingest bank: 2/2 files, 10 rows",
                                                                  "ingest card: 2/2 files, 10 rows"]
    assert said[2].startswith("fuse silver: 1/3 tables, 5 rows FAILED after ")
    with progress.step("landing", "inventory"):  # outside the block: the default display again
        pass
    assert len(said) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_display_and_a_pipe_plain_lines():
    terminal, pipe = _Terminal(), io.StringIO()
    assert isinstance(progress.for_stream(terminal), progress.RichDisplay)
    for stream in (terminal, pipe):
        with progress.shown_by(progress.for_stream(stream)):
            with progress.step("ingest", "card", unit="files", total=3) as shown:
                shown.advance(1, rows=7)
                shown.advance(2, rows=3)
            progress.display().note("airflow: score started")
    assert pipe.getvalue().startswith("ingest card: 3/3 files, 10 rows in ")
    assert pipe.getvalue().endswith("rows/s)\nairflow: score started\n")
    shown_on_terminal = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", terminal.getvalue())  # without its colours
    assert "✓ ingest card: 3/3 files, 10 rows in " in shown_on_terminal
    assert "airflow: score started" in shown_on_terminal


def test_the_default_display_logs_marked_lines(caplog):
    with caplog.at_level("INFO", logger=progress.LOGGER.name):
        with progress.step("purge", "marketing", unit="tables", total=1) as shown:
            shown.advance(rows=0)
    assert caplog.messages[-1].startswith("progress: purge marketing: 1/1 tables, 0 rows in ")
