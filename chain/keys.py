"""Ed25519 keys, signatures, hashing and key files.

An account is an Ed25519 public key (32 raw bytes). Key files are JSON and are
written with owner-only permissions (0600), since they hold the private key::

    {"type": "ed25519", "version": 1, "label": "...", "public_key": "<64 hex>",
     "private_key": "<64 hex>"}

A key file may instead hold its private key encrypted under a passphrase: no
``private_key``, but ``encrypted_private_key`` (hex) and ``encryption``::

    {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<32 hex>",
     "cipher": "chacha20-poly1305", "nonce": "<24 hex>"}

The passphrase goes through scrypt (n=2^15, r=8, p=1: 32 MiB of memory and
about a quarter to half a second on a small machine, so each guess costs an
attacker as much) into a 32-byte key for ChaCha20-Poly1305. The associated data
binds the type, version, label, public key and scrypt parameters, so none of them
can be changed without the file failing to open. Files without ``version`` (the
first format) are version 1 and load as before.

Whoever loads an encrypted key without giving a passphrase (the node, which runs
unattended) reads it from the environment variable ``MURA_KEY_PASSPHRASE``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mura.chain.errors import InvalidKeyFile

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32
#: The key file format written by ``save_key``; files without a version are version 1.
KEY_FILE_VERSION = 1
#: The environment variable an encrypted key file's passphrase is read from when none is given.
PASSPHRASE_VARIABLE = "MURA_KEY_PASSPHRASE"
#: scrypt's cost for new encrypted key files: 2^15 blocks of 128 * r bytes (32 MiB).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
#: The most scrypt work a key file may ask for, as n * r * p: 16 times what ``save_key`` writes
#: (a few seconds, and at most 128 * n * r = 512 MiB of memory). Bounding each parameter alone is
#: not enough: n=2^20 with r=32 is 4 GiB, and p multiplies the time. A file asking more is
#: refused before any work, so a crafted key file cannot make a loader exhaust memory or hang.
_SCRYPT_MAX_WORK = 16 * SCRYPT_N * SCRYPT_R * SCRYPT_P
_SALT_SIZE = 16
#: A key file is under 1 KB; anything much larger is not one, and is not read whole.
_MAX_KEY_FILE_BYTES = 64 * 1024
_MAX_SALT_SIZE = 64
_NONCE_SIZE = 12

#: A passphrase given directly, or asked for only when the key file turns out to be encrypted.
Passphrase = str | Callable[[], str]


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


# Ed25519's curve, for the one check the signature library does not make (``weak_key_problem``).
_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P


def weak_key_problem(public_key: bytes) -> str | None:
    """Why ``public_key`` cannot be a validator's key (None if it can): it must encode a
    point of the curve canonically, and not one of the eight of small order, for which
    one signature verifies for many messages (anyone could sign as such a key)."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        return f"a public key is {PUBLIC_KEY_SIZE} bytes"
    point = _decode_point(public_key)
    if point is None:
        return "not a point of the Ed25519 curve (or not in its canonical form)"
    for _ in range(3):
        point = _add(point, point)
    if point == (0, 1):
        return "a point of small order, for which signatures can be forged"
    return None


