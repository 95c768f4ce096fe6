"""The registry of data holders: which (source, org_code) the operator collects from, since when.

Which holders a MyData operator collects from is its own configuration, not part of the landing
contract (LANDING.md, "Holders"): real org codes are assigned by the MyData support centre and
change as agreements are signed. Ingest refuses a delivery from a holder that is not registered
for its source (a configuration problem to raise, not data to quarantine line by line).

Where the registry comes from:

- production: ``MYDATA_HOLDERS`` holds it as JSON (a list of holders); read-only here;
- embedded default: ``<data root>/config/holders.json``, edited with ``mydata holders add|remove``.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from mydata.config import ConfigError, Settings
from mydata.manifest import write_json_atomic
from schemas.landing import MYDATA_SOURCES

HOLDERS_ENV_VAR = "MYDATA_HOLDERS"
ORG_CODE_PATTERN = re.compile(r"^[A-Za-z0-9]{10}$")  # aN(10)


@dataclass(frozen=True)
class Holder:
    """One data holder the operator collects ``source`` records from, since ``since``."""

    source: str
    org_code: str
    name: str
    since: date

    def __post_init__(self) -> None:
        if self.source not in MYDATA_SOURCES:
            raise ConfigError(f"a holder's source is one of {', '.join(MYDATA_SOURCES)}, got {self.source!r}")
        if not ORG_CODE_PATTERN.match(str(self.org_code)):
            raise ConfigError(f"an org_code is 10 letters or digits (aN(10)), got {self.org_code!r}")
        if not str(self.name).strip():
            raise ConfigError(f"holder {self.org_code} needs a name")
        if any(unicodedata.category(c) in ("Cc", "Cf") for c in str(self.name)):
            # a terminal escape in a name would rewrite the screen of whoever lists the holders
            raise ConfigError(f"holder {self.org_code}: the name has control characters ({self.name!r}); "
                              "give it in plain text")
        if not isinstance(self.since, date):
            try:
                object.__setattr__(self, "since", date.fromisoformat(str(self.since)))
            except ValueError:
                raise ConfigError(f"holder {self.org_code}: since must be a date YYYY-MM-DD, "
                                  f"got {self.since!r}") from None

    def as_dict(self) -> dict:
        return {**asdict(self), "since": self.since.isoformat()}


class HolderRegistry:
    """The registered holders; ``add`` and ``remove`` write the embedded file."""

    def __init__(self, holders: list[Holder], source: str, path: Path | None = None) -> None:
        self._holders = {(h.source, h.org_code): h for h in holders}
        self._source = source
        self._path = path

    @classmethod
    def open(cls, settings: Settings, env: Mapping[str, str] | None = None) -> HolderRegistry:
        """``MYDATA_HOLDERS`` if set, else the data root's file (empty when it does not exist yet)."""
        env = os.environ if env is None else env
        if env.get(HOLDERS_ENV_VAR):
            value = env[HOLDERS_ENV_VAR]
            if value.lstrip().startswith(("[", "{")):  # the list itself (or a mangled one)
                return cls(_parse(value, f"${HOLDERS_ENV_VAR}"), f"${HOLDERS_ENV_VAR}")
            named = Path(value).expanduser()  # else the file that holds it
            if not named.is_file():
                raise ConfigError(f"{HOLDERS_ENV_VAR} names {named}, which does not exist: give the holder list "
                                  "(a JSON list) or the path of a file holding it")
            return cls(_parse(named.read_text(encoding="utf-8"), str(named)), str(named))
        path = settings.lake.holders
        holders = _parse(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else []
        return cls(holders, str(path), path)

    @property
    def source(self) -> str:
        return self._source

    def holders(self) -> list[Holder]:
        return sorted(self._holders.values(), key=lambda h: (h.source, h.org_code))

    def get(self, source: str, org_code: str) -> Holder | None:
        return self._holders.get((source, org_code))

    def add(self, holder: Holder) -> Holder:
        self._holders[(holder.source, holder.org_code)] = holder
        self._save()
        return holder

    def remove(self, source: str, org_code: str) -> Holder:
        holder = self._holders.pop((source, org_code), None)
        if holder is None:
            raise ConfigError(f"no {source} holder {org_code} is registered (see `mydata holders list`)")
        self._save()
        return holder

    def _save(self) -> None:
        if self._path is None:
            raise ConfigError(f"the holder registry comes from {self._source} here and is read-only; "
                              "change it where it is managed")
        write_json_atomic(self._path, [h.as_dict() for h in self.holders()])


def _parse(text: str, where: str) -> list[Holder]:
    try:
        document = json.loads(text)
        return [Holder(**entry) for entry in document]
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"the holder registry from {where} is not a JSON list of "
                          '{"source", "org_code", "name", "since"} entries') from exc


def unregistered_message(source: str, dts: list[str], org_code: str, lines: int, registered: Holder | None) -> str:
    """What the data engineer reads when deliveries come from a holder the registry does not allow:
    the holder, the deliveries, and the command that registers it from its earliest delivery."""
    since = min(dts)
    when = f"delivery dt={dts[0]}" if len(dts) == 1 else f"deliveries dt={since}..{max(dts)} ({len(dts)} dates)"
    if registered is not None:
        why = f"is registered for {source} only since {registered.since.isoformat()}"
        fix = (f"if the agreement started earlier: mydata holders add --source {source} "
               f"--org-code {org_code} --name '{registered.name}' --since {since}")
    else:
        why = f"is not a registered {source} holder"
        fix = (f"if you collect from it, register it: mydata holders add --source {source} --org-code {org_code} "
               f"--name NAME --since {since}")
    return f"{source} {when}: org_code {org_code} {why} ({lines:,} lines); {fix}"
