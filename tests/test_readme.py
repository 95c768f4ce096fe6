"""The README as a newcomer meets it: short, no timings, links that resolve, and every command of
its quick starts run in order, as written, on a generated landing zone."""
import re
import shlex

import pyarrow.parquet as pq
import pytest

from cli import main
from mydata.config import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
#: the data root the README's commands name, and what stands for a subject's link key
LAKE, LINK_KEY = "/srv/mydata", "LINK_KEY"
#: commands run elsewhere, and where: they start servers or are the suite itself
ELSEWHERE = {
    "make demo": "`mydata demo` below, and tests/dags/test_pipeline_run.py",
    "make test": "CI (`bash .ci/run`)",
    "mydata airflow ui": "tests/cli/test_cli.py::test_airflow_ui_serves_until_interrupted_and_refuses_a_busy_port",
}


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_the_readme_is_short_has_no_timings_and_its_links_resolve():
    assert len(README.splitlines()) <= 150
    assert not re.search(r"\b\d+(\.\d+)?\s?(s|ms|min|minutes|seconds|hours)\b", README)
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links and all((PROJECT_ROOT / link).exists() for link in links if "://" not in link)


@pytest.mark.slow
def test_every_quick_start_command_runs_in_order(make_landing, tmp_path, monkeypatch, capsys):
    lake = tmp_path / "lake"
    make_landing(lake, subjects=2_000, months=6, seed=7)  # what `make demo` generates: the holders' deliveries
    monkeypatch.chdir(tmp_path)
    ran = []
    lines = [line.strip() for block in code_blocks("sh") for line in block.replace("\\\n", " ").splitlines()]
    for line in lines:
        command = shlex.split(line, comments=True)
        if not command or any(line.startswith(known) for known in ELSEWHERE):
            continue
        if command[0] == "export":
            name, value = command[1].split("=", 1)
            monkeypatch.setenv(name, value.replace(LAKE, str(lake)))
            continue
        assert command[0] == "mydata", line
        if LINK_KEY in command:
            ledger = pq.read_table(lake / "consent" / "ledger", columns=["link_key"])
            command[command.index(LINK_KEY)] = ledger.column("link_key")[0].as_py()
        code = main(command[1:])
        assert code == 0, (line, capsys.readouterr())
        ran.append(next(word for i, word in enumerate(command[1:]) if not word.startswith("-")
                        and not command[i].startswith("-")))  # the command, past global flags and values
    scope: dict = {}
    for block in code_blocks("python"):
        exec(block.replace(LAKE, str(lake)), scope)  # noqa: S102 - the README's own example
    assert len(scope["frame"]) > 0 and "pseudonym" in scope["frame"].columns
    assert {"holders", "landing", "ingest", "demo", "status", "model", "score", "consent", "purge"} <= set(ran), ran
    assert (lake / "reports" / "index.html").is_file() and (tmp_path / "anchors.jsonl").is_file()


def test_every_relative_link_in_the_docs_resolves():
    pages = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
    for page in pages:
        for link in re.findall(r"\]\(([^)#]+)\)", page.read_text(encoding="utf-8")):
            assert "://" in link or (page.parent / link).exists(), (page.name, link)
