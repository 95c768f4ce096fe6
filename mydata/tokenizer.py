"""The holders' tokenizer: replace the CI column of a file by ``link_key`` and ``key_version``.

Data holders run this before anything leaves them. It streams (any file size), reads CSV (header
row) or JSON lines (optionally .gz), and uses the same HMAC as the synthetic generator
(``mydata.keys.link_key``). Errors name the line, never the CI.
"""
from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mydata.errors import UsageError
from mydata.keys import Secret, link_key


class TokenizeError(UsageError):
    """The input cannot be tokenized as asked (the message never includes a CI)."""


@dataclass(frozen=True)
class TokenizeResult:
    records: int
    key_version: int
    out: Path


def _open(path: Path, mode: str, gzipped: bool) -> IO[str]:
    if gzipped:
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise TokenizeError(f"{path.name}: cannot tell the format; name it .csv or .jsonl (optionally .gz)")


def _key(secret: Secret, ci: object, where: str) -> str:
    if not isinstance(ci, str) or not ci.strip():
        raise TokenizeError(f"{where}: the CI column is empty or not text")
    return link_key(secret, ci.strip())


def tokenize_file(src: Path, dst: Path, secret: Secret, key_version: int,
                  ci_column: str = "ci") -> TokenizeResult:
    """Write ``src`` to ``dst`` with ``ci_column`` replaced by link_key and key_version."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise TokenizeError(f"{src}: no such file")
    fmt = _format(src)
    if _format(dst) != fmt:
        raise TokenizeError(f"{dst.name}: output must have the same format as the input ({fmt})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial")  # renamed into place only when complete
    try:
        with _open(src, "r", src.suffix == ".gz") as reader, \
                _open(tmp, "w", dst.suffix == ".gz") as writer:
            rows = (_tokenize_csv if fmt == "csv" else _tokenize_jsonl)(
                reader, writer, secret, key_version, ci_column, src.name)
            count = sum(1 for _ in rows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dst)
    return TokenizeResult(count, key_version, dst)


def _tokenize_csv(reader: IO[str], writer: IO[str], secret: Secret, version: int,
                  ci_column: str, name: str) -> Iterator[None]:
    rows = csv.DictReader(reader)
    if rows.fieldnames is None or ci_column not in rows.fieldnames:
        raise TokenizeError(f"{name}: no column named {ci_column!r} in the header")
    columns = [c for c in rows.fieldnames if c != ci_column and c not in ("link_key", "key_version")]
    out = csv.DictWriter(writer, ["link_key", "key_version", *columns], lineterminator="\n",
                         extrasaction="ignore")
    out.writeheader()
    for line_no, row in enumerate(rows, start=2):
        if None in row:
            raise TokenizeError(f"{name} line {line_no}: more fields than the header has")
        key = _key(secret, row.get(ci_column), f"{name} line {line_no}")
        out.writerow({**row, "link_key": key, "key_version": version})
        yield None


def _tokenize_jsonl(reader: IO[str], writer: IO[str], secret: Secret, version: int,
                    ci_column: str, name: str) -> Iterator[None]:
    for line_no, line in enumerate(reader, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise TokenizeError(f"{name} line {line_no}: not valid JSON") from None
        if not isinstance(record, dict):
            raise TokenizeError(f"{name} line {line_no}: not a JSON object")
        if ci_column not in record:
            raise TokenizeError(f"{name} line {line_no}: no field named {ci_column!r}")
        key = _key(secret, record.pop(ci_column), f"{name} line {line_no}")
        out = {"link_key": key, "key_version": version, **record}
        writer.write(json.dumps(out, ensure_ascii=False) + "\n")
        yield None
