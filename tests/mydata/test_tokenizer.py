import base64
import csv
import gzip
import json
import random

import pytest

from cli import main
from mydata.config import Settings
from mydata.keys import KeyStore, Secret, link_key
from mydata.tokenizer import TokenizeError, tokenize_file

SECRET = Secret(b"s" * 32)


def synthetic_ci(i: int) -> str:
    return base64.b64encode(random.Random(i).randbytes(64)).decode()


def test_csv_ci_column_is_replaced_by_link_key_and_version(tmp_path):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f"name_ref,ci,amount\nr1,{synthetic_ci(1)},100\nr2,{synthetic_ci(2)},200\n")
    result = tokenize_file(src, dst, SECRET, 4)
    rows = list(csv.DictReader(dst.open()))
    assert result.records == 2
    assert list(rows[0]) == ["link_key", "key_version", "name_ref", "amount"]
    assert rows[0]["link_key"] == link_key(SECRET, synthetic_ci(1))
    assert rows[1] == {"link_key": link_key(SECRET, synthetic_ci(2)), "key_version": "4",
                       "name_ref": "r2", "amount": "200"}
    assert synthetic_ci(1) not in dst.read_text()


def test_gzipped_json_lines_with_another_ci_column(tmp_path):
    src, dst = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    with gzip.open(src, "wt") as handle:
        handle.write(json.dumps({"x_user_ci": synthetic_ci(3), "amt": "1.000"}) + "\n\n")
    tokenize_file(src, dst, SECRET, 1, ci_column="x_user_ci")
    with gzip.open(dst, "rt") as handle:
        records = [json.loads(line) for line in handle]
    assert records == [{"link_key": link_key(SECRET, synthetic_ci(3)), "key_version": 1, "amt": "1.000"}]


@pytest.mark.parametrize("content, message", [
    ("id,amount\n1,2\n", "no column named 'ci'"),
    ("ci,amount\n,2\n", "line 2: the CI column is empty"),
])
def test_bad_csv_errors_name_the_line_not_the_ci(tmp_path, content, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    with pytest.raises(TokenizeError, match=message):
        tokenize_file(src, tmp_path / "out.csv", SECRET, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no partial output left


def test_bad_json_line_error_does_not_echo_the_record(tmp_path):
    src = tmp_path / "in.jsonl"
    ci = synthetic_ci(5)
    src.write_text(json.dumps({"ci": ci}) + "\n" + '{"ci": "' + ci + '", broken\n')
    with pytest.raises(TokenizeError) as excinfo:
        tokenize_file(src, tmp_path / "out.jsonl", SECRET, 1)
    assert "line 2: not valid JSON" in str(excinfo.value)
    assert ci not in str(excinfo.value)


def test_cli_tokenize_uses_the_key_store_newest_link_version(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f"ci\n{synthetic_ci(7)}\n")
    assert main(["--data-root", str(tmp_path), "tokenize", "--in", str(src), "--out", str(dst)]) == 0
    store = KeyStore.open(Settings(data_root=tmp_path), env={})
    row = next(csv.DictReader(dst.open()))
    assert row == {"link_key": link_key(store.link_secret(1), synthetic_ci(7)), "key_version": "1"}
    assert "tokenized 1 records" in capsys.readouterr().out


def test_cli_reports_a_missing_input_as_one_line(tmp_path, capsys):
    code = main(["--data-root", str(tmp_path), "tokenize", "--in", str(tmp_path / "no.csv"),
                 "--out", str(tmp_path / "o.csv")])
    assert code == 2
    assert "no such file" in capsys.readouterr().err
