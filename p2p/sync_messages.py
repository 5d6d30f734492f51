"""The state sync protocol's messages: frames of kind ``state_sync``.

A frame's payload is ``[tag, fields...]``. Requests go from a joining node to
a peer, one at a time per peer; each answer names what it answers (the
request's tag, height and index), so an answer nobody asked for is seen at
once. Decoding checks only shapes and caps; what an answer proves is checked
by the joining node (``mura.p2p.state_sync``, ``mura.chain.snapshot``).

=======================  =========================================================
request                  answer
=======================  =========================================================
``OffersRequest``        ``Offers``: the peer's head and the heights of the
                         snapshots it serves
``ProofRequest(H)``      ``Proof``: final block H, its commit certificate and
                         header H - 1 (whose ``next_validators_hash`` binds set(H))
``SetChangesRequest``    ``SetChanges``: the validator set changes whose header is
                         at most H (activation heights up to H + 1), each the
                         certified header before its activation height and the
                         new set
``ManifestRequest``      ``ManifestPage``: ranges of the manifest of the
                         snapshot at H, from a range index on
``ChunkRequest(H, i)``   ``Chunk``: the entries of range i of the snapshot at H
any                      ``Refusal``: not served now (busy, over budget, no
                         such snapshot), with the reason
=======================  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

from mura.chain import codec
from mura.chain.block import MAX_ENCODED_BLOCK_BYTES, MAX_VALIDATORS, CommitCertificate, Header
from mura.chain.errors import DecodeError
from mura.chain.governance import ValidatorSet, read_validator_set
from mura.chain.keys import SIGNATURE_SIZE
from mura.chain.snapshot import MAX_RANGES, StateRange, read_entries, read_ranges

#: The frame kind of every state sync message.
STATE_SYNC_KIND = "state_sync"
#: Most snapshot heights an ``Offers`` lists.
MAX_OFFERED = 16
#: Most validator set changes in one ``SetChanges``.
MAX_CHANGES_PER_ANSWER = 32
#: Longest text of a refusal's reason.
MAX_REASON_LENGTH = 64
_MAX_CERTIFICATE_BYTES = 64 + MAX_VALIDATORS * (SIGNATURE_SIZE + 8)


@dataclass(frozen=True, slots=True)
class OffersRequest:
    """Which snapshots do you serve?"""

    TAG = 0

    def to_fields(self) -> list[Any]:
        return []


@dataclass(frozen=True, slots=True)
class Offers:
    """The snapshots a peer serves."""

    TAG = 1
    #: The peer's last final height.
    head: int
    #: Heights of the snapshots it serves, highest first.
    heights: tuple[int, ...]

    def to_fields(self) -> list[Any]:
        return [self.head, list(self.heights)]


@dataclass(frozen=True, slots=True)
class ProofRequest:
    """Send final block ``height`` and its certificate."""

    TAG = 2
    height: int

    def to_fields(self) -> list[Any]:
        return [self.height]


@dataclass(frozen=True, slots=True)
class Proof:
    """A final block and its commit certificate, as stored, and the header before it (checked by the receiver)."""

    TAG = 3
    height: int
    block: bytes
    certificate: bytes
    #: Header ``height - 1``: the block's ``parent_hash`` binds it, and its ``next_validators_hash`` set(height).
    parent: Header

    def to_fields(self) -> list[Any]:
        return [self.height, self.block, self.certificate, self.parent.to_fields()]


@dataclass(frozen=True, slots=True)
class SetChangesRequest:
    """Send the validator set changes with activation heights above ``after`` whose header (the
    block before the activation height) is at most ``height``."""

    TAG = 4
    height: int
    after: int

    def to_fields(self) -> list[Any]:
        return [self.height, self.after]


@dataclass(frozen=True, slots=True)
class SetChange:
    """One change of the validator set: the set in force from ``header.height + 1`` on."""

    #: The final header just before the activation height; its ``next_validators_hash`` binds ``records``.
    header: Header
    #: Its commit certificate, by the set in force at ``header.height``.
    certificate: CommitCertificate
    #: The new set, in order, as the state keeps it.
    records: ValidatorSet

    @property
    def activation_height(self) -> int:
        return self.header.height + 1

    def to_fields(self) -> list[Any]:
        return [self.header.to_fields(), self.certificate.encode(), [record.to_fields() for record in self.records]]

    def account_fields(self) -> list[Any]:
        """What every honest node says alike of this change (certificates differ from node to
        node: each holds the quorum of signatures it saw)."""
        return [self.header.hash, [record.to_fields() for record in self.records]]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> SetChange:
        header, certificate, records = codec.read_fields(value, what, 3)
        return cls(
            Header.from_fields(header, f"{what}.header"),
            CommitCertificate.decode(
                codec.read_bytes(certificate, f"{what}.certificate", max_length=_MAX_CERTIFICATE_BYTES)
            ),
            read_validator_set(records, f"{what}.records", MAX_VALIDATORS),
        )


@dataclass(frozen=True, slots=True)
class SetChanges:
    """Validator set changes up to ``height``, in activation order."""

    TAG = 5
    height: int
    changes: tuple[SetChange, ...]
    #: True when no change up to ``height`` follows the last one here.
    complete: bool

    def to_fields(self) -> list[Any]:
        return [self.height, [change.to_fields() for change in self.changes], self.complete]


@dataclass(frozen=True, slots=True)
class ManifestRequest:
    """Send ranges of the manifest of the snapshot at ``height`` from index ``first`` on."""

    TAG = 6
    height: int
    first: int

    def to_fields(self) -> list[Any]:
        return [self.height, self.first]


@dataclass(frozen=True, slots=True)
class ManifestPage:
    """Ranges ``first``, ``first + 1``, ... of a manifest of ``total`` ranges."""

    TAG = 7
    height: int
    total: int
    first: int
    ranges: tuple[StateRange, ...]

    def to_fields(self) -> list[Any]:
        return [self.height, self.total, self.first, [state_range.to_fields() for state_range in self.ranges]]


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """Send the entries of range ``index`` of the snapshot at ``height``."""

    TAG = 8
    height: int
    index: int

    def to_fields(self) -> list[Any]:
        return [self.height, self.index]


@dataclass(frozen=True, slots=True)
class Chunk:
    """The entries of one range, in key order."""

    TAG = 9
    height: int
    index: int
    entries: tuple[tuple[bytes, bytes], ...]

    def to_fields(self) -> list[Any]:
        return [self.height, self.index, [[key, value] for key, value in self.entries]]


@dataclass(frozen=True, slots=True)
class Refusal:
    """The request with ``tag`` for ``height`` is not served now."""

    TAG = 10
    tag: int
    height: int
    #: ``busy`` (a request of the peer's is being served), ``over_budget``, ``no_snapshot``,
    #: ``not_kept`` (the block is not kept here).
    reason: str

    def to_fields(self) -> list[Any]:
        return [self.tag, self.height, self.reason]


Request = OffersRequest | ProofRequest | SetChangesRequest | ManifestRequest | ChunkRequest
Answer = Offers | Proof | SetChanges | ManifestPage | Chunk | Refusal
SyncMessage = Request | Answer


def is_request(message: SyncMessage) -> TypeGuard[Request]:
    """Whether ``message`` asks (a node serves it) rather than answers (a joining node takes it)."""
    return isinstance(message, (OffersRequest, ProofRequest, SetChangesRequest, ManifestRequest, ChunkRequest))


def encode_sync_message(message: SyncMessage) -> list[Any]:
    """The frame payload of ``message``."""
    return [message.TAG, *message.to_fields()]


def _height(value: Any, what: str) -> int:
    return codec.read_int(value, what)


def decode_sync_message(payload: Any) -> SyncMessage:
    """A message from a frame's payload; ``DecodeError`` for anything malformed."""
    if not isinstance(payload, list) or not payload:
        raise DecodeError("state_sync: expected [tag, fields...]")
    tag, fields = codec.read_int(payload[0], "state_sync.tag", maximum=Refusal.TAG), payload[1:]
    reader = _READERS[tag]
    return reader(fields)


