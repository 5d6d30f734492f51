"""Tests for chain/governance_rules.py: proposals, approvals, the quorum, the height a change
takes effect at, expiry, and every refusal, on real signed blocks checked as a peer checks them.

As in ``test_state``, each rule has ``test_<rule>`` (a valid case is accepted with the
expected effect) and ``test_invalid_<rule>`` (the typed exception is raised, with its
details, and nothing changes). The default chain has four validators: a quorum is three.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mura.chain.block import MAX_VALIDATORS, quorum_size
from mura.chain.errors import (
    AlreadyIssuer,
    AlreadyValidator,
    DuplicateApproval,
    InvalidBlockTransaction,
    InvalidValidatorInfo,
    LastIssuer,
    NextValidatorsMismatch,
    NotAnIssuer,
    NotAValidator,
    NotIssuerAccount,
    NotValidator,
    ProposalApproved,
    ProposalExpired,
    TooManyProposals,
    UnknownProposal,
    UnknownProposer,
    ValidatorCount,
    ValidatorNameTaken,
)
from mura.chain.governance import (
    MAX_OPEN_PROPOSALS_PER_PROPOSER,
    AddValidator,
    Change,
    GrantIssuer,
    ProposalStatus,
    RemoveValidator,
    ReplaceKey,
    RevokeIssuer,
    ValidatorRecord,
    validator_keys,
    validators_hash,
)
from mura.chain.governance_rules import load_proposal, load_scheduled
from mura.chain.keys import SigningKey
from mura.chain.state import ChainRules, Role
from mura.chain.transaction import Approve, Body, Propose, Transaction
from mura.tests.chain.factories import CHAIN_ID, Chain, issue_body, key_named
from mura.tests.chain.transition import MakeBlock, Sign, accept, apply, raw_block, refuse_block, refuse_transaction

NEW = key_named("new-validator")
ADD_NEW = AddValidator(NEW.public_key, "new-office", "10.0.0.9:9700")


def _commit(chain: Chain, make_block: MakeBlock, *transactions: Transaction, proposer: bytes | None = None) -> None:
    built = make_block(chain, list(transactions), proposer=proposer)
    assert built.refused == [], [(error.rule, error.message) for _, error in built.refused]
    accept(chain, built)


def _keys(chain: Chain) -> tuple[bytes, ...]:
    return validator_keys(chain.state.load_validators())


def _approve_by(chain: Chain, make_block: MakeBlock, by: Nonces, proposal: int, *indexes: int) -> None:
    """Each of these validators approves ``proposal``, one block each."""
    for index in indexes:
        _commit(chain, make_block, by(chain.validators[index], Approve(proposal)))


def _pass(chain: Chain, make_block: MakeBlock, by: Nonces, change: Change) -> int:
    """Validator 0 proposes ``change`` and validators 1, 2... approve it, one block each, until
    a quorum of the current set has: returns the height of the block that completed it."""
    _commit(chain, make_block, by(chain.validators[0], Propose(change)))
    number = _last_id(chain)
    _approve_by(chain, make_block, by, number, *range(1, quorum_size(len(chain.state.load_validators()))))
    assert load_proposal(chain.state, number).status is ProposalStatus.APPROVED  # type: ignore[union-attr]
    return chain.head.height


def _last_id(chain: Chain) -> int:
    number = 1
    while load_proposal(chain.state, number + 1) is not None:
        number += 1
    return number


class Nonces:
    """Signs each key's transactions with its next nonce, over as many blocks as a test
    builds; ``refused`` signs one that a block will refuse, which uses up no nonce."""

    def __init__(self, chain: Chain, sign: Sign) -> None:
        self.chain = chain
        self._sign = sign
        self._next: dict[bytes, int] = {}

    def __call__(self, key: SigningKey, body: Body) -> Transaction:
        transaction = self.refused(key, body)
        self._next[key.public_key] = transaction.nonce + 1
        return transaction

    def refused(self, key: SigningKey, body: Body) -> Transaction:
        transaction: Transaction = self._sign(key, body, nonce=self._next.get(key.public_key, self.chain.nonce(key)))
        return transaction


@pytest.fixture
def by(chain: Chain, sign: Sign) -> Nonces:
    return Nonces(chain, sign)


# --- propose ---------------------------------------------------------------------------------


def test_propose(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """A validator's proposal takes id 1, counts its approval, and is open for the lifetime."""
    _commit(chain, make_block, by(chain.validators[0], Propose(ADD_NEW)))
    proposal = load_proposal(chain.state, 1)
    assert proposal is not None
    assert proposal.proposer == chain.validators[0].public_key and proposal.change == ADD_NEW
    assert proposal.approvers == (chain.validators[0].public_key,)
    assert proposal.status is ProposalStatus.OPEN and proposal.activation_height == 0
    assert proposal.created_height == 1 and proposal.expires_height == 1 + chain.rules.proposal_lifetime_blocks
    _commit(chain, make_block, by(chain.validators[1], Propose(RemoveValidator(chain.validators[3].public_key))))
    assert load_proposal(chain.state, 2) is not None and load_proposal(chain.state, 3) is None