def _decode_point(encoded: bytes) -> tuple[int, int] | None:
    """RFC 8032, 5.1.3: the point ``encoded`` names, or None."""
    number = int.from_bytes(encoded, "little")
    y, sign = number & ((1 << 255) - 1), number >> 255
    if y >= _P:
        return None
    square = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    if square == 0:
        return None if sign else (0, y)
    x = pow(square, (_P + 3) // 8, _P)
    if (x * x - square) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if (x * x - square) % _P:
        return None
    return (_P - x if x & 1 != sign else x), y


def _add(first: tuple[int, int], second: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = first, second
    cross = _D * x1 * x2 * y1 * y2 % _P
    x = (x1 * y2 + x2 * y1) * pow(1 + cross, -1, _P) % _P
    y = (y1 * y2 + x1 * x2) * pow(1 - cross, -1, _P) % _P
    return x, y


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


def save_key(path: Path | str, key: SigningKey, *, label: str = "", passphrase: str | None = None) -> None:
    """Write ``key`` to ``path`` readable by the owner only; refuses to overwrite.

    With a ``passphrase``, the private key is stored encrypted (see the module's docstring).
    """
    document: dict[str, object] = {
        "type": "ed25519",
        "version": KEY_FILE_VERSION,
        "label": label,
        "public_key": key.public_key.hex(),
    }
    if passphrase is None:
        document["private_key"] = key.private_bytes().hex()
    else:
        document.update(_encrypt(document, key.private_bytes(), passphrase))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(f"key file {path} already exists; refusing to overwrite a key")
    # Written whole to a private temporary file, synced, then linked into place:
    # a crash leaves either no key file or a complete one, never a torn key.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL and O_NOFOLLOW: a file or link already at that name (the name is predictable) is
    # never written through, so the key cannot land in a file someone else prepared.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
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


def load_key(path: Path | str, *, passphrase: Passphrase | None = None) -> SigningKey:
    """Read a key file written by ``save_key``; any problem is an ``InvalidKeyFile``.

    An encrypted key file is opened with ``passphrase`` (a string, or a function asked
    only when the file is encrypted), or else with ``MURA_KEY_PASSPHRASE``.
    """
    path = Path(path)
    document = _read_document(path)
    if not isinstance(document, dict) or document.get("type") != "ed25519":
        raise InvalidKeyFile(f"key file {path} is not an ed25519 key file", path=str(path))
    version = document.get("version", 1)
    if version != KEY_FILE_VERSION:
        raise InvalidKeyFile(
            f"key file {path} has version {version!r}; this version of mura reads version 1", path=str(path)
        )
    if "encryption" in document:
        seed = _decrypt(path, document, passphrase)
    else:
        try:
            seed = bytes.fromhex(document["private_key"])
        except (KeyError, TypeError, ValueError):
            raise InvalidKeyFile(f"key file {path}: private_key must be 64 hex characters", path=str(path)) from None
    try:
        key = SigningKey.from_private_bytes(seed)
    except ValueError:
        raise InvalidKeyFile(f"key file {path}: private_key must be 64 hex characters", path=str(path)) from None
    if document.get("public_key") not in (None, key.public_key.hex()):
        raise InvalidKeyFile(f"key file {path}: public_key does not match private_key", path=str(path))
    return key


def is_encrypted(path: Path | str) -> bool:
    """True when ``path`` is a key file whose private key is encrypted (False if it cannot be read)."""
    try:
        document = _read_document(Path(path))
    except InvalidKeyFile:
        return False
    return isinstance(document, dict) and "encryption" in document


def _read_document(path: Path) -> object:
    """The key file's JSON, read without trusting its size or kind: at most ``_MAX_KEY_FILE_BYTES``
    of a regular file (a FIFO would block the open, a device or a huge file the read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InvalidKeyFile(f"key file {path} does not exist", path=str(path)) from None
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        message = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise InvalidKeyFile(f"key file {path} is unreadable: {message}", path=str(path)) from None
    try:
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise InvalidKeyFile(f"key file {path} is not a regular file", path=str(path))
            data = file.read(_MAX_KEY_FILE_BYTES + 1)
        if len(data) > _MAX_KEY_FILE_BYTES:
            raise InvalidKeyFile(f"key file {path} is larger than {_MAX_KEY_FILE_BYTES} bytes", path=str(path))
        return json.loads(data.decode("utf-8"))
    except OSError as error:
        raise InvalidKeyFile(f"key file {path} is unreadable: {error.strerror or error}", path=str(path)) from None
    except (ValueError, RecursionError) as error:
        # RecursionError: JSON nested deeper than Python's stack allows.
        raise InvalidKeyFile(f"key file {path} is unreadable: {str(error)[:200]}", path=str(path)) from None


def exposed_permissions(path: Path | str) -> str | None:
    """What users other than the owner may do with the key file at ``path``, e.g. "readable by
    group and others", or None when nobody else may read or write it (or it cannot be looked at)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    found = []
    for what, bits in (("readable", (0o040, 0o004)), ("writable", (0o020, 0o002))):
        who = [name for name, bit in zip(("group", "others"), bits, strict=True) if mode & bit]
        if who:
            found.append(f"{what} by {' and '.join(who)}")
    return ", ".join(found) or None


def _associated_data(document: dict[str, object], encryption: dict[str, object]) -> bytes:
    """What the ciphertext is bound to: every field but the ciphertext and its nonce."""
    bound = [document.get("type"), document.get("version", 1), document.get("label"), document.get("public_key")]
    bound += [encryption.get(name) for name in ("kdf", "n", "r", "p", "salt", "cipher")]
    return json.dumps(bound, separators=(",", ":")).encode()


def _stretch(passphrase: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8", "surrogateescape"))


def _encrypt(document: dict[str, object], seed: bytes, passphrase: str) -> dict[str, object]:
    salt, nonce = os.urandom(_SALT_SIZE), os.urandom(_NONCE_SIZE)
    encryption: dict[str, object] = {
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "cipher": "chacha20-poly1305",
        "nonce": nonce.hex(),
    }
    key = _stretch(passphrase, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, seed, _associated_data(document, encryption))
    return {"encryption": encryption, "encrypted_private_key": sealed.hex()}


def _decrypt(path: Path, document: dict[str, object], passphrase: Passphrase | None) -> bytes:
    encryption = document["encryption"]
    try:
        if not isinstance(encryption, dict) or (encryption.get("kdf"), encryption.get("cipher")) != (
            "scrypt",
            "chacha20-poly1305",
        ):
            raise ValueError("only scrypt with chacha20-poly1305 is known")
        n, r, p = (encryption[name] for name in ("n", "r", "p"))
        if not all(type(value) is int for value in (n, r, p)):
            raise ValueError("n, r and p must be integers")
        if not (n >= 2 and n & (n - 1) == 0 and r >= 1 and p >= 1 and n * r * p <= _SCRYPT_MAX_WORK):
            raise ValueError(f"scrypt parameters beyond n a power of 2 and n*r*p <= {_SCRYPT_MAX_WORK}")
        salt, nonce = bytes.fromhex(encryption["salt"]), bytes.fromhex(encryption["nonce"])
        sealed = bytes.fromhex(str(document["encrypted_private_key"]))
        if len(nonce) != _NONCE_SIZE or not 8 <= len(salt) <= _MAX_SALT_SIZE:
            raise ValueError("salt or nonce of the wrong length")
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidKeyFile(f"key file {path}: bad encryption fields ({error})", path=str(path)) from None
    text = _passphrase_for(path, passphrase)
    try:
        key = _stretch(text, salt, n=n, r=r, p=p)
        return ChaCha20Poly1305(key).decrypt(nonce, sealed, _associated_data(document, encryption))
    except InvalidTag:
        raise InvalidKeyFile(
            f"wrong passphrase for key file {path} (or the file was altered)", path=str(path), reason="wrong_passphrase"
        ) from None
    except MemoryError:
        raise InvalidKeyFile(f"key file {path}: not enough memory for its scrypt parameters", path=str(path)) from None


def _passphrase_for(path: Path, passphrase: Passphrase | None) -> str:
    if isinstance(passphrase, str):
        return passphrase
    if passphrase is not None:
        return passphrase()
    text = os.environ.get(PASSPHRASE_VARIABLE)
    if text is None:
        raise InvalidKeyFile(
            f"key file {path} is encrypted: set {PASSPHRASE_VARIABLE} to its passphrase",
            path=str(path),
            reason="passphrase_missing",
        )
    return text


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