def _read_offers_request(fields: list[Any]) -> SyncMessage:
    codec.read_fields(fields, "offers request", 0)
    return OffersRequest()


def _read_offers(fields: list[Any]) -> SyncMessage:
    head, heights = codec.read_fields(fields, "offers", 2)
    listed = codec.read_list(heights, "offers.heights", max_length=MAX_OFFERED)
    return Offers(_height(head, "offers.head"), tuple(_height(item, "offers.heights[]") for item in listed))


def _read_proof_request(fields: list[Any]) -> SyncMessage:
    (height,) = codec.read_fields(fields, "proof request", 1)
    return ProofRequest(_height(height, "proof request.height"))


def _read_proof(fields: list[Any]) -> SyncMessage:
    height, block, certificate, parent = codec.read_fields(fields, "proof", 4)
    return Proof(
        _height(height, "proof.height"),
        codec.read_bytes(block, "proof.block", max_length=MAX_ENCODED_BLOCK_BYTES),
        codec.read_bytes(certificate, "proof.certificate", max_length=_MAX_CERTIFICATE_BYTES),
        Header.from_fields(parent, "proof.parent"),
    )


def _read_set_changes_request(fields: list[Any]) -> SyncMessage:
    height, after = codec.read_fields(fields, "set changes request", 2)
    return SetChangesRequest(_height(height, "set changes request.height"), _height(after, "set changes request.after"))