def test_invalid_not_a_validator(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """Neither an issuer nor a key about to be added proposes or approves."""
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, Propose(ADD_NEW)), NotAValidator)
    assert cause.details == {"account": chain.issuer.public_key.hex()}
    refuse_transaction(chain, make_block, sign(NEW, Approve(1)), NotAValidator)


#: A point of order 8 of Ed25519.
SMALL_ORDER = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (AddValidator(NEW.public_key, "New Office", "10.0.0.9:9700"), "name"),
        (AddValidator(NEW.public_key, "", "10.0.0.9:9700"), "name"),
        (AddValidator(NEW.public_key, "new-office", "10.0.0.9"), "address"),
        (AddValidator(NEW.public_key, "new-office", "10.0.0.9:0"), "address"),
        (AddValidator(NEW.public_key, "new-office", "bad host:9700"), "address"),
        (ReplaceKey(key_named("validator-1").public_key, NEW.public_key, ":9700"), "address"),
        # Keys anyone can sign for: the identity point, and one of order 8.
        (AddValidator(bytes.fromhex("01" + "00" * 31), "new-office", "10.0.0.9:9700"), "public_key"),
        (ReplaceKey(key_named("validator-1").public_key, bytes.fromhex(SMALL_ORDER), ""), "public_key"),
        # Not a point of the curve at all.
        (AddValidator(bytes.fromhex("ee" + "ff" * 30 + "7f"), "new-office", "10.0.0.9:9700"), "public_key"),
    ],
)
def test_invalid_validator_info(chain: Chain, sign: Sign, make_block: MakeBlock, change: Change, field: str) -> None:
    cause = refuse_transaction(chain, make_block, sign(chain.validators[0], Propose(change)), InvalidValidatorInfo)
    assert cause.details == {"field": field}


def test_invalid_too_many_proposals(chain: Chain, by: Nonces, sign: Sign, make_block: MakeBlock) -> None:
    """A validator has at most eight proposals open; one more is refused until one closes."""
    proposer = chain.validators[0]
    keys = [key_named(f"candidate-{index}") for index in range(MAX_OPEN_PROPOSALS_PER_PROPOSER + 1)]
    changes = [AddValidator(key.public_key, f"candidate-{index}", "10.0.0.1:1") for index, key in enumerate(keys)]
    _commit(chain, make_block, *(by(proposer, Propose(change)) for change in changes[:-1]))
    ninth = sign(proposer, Propose(changes[-1]), nonce=chain.nonce(proposer))
    cause = refuse_transaction(chain, make_block, ninth, TooManyProposals)
    assert cause.details == {"open": MAX_OPEN_PROPOSALS_PER_PROPOSER, "limit": MAX_OPEN_PROPOSALS_PER_PROPOSER}
    # Another validator still may; and once one of the eight is approved, so may the first again.
    _commit(chain, make_block, by(chain.validators[1], Propose(changes[-1])))
    _approve_by(chain, make_block, by, 1, 1, 2)
    _commit(chain, make_block, by(proposer, Propose(GrantIssuer(chain.alice.public_key))))


