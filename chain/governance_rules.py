"""The governance rules: proposals, approvals, and the automatic steps that put approved
changes in force.

Terms used in the docstrings:

- the *current set* of a block at height H is set(H), the validators deciding it: the
  state entry ``v`` as committed before the block (in mempool admission, the set of the
  next block). Only its members propose and approve, and a quorum is counted in it.
- the *next set* is what a change is checked against and applied to: the set already
  scheduled in this block, if a change completed earlier in it, else ``v`` after the
  block's automatic steps, set(H+1).

A proposal completes when the approvers that are members of the current set reach
``quorum_size(len(current set))``; the approval that completes it is applied only if
the change still applies to the next set, and is refused with the change's own rule
otherwise (the proposal stays open for an approval once it applies again, until it
expires). A completed change is scheduled for H + ``ACTIVATION_DELAY``; the automatic
step at the start of block H+1 writes it into ``v`` (so it decides heights from H+2)
and updates the accounts' roles, issuer grants and revokes included.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, cast

from mura.chain import codec
from mura.chain.block import MAX_VALIDATORS, quorum_size
from mura.chain.errors import (
    AlreadyIssuer,
    AlreadyValidator,
    DuplicateApproval,
    InvalidValidatorInfo,
    LastIssuer,
    NotAValidator,
    NotIssuerAccount,
    NotValidator,
    ProposalApproved,
    ProposalExpired,
    TooManyProposals,
    UnknownProposal,
    ValidatorCount,
    ValidatorNameTaken,
)
from mura.chain.governance import (
    ACTIVATION_DELAY,
    MAX_OPEN_PROPOSALS_PER_PROPOSER,
    AddValidator,
    Change,
    GrantIssuer,
    Proposal,
    ProposalStatus,
    RemoveValidator,
    ReplaceKey,
    RevokeIssuer,
    ScheduledSet,
    ValidatorRecord,
    ValidatorSet,
    peer_address_problem,
    validator_keys,
    validator_name_problem,
)
from mura.chain.keys import weak_key_problem
from mura.chain.pending import (
    ISSUER_COUNT_KEY,
    LAST_PROPOSAL_KEY,
    OPEN_PROPOSAL_PREFIX,
    SCHEDULED_KEY,
    PendingState,
    Role,
    open_count_key,
    open_proposal_key,
    proposal_key,
)
from mura.chain.transaction import Approve, Propose, Transaction

#: Open proposals read at a time while looking for those expired.
_EXPIRY_PAGE = 16


class EntryReader(Protocol):
    """What reading one governance entry needs (a ``StateReader``, or the RPC's view of the store)."""

    def load_entry(self, key: bytes) -> bytes | None: ...


# --- reading the governance entries ---------------------------------------------------


def load_proposal(state: EntryReader, proposal: int) -> Proposal | None:
    """A proposal as committed (None if there is none with this id)."""
    value = state.load_entry(proposal_key(proposal))
    return None if value is None else Proposal.decode(value, MAX_VALIDATORS)


def load_scheduled(state: EntryReader) -> ScheduledSet | None:
    """The set scheduled to take over, as committed (None if none is)."""
    value = state.load_entry(SCHEDULED_KEY)
    return None if value is None else ScheduledSet.decode(value, MAX_VALIDATORS)


def last_proposal_id(state: EntryReader) -> int:
    value = state.load_entry(LAST_PROPOSAL_KEY)
    return 0 if value is None else codec.read_int(codec.decode(value), "last proposal")


def _count(value: bytes | None, what: str) -> int:
    return 0 if value is None else codec.read_int(codec.decode(value), what)


def _count_entry(count: int) -> bytes | None:
    return codec.encode(count) if count else None


def _proposal(pending: PendingState, proposal: int) -> Proposal | None:
    value = pending.entry(proposal_key(proposal))
    return None if value is None else Proposal.decode(value, MAX_VALIDATORS)


def _save_proposal(pending: PendingState, proposal: Proposal) -> None:
    pending.set_entry(proposal_key(proposal.id), proposal.encode())


def _scheduled(pending: PendingState) -> ScheduledSet | None:
    value = pending.entry(SCHEDULED_KEY)
    return None if value is None else ScheduledSet.decode(value, MAX_VALIDATORS)


def next_set(pending: PendingState) -> ValidatorSet:
    """The set a change is checked against and applied to (see the module's docstring)."""
    scheduled = _scheduled(pending)
    return pending.validators if scheduled is None else scheduled.validators


def holds_issuer_role(pending: PendingState, account: bytes) -> bool:
    """Whether ``account`` holds the issuer role once the changes scheduled so far apply."""
    scheduled = _scheduled(pending)
    for changed, granted in reversed(scheduled.issuer_changes if scheduled else ()):
        if changed == account:
            return granted
    return Role.ISSUER in pending.account(account).roles


def issuer_count(pending: PendingState) -> int:
    """How many accounts hold the issuer role once the changes scheduled so far apply."""
    scheduled = _scheduled(pending)
    count = _count(pending.entry(ISSUER_COUNT_KEY), "issuer count")
    return count + sum(1 if granted else -1 for _, granted in (scheduled.issuer_changes if scheduled else ()))


# --- the rules ------------------------------------------------------------------------


def validate_validator(pending: PendingState, transaction: Transaction) -> None:
    """Only a validator of the current set proposes or approves."""
    if transaction.sender not in validator_keys(pending.current_validators):
        raise NotAValidator(
            f"{transaction.sender.hex()} is not a validator of the current set", account=transaction.sender.hex()
        )


def validate_change_format(change: Change) -> None:
    """A new validator has a name of 1 to 64 lowercase letters, digits or '-' and a peer
    address ``host:port``; a rotation's new address, if any, is ``host:port``; a key a
    change brings in is a point of the curve, not of small order (``weak_key_problem``)."""
    new_key = change.public_key if isinstance(change, AddValidator) else None
    new_key = change.new_key if isinstance(change, ReplaceKey) else new_key
    key_problem = None if new_key is None else weak_key_problem(new_key)
    if key_problem is not None:
        raise InvalidValidatorInfo(f"the new validator's key is {key_problem}", field="public_key")
    name_problem = validator_name_problem(change.name) if isinstance(change, AddValidator) else None
    if name_problem is not None:
        raise InvalidValidatorInfo(name_problem, field="name")
    address = change.address if isinstance(change, AddValidator | ReplaceKey) else ""
    if isinstance(change, AddValidator) or address:
        problem = peer_address_problem(address)
        if problem is not None:
            raise InvalidValidatorInfo(problem, field="address")


def validate_change_applies(pending: PendingState, change: Change, *, proposal: int | None = None) -> None:
    """A change applies to the next set: an added key (or a rotation's new key) is not a
    validator's and an added name not taken; a removed (or rotated) key is a validator's;
    the set keeps 1 to ``MAX_VALIDATORS`` validators; an issuer grant goes to an account
    without the role, a revoke to one with it, and never to the last account holding it."""
    details = {} if proposal is None else {"proposal": proposal}
    validators = next_set(pending)
    keys = validator_keys(validators)
    if isinstance(change, AddValidator | ReplaceKey):
        key = change.public_key if isinstance(change, AddValidator) else change.new_key
        if key in keys:
            raise AlreadyValidator(f"{key.hex()} is already a validator's key", key=key.hex(), **details)
    if isinstance(change, RemoveValidator | ReplaceKey):
        key = change.public_key if isinstance(change, RemoveValidator) else change.old_key
        if key not in keys:
            raise NotValidator(f"{key.hex()} is not in the validator set", key=key.hex(), **details)
    if isinstance(change, AddValidator):
        if any(record.name == change.name for record in validators):
            raise ValidatorNameTaken(f"a validator is already named {change.name!r}", name=change.name, **details)
        _validate_count(len(validators) + 1, details)
    if isinstance(change, RemoveValidator):
        _validate_count(len(validators) - 1, details)
    if isinstance(change, GrantIssuer) and holds_issuer_role(pending, change.account):
        raise AlreadyIssuer("the account already holds the issuer role", account=change.account.hex(), **details)
    if isinstance(change, RevokeIssuer):
        if not holds_issuer_role(pending, change.account):
            raise NotIssuerAccount("the account does not hold the issuer role", account=change.account.hex(), **details)
        if issuer_count(pending) <= 1:
            raise LastIssuer("the account is the last holding the issuer role", account=change.account.hex(), **details)


def _validate_count(count: int, details: dict[str, int]) -> None:
    if not 1 <= count <= MAX_VALIDATORS:
        raise ValidatorCount(
            f"the change would leave {count} validators; a set holds 1 to {MAX_VALIDATORS}", count=count, **details
        )


def validate_propose(pending: PendingState, transaction: Transaction) -> None:
    """A validator of the current set proposes a well-formed change that applies to the
    next set, while it has fewer than ``MAX_OPEN_PROPOSALS_PER_PROPOSER`` proposals open."""
    body = cast(Propose, transaction.body)
    # The format first: it does not depend on the state, so a node refuses it whatever its height.
    validate_change_format(body.change)
    validate_validator(pending, transaction)
    open_count = _count(pending.entry(open_count_key(transaction.sender)), "open proposals")
    if open_count >= MAX_OPEN_PROPOSALS_PER_PROPOSER:
        raise TooManyProposals(
            f"the proposer has {open_count} proposals open, the most one validator may",
            open=open_count,
            limit=MAX_OPEN_PROPOSALS_PER_PROPOSER,
        )
    validate_change_applies(pending, body.change)


def process_propose(pending: PendingState, transaction: Transaction) -> None:
    """The proposal takes the next id, with the proposer's approval; it is open until
    ``proposal_lifetime_blocks`` blocks have passed, or approved at once if that approval
    is a quorum (a single validator)."""
    body = cast(Propose, transaction.body)
    number = _count(pending.entry(LAST_PROPOSAL_KEY), "last proposal") + 1
    pending.set_entry(LAST_PROPOSAL_KEY, codec.encode(number))
    proposal = Proposal(
        id=number,
        proposer=transaction.sender,
        change=body.change,
        created_height=pending.height,
        expires_height=pending.height + pending.proposal_lifetime_blocks,
        approvers=(transaction.sender,),
    )
    if _completes(pending, proposal.approvers):
        _approve(pending, proposal)
        return
    _save_proposal(pending, proposal)
    pending.set_entry(open_proposal_key(number), codec.encode(proposal.expires_height))
    _add_open(pending, transaction.sender, 1)


def validate_approve(pending: PendingState, transaction: Transaction) -> None:
    """A validator of the current set approves, once, a proposal that is open; if its
    approval completes the quorum, the change must still apply to the next set."""
    body = cast(Approve, transaction.body)
    validate_validator(pending, transaction)
    proposal = _proposal(pending, body.proposal)
    if proposal is None:
        raise UnknownProposal(f"there is no proposal {body.proposal}", proposal=body.proposal)
    if proposal.status is ProposalStatus.EXPIRED:
        raise ProposalExpired(
            f"proposal {proposal.id} expired at height {proposal.expires_height}",
            proposal=proposal.id,
            expires_height=proposal.expires_height,
        )
    if proposal.status is ProposalStatus.APPROVED:
        raise ProposalApproved(
            f"proposal {proposal.id} is already approved, in force from height {proposal.activation_height}",
            proposal=proposal.id,
            activation_height=proposal.activation_height,
        )
    if transaction.sender in proposal.approvers:
        raise DuplicateApproval(f"this validator already approved proposal {proposal.id}", proposal=proposal.id)
    if _completes(pending, (*proposal.approvers, transaction.sender)):
        validate_change_applies(pending, proposal.change, proposal=proposal.id)


def process_approve(pending: PendingState, transaction: Transaction) -> None:
    """The approval is recorded; if the approvers in the current set now reach its quorum,
    the change is scheduled for ``ACTIVATION_DELAY`` heights on and the proposal is approved."""
    body = cast(Approve, transaction.body)
    proposal = cast(Proposal, _proposal(pending, body.proposal))
    proposal = replace(proposal, approvers=(*proposal.approvers, transaction.sender))
    if not _completes(pending, proposal.approvers):
        _save_proposal(pending, proposal)
        return
    pending.set_entry(open_proposal_key(proposal.id), None)
    _add_open(pending, proposal.proposer, -1)
    _approve(pending, proposal)


def _completes(pending: PendingState, approvers: tuple[bytes, ...]) -> bool:
    """Whether the approvers that are members of the current set make its quorum."""
    current = frozenset(validator_keys(pending.current_validators))
    return sum(1 for approver in approvers if approver in current) >= quorum_size(len(current))


def _approve(pending: PendingState, proposal: Proposal) -> None:
    activation = pending.height + ACTIVATION_DELAY
    _schedule(pending, proposal.change, activation)
    _save_proposal(pending, replace(proposal, status=ProposalStatus.APPROVED, activation_height=activation))


def _add_open(pending: PendingState, proposer: bytes, change: int) -> None:
    key = open_count_key(proposer)
    pending.set_entry(key, _count_entry(_count(pending.entry(key), "open proposals") + change))


def _schedule(pending: PendingState, change: Change, activation: int) -> None:
    """Add ``change`` to the set scheduled in this block (started from ``v`` by the first)."""
    scheduled = _scheduled(pending) or ScheduledSet(activation, pending.validators)
    if isinstance(change, GrantIssuer | RevokeIssuer):
        granted = isinstance(change, GrantIssuer)
        scheduled = replace(scheduled, issuer_changes=(*scheduled.issuer_changes, (change.account, granted)))
    else:
        scheduled = replace(scheduled, validators=changed_set(scheduled.validators, change))
    pending.set_entry(SCHEDULED_KEY, scheduled.encode())


def changed_set(validators: ValidatorSet, change: AddValidator | RemoveValidator | ReplaceKey) -> ValidatorSet:
    """``validators`` with ``change`` made: an addition is appended, a removal closes the
    gap, a rotation keeps the place and the name (and the address unless a new one is given)."""
    if isinstance(change, AddValidator):
        return (*validators, ValidatorRecord(change.public_key, change.name, change.address))
    if isinstance(change, RemoveValidator):
        return tuple(record for record in validators if record.public_key != change.public_key)
    return tuple(
        ValidatorRecord(change.new_key, record.name, change.address or record.address)
        if record.public_key == change.old_key
        else record
        for record in validators
    )


# --- automatic steps ------------------------------------------------------------------


def process_scheduled_set(pending: PendingState) -> None:
    """At the start of block H: a set scheduled (in block H-1) for height H+1 becomes ``v``;
    keys that left it lose the validator role, keys that joined gain it; the issuer
    grants and revokes approved with it take effect, in the order approved."""
    scheduled = _scheduled(pending)
    if scheduled is None:
        return
    assert scheduled.activation_height == pending.height + 1, (
        f"a set scheduled for height {scheduled.activation_height} is still waiting at block {pending.height}"
    )
    before = set(validator_keys(pending.validators))
    after = set(validator_keys(scheduled.validators))
    for key in sorted(before - after):
        _set_role(pending, key, Role.VALIDATOR, False)
    for key in sorted(after - before):
        _set_role(pending, key, Role.VALIDATOR, True)
    count = _count(pending.entry(ISSUER_COUNT_KEY), "issuer count")
    for account, granted in scheduled.issuer_changes:
        _set_role(pending, account, Role.ISSUER, granted)
        count += 1 if granted else -1
    pending.set_entry(ISSUER_COUNT_KEY, _count_entry(count))
    pending.validators = scheduled.validators
    pending.set_entry(SCHEDULED_KEY, None)


def _set_role(pending: PendingState, address: bytes, role: Role, held: bool) -> None:
    account = pending.account(address)
    pending.set_account(address, replace(account, roles=account.roles | role if held else account.roles & ~role))


def process_proposal_expiries(pending: PendingState) -> None:
    """At the start of a block: each open proposal whose lifetime has run out (created in
    block c, expired from block c + ``proposal_lifetime_blocks``) is expired and no longer
    counts against its proposer's open proposals. Every proposal has the same lifetime, so
    ids are in expiry order and the look stops at the first still open."""
    after = b""
    while True:
        entries = pending.committed_entries_after(OPEN_PROPOSAL_PREFIX, after, _EXPIRY_PAGE)
        for suffix, value in entries:
            if codec.read_int(codec.decode(value), "open proposal") > pending.height:
                return
            proposal = cast(Proposal, _proposal(pending, int.from_bytes(suffix, "big")))
            _save_proposal(pending, replace(proposal, status=ProposalStatus.EXPIRED))
            pending.set_entry(open_proposal_key(proposal.id), None)
            _add_open(pending, proposal.proposer, -1)
        if len(entries) < _EXPIRY_PAGE:
            return
        after = entries[-1][0]
