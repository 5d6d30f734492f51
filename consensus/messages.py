"""Consensus wire messages: frozen data, canonical encoding, signing payloads.

On the wire every message is a msgpack array ``[tag, field, ...]`` built with
``mura.chain.codec``; ``decode_message`` turns untrusted bytes into one of the
types below or raises ``DecodeError`` and nothing else. Blocks and commit
certificates travel as their own canonical bytes.

Decoding is cheap on purpose: a block inside a message is read up to its header
(an ``UncheckedBlock``), so the replica checks the sender, the signatures, the
height and the view first, and pays for checking and decoding the block's body
(``UncheckedBlock.check``) only for a message it is going to use.

Validators are named by their index in the validator set. Each vote is signed
over a domain-separated payload that names the chain, so a vote can never be
replayed on another network or taken for a transaction. COMMIT is signed over
``mura.chain.block.commit_vote_payload``: a quorum of commits *is* the block's
``CommitCertificate``. Signatures are checked by ``consensus.verify``, not here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mura.chain import codec
from mura.chain.block import (
    MAX_ENCODED_BLOCK_BYTES,
    MAX_VALIDATORS,
    Block,
    CommitCertificate,
    MessageBlock,
    UncheckedBlock,
    commit_vote_payload,
)
from mura.chain.errors import DecodeError
from mura.chain.keys import HASH_SIZE, SIGNATURE_SIZE, SigningKey

#: Largest encoded message: one block plus the votes and view changes around it.
MAX_MESSAGE_BYTES = MAX_ENCODED_BLOCK_BYTES + 1024 * 1024

_MAX_CERTIFICATE_BYTES = 64 + MAX_VALIDATORS * (SIGNATURE_SIZE + 8)
_PROPOSAL_DOMAIN = "mura/pre-prepare/v1"
_PREPARE_DOMAIN = "mura/prepare/v1"
_VIEW_CHANGE_DOMAIN = "mura/view-change/v1"


class Phase(enum.IntEnum):
    """The kinds of signed consensus statement; one per wire tag."""

    PRE_PREPARE = 1
    PREPARE = 2
    COMMIT = 3
    VIEW_CHANGE = 4


class Tag(enum.IntEnum):
    """The first field of every encoded message."""

    PRE_PREPARE = 1
    PREPARE = 2
    COMMIT = 3
    VIEW_CHANGE = 4
    NEW_VIEW = 5
    BLOCK_REQUEST = 6
    FINAL_BLOCK = 7
    STATUS = 8


# --- signing payloads ---------------------------------------------------------


def proposal_payload(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    """What the primary signs to propose ``block_hash`` at ``height`` in ``view``."""
    return codec.encode([_PROPOSAL_DOMAIN, chain_id, view, height, block_hash])


def prepare_payload(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    """What a replica signs to accept the proposal of ``block_hash``."""
    return codec.encode([_PREPARE_DOMAIN, chain_id, view, height, block_hash])


def view_change_payload(chain_id: str, view: int, height: int, prepared: PreparedCertificate | None) -> bytes:
    """What a replica signs to leave for ``view``; it names the prepared block it carries,
    so nobody relaying the view change can strip or swap that certificate."""
    summary = [] if prepared is None else [prepared.view, prepared.block_hash]
    return codec.encode([_VIEW_CHANGE_DOMAIN, chain_id, view, height, summary])


# --- field readers --------------------------------------------------------------


#: A block request's requester when it is no validator (one past the largest index).
NO_VALIDATOR = MAX_VALIDATORS


def _read_index(value: Any, what: str) -> int:
    return codec.read_int(value, what, maximum=MAX_VALIDATORS - 1)


def _read_hash(value: Any, what: str) -> bytes:
    return codec.read_bytes(value, what, length=HASH_SIZE)


def _read_signature(value: Any, what: str) -> bytes:
    return codec.read_bytes(value, what, length=SIGNATURE_SIZE)


def _read_block(value: Any, what: str) -> UncheckedBlock:
    raw = codec.read_bytes(value, what, max_length=MAX_ENCODED_BLOCK_BYTES)
    try:
        return UncheckedBlock.decode(raw)
    except DecodeError as error:
        raise DecodeError(f"{what}: {error.message}") from None


def _read_signatures(value: Any, what: str) -> tuple[tuple[int, bytes], ...]:
    pairs = []
    for position, item in enumerate(codec.read_list(value, what, max_length=MAX_VALIDATORS)):
        index, signature = codec.read_fields(item, f"{what}[{position}]", 2)
        where = f"{what}[{position}]"
        pairs.append((_read_index(index, f"{where}.validator"), _read_signature(signature, f"{where}.signature")))
    return tuple(pairs)


# --- normal case -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrePrepare:
    """PRE-PREPARE: the primary of ``view`` proposes ``block`` at the block's height."""

    #: The view the proposal is made in.
    view: int
    #: The proposed block; its height is the sequence number. Unchecked as decoded.
    block: MessageBlock
    #: Index of the signing validator (must be the primary of ``view``).
    sender: int
    #: Signature over ``proposal_payload(chain_id, view, height, block.hash)``.
    signature: bytes

    @property
    def height(self) -> int:
        return self.block.height

    @property
    def block_hash(self) -> bytes:
        return self.block.hash

    @classmethod
    def sign(cls, key: SigningKey, sender: int, chain_id: str, view: int, block: Block) -> PrePrepare:
        return cls(view, block, sender, key.sign(proposal_payload(chain_id, view, block.height, block.hash)))

    def signing_payload(self, chain_id: str) -> bytes:
        return proposal_payload(chain_id, self.view, self.height, self.block_hash)

    def to_fields(self) -> list[Any]:
        return [self.view, self.block.encode(), self.sender, self.signature]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> PrePrepare:
        view, block, sender, signature = codec.read_fields(value, what, 4)
        return cls(
            codec.read_int(view, f"{what}.view"),
            _read_block(block, f"{what}.block"),
            _read_index(sender, f"{what}.sender"),
            _read_signature(signature, f"{what}.signature"),
        )


