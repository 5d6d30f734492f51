"""Blocks, their headers, the transaction Merkle root and commit certificates.

A block is ``[header, [transaction bytes, ...]]``: transactions travel as their
own canonical bytes, so a transaction's hash is the same inside and outside a
block. The block hash is the SHA-256 of the encoded header; the header commits
to the transactions (``transaction_root``) and to the post-state (``state_root``).

A commit certificate is a quorum of validators' signatures over
``commit_vote_payload(chain_id, height, view, block_hash)``: anyone holding the
validator set can check that a block is final without trusting who served it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from mura.chain import codec
from mura.chain.errors import DecodeError, InvalidCertificate, TransactionRootMismatch
from mura.chain.keys import HASH_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, sha256, verify_signature
from mura.chain.transaction import MAX_CHAIN_ID_LENGTH, MAX_TRANSACTION_BYTES, Transaction

#: Limits every node enforces on a block: the total size of its transactions,
#: their count, and the size of the whole encoded block (transactions, their
#: framing of at most 5 bytes each, and the header), which decoding caps.
MAX_BLOCK_BYTES = 8 * 1024 * 1024
MAX_BLOCK_TRANSACTIONS = 20_000
MAX_ENCODED_BLOCK_BYTES = MAX_BLOCK_BYTES + 5 * MAX_BLOCK_TRANSACTIONS + 4096
MAX_VALIDATORS = 256

ZERO_HASH = bytes(HASH_SIZE)
_COMMIT_DOMAIN = "mura/commit/v1"


@dataclass(frozen=True, slots=True)
class Header:
    """What a block commits to; its hash is the block's identity."""

    #: The network this block belongs to.
    chain_id: str
    #: Position in the chain; genesis is 0. Also PBFT's sequence number.
    height: int
    #: Hash of the block at ``height - 1`` (zeros for genesis).
    parent_hash: bytes
    #: Milliseconds since the Unix epoch, as the proposer saw it.
    timestamp_ms: int
    #: Public key of the validator that proposed the block (zeros for genesis).
    proposer: bytes
    #: Merkle root of the block's transaction hashes.
    transaction_root: bytes
    #: Commitment to the full state after applying this block.
    state_root: bytes
    #: SHA-256 of the encoded keys, in order, of the validator set that decides the next
    #: height (``chain.governance.validators_hash``); genesis commits to the first set.
    next_validators_hash: bytes
    #: The canonical encoding (derived).
    encoded: bytes = field(init=False, repr=False, compare=False)
    #: SHA-256 of ``encoded``: the block hash (derived).
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = codec.encode(self.to_fields())
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", sha256(encoded))

    def to_fields(self) -> list[Any]:
        return [
            self.chain_id,
            self.height,
            self.parent_hash,
            self.timestamp_ms,
            self.proposer,
            self.transaction_root,
            self.state_root,
            self.next_validators_hash,
        ]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Header:
        (
            chain_id, height, parent, timestamp, proposer, transaction_root, state_root, next_validators,
        ) = codec.read_fields(value, what, 8)  # fmt: skip
        return cls(
            codec.read_str(chain_id, f"{what}.chain_id", max_length=MAX_CHAIN_ID_LENGTH),
            codec.read_int(height, f"{what}.height"),
            codec.read_bytes(parent, f"{what}.parent_hash", length=HASH_SIZE),
            codec.read_int(timestamp, f"{what}.timestamp_ms"),
            codec.read_bytes(proposer, f"{what}.proposer", length=PUBLIC_KEY_SIZE),
            codec.read_bytes(transaction_root, f"{what}.transaction_root", length=HASH_SIZE),
            codec.read_bytes(state_root, f"{what}.state_root", length=HASH_SIZE),
            codec.read_bytes(next_validators, f"{what}.next_validators_hash", length=HASH_SIZE),
        )


