"""Governance: the validator set and the issuer role, changed by proposals a quorum approves.

The wire and state types live here, next to their encodings: a validator's record,
the five changes a proposal may carry, a proposal as the state keeps it, and the
set scheduled to take over. The rules that use them are in ``governance_rules``.

Heights: set(h) is the validator set that decides height h. After block h the state
entry ``v`` holds set(h+1). A change whose quorum completes in block h is scheduled
for height h + ``ACTIVATION_DELAY``; the automatic step at the start of block h+1
moves it into ``v``, so a replica at height h always knows set(h) and set(h+1).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mura.chain import codec
from mura.chain.errors import DecodeError
from mura.chain.keys import PUBLIC_KEY_SIZE, sha256

#: A change approved in block h decides heights from h + ACTIVATION_DELAY on.
ACTIVATION_DELAY = 2
#: Blocks a proposal stays open for approvals when the genesis sets no other lifetime.
DEFAULT_PROPOSAL_LIFETIME_BLOCKS = 86_400
#: The longest lifetime a genesis may set (about four months at one block a second).
MAX_PROPOSAL_LIFETIME_BLOCKS = 10_000_000
#: Most proposals one validator may have open at once: the open ones are bounded by
#: this times the set's size, so proposals cannot fill the state.
MAX_OPEN_PROPOSALS_PER_PROPOSER = 8
#: Longest validator name (as in the genesis file) and peer address.
MAX_VALIDATOR_NAME_LENGTH = 64
MAX_PEER_ADDRESS_LENGTH = 255

_NAME = re.compile(r"[a-z0-9-]{1,64}", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


def validator_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a validator (None if it can): 1 to 64 lowercase letters, digits or '-'."""
    if _NAME.fullmatch(name) is None:
        return f"a validator's name is 1 to 64 lowercase letters, digits or '-', got {name[:80]!r}"
    return None


def peer_address_problem(address: str) -> str | None:
    """Why ``address`` is not a peer address ``host:port`` (None if it is)."""
    host, _, port = address.rpartition(":")
    if len(address) > MAX_PEER_ADDRESS_LENGTH:
        return f"a peer address is at most {MAX_PEER_ADDRESS_LENGTH} characters"
    if not host or not host.isprintable() or any(character.isspace() for character in host):
        return f"a peer address is host:port, got {address[:80]!r}"
    if _PORT.fullmatch(port) is None or not 1 <= int(port) <= 65535:
        return f"a peer address's port is 1 to 65535, got {port[:16]!r}"
    return None


def _read_key(value: Any, what: str) -> bytes:
    return codec.read_bytes(value, what, length=PUBLIC_KEY_SIZE)


def _read_text(value: Any, what: str, max_length: int) -> str:
    return codec.read_str(value, what, max_length=max_length)


@dataclass(frozen=True, slots=True)
class ValidatorRecord:
    """One validator of a set, as the state keeps it."""

    #: The Ed25519 key that signs its votes (and its transactions).
    public_key: bytes
    #: Its operator's name, e.g. ``village-office``.
    name: str
    #: ``host:port`` where its peers reach it ("" when not known, as in simulated networks).
    address: str

    def to_fields(self) -> list[Any]:
        return [self.public_key, self.name, self.address]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> ValidatorRecord:
        public_key, name, address = codec.read_fields(value, what, 3)
        return cls(
            _read_key(public_key, f"{what}.public_key"),
            _read_text(name, f"{what}.name", MAX_VALIDATOR_NAME_LENGTH),
            _read_text(address, f"{what}.address", MAX_PEER_ADDRESS_LENGTH),
        )


ValidatorSet = tuple[ValidatorRecord, ...]


def validator_keys(validators: Sequence[ValidatorRecord]) -> tuple[bytes, ...]:
    """The keys of a set, in order (what consensus counts votes by)."""
    return tuple(record.public_key for record in validators)


def validators_hash(validators: Sequence[ValidatorRecord]) -> bytes:
    """What a header's ``next_validators_hash`` commits to: the set's keys, in order."""
    return keys_hash(validator_keys(validators))


