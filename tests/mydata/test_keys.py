import base64
import hashlib
import hmac
import json
import os
import stat

import pytest

from mydata.config import Settings
from mydata.keys import KEYS_ENV_VAR, KeyStore, KeyStoreError, Secret, link_key, purpose_pseudonym

# RFC 4231, test case 1: key = 20 x 0x0b, data = "Hi There"
RFC4231_KEY = b"\x0b" * 20
RFC4231_HEX = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"


def test_link_key_matches_the_rfc_4231_vector_as_unpadded_base64url():
    expected = base64.urlsafe_b64encode(bytes.fromhex(RFC4231_HEX)).decode().rstrip("=")
    assert link_key(Secret(RFC4231_KEY), "Hi There") == expected
    assert len(expected) == 43


@pytest.mark.parametrize("ci", [
    "A" * 88,
    base64.b64encode(bytes(range(64))).decode(),
    "가나다라마바사",  # non-ASCII: hashed as UTF-8
])
def test_link_key_and_pseudonym_match_an_independent_stdlib_computation(ci):
    key = os.urandom(32)
    digest = hmac.new(key, ci.encode("utf-8"), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert link_key(Secret(key), ci) == expected
    assert purpose_pseudonym(Secret(key), ci) == expected
    assert "=" not in expected and "+" not in expected and "/" not in expected


def test_embedded_store_is_created_owner_only_and_reopens_with_the_same_secrets(tmp_path):
    settings = Settings(data_root=tmp_path)
    first = KeyStore.open(settings, env={})
    path = tmp_path / "keys" / "keystore.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = KeyStore.open(settings, env={})
    assert again.link_secret(1) == first.link_secret(1)
    assert again.purpose_secret("marketing") == first.purpose_secret("marketing")
    assert first.purpose_secret("marketing") != first.purpose_secret("analytics")
    assert first.purpose_secret("marketing") != first.link_secret(1)


def test_a_store_readable_by_others_is_refused(tmp_path):
    settings = Settings(data_root=tmp_path)
    KeyStore.open(settings, env={})
    path = tmp_path / "keys" / "keystore.json"
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        KeyStore.open(settings, env={})


def test_rotation_adds_a_version_and_old_versions_stay_readable(tmp_path):
    settings = Settings(data_root=tmp_path)
    store = KeyStore.open(settings, env={})
    v1 = store.link_secret(1)
    ref = store.rotate_link()
    assert ref.version == 2 and str(ref) == "link:link:v2"
    reopened = KeyStore.open(settings, env={})
    assert reopened.link_versions == [1, 2]
    assert reopened.current_link_version == 2
    assert reopened.link_secret(1) == v1
    assert reopened.link_secret(2) != v1
    assert reopened.rotate_purpose("marketing").version == 2
    assert KeyStore.open(settings, env={}).purpose_versions("marketing") == [1, 2]


def test_production_store_comes_from_the_environment_and_is_read_only(tmp_path):
    secret = base64.b64encode(b"k" * 32).decode()
    env = {KEYS_ENV_VAR: json.dumps({"format": 1, "link": {"3": secret},
                                     "purpose": {"marketing": {"1": secret}}})}
    store = KeyStore.open(Settings(data_root=tmp_path), env=env)
    assert store.link_versions == [3]
    assert not (tmp_path / "keys").exists()
    with pytest.raises(KeyStoreError, match="read-only"):
        store.rotate_link()


def test_no_secret_value_in_repr_describe_or_error_messages(tmp_path):
    store = KeyStore.open(Settings(data_root=tmp_path), env={})
    raw = store.link_secret(1).reveal()
    forms = {raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
             repr(raw)}
    texts = [repr(store), str(store.link_secret(1)), repr(store.purpose_secret("marketing")),
             json.dumps(store.describe())]
    for call in (lambda: store.link_secret(9), lambda: store.purpose_secret("marketing", 7),
                 lambda: store.purpose_secret("unknown")):
        with pytest.raises(KeyStoreError) as excinfo:
            call()
        texts.append(str(excinfo.value))
    for text in texts:
        for form in forms:
            assert form not in text
    assert "redacted" in repr(store.link_secret(1))


def test_malformed_environment_store_gives_a_clear_error_without_its_content(tmp_path):
    env = {KEYS_ENV_VAR: '{"link": {"1": "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="'}
    with pytest.raises(KeyStoreError) as excinfo:
        KeyStore.open(Settings(data_root=tmp_path), env=env)
    assert "not JSON" in str(excinfo.value)
    assert "c2VjcmV0" not in str(excinfo.value)
