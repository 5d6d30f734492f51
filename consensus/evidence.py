"""Equivocation evidence: two conflicting statements signed by one validator.

Both statements are kept, each as what its signature covers (a proposal without
its block: the block hash stands for it; a view change without the block it
carries), so anyone holding the validator set can check the two signatures and
see the conflict without trusting who reported it, and a validator that
equivocates with large blocks cannot make the evidence large.
"""

from __future__ import annotations

from dataclasses import dataclass

from mura.consensus.messages import Commit, Phase, Prepare, PrePrepare, ViewChange, proposal_payload


@dataclass(frozen=True, slots=True)
class SignedProposal:
    """The signed part of a PRE-PREPARE: the primary proposed ``block_hash`` at ``height`` in ``view``."""

    view: int
    height: int
    block_hash: bytes
    sender: int
    #: Signature over ``proposal_payload(chain_id, view, height, block_hash)``.
    signature: bytes

    @classmethod
    def of(cls, proposal: PrePrepare) -> SignedProposal:
        return cls(proposal.view, proposal.height, proposal.block_hash, proposal.sender, proposal.signature)

    def signing_payload(self, chain_id: str) -> bytes:
        return proposal_payload(chain_id, self.view, self.height, self.block_hash)


Statement = SignedProposal | Prepare | Commit | ViewChange

_PHASES: dict[type[Statement], Phase] = {
    SignedProposal: Phase.PRE_PREPARE,
    Prepare: Phase.PREPARE,
    Commit: Phase.COMMIT,
    ViewChange: Phase.VIEW_CHANGE,
}


def phase_of(statement: Statement) -> Phase:
    return _PHASES[type(statement)]


def _compact(statement: PrePrepare | Statement) -> Statement:
    if isinstance(statement, PrePrepare):
        return SignedProposal.of(statement)
    if isinstance(statement, ViewChange):
        return statement.without_block()
    return statement


@dataclass(frozen=True, slots=True)
class Equivocation:
    """``first`` and ``second`` are signed by one validator for the same view, height and
    phase, but state different things (different blocks, or different prepared certificates)."""

    first: Statement
    second: Statement

    @classmethod
    def between(cls, first: PrePrepare | Statement, second: PrePrepare | Statement) -> Equivocation:
        """The evidence of two conflicting statements, kept in their signed form only."""
        return cls(_compact(first), _compact(second))

    @property
    def validator(self) -> int:
        return self.first.sender

    @property
    def height(self) -> int:
        return self.first.height

    @property
    def view(self) -> int:
        return self.first.view

    @property
    def phase(self) -> Phase:
        return phase_of(self.first)