@dataclass(frozen=True, slots=True)
class Prepare:
    """PREPARE: the sender accepted the proposal of ``block_hash`` at ``height`` in ``view``."""

    view: int
    height: int
    #: Hash of the accepted block: the digest every vote of the round must match.
    block_hash: bytes
    sender: int
    #: Signature over ``prepare_payload(chain_id, view, height, block_hash)``.
    signature: bytes

    phase = Phase.PREPARE

    @classmethod
    def sign(cls, key: SigningKey, sender: int, chain_id: str, view: int, height: int, block_hash: bytes) -> Prepare:
        return cls(view, height, block_hash, sender, key.sign(prepare_payload(chain_id, view, height, block_hash)))

    def signing_payload(self, chain_id: str) -> bytes:
        return prepare_payload(chain_id, self.view, self.height, self.block_hash)

    def to_fields(self) -> list[Any]:
        return [self.view, self.height, self.block_hash, self.sender, self.signature]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Prepare:
        return cls(*_read_vote_fields(value, what))


@dataclass(frozen=True, slots=True)
class Commit:
    """COMMIT: the sender is prepared on ``block_hash``; a quorum of these makes it final."""

    view: int
    height: int
    block_hash: bytes
    sender: int
    #: Signature over ``commit_vote_payload(chain_id, height, view, block_hash)``.
    signature: bytes

    phase = Phase.COMMIT

    @classmethod
    def sign(cls, key: SigningKey, sender: int, chain_id: str, view: int, height: int, block_hash: bytes) -> Commit:
        return cls(view, height, block_hash, sender, key.sign(commit_vote_payload(chain_id, height, view, block_hash)))

    def signing_payload(self, chain_id: str) -> bytes:
        return commit_vote_payload(chain_id, self.height, self.view, self.block_hash)

    def to_fields(self) -> list[Any]:
        return [self.view, self.height, self.block_hash, self.sender, self.signature]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Commit:
        return cls(*_read_vote_fields(value, what))


def _read_vote_fields(value: Any, what: str) -> tuple[int, int, bytes, int, bytes]:
    view, height, block_hash, sender, signature = codec.read_fields(value, what, 5)
    return (
        codec.read_int(view, f"{what}.view"),
        codec.read_int(height, f"{what}.height"),
        _read_hash(block_hash, f"{what}.block_hash"),
        _read_index(sender, f"{what}.sender"),
        _read_signature(signature, f"{what}.signature"),
    )


Vote = Prepare | Commit