def _read_set_changes(fields: list[Any]) -> SyncMessage:
    height, changes, complete = codec.read_fields(fields, "set changes", 3)
    items = codec.read_list(changes, "set changes.changes", max_length=MAX_CHANGES_PER_ANSWER)
    return SetChanges(
        _height(height, "set changes.height"),
        tuple(SetChange.from_fields(item, f"set changes.changes[{position}]") for position, item in enumerate(items)),
        codec.read_bool(complete, "set changes.complete"),
    )


def _read_manifest_request(fields: list[Any]) -> SyncMessage:
    height, first = codec.read_fields(fields, "manifest request", 2)
    return ManifestRequest(
        _height(height, "manifest request.height"),
        codec.read_int(first, "manifest request.first", maximum=MAX_RANGES),
    )


def _read_manifest_page(fields: list[Any]) -> SyncMessage:
    height, total, first, ranges = codec.read_fields(fields, "manifest page", 4)
    return ManifestPage(
        _height(height, "manifest page.height"),
        codec.read_int(total, "manifest page.total", maximum=MAX_RANGES),
        codec.read_int(first, "manifest page.first", maximum=MAX_RANGES),
        tuple(read_ranges(ranges, "manifest page.ranges")),
    )


def _read_chunk_request(fields: list[Any]) -> SyncMessage:
    height, index = codec.read_fields(fields, "chunk request", 2)
    return ChunkRequest(_height(height, "chunk request.height"), codec.read_int(index, "chunk request.index",
                                                                               maximum=MAX_RANGES))


def _read_chunk(fields: list[Any]) -> SyncMessage:
    height, index, entries = codec.read_fields(fields, "chunk", 3)
    return Chunk(
        _height(height, "chunk.height"),
        codec.read_int(index, "chunk.index", maximum=MAX_RANGES),
        tuple(read_entries(entries, "chunk.entries")),
    )


def _read_refusal(fields: list[Any]) -> SyncMessage:
    tag, height, reason = codec.read_fields(fields, "refusal", 3)
    return Refusal(
        codec.read_int(tag, "refusal.tag", maximum=Refusal.TAG),
        _height(height, "refusal.height"),
        codec.read_str(reason, "refusal.reason", max_length=MAX_REASON_LENGTH),
    )


_READERS = (
    _read_offers_request,
    _read_offers,
    _read_proof_request,
    _read_proof,
    _read_set_changes_request,
    _read_set_changes,
    _read_manifest_request,
    _read_manifest_page,
    _read_chunk_request,
    _read_chunk,
    _read_refusal,
)
