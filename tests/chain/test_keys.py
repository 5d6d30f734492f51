"""Tests for chain/keys.py: signing, key files and the signature cache."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from mura.chain.errors import InvalidKeyFile
from mura.chain.keys import AttestedSignatures, SignatureCache, SigningKey, load_key, save_key, sha256, verify_signature


def test_sign_and_verify(keys: Callable[[str], SigningKey]) -> None:
    key = keys("alice")
    signature = key.sign(b"message")
    assert len(key.public_key) == 32 and len(signature) == 64
    assert verify_signature(key.public_key, signature, b"message")
    assert not verify_signature(key.public_key, signature, b"messagE")
    assert not verify_signature(keys("bob").public_key, signature, b"message")


@pytest.mark.parametrize(("public_key", "signature"), [(bytes(31), bytes(64)), (bytes(32), bytes(63)), (b"", b"")])
def test_verify_signature_refuses_malformed_input(public_key: bytes, signature: bytes) -> None:
    assert verify_signature(public_key, signature, b"message") is False


def test_sha256_is_sha256() -> None:
    assert sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_key_from_private_bytes_is_deterministic() -> None:
    seed = bytes(range(32))
    first, second = SigningKey.from_private_bytes(seed), SigningKey.from_private_bytes(seed)
    assert first.public_key == second.public_key
    assert first.private_bytes() == seed
    assert SigningKey.generate().public_key != SigningKey.generate().public_key


# --- key files ------------------------------------------------------------------------


def test_save_key_writes_owner_only(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "keys" / "node.json"
    save_key(path, keys("node"), label="validator 0")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["node.json"]  # nothing else left behind
    document = json.loads(path.read_text())
    assert document == {
        "type": "ed25519",
        "label": "validator 0",
        "public_key": keys("node").public_key.hex(),
        "private_key": keys("node").private_bytes().hex(),
    }


def test_save_key_is_owner_only_whatever_the_umask(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    previous = os.umask(0)
    try:
        save_key(tmp_path / "node.json", keys("node"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "node.json").stat().st_mode) == 0o600


def test_invalid_save_key_over_an_existing_file(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "node.json"
    save_key(path, keys("first"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_key(path, keys("second"))
    assert path.read_bytes() == before
    assert load_key(path).public_key == keys("first").public_key


def test_load_key_round_trip(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "node.json"
    save_key(str(path), keys("node"))
    loaded = load_key(str(path))
    assert loaded.public_key == keys("node").public_key
    assert loaded.private_bytes() == keys("node").private_bytes()
    assert verify_signature(keys("node").public_key, loaded.sign(b"hello"), b"hello")


def test_load_key_without_public_key(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({"type": "ed25519", "private_key": keys("node").private_bytes().hex()}))
    assert load_key(path).public_key == keys("node").public_key


def test_invalid_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyFile, match="does not exist"):
        load_key(tmp_path / "absent.json")


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00"])
def test_invalid_key_file_bad_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.json"
    path.write_bytes(content)
    with pytest.raises(InvalidKeyFile, match="unreadable"):
        load_key(path)


def test_invalid_key_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyFile):
        load_key(tmp_path)


@pytest.mark.parametrize("document", [[], "ed25519", {"type": "rsa", "private_key": "00" * 32}, {"private_key": "00" * 32}])
def test_invalid_key_file_wrong_type(tmp_path: Path, document: object) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidKeyFile, match="not an ed25519 key file"):
        load_key(path)


@pytest.mark.parametrize("private_key", [None, 5, "zz" * 32, "00" * 31, "00" * 33])
def test_invalid_key_file_bad_private_key(tmp_path: Path, private_key: object) -> None:
    path = tmp_path / "node.json"
    document = {"type": "ed25519"} if private_key is None else {"type": "ed25519", "private_key": private_key}
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidKeyFile, match="private_key"):
        load_key(path)


def test_invalid_key_file_mismatched_public_key(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "node.json"
    save_key(path, keys("node"))
    document = json.loads(path.read_text())
    document["public_key"] = keys("other").public_key.hex()
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidKeyFile, match="does not match"):
        load_key(path)


# --- signature cache -------------------------------------------------------------------


def test_signature_cache_remembers() -> None:
    cache = SignatureCache(capacity=10)
    assert b"a" not in cache
    cache.add(b"a")
    assert b"a" in cache
    assert len(cache) == 1


def test_signature_cache_is_bounded_oldest_evicted() -> None:
    cache = SignatureCache(capacity=3)
    for item in (b"a", b"b", b"c", b"d"):
        cache.add(item)
    assert len(cache) == 3
    assert b"a" not in cache
    assert all(item in cache for item in (b"b", b"c", b"d"))
    for index in range(100):
        cache.add(bytes([index]) * 32)
    assert len(cache) == 3
    assert b"d" not in cache
    assert all(bytes([index]) * 32 in cache for index in (97, 98, 99))


def test_signature_cache_forgets() -> None:
    cache = SignatureCache(capacity=10)
    for item in (b"a", b"b", b"c"):
        cache.add(item)
    cache.forget([b"a", b"c", b"never added"])
    assert len(cache) == 1
    assert b"b" in cache and b"a" not in cache


def test_invalid_signature_cache_capacity() -> None:
    with pytest.raises(ValueError):
        SignatureCache(capacity=0)


def test_attested_signatures_vouch_for_any_transaction_and_keep_nothing() -> None:
    attested = AttestedSignatures()
    attested.add(b"a")
    assert b"anything" in attested
    assert len(attested) == 0