@dataclass(frozen=True, slots=True)
class Block:
    """A header and the transactions it orders.

    The block hash covers the header only; the header covers the transactions
    through ``transaction_root``. So a block is what its hash names only once its
    body is checked against that root: ``decode`` checks it before returning,
    ``build_block`` computes the root from the body, and anything else calls
    ``check_body``. Blocks from the network arrive as ``UncheckedBlock`` and become a
    ``Block`` only through that check.
    """

    header: Header
    transactions: tuple[Transaction, ...]
    #: Set once the body was checked against the header (derived, cached).
    body_checked: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def check_body(self) -> None:
        """Raise ``TransactionRootMismatch`` unless the transactions are exactly those the
        header's transaction root commits to (computed once per block object)."""
        if not self.body_checked:
            check_transaction_root(self.header, [transaction.hash for transaction in self.transactions])
            object.__setattr__(self, "body_checked", True)

    def check(self) -> Block:
        """This block, once its body is checked (see ``UncheckedBlock.check``)."""
        self.check_body()
        return self

    @property
    def transaction_bytes(self) -> int:
        """Total size of the transactions' encodings (what block size limits count)."""
        return sum(len(transaction.encoded) for transaction in self.transactions)

    @property
    def height(self) -> int:
        return self.header.height

    def encode(self) -> bytes:
        return codec.encode([self.header.to_fields(), [tx.encoded for tx in self.transactions]])

    @classmethod
    def decode(cls, data: bytes) -> Block:
        """Decode an encoded block; refuses anything but canonical bytes within the limits.
        Bytes decoded lately (a proposal again inside VIEW-CHANGEs) give the same object."""
        digest = sha256(data)
        block = _RECENT_BLOCKS.get(digest)
        if block is None:
            block = cls._decode(data)
            _RECENT_BLOCKS.put(digest, block)
        return block

    @classmethod
    def _decode(cls, data: bytes) -> Block:
        """Header first, then the body checked against it from the transactions' raw
        bytes (a transaction's hash is the SHA-256 of its bytes), and only then the
        costly decoding of each transaction."""
        value = codec.decode(data, max_size=MAX_ENCODED_BLOCK_BYTES)
        header_fields, transactions = codec.read_fields(value, "block", 2)
        header = Header.from_fields(header_fields, "block.header")
        items = codec.read_list(transactions, "block.transactions", max_length=MAX_BLOCK_TRANSACTIONS)
        raws = [
            codec.read_bytes(item, f"block.transactions[{index}]", max_length=MAX_TRANSACTION_BYTES)
            for index, item in enumerate(items)
        ]
        cls._check_raw_body(header, raws)
        decoded = []
        for index, raw in enumerate(raws):
            try:
                decoded.append(Transaction.decode(raw))
            except DecodeError as error:
                # Keep the precise type (e.g. UnknownKind), with the position added.
                raise type(error)(f"block.transactions[{index}]: {error.message}", **error.details) from None
        block = cls(header, tuple(decoded))
        object.__setattr__(block, "body_checked", True)
        return block

    @staticmethod
    def _check_raw_body(header: Header, raw_transactions: Sequence[bytes]) -> None:
        # A transaction's hash is the SHA-256 of its bytes: the body is checked before a
        # single transaction is decoded.
        check_transaction_root(header, [sha256(raw) for raw in raw_transactions])


def read_stored_transaction(data: bytes, index: int) -> tuple[Header, bytes] | None:
    """The header and the ``index``-th transaction's raw bytes of a block this node stored
    (so already checked), without decoding the others: a history page costs one
    transaction per entry, not one block. None if the block has no such transaction."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1), raw=False)
    unpacker.feed(data)
    unpacker.read_array_header()
    header = Header.from_fields(unpacker.unpack(), "block.header")
    count = unpacker.read_array_header()
    if not 0 <= index < count:
        return None
    for _ in range(index):
        unpacker.skip()
    return header, codec.read_bytes(unpacker.unpack(), "block.transactions[]", max_length=MAX_TRANSACTION_BYTES)


@dataclass(frozen=True, slots=True)
class UncheckedBlock:
    """A block as it arrived in a message: its header read, its body still the bytes it
    came in, not yet checked against the header.

    Reading the header costs little, so a message's sender, signature, height and
    view are checked before anything costly. ``check`` then checks the body against
    the header and decodes the transactions; only the ``Block`` it returns has
    transactions, so nothing can use, keep or key by hash a body nobody checked.
    """

    #: The header, which the block hash covers.
    header: Header
    #: The block's bytes as received (canonical if ``check`` accepts them).
    encoded: bytes = field(repr=False)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def transaction_bytes(self) -> int:
        """An upper bound of the transactions' size (what memory bounds count)."""
        return len(self.encoded)

    def encode(self) -> bytes:
        return self.encoded

    def check(self) -> Block:
        """The block, with its body checked against its header and decoded; raises
        ``TransactionRootMismatch`` for a body the header does not commit to, or another
        ``DecodeError``."""
        return Block.decode(self.encoded)

    @classmethod
    def decode(cls, data: bytes) -> UncheckedBlock:
        """Read the header of an encoded block (within the size limit), nothing more."""
        fields = codec.decode_head(data, count=2, max_size=MAX_ENCODED_BLOCK_BYTES)
        return cls(Header.from_fields(fields, "block.header"), bytes(data))


#: A block inside a consensus message: checked when this node made it, unchecked when it
#: arrived from a peer. Either has a header, a hash, ``encode`` and ``check``.
MessageBlock = Block | UncheckedBlock


#: Blocks decoded lately: the proposals of the last few views.
_RECENT_BLOCKS: codec.RecentlyDecoded[Block] = codec.RecentlyDecoded(capacity=8)


def forget_decoded_blocks() -> None:
    """Empty the cache of blocks decoded lately (for a test harness that changes decoding)."""
    _RECENT_BLOCKS.clear()


# --- the transaction root ----------------------------------------------------


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of ``leaves`` (the hash of nothing for none).

    Leaves and inner nodes are hashed with distinct prefixes, and an odd node is
    promoted rather than duplicated, so no two different lists share a root.
    """
    if not leaves:
        return sha256(b"")
    level = [sha256(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        paired = [sha256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def transaction_root(transactions: Sequence[Transaction]) -> bytes:
    """The Merkle root of the transactions' hashes, in block order."""
    return merkle_root([tx.hash for tx in transactions])


