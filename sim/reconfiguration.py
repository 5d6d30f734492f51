"""Changes of the validator set in simulated runs, made by the chain's own governance.

A scenario may plan changes (``Reconfiguration``): add a validator, remove one, or
rotate one's key. Nodes that join (new validators, and the holder of a rotated
validator's new key) run from the start as followers: their keys are not in the
set, so they check and count but sign nothing until the change takes effect.

The validators' own transactions make each change, as operators would: once a
change's time has come (and the one before it is in force), a member of the
current set proposes it and every other member approves it; a block's proposer
offers those transactions as a mempool would. Each is a deterministic function of
the state and the block's time, so every node offers the same ones. Changes are
made one after another: the next is proposed once the last one's quorum is
complete.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from mura.chain.governance import (
    ACTIVATION_DELAY,
    AddValidator,
    Change,
    Proposal,
    ProposalStatus,
    RemoveValidator,
    ReplaceKey,
    validator_keys,
)
from mura.chain.governance_rules import last_proposal_id, load_proposal, load_scheduled
from mura.chain.keys import SigningKey
from mura.chain.pending import StateReader
from mura.chain.transaction import Approve, Body, Propose, Transaction, sign_transaction
from mura.sim.clients import derive_key
from mura.sim.workload import CHAIN_ID

#: Proposals looked at to find a planned change's (a run makes a handful).
MAX_PROPOSALS_SCANNED = 64


class ChangeKind(enum.Enum):
    ADD = "add"
    REMOVE = "remove"
    #: The validator's key is replaced by a joiner's (the node that holds the new key).
    ROTATE = "rotate"


@dataclass(frozen=True)
class Reconfiguration:
    """One planned change: proposed no earlier than ``at_ms`` (by block time), and only
    once the change planned before it is approved."""

    at_ms: int
    kind: ChangeKind
    #: The validator number (genesis order, then joiners) added, removed or rotated.
    member: int
    #: For a rotation, the joiner whose key replaces the member's.
    successor: int | None = None


@cache
def joiner_keys(count: int) -> tuple[SigningKey, ...]:
    """The keys of the nodes that join a run (fixed, so signatures are cached across runs)."""
    return tuple(derive_key(f"sim-joiner-{index}") for index in range(count))


def chain_change(plan: Reconfiguration, keys: Sequence[SigningKey]) -> Change:
    """The governance change that carries out ``plan``; ``keys`` are every member's keys."""
    key = keys[plan.member].public_key
    if plan.kind is ChangeKind.ADD:
        return AddValidator(key, f"member-{plan.member}", f"sim-{plan.member}:9700")
    if plan.kind is ChangeKind.REMOVE:
        return RemoveValidator(key)
    assert plan.successor is not None
    return ReplaceKey(key, keys[plan.successor].public_key, "")


class GovernanceClients:
    """The validators as governance clients: they sign proposals and approvals (once
    each: Ed25519 is deterministic)."""

    def __init__(self, keys: Sequence[SigningKey], plan: Sequence[Reconfiguration]) -> None:
        self.keys = {key.public_key: key for key in keys}
        self.changes = tuple(chain_change(step, keys) for step in plan)
        self.plan = tuple(plan)
        self._signed: dict[tuple[bytes, int, Body], Transaction] = {}

    def transactions(self, state: StateReader, *, timestamp_ms: int) -> list[Transaction]:
        """What the validators would have in the mempool now: a proposal of the first
        planned change not yet approved (once its time has come), or approvals of it
        from the members that have not approved it yet."""
        if not self.changes:
            return []
        proposals = _proposals(state)
        for step, change in zip(self.plan, self.changes, strict=True):
            done = [proposal for proposal in proposals if proposal.change == change]
            if any(proposal.status is ProposalStatus.APPROVED for proposal in done):
                continue
            if timestamp_ms < step.at_ms or load_scheduled(state) is not None:
                return []
            members = validator_keys(state.load_validators())
            open_ones = [proposal for proposal in done if proposal.status is ProposalStatus.OPEN]
            if not open_ones:
                return [self._sign(state, members[0], Propose(change))]
            proposal = open_ones[0]
            return [
                self._sign(state, member, Approve(proposal.id))
                for member in members
                if member not in proposal.approvers and member in self.keys
            ]
        return []

    def _sign(self, state: StateReader, member: bytes, body: Body) -> Transaction:
        nonce = state.load_account(member).nonce
        key = (member, nonce, body)
        if key not in self._signed:
            self._signed[key] = sign_transaction(self.keys[member], chain_id=CHAIN_ID, nonce=nonce, body=body)
        return self._signed[key]


def _proposals(state: StateReader) -> list[Proposal]:
    last = last_proposal_id(state)
    found = (load_proposal(state, number) for number in range(max(1, last - MAX_PROPOSALS_SCANNED + 1), last + 1))
    return [proposal for proposal in found if proposal is not None]


__all__ = ["ACTIVATION_DELAY", "ChangeKind", "GovernanceClients", "Reconfiguration", "chain_change", "joiner_keys"]