# --- view change -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """Proof that ``block_hash`` was prepared at ``height`` in ``view``: the primary's
    proposal signature and a quorum of PREPARE signatures, as compact as a commit
    certificate (the block itself is not needed to check it)."""

    view: int
    height: int
    block_hash: bytes
    #: The primary of ``view``'s PRE-PREPARE signature.
    proposal_signature: bytes
    #: ``(validator index, PREPARE signature)``, strictly increasing by index.
    signatures: tuple[tuple[int, bytes], ...]

    def to_fields(self) -> list[Any]:
        return [
            self.view,
            self.height,
            self.block_hash,
            self.proposal_signature,
            [[index, signature] for index, signature in self.signatures],
        ]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> PreparedCertificate:
        view, height, block_hash, proposal_signature, signatures = codec.read_fields(value, what, 5)
        return cls(
            codec.read_int(view, f"{what}.view"),
            codec.read_int(height, f"{what}.height"),
            _read_hash(block_hash, f"{what}.block_hash"),
            _read_signature(proposal_signature, f"{what}.proposal_signature"),
            _read_signatures(signatures, f"{what}.signatures"),
        )


@dataclass(frozen=True, slots=True)
class ViewChange:
    """VIEW-CHANGE: the sender gives up on its view at ``height`` and asks for ``view``.

    One block is in flight at a time, so the sender's last final height is
    ``height - 1``. It carries the sender's highest prepared certificate at
    ``height``, which the NEW-VIEW must honour.
    """

    #: The view the sender moves to.
    view: int
    #: The height being decided; the sender's last final height plus one.
    height: int
    #: The sender's highest prepared certificate at ``height``, if any.
    prepared: PreparedCertificate | None
    #: The prepared block itself, so the new primary can re-propose it. Not signed
    #: (the certificate names its hash) and left out inside a NEW-VIEW.
    prepared_block: MessageBlock | None
    sender: int
    #: Signature over ``view_change_payload(chain_id, view, height, prepared)``.
    signature: bytes

    @classmethod
    def sign(
        cls,
        key: SigningKey,
        sender: int,
        chain_id: str,
        view: int,
        height: int,
        prepared: PreparedCertificate | None,
        prepared_block: Block | None,
    ) -> ViewChange:
        signature = key.sign(view_change_payload(chain_id, view, height, prepared))
        return cls(view, height, prepared, prepared_block, sender, signature)

    def signing_payload(self, chain_id: str) -> bytes:
        return view_change_payload(chain_id, self.view, self.height, self.prepared)

    def without_block(self) -> ViewChange:
        return ViewChange(self.view, self.height, self.prepared, None, self.sender, self.signature)

    def to_fields(self) -> list[Any]:
        prepared = [] if self.prepared is None else self.prepared.to_fields()
        block = b"" if self.prepared_block is None else self.prepared_block.encode()
        return [self.view, self.height, prepared, block, self.sender, self.signature]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> ViewChange:
        view, height, prepared, block, sender, signature = codec.read_fields(value, what, 6)
        certificate = None if prepared == [] else PreparedCertificate.from_fields(prepared, f"{what}.prepared")
        prepared_block = None if block == b"" else _read_block(block, f"{what}.prepared_block")
        return cls(
            codec.read_int(view, f"{what}.view"),
            codec.read_int(height, f"{what}.height"),
            certificate,
            prepared_block,
            _read_index(sender, f"{what}.sender"),
            _read_signature(signature, f"{what}.signature"),
        )


@dataclass(frozen=True, slots=True)
class NewView:
    """NEW-VIEW: the primary of ``view`` starts it with the quorum of VIEW-CHANGEs that
    justify it and the PRE-PREPARE they force (the highest prepared block, or any
    block when none was prepared).

    It carries no signature of its own: every part of it is signed by its author.
    """

    view: int
    height: int
    #: A quorum of VIEW-CHANGEs for ``view`` at ``height``, strictly increasing by sender.
    view_changes: tuple[ViewChange, ...]
    #: The primary's proposal for ``view``.
    pre_prepare: PrePrepare

    @property
    def sender(self) -> int:
        return self.pre_prepare.sender

    def to_fields(self) -> list[Any]:
        changes = [change.to_fields() for change in self.view_changes]
        return [self.view, self.height, changes, self.pre_prepare.to_fields()]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> NewView:
        view, height, changes, pre_prepare = codec.read_fields(value, what, 4)
        items = codec.read_list(changes, f"{what}.view_changes", max_length=MAX_VALIDATORS)
        for index, item in enumerate(items):
            # The proposal carries the one block that matters; blocks inside the view
            # changes would only multiply what a NEW-VIEW costs to receive.
            if isinstance(item, list) and len(item) == 6 and item[3] != b"":
                raise DecodeError(f"{what}.view_changes[{index}]: carries a block (a NEW-VIEW's view changes must not)")
        return cls(
            codec.read_int(view, f"{what}.view"),
            codec.read_int(height, f"{what}.height"),
            tuple(ViewChange.from_fields(item, f"{what}.view_changes[{i}]") for i, item in enumerate(items)),
            PrePrepare.from_fields(pre_prepare, f"{what}.pre_prepare"),
        )


# --- catching up ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Ask a peer for final blocks from ``height`` on. Unsigned: the answer proves itself."""

    height: int
    #: Index of the validator to answer; None for a node that is no validator at the
    #: height it asks from (an observer, a validator not yet added or already removed):
    #: the answer goes back by the link the request came by.
    requester: int | None

    def to_fields(self) -> list[Any]:
        return [self.height, NO_VALIDATOR if self.requester is None else self.requester]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> BlockRequest:
        height, requester = codec.read_fields(value, what, 2)
        index = codec.read_int(requester, f"{what}.requester", maximum=NO_VALIDATOR)
        return cls(codec.read_int(height, f"{what}.height"), None if index == NO_VALIDATOR else index)