def check_transaction_root(header: Header, transaction_hashes: Sequence[bytes]) -> None:
    """The body with these transaction hashes is the one ``header`` commits to."""
    if merkle_root(transaction_hashes) != header.transaction_root:
        raise TransactionRootMismatch(
            f"block {header.height}: its {len(transaction_hashes)} transactions are not those its header commits to",
            height=header.height,
        )


def assembled_block(header: Header, transactions: tuple[Transaction, ...]) -> Block:
    """A block whose ``header`` the caller has just built with ``transaction_root(transactions)``."""
    block = Block(header, transactions)
    object.__setattr__(block, "body_checked", True)
    return block


# --- commit certificates -----------------------------------------------------


def quorum_size(validator_count: int) -> int:
    """The smallest vote count any two of which share an honest validator.

    With f = (n - 1) // 3 faulty validators tolerated, two quorums of size q
    overlap in at least 2q - n validators, which must exceed f.
    """
    if validator_count < 1:
        raise ValueError("a network needs at least one validator")
    faulty = (validator_count - 1) // 3
    return (validator_count + faulty) // 2 + 1


def commit_vote_payload(chain_id: str, height: int, view: int, block_hash: bytes) -> bytes:
    """The bytes a validator signs to commit ``block_hash`` at ``height`` in ``view``."""
    return codec.encode([_COMMIT_DOMAIN, chain_id, height, view, block_hash])


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """A quorum of COMMIT signatures proving a block final."""

    #: Height of the certified block.
    height: int
    #: The PBFT view in which the commits were cast.
    view: int
    #: Hash of the certified block.
    block_hash: bytes
    #: ``(validator index, signature)`` pairs, strictly increasing by index.
    signatures: tuple[tuple[int, bytes], ...]

    def encode(self) -> bytes:
        return codec.encode(
            [self.height, self.view, self.block_hash, [[index, signature] for index, signature in self.signatures]]
        )

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        value = codec.decode(data, max_size=64 + MAX_VALIDATORS * (SIGNATURE_SIZE + 8))
        height, view, block_hash, signatures = codec.read_fields(value, "certificate", 4)
        pairs = []
        listed = codec.read_list(signatures, "certificate.signatures", max_length=MAX_VALIDATORS)
        for position, item in enumerate(listed):
            what = f"certificate.signatures[{position}]"
            index, signature = codec.read_fields(item, what, 2)
            pairs.append(
                (
                    codec.read_int(index, f"{what}.validator", maximum=MAX_VALIDATORS - 1),
                    codec.read_bytes(signature, f"{what}.signature", length=SIGNATURE_SIZE),
                )
            )
        return cls(
            codec.read_int(height, "certificate.height"),
            codec.read_int(view, "certificate.view"),
            codec.read_bytes(block_hash, "certificate.block_hash", length=HASH_SIZE),
            tuple(pairs),
        )


def verify_certificate(
    certificate: CommitCertificate,
    *,
    chain_id: str,
    height: int,
    block_hash: bytes,
    validators: Sequence[bytes],
    signature_ok: Callable[[int, bytes, bytes], bool] | None = None,
) -> None:
    """Raise ``InvalidCertificate`` unless ``certificate`` proves ``block_hash`` final at ``height``.

    Checks: the certificate names this block and height; validator indexes are
    strictly increasing (so no validator counts twice) and inside the set; there
    are at least a quorum of them; every signature verifies (through
    ``signature_ok(validator index, signature, payload)`` when given: a verifier that
    remembers the COMMIT signatures it has already checked).
    """
    if certificate.height != height or certificate.block_hash != block_hash:
        raise InvalidCertificate(
            f"certificate is for height {certificate.height} block {certificate.block_hash.hex()[:16]}, "
            f"expected height {height} block {block_hash.hex()[:16]}"
        )
    indexes = [index for index, _ in certificate.signatures]
    if any(later <= earlier for earlier, later in itertools.pairwise(indexes)):
        raise InvalidCertificate("certificate validator indexes must be strictly increasing (no duplicates)")
    if indexes and (indexes[0] < 0 or indexes[-1] >= len(validators)):
        raise InvalidCertificate(
            f"certificate names validators {indexes[0]}..{indexes[-1]}, the set has {len(validators)}"
        )
    needed = quorum_size(len(validators))
    if len(indexes) < needed:
        raise InvalidCertificate(f"certificate has {len(indexes)} signatures, a quorum is {needed}")
    payload = commit_vote_payload(chain_id, height, certificate.view, block_hash)
    for index, signature in certificate.signatures:
        valid = (
            signature_ok(index, signature, payload)
            if signature_ok
            else verify_signature(validators[index], signature, payload)
        )
        if not valid:
            raise InvalidCertificate(f"signature of validator {index} does not verify", validator=index)