def keys_hash(keys: Sequence[bytes]) -> bytes:
    return sha256(codec.encode(list(keys)))


def encode_validator_set(validators: Sequence[ValidatorRecord]) -> bytes:
    return codec.encode([record.to_fields() for record in validators])


def read_validator_set(value: Any, what: str, max_length: int) -> ValidatorSet:
    items = codec.read_list(value, what, max_length=max_length)
    return tuple(ValidatorRecord.from_fields(item, f"{what}[{index}]") for index, item in enumerate(items))


def decode_validator_set(data: bytes, max_length: int) -> ValidatorSet:
    return read_validator_set(codec.decode(data), "validators", max_length)


# --- the changes a proposal carries ------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddValidator:
    """Append a validator to the set."""

    KIND: ClassVar[str] = "add_validator"
    public_key: bytes
    name: str
    #: Its peer address, ``host:port``.
    address: str

    def to_fields(self) -> list[Any]:
        return [self.public_key, self.name, self.address]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> AddValidator:
        public_key, name, address = codec.read_fields(value, what, 3)
        return cls(
            _read_key(public_key, f"{what}.public_key"),
            # Bounded generously: ``invalid_validator_info`` names a bad name or address.
            _read_text(name, f"{what}.name", 4 * MAX_VALIDATOR_NAME_LENGTH),
            _read_text(address, f"{what}.address", 4 * MAX_PEER_ADDRESS_LENGTH),
        )


@dataclass(frozen=True, slots=True)
class RemoveValidator:
    """Take a validator out of the set (those after it move down one place)."""

    KIND: ClassVar[str] = "remove_validator"
    public_key: bytes

    def to_fields(self) -> list[Any]:
        return [self.public_key]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> RemoveValidator:
        (public_key,) = codec.read_fields(value, what, 1)
        return cls(_read_key(public_key, f"{what}.public_key"))


@dataclass(frozen=True, slots=True)
class ReplaceKey:
    """Rotate a validator's key: same place and name; the address changes too unless empty."""

    KIND: ClassVar[str] = "replace_key"
    old_key: bytes
    new_key: bytes
    #: The new peer address, or "" to keep the old one.
    address: str

    def to_fields(self) -> list[Any]:
        return [self.old_key, self.new_key, self.address]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> ReplaceKey:
        old_key, new_key, address = codec.read_fields(value, what, 3)
        return cls(
            _read_key(old_key, f"{what}.old_key"),
            _read_key(new_key, f"{what}.new_key"),
            _read_text(address, f"{what}.address", 4 * MAX_PEER_ADDRESS_LENGTH),
        )


@dataclass(frozen=True, slots=True)
class _IssuerChange:
    """A change of one account's issuer role."""

    KIND: ClassVar[str] = ""
    account: bytes

    def to_fields(self) -> list[Any]:
        return [self.account]

    @classmethod
    def from_fields(cls, value: Any, what: str) -> Any:
        (account,) = codec.read_fields(value, what, 1)
        return cls(_read_key(account, f"{what}.account"))


@dataclass(frozen=True, slots=True)
class GrantIssuer(_IssuerChange):
    """Give an account the issuer role (it may issue assets)."""

    KIND: ClassVar[str] = "grant_issuer"


@dataclass(frozen=True, slots=True)
class RevokeIssuer(_IssuerChange):
    """Take the issuer role from an account (its assets stay its own)."""

    KIND: ClassVar[str] = "revoke_issuer"


Change = AddValidator | RemoveValidator | ReplaceKey | GrantIssuer | RevokeIssuer
#: Every change by its wire name.
CHANGES: dict[str, type[Change]] = {
    change.KIND: change for change in (AddValidator, RemoveValidator, ReplaceKey, GrantIssuer, RevokeIssuer)
}


def change_to_fields(change: Change) -> list[Any]:
    """``[kind, [fields...]]``."""
    return [change.KIND, change.to_fields()]


