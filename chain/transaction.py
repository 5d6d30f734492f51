"""Transactions: the signed envelope and the body of each kind.

On the wire a transaction is ``[chain_id, sender, nonce, kind, body, signature]``.
The envelope never changes when a kind is added: a new kind is a new body class
registered in ``KINDS``. The signature covers the canonical encoding of every
other field, prefixed by a domain tag, so it cannot be mistaken for a vote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from mura.chain import codec
from mura.chain.errors import DecodeError, UnknownKind
from mura.chain.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, sha256

#: Largest encoded transaction a node accepts.
MAX_TRANSACTION_BYTES = 2048
MAX_CHAIN_ID_LENGTH = 64
_SIGNING_DOMAIN = "mura/transaction/v1"


class Body(Protocol):
    """The kind-specific part of a transaction."""

    KIND: ClassVar[str]

    def to_fields(self) -> list[Any]: ...


def _read_amount(value: Any, what: str) -> int:
    # Signed on the wire so that a zero or negative amount reaches the state
    # transition and is refused there by its own rule, not as malformed bytes.
    return codec.read_int(value, what, minimum=codec.MIN_INT, maximum=codec.MAX_INT)


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move ``amount`` from the sender to ``recipient``."""

    KIND: ClassVar[str] = "transfer"
    #: Public key of the account credited.
    recipient: bytes
    #: Smallest units moved.
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.recipient, self.amount]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Transfer:
        recipient, amount = codec.read_fields(value, what, 2)
        return cls(
            codec.read_bytes(recipient, f"{what}.recipient", length=PUBLIC_KEY_SIZE),
            _read_amount(amount, f"{what}.amount"),
        )


@dataclass(frozen=True, slots=True)
class Mint:
    """Create ``amount`` new units in ``recipient``'s account (issuers only)."""

    KIND: ClassVar[str] = "mint"
    #: Public key of the account credited.
    recipient: bytes
    #: Smallest units created.
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.recipient, self.amount]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Mint:
        recipient, amount = codec.read_fields(value, what, 2)
        return cls(
            codec.read_bytes(recipient, f"{what}.recipient", length=PUBLIC_KEY_SIZE),
            _read_amount(amount, f"{what}.amount"),
        )


@dataclass(frozen=True, slots=True)
class Burn:
    """Destroy ``amount`` units from the sender's own account (issuers only)."""

    KIND: ClassVar[str] = "burn"
    #: Smallest units destroyed.
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.amount]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Burn:
        (amount,) = codec.read_fields(value, what, 1)
        return cls(_read_amount(amount, f"{what}.amount"))


#: Every kind this node understands, by its wire name.
KINDS: dict[str, Any] = {kind.KIND: kind for kind in (Transfer, Mint, Burn)}


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed instruction from one account."""

    #: The network this transaction is for; stops replay across networks.
    chain_id: str
    #: Public key of the signing account.
    sender: bytes
    #: The sender's next nonce; stops replay within the network.
    nonce: int
    #: What to do: a ``Transfer``, ``Mint`` or ``Burn``.
    body: Body
    #: Ed25519 signature by ``sender`` over ``signing_payload()``.
    signature: bytes
    #: The canonical encoding (derived).
    encoded: bytes = field(init=False, repr=False, compare=False)
    #: SHA-256 of ``encoded``: the transaction's identity (derived).
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = codec.encode(
            [self.chain_id, self.sender, self.nonce, self.body.KIND, self.body.to_fields(), self.signature]
        )
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", sha256(encoded))

    @property
    def kind(self) -> str:
        return self.body.KIND

    def signing_payload(self) -> bytes:
        return signing_payload(self.chain_id, self.sender, self.nonce, self.body)

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        """Decode an encoded transaction; refuses anything but canonical bytes. Bytes
        decoded lately give the same object again (the hash is the cache key)."""
        digest = sha256(data)
        transaction = _RECENT.get(digest)
        if transaction is None:
            transaction = cls.from_fields(codec.decode(data, max_size=MAX_TRANSACTION_BYTES), "transaction")
            _RECENT.put(digest, transaction)
        return transaction

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Transaction:
        chain_id, sender, nonce, kind, body, signature = codec.read_fields(value, what, 6)
        kind = codec.read_str(kind, f"{what}.kind", max_length=32)
        body_type = KINDS.get(kind)
        if body_type is None:
            raise UnknownKind(f"{what}.kind: unknown transaction kind {kind!r}", kind=kind)
        return cls(
            codec.read_str(chain_id, f"{what}.chain_id", max_length=MAX_CHAIN_ID_LENGTH),
            codec.read_bytes(sender, f"{what}.sender", length=PUBLIC_KEY_SIZE),
            codec.read_int(nonce, f"{what}.nonce"),
            body_type.from_fields(body, f"{what}.body"),
            codec.read_bytes(signature, f"{what}.signature", length=SIGNATURE_SIZE),
        )


#: Transactions decoded lately: two blocks of the default proposal cap.
_RECENT: codec.RecentlyDecoded[Transaction] = codec.RecentlyDecoded(capacity=10_000)


def signing_payload(chain_id: str, sender: bytes, nonce: int, body: Body) -> bytes:
    """The bytes a sender signs: every field but the signature, domain-tagged."""
    return codec.encode([_SIGNING_DOMAIN, chain_id, sender, nonce, body.KIND, body.to_fields()])


def sign_transaction(key: SigningKey, *, chain_id: str, nonce: int, body: Body) -> Transaction:
    """Build and sign a transaction from ``key``'s account."""
    signature = key.sign(signing_payload(chain_id, key.public_key, nonce, body))
    return Transaction(chain_id, key.public_key, nonce, body, signature)


def decode_transaction_hex(text: str) -> Transaction:
    """Decode a transaction given as hex text, as wallets and the RPC send it."""
    try:
        data = bytes.fromhex(text.removeprefix("0x"))
    except (ValueError, AttributeError):
        raise DecodeError("transaction is not hex text") from None
    return Transaction.decode(data)
