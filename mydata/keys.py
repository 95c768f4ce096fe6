"""The one key store, and the keyed hashes built on it.

Three kinds of secret, each with integer versions (rotation adds a version; old ones stay readable):

- link secrets: the holders' HMAC key for link keys, ``link_key = b64url(HMAC-SHA256(link, CI))``;
- purpose secrets: one per purpose, ``pseudonym = b64url(HMAC-SHA256(purpose, link_key))``;
- anchor secrets: sign the consent ledger's recorded heads (``sign_head``), so whoever can write
  the lake cannot rewrite them; in production the store comes from a secret manager the lake's
  writers never see.

Where secrets come from:

- production: the environment variable ``MYDATA_KEYS`` holds the store as JSON (set it from a
  secret manager or an Airflow connection); it is read-only;
- embedded default: ``<data root>/keys/keystore.json``, generated with random secrets on first
  use, created with owner-only permissions (0600).

A secret value never appears in a repr, a log line, a manifest or an exception message.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mydata.config import PURPOSES, Settings
from mydata.errors import UsageError

KEYS_ENV_VAR = "MYDATA_KEYS"
KEYSTORE_FORMAT = 1
SECRET_BYTES = 32


class KeyStoreError(UsageError):
    """The key store is missing, unreadable or lacks the asked-for secret (never shows a value)."""


class Secret:
    """A secret byte string that will not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if len(value) < 16:
            raise KeyStoreError("a secret must be at least 16 bytes")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value).digest())


def keyed_hash(secret: Secret, text: str) -> str:
    """Unpadded base64url of HMAC-SHA256(secret, UTF-8 text): 43 characters."""
    digest = hmac.new(secret.reveal(), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def link_key(secret: Secret, ci: str) -> str:
    """The holders' link key for a CI (the tokenizer and the generator both call this)."""
    return keyed_hash(secret, ci)


def purpose_pseudonym(secret: Secret, link_key_value: str) -> str:
    """The purpose-scoped pseudonym that replaces a link key past the fuse step."""
    return keyed_hash(secret, link_key_value)


@dataclass(frozen=True)
class KeyRef:
    """Which secret was used, safe to write into manifests."""

    kind: str
    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}:v{self.version}"


def _encode(secret: Secret) -> str:
    return base64.b64encode(secret.reveal()).decode("ascii")


def _decode(where: str, text: str) -> Secret:
    try:
        return Secret(base64.b64decode(text, validate=True))
    except (ValueError, TypeError):
        raise KeyStoreError(f"{where} is not valid base64") from None