def change_from_fields(value: Any, what: str) -> Change:
    """A change from its fields; an unknown kind is malformed."""
    kind, fields = codec.read_fields(value, what, 2)
    kind = codec.read_str(kind, f"{what}.kind", max_length=32)
    change_type = CHANGES.get(kind)
    if change_type is None:
        raise DecodeError(f"{what}.kind: unknown change {kind!r}", kind=kind)
    return change_type.from_fields(fields, f"{what}.{kind}")


# --- proposals -----------------------------------------------------------------------


class ProposalStatus(enum.Enum):
    """Where a proposal stands."""

    #: Gathering approvals.
    OPEN = "open"
    #: A quorum approved it; it is (or will be) in force from its activation height.
    APPROVED = "approved"
    #: Its lifetime ran out before a quorum approved it.
    EXPIRED = "expired"


_STATUS_CODES = {ProposalStatus.OPEN: 0, ProposalStatus.APPROVED: 1, ProposalStatus.EXPIRED: 2}
_STATUSES = {code: status for status, code in _STATUS_CODES.items()}


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed change and its approvals, as the state keeps it."""

    #: Sequential from 1.
    id: int
    #: The validator that proposed it (its approval is the first).
    proposer: bytes
    change: Change
    #: The block that carried the proposal.
    created_height: int
    #: The first height at which it is expired unless approved before.
    expires_height: int
    #: The validators that approved it, in the order they did.
    approvers: tuple[bytes, ...]
    status: ProposalStatus = ProposalStatus.OPEN
    #: When approved: the first height whose set includes the change (0 otherwise).
    activation_height: int = 0

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.id,
                self.proposer,
                change_to_fields(self.change),
                self.created_height,
                self.expires_height,
                list(self.approvers),
                _STATUS_CODES[self.status],
                self.activation_height,
            ]
        )

    @classmethod
    def decode(cls, data: bytes, max_approvers: int) -> Proposal:
        (
            number, proposer, change, created, expires, approvers, status, activation,
        ) = codec.read_fields(codec.decode(data), "proposal", 8)  # fmt: skip
        return cls(
            codec.read_int(number, "proposal.id"),
            _read_key(proposer, "proposal.proposer"),
            change_from_fields(change, "proposal.change"),
            codec.read_int(created, "proposal.created_height"),
            codec.read_int(expires, "proposal.expires_height"),
            tuple(
                _read_key(approver, "proposal.approvers[]")
                for approver in codec.read_list(approvers, "proposal.approvers", max_length=max_approvers)
            ),
            _STATUSES[codec.read_int(status, "proposal.status", maximum=len(_STATUSES) - 1)],
            codec.read_int(activation, "proposal.activation_height"),
        )


@dataclass(frozen=True, slots=True)
class ScheduledSet:
    """The changes approved in one block, waiting for the start of the next: the whole
    set that will decide ``activation_height`` on, and the issuer grants and revokes."""

    activation_height: int
    validators: ValidatorSet
    #: ``(account, granted)`` in the order approved: True grants the issuer role, False revokes it.
    issuer_changes: tuple[tuple[bytes, bool], ...] = ()

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.activation_height,
                [record.to_fields() for record in self.validators],
                [[account, granted] for account, granted in self.issuer_changes],
            ]
        )

    @classmethod
    def decode(cls, data: bytes, max_validators: int) -> ScheduledSet:
        activation, validators, issuer_changes = codec.read_fields(codec.decode(data), "scheduled", 3)
        changes = []
        for item in codec.read_list(issuer_changes, "scheduled.issuer_changes", max_length=codec.MAX_INT):
            account, granted = codec.read_fields(item, "scheduled.issuer_changes[]", 2)
            changes.append((_read_key(account, "scheduled.account"), codec.read_bool(granted, "scheduled.granted")))
        return cls(
            codec.read_int(activation, "scheduled.activation_height"),
            read_validator_set(validators, "scheduled.validators", max_validators),
            tuple(changes),
        )
