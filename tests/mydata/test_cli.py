import base64
import json

from mydata.cli import main
from mydata.config import Settings
from mydata.keys import KeyStore


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


def test_bad_flag_values_exit_2_with_one_line(tmp_path, capsys):
    assert main(["--data-root", str(tmp_path), "--as-of", "yesterday", "keys"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "as_of must be a date" in err
