import argparse
import base64
import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from cli import build_parser, main
from mydata.config import Settings
from mydata.devtools.cluster import free_port
from mydata.keys import KeyStore
from tests.on_spark import read_ledger


def test_keys_show_lists_versions_never_values(tmp_path, capsys):
    assert main(["--data-root", str(tmp_path), "keys"]) == 0
    out = capsys.readouterr().out
    store = KeyStore.open(Settings(data_root=tmp_path), env={})
    assert json.loads(out)["link_versions"] == [1]
    assert base64.b64encode(store.link_secret(1).reveal()).decode() not in out
    assert main(["--data-root", str(tmp_path), "keys", "rotate-link"]) == 0
    assert "added link:link:v2" in capsys.readouterr().out


def test_generate_prints_a_summary_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["--data-root", str(tmp_path), "generate", "--subjects", "40", "--months", "2",
            "--seed", "1", "--workers", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "generated 40 subjects x 2 months" in out and "planted defects" in out
    assert main(args) == 2
    assert "already holds deliveries" in capsys.readouterr().err


def test_stage_commands_say_each_step_with_its_count_time_and_throughput(tmp_path, capsys):
    """Captured output is not a terminal: one plain line per step, on stderr beside the results."""
    root = ["--data-root", str(tmp_path)]
    assert main([*root, "generate", "--subjects", "40", "--months", "2", "--seed", "3", "--workers", "1",
                 "--defect-rate", "0"]) == 0
    capsys.readouterr()
    assert main([*root, "landing"]) == 0
    assert re.search(r"^landing inventory: (\d+)/\1 files, [\d,]+ rows in [\d.]+s \([\d.]+k? rows/s\)$",
                     capsys.readouterr().err, re.M)
    assert main([*root, "ingest"]) == 0
    shown = capsys.readouterr()
    for source in ("bank", "card", "consent", "customer", "telecom", "telecom_usage"):
        assert re.search(rf"^ingest {source}: (\d+)/\1 files, [\d,]+ rows, staged in [\d.]+s \(", shown.err, re.M), source
    assert re.search(r"^validate card_approvals: [\d,]+ rows in ", shown.err, re.M)
    assert "ingested: " in shown.out and "validated: " in shown.out


def test_bad_flag_values_exit_2_with_one_line(tmp_path, capsys):
    assert main(["--data-root", str(tmp_path), "--as-of", "yesterday", "keys"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "as_of must be a date" in err


@pytest.mark.parametrize("command", ["fuse", "features", "release"])
def test_as_of_jobs_without_an_as_of_date_say_so(tmp_path, capsys, command):
    assert main(["--data-root", str(tmp_path), command]) == 2
    assert "needs an as-of date" in capsys.readouterr().err


@pytest.mark.slow
def test_consent_commands_for_a_reviewer(fused, spark, capsys, tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq


    settings, results = fused
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    as_of = results["marketing"]["as_of"]
    assert main(["--data-root", str(root), "consent", "verify"]) == 0
    assert "consent ledger verifies" in capsys.readouterr().out
    link_key = read_ledger(spark, settings.lake).orderBy("seq").first()["link_key"]
    assert main(["--data-root", str(root), "--as-of", as_of, "consent", "status", link_key]) == 0
    out = capsys.readouterr().out
    assert "in chain order" in out and f"consent as of {as_of}" in out and link_key not in out
    assert main(["--data-root", str(root), "--as-of", as_of, "consent", "report"]) == 0
    assert "as_of=" in capsys.readouterr().out
    # an edited ledger: verify exits 1 and names the event
    ledger = next((root / "consent" / "ledger").glob("dt=*"))
    path = next(ledger.glob("*.parquet"))
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["channel"] = "web" if rows[0]["channel"] != "web" else "app"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path, use_deprecated_int96_timestamps=True)
    assert main(["--data-root", str(root), "consent", "verify"]) == 1
    # the embedded engine wrote the ledger (no Spark checksum beside it): the edited event is named
    err = capsys.readouterr().err
    assert "BROKEN" in err and f"({rows[0]['event_id']})" in err and "edited" in err and "Traceback" not in err


def test_model_commands_for_a_data_scientist(tmp_path, capsys, blobs, publish_snapshot):
    """Train, list, compare, promote, show and drift, all through the CLI on published snapshots."""
    from jobs import segment
    from models import registry

    root = str(tmp_path)
    publish_snapshot(tmp_path, blobs(60)[0], as_of="2026-10-01")
    publish_snapshot(tmp_path, blobs(60, seed=4)[0], as_of="2026-11-01")  # the same kinds a month on
    later, _ = blobs(60, seed=5, shares=(3.0, 0.4, 0.4))  # one kind now dominates
    publish_snapshot(tmp_path, later, as_of="2026-12-01")
    model = ["--data-root", root, "model"]
    assert main([*model, "list"]) == 0 and "no models for marketing yet" in capsys.readouterr().out
    assert main([*model, "show"]) == 2 and "no model promoted for marketing" in capsys.readouterr().err
    assert main(["--data-root", root, "--as-of", "2026-10-01", "model", "train", "--k-min", "2", "--k-max", "5",
                 "--promote"]) == 0
    out, err = capsys.readouterr()
    assert "registered model marketing v0001 (promoted to current): k=3" in out and out.count("  segment ") == 3
    assert re.search(r"^train kmeans k=2\.\.5 on 180 subjects: 4/4 fits in [\d.]+s \([\d.]+k? fits/s\)$", err, re.M), err
    profile_page = tmp_path / "reports" / "models" / "marketing" / "v0001.html"
    assert f"profile: {profile_page}" in out and profile_page.is_file()
    assert main(["--data-root", root, "--as-of", "2026-10-01", "model", "train", "--k", "4"]) == 0
    assert "registered model marketing v0002: k=4" in capsys.readouterr().out
    assert main([*model, "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].startswith("* v0001") and listed[2].startswith("  v0002")
    assert main([*model, "compare", "1", "2"]) == 0
    compared = capsys.readouterr().out
    assert "parameter k: 3 -> 4" in compared and "parameter ks: [2, 3, 4, 5] -> [4]" in compared
    with pytest.raises(SystemExit) as exited:
        main([*model, "compare", "1"])
    assert exited.value.code == 2 and "required: VERSION_B" in capsys.readouterr().err
    assert main([*model, "promote", "9"]) == 2 and "no model v0009" in capsys.readouterr().err
    assert main([*model, "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "marketing v0001 (current)" in shown and "snapshot_hash" in shown and "as_of=2026-10-01" in shown

    assert main(["--data-root", root, "--as-of", "2026-11-01", "model", "drift"]) == 0
    stable = capsys.readouterr().out
    assert "retraining not needed" in stable and "2026-10-01_to_2026-11-01.html" in stable
    assert main(["--data-root", root, "--as-of", "2026-12-01", "model", "drift"]) == 0
    drifted = capsys.readouterr().out
    assert "retraining is due: " in drifted and "segment shares" in drifted
    page = (tmp_path / "reports" / "drift" / "marketing" / "2026-10-01_to_2026-12-01.html").read_text(encoding="utf-8")
    assert "RETRAIN" in page and "segment shares" in page.lower()

    settings = Settings(data_root=tmp_path, as_of="2026-11-01")
    kept = segment.refresh(settings)
    assert not kept["trained"] and kept["version"] == "v0001"
    retrained = segment.refresh(settings.replace(as_of="2026-12-01"))
    assert retrained["trained"] and retrained["reason"].startswith("drift: ") and retrained["version"] == "v0003"
    assert registry.current_version(settings.lake, "marketing") == "v0003"
    assert registry.get(settings.lake, "marketing").metadata["as_of"] == "2026-12-01"


# -- setup errors: one line, a non-zero exit, before any Spark work ------------------------------------

def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_bad_spark_master_is_one_line(tmp_path, capsys, monkeypatch):
    assert main(["--data-root", str(tmp_path), "--spark-master", "spark:/host", "ingest"]) == 2
    assert "spark_master must be a master URL" in _one_line(capsys)
    monkeypatch.setenv("MYDATA_SPARK_MASTER", "locall[2]")
    assert main(["--data-root", str(tmp_path), "landing"]) == 2
    assert "'locall[2]'" in _one_line(capsys)


@pytest.mark.parametrize("command", [["ingest"], ["consent", "verify"], ["holders"]])
def test_a_data_root_that_is_a_file_or_missing_is_one_line(tmp_path, capsys, command):
    afile = tmp_path / "lake.txt"
    afile.write_text("not a lake")
    assert main(["--data-root", str(afile), *command]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert main(["--data-root", str(tmp_path / "nowhere"), *command]) == 2
    assert "does not exist" in _one_line(capsys)


def test_a_read_only_data_root_is_one_line_before_spark_starts(tmp_path, capsys):
    import os
    import subprocess

    root = tmp_path / "lake"
    root.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only file system it cannot
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(root)], check=True)
        undo = ["umount", str(root)]
    else:
        root.chmod(0o555)
        undo = ["chmod", "755", str(root)]
    try:
        assert main(["--data-root", str(root), "ingest"]) == 2
    finally:
        subprocess.run(undo, check=True)
    err = _one_line(capsys)
    assert "is not writable (Read-only file system" in err or "is not writable (Permission denied" in err


@pytest.mark.parametrize("variable", ["MYDATA_DRIFT_THRESHOLD", "MYDATA_MAX_SUPPRESSION", "MYDATA_MAX_QUARANTINE_RATE"])
def test_non_finite_thresholds_are_refused(tmp_path, capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "nan")
    assert main(["--data-root", str(tmp_path), "keys"]) == 2
    assert "must be a finite number, got 'nan'" in _one_line(capsys)


def test_usage_mistakes_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--data-root", str(tmp_path), "consent", "status", "A" * 43, "--nonsense"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --nonsense" in _one_line(capsys)


def test_a_link_key_starting_with_a_dash_is_taken_as_a_link_key(tmp_path, capsys, spark):
    assert main(["--data-root", str(tmp_path), "consent", "status", "-" + "A" * 42]) == 1
    assert "no consent event for this link key" in capsys.readouterr().out


def test_holders_are_listed_added_and_removed(tmp_path, capsys):
    root = ["--data-root", str(tmp_path)]
    assert main([*root, "holders", "add", "--source", "card", "--org-code", "D900000009", "--name", "새카드",
                 "--since", "2026-11-01"]) == 0
    assert "registered card holder D900000009 (새카드) since 2026-11-01" in capsys.readouterr().out
    assert main([*root, "holders"]) == 0
    assert "card     D900000009  since 2026-11-01  새카드" in capsys.readouterr().out
    assert main([*root, "holders", "add", "--source", "card", "--org-code", "D900000009", "--name", "New Card"]) == 0
    assert "updated card holder D900000009 (New Card) since 2026-11-01" in capsys.readouterr().out  # date kept
    assert main([*root, "holders", "remove", "--source", "card", "--org-code", "D900000009"]) == 0
    assert "0 registered holder(s)" in capsys.readouterr().out
    assert main([*root, "holders", "remove", "--source", "card", "--org-code", "D900000009"]) == 2
    assert "no card holder D900000009 is registered" in _one_line(capsys)


@pytest.mark.slow
def test_airflow_ui_serves_until_interrupted_and_refuses_a_busy_port(tmp_path):
    """`mydata airflow ui` as a person runs it: the URL and where the login is, then Ctrl-C."""
    port = free_port()
    command = [sys.executable, "-m", "cli", "--data-root", str(tmp_path), "airflow", "ui", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = ""
        while "Ctrl-C" not in said and server.poll() is None:
            said += server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in said and "simple_auth_manager_passwords.json.generated" in said, said
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=30) as health:  # noqa: S310
            assert json.loads(health.read())["metadatabase"]["status"] == "healthy"
        busy = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 1 and f"127.0.0.1:{port} is already in use" in busy.stderr
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0


@pytest.mark.slow
def test_a_data_scientist_builds_a_training_frame_and_reads_feature_health(lake_copy, capsys):
    import pyarrow.parquet as pq

    from features.definitions import FEATURES

    settings, results = lake_copy
    root, as_of = ["--data-root", str(settings.data_root), "--purpose", "marketing"], results["marketing"]["as_of"]
    subjects = settings.lake.silver_table("subjects", "marketing") / f"as_of={as_of}"
    some = pq.read_table(subjects, columns=["pseudonym"]).column("pseudonym").to_pylist()[:3]
    spine = settings.data_root / "spine.csv"
    spine.write_text("pseudonym,as_of\n" + "".join(f"{p},{as_of}T09:30:00\n{p},2026-06-15\n" for p in some),
                     encoding="utf-8")
    assert main([*root, "features", "historical", "--spine", str(spine)]) == 0
    said = capsys.readouterr().out
    assert f"6 rows x {len(FEATURES)} features as of each row's date, from the marketing snapshot as of {as_of}" in said
    frame = pq.read_table(settings.data_root / "spine-features.parquet")
    assert frame.num_rows == 6 and frame.column_names[:2] == ["pseudonym", "as_of"]
    spine.write_text(f"pseudonym,as_of\n{some[0]},2099-01-01\n", encoding="utf-8")
    assert main([*root, "features", "historical", "--spine", str(spine)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dated after the snapshot" in err
    assert main([*root, "--as-of", as_of, "features"]) == 0 and main([*root, "--as-of", as_of, "release"]) == 0
    assert "no blank feature (`mydata release health` for every feature)" in capsys.readouterr().out
    assert main([*root, "release", "health"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"feature health of the marketing release as of {as_of}")
    assert len(lines) == 1 + sum(not f.quasi_identifier for f in FEATURES)
    assert any(line.startswith("  card_spend_1m: ") and "% null, " in line for line in lines)


@pytest.mark.parametrize("command", [["consent", "status"], ["subject", "trace"]])
def test_a_malformed_link_key_is_refused_in_one_line(tmp_path, capsys, command):
    assert main(["--data-root", str(tmp_path), *command, "not-a-link-key"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "14 characters is not a link key" in err


# -- the parser: every command registered by its module, every option explained ----------------------

def _every_parser(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _every_parser(child)


def test_every_option_and_argument_has_help():
    unexplained = [f"{parser.prog} {action.dest}" for parser in _every_parser(build_parser())
                   for action in parser._actions
                   if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
                   and not action.help]
    assert not unexplained, unexplained


def test_nouns_take_their_verbs_as_subcommands(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--data-root", str(tmp_path), "consent", "nonsense"])
    assert exited.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--data-root", str(tmp_path), "model", "--help"])
    listed = capsys.readouterr().out
    assert all(verb in listed for verb in ("train", "list", "show", "compare", "promote", "drift"))


def test_a_stage_failure_exits_1_and_a_bug_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    from jobs import landing
    from mydata.errors import StageFailed

    def refuses(settings):
        raise StageFailed("the delivery is not what the contract says")

    monkeypatch.setattr(landing, "run", refuses)
    assert main(["--data-root", str(tmp_path), "landing"]) == 1
    assert _one_line(capsys) == "mydata landing: the delivery is not what the contract says\n"

    def breaks(settings):
        return {}["a key no one wrote"]

    monkeypatch.setattr(landing, "run", breaks)
    with pytest.raises(KeyError):  # a bug is not a "setup error": it keeps its traceback
        main(["--data-root", str(tmp_path), "landing"])