# --- the change must apply ----------------------------------------------------------------------


def test_invalid_already_validator(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    existing = chain.validators[1].public_key
    body = Propose(AddValidator(existing, "again", "10.0.0.1:1"))
    cause = refuse_transaction(chain, make_block, sign(chain.validators[0], body), AlreadyValidator)
    assert cause.details == {"key": existing.hex()}
    rotation = Propose(ReplaceKey(chain.validators[0].public_key, existing, ""))
    refuse_transaction(chain, make_block, sign(chain.validators[0], rotation), AlreadyValidator)


def test_invalid_not_validator(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    stranger = chain.alice.public_key
    cause = refuse_transaction(
        chain, make_block, sign(chain.validators[0], Propose(RemoveValidator(stranger))), NotValidator
    )
    assert cause.details == {"key": stranger.hex()}
    rotation = Propose(ReplaceKey(stranger, NEW.public_key, ""))
    refuse_transaction(chain, make_block, sign(chain.validators[0], rotation), NotValidator)


def test_invalid_validator_name_taken(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    body = Propose(AddValidator(NEW.public_key, "validator-2", "10.0.0.1:1"))
    cause = refuse_transaction(chain, make_block, sign(chain.validators[0], body), ValidatorNameTaken)
    assert cause.details == {"name": "validator-2"}


def test_invalid_validator_count(make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock) -> None:
    """The last validator is never removed."""
    chain = make_chain(validator_count=1)
    only = chain.validators[0]
    cause = refuse_transaction(chain, make_block, sign(only, Propose(RemoveValidator(only.public_key))), ValidatorCount)
    assert cause.details == {"count": 0}


def test_invalid_validator_count_above_the_most(
    make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock
) -> None:
    chain = make_chain(validator_count=MAX_VALIDATORS)
    cause = refuse_transaction(chain, make_block, sign(chain.validators[0], Propose(ADD_NEW)), ValidatorCount)
    assert cause.details == {"count": MAX_VALIDATORS + 1}


def test_invalid_already_issuer(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    body = Propose(GrantIssuer(chain.issuer.public_key))
    cause = refuse_transaction(chain, make_block, sign(chain.validators[0], body), AlreadyIssuer)
    assert cause.details == {"account": chain.issuer.public_key.hex()}


def test_invalid_not_issuer_account(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    body = Propose(RevokeIssuer(chain.alice.public_key))
    refuse_transaction(chain, make_block, sign(chain.validators[0], body), NotIssuerAccount)


def test_invalid_last_issuer(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    body = Propose(RevokeIssuer(chain.issuer.public_key))
    cause = refuse_transaction(chain, make_block, sign(chain.validators[0], body), LastIssuer)
    assert cause.details == {"account": chain.issuer.public_key.hex()}


# --- approve, the quorum and activation ---------------------------------------------------------


def test_approve_completes_the_quorum_and_takes_effect_two_heights_on(
    chain: Chain, by: Nonces, make_block: MakeBlock
) -> None:
    """Approved in block h (the third of four): scheduled for h+2, written into v by block h+1,
    committed to by block h+1's header, and the new validator may propose from h+2."""
    old = chain.state.load_validators()
    _commit(chain, make_block, by(chain.validators[0], Propose(ADD_NEW)))
    _approve_by(chain, make_block, by, 1, 1)
    assert load_proposal(chain.state, 1).status is ProposalStatus.OPEN  # type: ignore[union-attr]
    _approve_by(chain, make_block, by, 1, 2)
    h = chain.head.height
    proposal = load_proposal(chain.state, 1)
    assert proposal is not None and proposal.status is ProposalStatus.APPROVED and proposal.activation_height == h + 2
    scheduled = load_scheduled(chain.state)
    assert scheduled is not None and scheduled.activation_height == h + 2
    new_set = (*old, ValidatorRecord(NEW.public_key, "new-office", "10.0.0.9:9700"))
    assert scheduled.validators == new_set
    # After block h, v is still set(h+1): the old set; the header commits to it.
    assert chain.state.load_validators() == old and chain.head.next_validators_hash == validators_hash(old)
    assert Role.VALIDATOR not in chain.account(NEW).roles
    # The new validator cannot propose block h+1: set(h+1) is the old set.
    refuse_block(chain, make_block(chain, [], proposer=NEW.public_key).block, UnknownProposer)
    _commit(chain, make_block)
    assert chain.state.load_validators() == new_set and load_scheduled(chain.state) is None
    assert chain.head.next_validators_hash == validators_hash(new_set)
    assert Role.VALIDATOR in chain.account(NEW).roles
    _commit(chain, make_block, proposer=NEW.public_key)
    assert chain.head.height == h + 2


def _empty(chain: Chain, make_block: MakeBlock) -> None:
    _commit(chain, make_block)


def test_approvals_count_only_in_the_current_set(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """A validator removed from the set no longer counts towards a quorum, though its approval
    stays recorded: validator 3 proposes while still deciding blocks, is removed, and its
    proposal then needs two approvals of the three left (their quorum)."""
    v = chain.validators
    _pass(chain, make_block, by, RemoveValidator(v[3].public_key))
    _commit(chain, make_block, by(v[3], Propose(ADD_NEW)))
    assert len(chain.state.load_validators()) == 3
    _empty(chain, make_block)
    _approve_by(chain, make_block, by, 2, 0)
    proposal = load_proposal(chain.state, 2)
    assert proposal is not None and proposal.status is ProposalStatus.OPEN and len(proposal.approvers) == 2
    _approve_by(chain, make_block, by, 2, 1)
    assert load_proposal(chain.state, 2).status is ProposalStatus.APPROVED  # type: ignore[union-attr]


def test_quorum_follows_a_larger_set(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """Three approvals made a quorum of four; once a fifth validator decides, four are needed."""
    v = chain.validators
    _commit(chain, make_block, by(v[0], Propose(GrantIssuer(chain.alice.public_key))), by(v[1], Approve(1)))
    _pass(chain, make_block, by, ADD_NEW)
    _empty(chain, make_block)
    assert len(chain.state.load_validators()) == 5
    _empty(chain, make_block)
    _approve_by(chain, make_block, by, 1, 2)
    assert load_proposal(chain.state, 1).status is ProposalStatus.OPEN  # type: ignore[union-attr]
    _approve_by(chain, make_block, by, 1, 3)
    assert load_proposal(chain.state, 1).status is ProposalStatus.APPROVED  # type: ignore[union-attr]


def test_invalid_unknown_proposal(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    cause = refuse_transaction(chain, make_block, sign(chain.validators[1], Approve(1)), UnknownProposal)
    assert cause.details == {"proposal": 1}


def test_invalid_duplicate_approval(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """A proposer approved by proposing; an approver approves once."""
    _commit(chain, make_block, by(chain.validators[0], Propose(ADD_NEW)), by(chain.validators[1], Approve(1)))
    cause = refuse_transaction(chain, make_block, by.refused(chain.validators[0], Approve(1)), DuplicateApproval)
    assert cause.details == {"proposal": 1}
    refuse_transaction(chain, make_block, by.refused(chain.validators[1], Approve(1)), DuplicateApproval)


def test_invalid_proposal_approved(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    h = _pass(chain, make_block, by, ADD_NEW)
    cause = refuse_transaction(chain, make_block, by.refused(chain.validators[3], Approve(1)), ProposalApproved)
    assert cause.details == {"proposal": 1, "activation_height": h + 2}


def test_changes_completing_in_one_block_apply_in_order(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """Two approvals completing two proposals in one block: one scheduled set, built in
    transaction order (the removal closes the gap, then the addition appends)."""
    v = chain.validators
    _commit(chain, make_block, by(v[0], Propose(ADD_NEW)), by(v[1], Propose(RemoveValidator(v[0].public_key))))
    _commit(chain, make_block, by(v[1], Approve(1)), by(v[0], Approve(2)))
    _commit(chain, make_block, by(v[2], Approve(2)), by(v[2], Approve(1)))
    scheduled = load_scheduled(chain.state)
    assert scheduled is not None
    assert validator_keys(scheduled.validators) == (v[1].public_key, v[2].public_key, v[3].public_key, NEW.public_key)
    _empty(chain, make_block)
    assert Role.VALIDATOR not in chain.account(v[0]).roles and Role.VALIDATOR in chain.account(NEW).roles


def test_completed_proposal_that_no_longer_applies(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """Two proposals add the same key: once the first is approved, the approval that would
    complete the second is refused with the change's rule, and the second stays open."""
    v = chain.validators
    other_name = AddValidator(NEW.public_key, "other-name", "10.0.0.9:9700")
    _commit(chain, make_block, by(v[0], Propose(ADD_NEW)), by(v[1], Propose(other_name)))
    _commit(chain, make_block, by(v[1], Approve(1)), by(v[0], Approve(2)), by(v[2], Approve(1)))
    cause = refuse_transaction(chain, make_block, by.refused(v[2], Approve(2)), AlreadyValidator)
    assert cause.details == {"key": NEW.public_key.hex(), "proposal": 2}
    proposal = load_proposal(chain.state, 2)
    assert proposal is not None and proposal.status is ProposalStatus.OPEN
    # Once the key leaves the set again, the second proposal can complete.
    _empty(chain, make_block)
    _pass(chain, make_block, by, RemoveValidator(NEW.public_key))
    _empty(chain, make_block)
    assert NEW.public_key not in _keys(chain)
    _approve_by(chain, make_block, by, 2, 2)
    _empty(chain, make_block)
    assert chain.state.load_validators()[-1] == ValidatorRecord(NEW.public_key, "other-name", "10.0.0.9:9700")


def test_replace_key_keeps_place_and_name(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """A rotation keeps the validator's place and name; the old key loses the role and proposes no more."""
    old = chain.validators[1]
    before = chain.state.load_validators()
    _pass(chain, make_block, by, ReplaceKey(old.public_key, NEW.public_key, "10.0.0.7:9701"))
    _empty(chain, make_block)
    after = chain.state.load_validators()
    assert after[1] == ValidatorRecord(NEW.public_key, before[1].name, "10.0.0.7:9701")
    assert after[:1] + after[2:] == before[:1] + before[2:]
    assert Role.VALIDATOR not in chain.account(old).roles and Role.VALIDATOR in chain.account(NEW).roles
    refuse_block(chain, make_block(chain, [], proposer=old.public_key).block, UnknownProposer)
    refuse_transaction(chain, make_block, by.refused(old, Approve(1)), NotAValidator)


def test_issuer_grant_and_revoke(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """A grant holds from the block after the approving one; then the first issuer may be revoked."""
    alice = chain.alice
    h = _pass(chain, make_block, by, GrantIssuer(alice.public_key))
    assert Role.ISSUER not in chain.account(alice).roles
    _commit(chain, make_block, by(alice, issue_body("ALICE")))
    assert chain.head.height == h + 1 and Role.ISSUER in chain.account(alice).roles
    _pass(chain, make_block, by, RevokeIssuer(chain.issuer.public_key))
    _empty(chain, make_block)
    assert Role.ISSUER not in chain.account(chain.issuer).roles
    refuse_transaction(chain, make_block, by.refused(chain.issuer, issue_body("LATE")), NotAnIssuer)
    refuse_transaction(
        chain, make_block, by.refused(chain.validators[0], Propose(RevokeIssuer(alice.public_key))), LastIssuer
    )


def test_single_validator_approves_by_proposing(
    make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock
) -> None:
    chain = make_chain(validator_count=1)
    _commit(chain, make_block, sign(chain.validators[0], Propose(ADD_NEW)))
    proposal = load_proposal(chain.state, 1)
    assert proposal is not None and proposal.status is ProposalStatus.APPROVED and proposal.activation_height == 3


# --- expiry ---------------------------------------------------------------------------------------


def test_proposal_expires(make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock) -> None:
    """Created in block 1 with a lifetime of 3: approvals in blocks 1 to 3, expired from block 4,
    and no longer counted against its proposer."""
    chain = make_chain(rules=ChainRules(chain_id=CHAIN_ID, proposal_lifetime_blocks=3))
    by = Nonces(chain, sign)
    _commit(chain, make_block, by(chain.validators[0], Propose(ADD_NEW)))
    assert load_proposal(chain.state, 1).expires_height == 4  # type: ignore[union-attr]
    _empty(chain, make_block)
    _approve_by(chain, make_block, by, 1, 1)
    cause = refuse_transaction(chain, make_block, by.refused(chain.validators[2], Approve(1)), ProposalExpired)
    assert cause.details == {"proposal": 1, "expires_height": 4}
    _empty(chain, make_block)
    proposal = load_proposal(chain.state, 1)
    assert proposal is not None and proposal.status is ProposalStatus.EXPIRED
    assert chain.state.load_entries_after(b"y", b"", 10) == [] and chain.state.load_entries_after(b"h", b"", 10) == []


# --- the header -----------------------------------------------------------------------------------


def test_invalid_next_validators_hash(chain: Chain, make_block: MakeBlock) -> None:
    built = make_block(chain, [])
    wrong = raw_block(chain, [], state_root=built.block.header.state_root, next_validators_hash=bytes(32))
    error = refuse_block(chain, wrong, NextValidatorsMismatch)
    assert error.details["got"] == "00" * 32


def test_refused_approval_leaves_no_trace(chain: Chain, by: Nonces, make_block: MakeBlock) -> None:
    """A block with a refused governance transaction is refused whole."""
    block = raw_block(chain, [by(chain.validators[0], Approve(7))])
    refused = refuse_block(chain, block, InvalidBlockTransaction)
    assert refused.details["cause"] == "unknown_proposal"


# --- replay -----------------------------------------------------------------------------------------


_CHANGES = st.sampled_from(["add", "remove", "rotate", "grant", "revoke"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(_CHANGES, st.integers(0, 3), st.lists(st.integers(0, 3), max_size=3)), max_size=6))
def test_replay_from_genesis_gives_the_same_roots_and_sets(
    make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock, steps: list[tuple[str, int, list[int]]]
) -> None:
    """Blocks of random proposals and approvals (valid or not: build_block leaves out what a
    rule refuses), replayed from genesis by another node, give the same state root and the
    same validator set after every block."""
    chain = make_chain()
    keys = {key.public_key: key for key in chain.validators}
    built_blocks, sets = [], []
    for number, (kind, target, approvers) in enumerate(steps):
        current = validator_keys(chain.state.load_validators())
        newcomer = key_named(f"replay-{number}")
        keys[newcomer.public_key] = newcomer
        chosen = current[target % len(current)]
        choices: dict[str, Change] = {
            "add": AddValidator(newcomer.public_key, f"replay-{number}", "10.0.0.1:1"),
            "remove": RemoveValidator(chosen),
            "rotate": ReplaceKey(chosen, newcomer.public_key, ""),
            "grant": GrantIssuer(chain.alice.public_key),
            "revoke": RevokeIssuer(chain.issuer.public_key),
        }
        change = choices[kind]
        signed = Nonces(chain, sign)  # a gap left by a refused transaction refuses the key's next
        transactions = [signed(keys[current[0]], Propose(change))]
        transactions += [signed(keys[current[index % len(current)]], Approve(number + 1)) for index in approvers]
        built = make_block(chain, transactions, proposer=current[0])
        accept(chain, built)
        built_blocks.append(built.block)
        sets.append(chain.state.load_validators())
    replica = make_chain()
    for block, expected in zip(built_blocks, sets, strict=True):
        replica.commit((block, apply(replica, block)))
        assert replica.state.load_validators() == expected
    assert replica.state.lattice.root() == chain.state.lattice.root()
    assert replica.state.entries == chain.state.entries
