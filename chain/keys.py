"""Ed25519 keys, signatures, hashing and key files.

An account is an Ed25519 public key (32 raw bytes). Key files are JSON and are
written with owner-only permissions (0600), since they hold the private key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mura.chain.errors import InvalidKeyFile

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32


def sha256(data: bytes) -> bytes:
    """The hash used for transactions, blocks and Merkle trees."""
    return hashlib.sha256(data).digest()


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key together with its public key."""

    #: The private key; never leaves this process except through ``save_key``.
    private_key: Ed25519PrivateKey
    #: The raw 32-byte public key: the account this key controls.
    public_key: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_bytes(Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_private_bytes(cls, seed: bytes) -> SigningKey:
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(private_key, private_key.public_key().public_bytes_raw())

    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def save_key(path: Path | str, key: SigningKey, *, label: str = "") -> None:
    """Write ``key`` to ``path`` readable by the owner only; refuses to overwrite."""
    document = {
        "type": "ed25519",
        "label": label,
        "public_key": key.public_key.hex(),
        "private_key": key.private_bytes().hex(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(f"key file {path} already exists; refusing to overwrite a key")
    # Written whole to a private temporary file, synced, then linked into place:
    # a crash leaves either no key file or a complete one, never a torn key.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_key(path: Path | str) -> SigningKey:
    """Read a key file written by ``save_key``; any problem is an ``InvalidKeyFile``."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidKeyFile(f"key file {path} does not exist", path=str(path)) from None
    except (OSError, ValueError) as error:
        raise InvalidKeyFile(f"key file {path} is unreadable: {error}", path=str(path)) from None
    if not isinstance(document, dict) or document.get("type") != "ed25519":
        raise InvalidKeyFile(f"key file {path} is not an ed25519 key file", path=str(path))
    try:
        key = SigningKey.from_private_bytes(bytes.fromhex(document["private_key"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidKeyFile(f"key file {path}: private_key must be 64 hex characters", path=str(path)) from None
    if document.get("public_key") not in (None, key.public_key.hex()):
        raise InvalidKeyFile(f"key file {path}: public_key does not match private_key", path=str(path))
    return key


class SignatureCache:
    """Remembers which transactions this node has already verified.

    A transaction is verified once per node: when the mempool admits it, or when
    a block brings one the mempool never saw. Once its block is final the node
    ``forget``s it (the transaction index refuses it from then on), so the cache
    holds about what is pending; it is also bounded, the oldest entries going first.
    """

    def __init__(self, *, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("a signature cache holds at least one entry")
        self._capacity = capacity
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, transaction_hash: bytes) -> bool:
        return transaction_hash in self._verified

    def __len__(self) -> int:
        return len(self._verified)

    def add(self, transaction_hash: bytes) -> None:
        self._verified[transaction_hash] = None
        if len(self._verified) > self._capacity:
            self._verified.popitem(last=False)

    def forget(self, transaction_hashes: Iterable[bytes]) -> None:
        """Drop entries no longer needed (their transactions are final)."""
        for transaction_hash in transaction_hashes:
            self._verified.pop(transaction_hash, None)


class AttestedSignatures(SignatureCache):
    """The signatures of a block with a verified commit certificate.

    A quorum of validators (at least f+1 of them honest) checked every signature
    before they committed the block, so a node replaying final blocks need not
    check them again; the state root still proves that it computed the same state.
    """

    def __init__(self) -> None:
        super().__init__(capacity=1)

    def __contains__(self, transaction_hash: bytes) -> bool:
        return True

    def add(self, transaction_hash: bytes) -> None:
        pass