class KeyStore:
    """Versioned link and purpose secrets."""

    def __init__(self, document: Mapping, source: str, path: Path | None = None) -> None:
        self._source = source
        self._path = path
        try:
            self._link = {int(v): _decode(f"link secret v{v}", s) for v, s in document["link"].items()}
            self._purpose = {
                str(p): {int(v): _decode(f"{p} secret v{v}", s) for v, s in versions.items()}
                for p, versions in document["purpose"].items()
            }
            self._anchor = {int(v): _decode(f"anchor secret v{v}", s)
                            for v, s in document.get("anchor", {}).items()}
        except (KeyError, AttributeError, TypeError, ValueError):
            raise KeyStoreError(
                f"key store from {source} is not in the expected form "
                '{"format": 1, "link": {"1": "<base64>"}, "purpose": {"marketing": {"1": "<base64>"}}}'
            ) from None
        if not self._link:
            raise KeyStoreError(f"key store from {source} has no link secret")

    # construction ------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, env: Mapping[str, str] | None = None) -> KeyStore:
        """The production store from ``MYDATA_KEYS`` if set, else the embedded file (made if missing)."""
        env = os.environ if env is None else env
        if env.get(KEYS_ENV_VAR):
            try:
                document = json.loads(env[KEYS_ENV_VAR])
            except json.JSONDecodeError:
                raise KeyStoreError(f"{KEYS_ENV_VAR} is set but is not JSON") from None
            return cls(document, source=f"${KEYS_ENV_VAR}")
        return cls.open_file(settings.lake.keys / "keystore.json")

    @classmethod
    def open_file(cls, path: Path) -> KeyStore:
        path = Path(path)
        if not path.exists():
            cls._create_file(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyStoreError(
                f"key store {path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
            )
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise KeyStoreError(f"key store {path} is not JSON") from None
        store = cls(document, source=str(path), path=path)
        if not store._anchor:  # a store made before heads were signed gets its first anchor secret
            store.rotate_anchor()
        return store

    @staticmethod
    def _create_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        document = {
            "format": KEYSTORE_FORMAT,
            "link": {"1": _encode(Secret(_random.token_bytes(SECRET_BYTES)))},
            "purpose": {p: {"1": _encode(Secret(_random.token_bytes(SECRET_BYTES)))} for p in PURPOSES},
            "anchor": {"1": _encode(Secret(_random.token_bytes(SECRET_BYTES)))},
        }
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # another process made it first; use theirs
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)

    # reading -----------------------------------------------------------------
    @property
    def source(self) -> str:
        return self._source

    @property
    def link_versions(self) -> list[int]:
        return sorted(self._link)

    @property
    def current_link_version(self) -> int:
        return max(self._link)

    def link_secret(self, version: int | None = None) -> Secret:
        version = self.current_link_version if version is None else int(version)
        if version not in self._link:
            raise KeyStoreError(
                f"no link secret of version {version} (versions held: {self.link_versions})"
            )
        return self._link[version]

    def purpose_versions(self, purpose: str) -> list[int]:
        return sorted(self._purpose.get(purpose, {}))

    def current_purpose_version(self, purpose: str) -> int:
        versions = self.purpose_versions(purpose)
        if not versions:
            raise KeyStoreError(f"no secret for purpose {purpose!r} in the key store")
        return versions[-1]

    def purpose_secret(self, purpose: str, version: int | None = None) -> Secret:
        version = self.current_purpose_version(purpose) if version is None else int(version)
        try:
            return self._purpose[purpose][version]
        except KeyError:
            raise KeyStoreError(
                f"no {purpose!r} secret of version {version} "
                f"(versions held: {self.purpose_versions(purpose)})"
            ) from None

    @property
    def anchor_versions(self) -> list[int]:
        return sorted(self._anchor)

    def anchor_secret(self, version: int | None = None) -> tuple[int, Secret]:
        """(version, secret) of the anchor secret, the newest by default."""
        if not self._anchor:
            raise KeyStoreError(f"the key store from {self._source} has no anchor secret to sign the consent "
                                'ledger\'s heads with; add {"anchor": {"1": "<base64 of 32 random bytes>"}}')
        version = max(self._anchor) if version is None else int(version)
        if version not in self._anchor:
            raise KeyStoreError(f"no anchor secret of version {version} (versions held: {self.anchor_versions})")
        return version, self._anchor[version]

    def describe(self) -> dict:
        """Versions only, never values: safe for logs, manifests and the CLI."""
        return {
            "source": self._source,
            "link_versions": self.link_versions,
            "purpose_versions": {p: self.purpose_versions(p) for p in sorted(self._purpose)},
            "anchor_versions": self.anchor_versions,
        }

    def __repr__(self) -> str:
        return f"KeyStore(source={self._source!r}, link_versions={self.link_versions})"

    # rotation ----------------------------------------------------------------
    def rotate_link(self) -> KeyRef:
        """Add a new link secret version (embedded file store only)."""
        version = self.current_link_version + 1
        self._link[version] = Secret(_random.token_bytes(SECRET_BYTES))
        self._save()
        return KeyRef("link", "link", version)

    def rotate_purpose(self, purpose: str) -> KeyRef:
        if purpose not in PURPOSES:
            raise KeyStoreError(f"unknown purpose {purpose!r}; purposes: {', '.join(PURPOSES)}")
        versions = self._purpose.setdefault(purpose, {})
        version = max(versions, default=0) + 1
        versions[version] = Secret(_random.token_bytes(SECRET_BYTES))
        self._save()
        return KeyRef("purpose", purpose, version)

    def rotate_anchor(self) -> KeyRef:
        """Add an anchor secret version; heads signed before stay verifiable with theirs."""
        version = max(self._anchor, default=0) + 1
        self._anchor[version] = Secret(_random.token_bytes(SECRET_BYTES))
        self._save()
        return KeyRef("anchor", "anchor", version)

    def _save(self) -> None:
        if self._path is None:
            raise KeyStoreError(
                f"the key store from {self._source} is read-only here; rotate it where it is managed"
            )
        document = {
            "format": KEYSTORE_FORMAT,
            "link": {str(v): _encode(s) for v, s in sorted(self._link.items())},
            "purpose": {
                p: {str(v): _encode(s) for v, s in sorted(vs.items())}
                for p, vs in sorted(self._purpose.items())
            },
            "anchor": {str(v): _encode(s) for v, s in sorted(self._anchor.items())},
        }
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
        os.replace(tmp, self._path)


# -- signed consent heads ------------------------------------------------------------------------------

#: the fields of a recorded ledger head that its signature covers
HEAD_FIELDS = ("events", "hash", "dt", "run_id")


def _head_payload(head: Mapping) -> bytes:
    return json.dumps({k: head.get(k) for k in HEAD_FIELDS}, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_head(keystore: KeyStore, head: Mapping) -> dict:
    """``head`` with ``anchor_version`` and ``signature`` (hex HMAC-SHA256 under the anchor secret)."""
    version, secret = keystore.anchor_secret()
    signature = hmac.new(secret.reveal(), _head_payload(head), hashlib.sha256).hexdigest()
    return {**{k: head.get(k) for k in HEAD_FIELDS}, "anchor_version": version, "signature": signature}


def head_signature_problem(keystore: KeyStore, head: Mapping) -> str | None:
    """None when ``head`` carries a valid signature, else what is wrong with it."""
    if not head.get("signature") or head.get("anchor_version") is None:
        return "is not signed"
    try:
        _, secret = keystore.anchor_secret(head["anchor_version"])
    except (KeyStoreError, ValueError, TypeError):
        return f"is signed with anchor secret version {head.get('anchor_version')!r}, which the key store does not hold"
    expected = hmac.new(secret.reveal(), _head_payload(head), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, str(head["signature"])) else "has a signature that does not match it"
