"""The message log of one height: proposals, votes and the blocks they name.

A replica keeps one ``HeightLog`` for the height it is deciding. Once that
height is final the whole log is dropped: every final block carries its commit
certificate, so it is a stable checkpoint and nothing below it is needed.

Votes are counted per validator, never per message: a validator's second,
different vote for the same view and phase is equivocation and is kept as
evidence instead of being counted; a repeated identical vote counts once.

Blocks are kept by hash only once their body is checked against their header
(a ``Block``, never an ``UncheckedBlock``): a hash names a header, and only a
checked body is the one that header commits to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mura.chain.block import Block, MessageBlock
from mura.chain.errors import DecodeError, Invalid
from mura.chain.state import StateChanges
from mura.consensus.application import Application
from mura.consensus.evidence import Equivocation
from mura.consensus.messages import PrePrepare, Vote


@dataclass(frozen=True, slots=True)
class Added:
    """A vote that was new and now counts."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A vote already counted (the network repeats messages)."""


ADDED = Added()
DUPLICATE = Duplicate()


class VoteTally:
    """One phase's votes at one height: at most one vote per validator per view."""

    def __init__(self) -> None:
        self._by_sender: dict[tuple[int, int], Vote] = {}
        self._signatures: dict[tuple[int, bytes], dict[int, bytes]] = {}

    def add(self, vote: Vote) -> Added | Duplicate | Equivocation:
        """Count ``vote`` unless its sender already voted in its view."""
        earlier = self._by_sender.get((vote.view, vote.sender))
        if earlier is not None:
            return DUPLICATE if earlier.block_hash == vote.block_hash else Equivocation.between(earlier, vote)
        self._by_sender[(vote.view, vote.sender)] = vote
        self._signatures.setdefault((vote.view, vote.block_hash), {})[vote.sender] = vote.signature
        return ADDED

    def vote_of(self, view: int, sender: int) -> Vote | None:
        """``sender``'s vote in ``view``, if counted."""
        return self._by_sender.get((view, sender))

    def signatures(self, view: int, block_hash: bytes) -> tuple[tuple[int, bytes], ...]:
        """``(validator, signature)`` pairs for ``block_hash`` in ``view``, by validator index."""
        return tuple(sorted(self._signatures.get((view, block_hash), {}).items()))


@dataclass(slots=True)
class HeightLog:
    """Everything a replica heard about one height that it still needs."""

    height: int
    #: Accepted PRE-PREPAREs, one per view, with their blocks checked.
    proposals: dict[int, PrePrepare] = field(default_factory=dict)
    #: Blocks seen at this height by hash (from proposals and view changes), their bodies
    #: checked against their headers; not all valid.
    blocks: dict[bytes, Block] = field(default_factory=dict)
    #: The first signed proposal's block of each other view, kept in case it is certified;
    #: its body is checked only if it is ever needed.
    other_views: dict[int, MessageBlock] = field(default_factory=dict)
    #: Blocks the application accepted, with the changes they make.
    validated: dict[bytes, StateChanges] = field(default_factory=dict)
    #: Blocks the application refused, with why.
    refused: dict[bytes, Invalid] = field(default_factory=dict)
    prepares: VoteTally = field(default_factory=VoteTally)
    commits: VoteTally = field(default_factory=VoteTally)
    #: (validator, view, phase) of equivocations already reported.
    reported: set[tuple[int, int, int]] = field(default_factory=set)

    def compare_proposal(self, proposal: PrePrepare) -> Duplicate | Equivocation | None:
        """What a proposal is next to the one accepted for its view (None if there is none)."""
        earlier = self.proposals.get(proposal.view)
        if earlier is None:
            return None
        return DUPLICATE if earlier.block_hash == proposal.block_hash else Equivocation.between(earlier, proposal)

    def add_proposal(self, proposal: PrePrepare, block: Block) -> Added | Duplicate | Equivocation:
        """Keep the first proposal of a view, with its checked ``block``; a different
        second one is equivocation."""
        if block.hash != proposal.block_hash or not block.body_checked:
            raise ValueError("a proposal is kept with its own block, checked")
        outcome = self.compare_proposal(proposal)
        if outcome is not None:
            return outcome
        self.proposals[proposal.view] = PrePrepare(proposal.view, block, proposal.sender, proposal.signature)
        self.blocks.setdefault(block.hash, block)
        return ADDED

    def find_block(self, block_hash: bytes) -> Block | None:
        """A block of this height by hash, from any view; a kept proposal of another view
        is checked now, and forgotten if its body is not its header's."""
        block = self.blocks.get(block_hash)
        if block is not None:
            return block
        for view, candidate in list(self.other_views.items()):
            if candidate.hash != block_hash:
                continue
            try:
                checked = candidate.check()
            except DecodeError:
                del self.other_views[view]
                continue
            self.blocks[block_hash] = checked
            return checked
        return None

    def validate(self, block: Block, application: Application, *, certified: bool = False) -> StateChanges:
        """The application's verdict on a block, asked once per block per height. Verdicts
        are kept by block hash, which names the body only once the body is checked."""
        block.check_body()
        changes = self.validated.get(block.hash)
        if changes is not None:
            return changes
        refusal = self.refused.get(block.hash)
        if refusal is not None:
            raise refusal
        try:
            changes = application.validate_block(block, certified=certified)
        except Invalid as error:
            self.refused[block.hash] = error
            raise
        self.validated[block.hash] = changes
        self.blocks.setdefault(block.hash, block)
        return changes
