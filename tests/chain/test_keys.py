"""Tests for chain/keys.py: signing, key files and the signature cache."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from mura.chain.errors import InvalidKeyFile
from mura.chain.keys import (
    PASSPHRASE_VARIABLE,
    SCRYPT_N,
    SignatureCache,
    SigningKey,
    exposed_permissions,
    is_encrypted,
    load_key,
    save_key,
    sha256,
    verify_signature,
    weak_key_problem,
)


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
        "version": 1,
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


@pytest.mark.parametrize(
    "document", [[], "ed25519", {"type": "rsa", "private_key": "00" * 32}, {"private_key": "00" * 32}]
)
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


# --- encrypted key files ------------------------------------------------------------------


def test_encrypted_key_round_trip_holds_no_private_key(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "alice.key"
    save_key(path, keys("alice"), label="alice", passphrase="correct horse")
    text = path.read_text()
    assert keys("alice").private_bytes().hex() not in text and '"private_key"' not in text
    document = json.loads(text)
    assert (document["version"], document["public_key"]) == (1, keys("alice").public_key.hex())
    assert document["encryption"]["kdf"] == "scrypt" and document["encryption"]["n"] == SCRYPT_N
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and is_encrypted(path)
    asked: list[str] = []

    def passphrase() -> str:
        asked.append("asked")
        return "correct horse"

    loaded = load_key(path, passphrase=passphrase)
    assert loaded.private_bytes() == keys("alice").private_bytes() and asked == ["asked"]


def test_an_unencrypted_key_never_asks_for_a_passphrase(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    save_key(tmp_path / "plain.key", keys("plain"))
    assert not is_encrypted(tmp_path / "plain.key")
    loaded = load_key(tmp_path / "plain.key", passphrase=lambda: pytest.fail("asked"))
    assert loaded.public_key == keys("plain").public_key


def test_the_passphrase_comes_from_the_environment(tmp_path: Path, keys: Callable[[str], SigningKey],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "node.key"
    save_key(path, keys("node"), passphrase="pass\udcff word")  # undecodable bytes from a command line survive
    monkeypatch.delenv(PASSPHRASE_VARIABLE, raising=False)
    with pytest.raises(InvalidKeyFile, match=f"^key file .*node.key is encrypted: set {PASSPHRASE_VARIABLE} to its"):
        load_key(path)
    monkeypatch.setenv(PASSPHRASE_VARIABLE, "wrong")
    with pytest.raises(InvalidKeyFile, match=r"^wrong passphrase for key file .*node\.key") as wrong:
        load_key(path)
    assert wrong.value.details["reason"] == "wrong_passphrase"
    assert load_key(path, passphrase="pass\udcff word").public_key == keys("node").public_key


@pytest.mark.parametrize(
    ("field", "value"),
    [("label", "someone else"), ("public_key", "00" * 32), ("version", 1.0)],
)
def test_an_altered_encrypted_key_file_does_not_open(tmp_path: Path, keys: Callable[[str], SigningKey],
                                                     field: str, value: object) -> None:
    path = tmp_path / "node.key"
    save_key(path, keys("node"), label="node", passphrase="secret")
    document = json.loads(path.read_text())
    document[field] = value
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidKeyFile, match=r"wrong passphrase .* \(or the file was altered\)"):
        load_key(path, passphrase="secret")


@pytest.mark.parametrize(
    ("change", "message"),
    [({"n": 2**30}, "scrypt parameters beyond"), ({"n": 3000}, "scrypt parameters beyond"), ({"r": 1000}, "beyond"),
     ({"n": "32768"}, "must be integers"), ({"kdf": "md5"}, "only scrypt"), ({"nonce": "00"}, "wrong length"),
     ({"salt": 5}, "bad encryption fields"),
     # Each within its own bound, together 4 GiB of memory and minutes of work: refused on the product.
     ({"n": 2**20, "r": 32}, "scrypt parameters beyond"), ({"n": 2**20, "r": 8, "p": 16}, "scrypt parameters beyond"),
     ({"salt": "00" * 4096}, "wrong length")],
)
def test_invalid_encryption_fields_are_refused_before_any_work(tmp_path: Path, keys: Callable[[str], SigningKey],
                                                               change: dict[str, object], message: str) -> None:
    path = tmp_path / "node.key"
    document = {"type": "ed25519", "version": 1, "label": "", "public_key": keys("node").public_key.hex(),
                "encryption": {"kdf": "scrypt", "n": 2**15, "r": 8, "p": 1, "salt": "00" * 16,
                               "cipher": "chacha20-poly1305", "nonce": "00" * 12} | change,
                "encrypted_private_key": "00" * 48}
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidKeyFile, match=message):
        load_key(path, passphrase=lambda: pytest.fail("asked for a passphrase"))


def test_a_key_file_of_a_later_version_is_refused(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "node.key"
    path.write_text(json.dumps({"type": "ed25519", "version": 2, "private_key": keys("node").private_bytes().hex()}))
    with pytest.raises(InvalidKeyFile, match="has version 2; this version of mura reads version 1"):
        load_key(path)


def test_exposed_permissions(tmp_path: Path, keys: Callable[[str], SigningKey]) -> None:
    path = tmp_path / "node.key"
    save_key(path, keys("node"))
    assert exposed_permissions(path) is None
    path.chmod(0o644)
    assert exposed_permissions(path) == "readable by group and others"
    path.chmod(0o620)
    assert exposed_permissions(path) == "writable by group"
    assert exposed_permissions(tmp_path / "absent.key") is None


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


def test_save_key_never_writes_through_a_prepared_temporary_name(tmp_path: Path,
                                                                 keys: Callable[[str], SigningKey]) -> None:
    """The temporary name is predictable: a link placed there must not receive the private key."""
    target = tmp_path / "elsewhere"
    target.write_text("")
    path = tmp_path / "node.key"
    (tmp_path / f".node.key.{os.getpid()}.tmp").symlink_to(target)
    with pytest.raises(FileExistsError):
        save_key(path, keys("node"))
    assert target.read_text() == "" and not path.exists()


def make_sparse_huge(path: Path) -> None:
    # Sparse: no disk used, but reading it whole took 4 GiB and 18 s.
    path.write_bytes(b"")
    os.truncate(path, 2**31)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (make_sparse_huge, r"is larger than \d+ bytes"),
        (lambda path: path.write_text("[" * 60_000), "is unreadable"),
        (lambda path: os.mkfifo(path), "is not a regular file"),
    ],
    ids=["huge", "deeply nested", "fifo"],
)
def test_a_hostile_key_file_is_refused_without_reading_it_whole(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / "hostile.key"
    make(path)
    with pytest.raises(InvalidKeyFile, match=message):
        load_key(path, passphrase="x")
    assert not is_encrypted(path)


@pytest.mark.parametrize(
    "encoded",
    [
        "01" + "00" * 31,  # the identity
        "00" * 32,  # order 4
        "ec" + "ff" * 30 + "7f",  # order 2
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    ],
)
def test_weak_key_of_small_order(encoded: str) -> None:
    assert weak_key_problem(bytes.fromhex(encoded)) == "a point of small order, for which signatures can be forged"


def test_weak_key_not_on_the_curve_or_not_canonical() -> None:
    assert "not a point" in str(weak_key_problem(bytes.fromhex("ee" + "ff" * 30 + "7f")))  # y = p + 1
    assert "not a point" in str(weak_key_problem(bytes.fromhex("ed" + "ff" * 30 + "7f")))  # y = p
    assert weak_key_problem(bytes(31)) == "a public key is 32 bytes"


def test_generated_keys_are_not_weak() -> None:
    for _ in range(20):
        assert weak_key_problem(SigningKey.generate().public_key) is None