@dataclass(frozen=True, slots=True)
class FinalBlock:
    """A final block with its commit certificate; anyone can check it with
    ``verify_certificate``, so it needs no signature and no trusted sender."""

    #: Unchecked as decoded; the certificate names its hash.
    block: MessageBlock
    certificate: CommitCertificate

    @property
    def height(self) -> int:
        return self.block.height

    def to_fields(self) -> list[Any]:
        return [self.block.encode(), self.certificate.encode()]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> FinalBlock:
        block, certificate = codec.read_fields(value, what, 2)
        raw = codec.read_bytes(certificate, f"{what}.certificate", max_length=_MAX_CERTIFICATE_BYTES)
        try:
            decoded = CommitCertificate.decode(raw)
        except DecodeError as error:
            raise DecodeError(f"{what}.certificate: {error.message}") from None
        return cls(_read_block(block, f"{what}.block"), decoded)


@dataclass(frozen=True, slots=True)
class Status:
    """The height ``sender`` works on, from a validator that signs nothing yet (its vote
    record is new: see ``votes.SigningGuard``), or sent when a link opens at a height
    where nothing is signed yet (an idle one). Unsigned: it is taken only from the
    link ``sender`` authenticated, and it only tells where that validator stands."""

    height: int
    sender: int

    def to_fields(self) -> list[Any]:
        return [self.height, self.sender]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Status:
        height, sender = codec.read_fields(value, what, 2)
        return cls(codec.read_int(height, f"{what}.height"), _read_index(sender, f"{what}.sender"))


# --- the envelope ----------------------------------------------------------------------

Message = PrePrepare | Prepare | Commit | ViewChange | NewView | BlockRequest | FinalBlock | Status

_TAGS: dict[type[Any], Tag] = {
    PrePrepare: Tag.PRE_PREPARE,
    Prepare: Tag.PREPARE,
    Commit: Tag.COMMIT,
    ViewChange: Tag.VIEW_CHANGE,
    NewView: Tag.NEW_VIEW,
    BlockRequest: Tag.BLOCK_REQUEST,
    FinalBlock: Tag.FINAL_BLOCK,
    Status: Tag.STATUS,
}
_TYPES: dict[int, Any] = {int(tag): kind for kind, tag in _TAGS.items()}


def encode_message(message: Message) -> bytes:
    """The canonical bytes of ``message``: ``[tag, field, ...]``."""
    return codec.encode([int(_TAGS[type(message)]), *message.to_fields()])


def encode_final_block(block: bytes, certificate: bytes) -> bytes:
    """The bytes of a ``FinalBlock`` built from a stored block's and certificate's own
    bytes, so that serving a block costs no decoding."""
    return codec.encode([int(Tag.FINAL_BLOCK), block, certificate])


def message_tag(data: bytes) -> Tag | None:
    """The tag of an encoded message, read from its first bytes only (None if it has
    none): enough to route it before decoding."""
    if len(data) < 2 or not 0x91 <= data[0] <= 0x9F or data[1] not in _TYPES:
        return None
    return Tag(data[1])


def decode_message(data: bytes) -> Message:
    """Decode untrusted bytes into a message; anything else raises ``DecodeError``."""
    value = codec.decode(data, max_size=MAX_MESSAGE_BYTES)
    if not isinstance(value, list) or not value:
        raise DecodeError("message: expected a non-empty array")
    tag = codec.read_int(value[0], "message.tag", maximum=255)
    kind = _TYPES.get(tag)
    if kind is None:
        raise DecodeError(f"message.tag: unknown message type {tag}")
    name = Tag(tag).name.lower().replace("_", "-")
    message: Message = kind.from_fields(value[1:], name)
    return message
