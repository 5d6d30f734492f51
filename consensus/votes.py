"""Persist before you speak: the vote record and the guard built on it.

A replica records every vote it signs, through a ``PersistVote`` action that
comes before any ``Broadcast`` or ``Send`` of that vote. After a restart it
reloads the record for its current height and refuses to sign anything that
conflicts: the same (height, view, phase) for a different digest. A COMMIT is
recorded with the prepared certificate that justified it and the block, so a
restarted replica still reports what it prepared in its view changes and can
hand that block to the next primary (no one else may have kept it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mura.chain import codec
from mura.chain.block import Block
from mura.chain.keys import HASH_SIZE
from mura.consensus.errors import ConflictingVote
from mura.consensus.messages import MAX_MESSAGE_BYTES, Phase, PreparedCertificate


@dataclass(frozen=True, slots=True)
class RecordedVote:
    """One statement this replica signed."""

    height: int
    view: int
    phase: Phase
    #: The block hash voted for; for a VIEW-CHANGE, the hash of its signed payload.
    digest: bytes
    #: With a COMMIT: the prepared certificate the replica committed on.
    prepared: PreparedCertificate | None = None
    #: With a COMMIT: the prepared block itself.
    block: Block | None = None

    def encode(self) -> bytes:
        prepared = [] if self.prepared is None else self.prepared.to_fields()
        block = b"" if self.block is None else self.block.encode()
        return codec.encode([self.height, self.view, int(self.phase), self.digest, prepared, block])

    @classmethod
    def decode(cls, data: bytes) -> RecordedVote:
        """Decode a stored vote (the node's own record; still decoded strictly)."""
        height, view, phase, digest, prepared, block = codec.read_fields(
            codec.decode(data, max_size=MAX_MESSAGE_BYTES), "vote", 6
        )
        return cls(
            codec.read_int(height, "vote.height"),
            codec.read_int(view, "vote.view"),
            Phase(codec.read_int(phase, "vote.phase", minimum=min(Phase), maximum=max(Phase))),
            codec.read_bytes(digest, "vote.digest", length=HASH_SIZE),
            None if prepared == [] else PreparedCertificate.from_fields(prepared, "vote.prepared"),
            None if block == b"" else Block.decode(codec.read_bytes(block, "vote.block")),
        )


@dataclass(frozen=True, slots=True)
class SigningGuard:
    """The double-sign check's state, kept with the vote record so a restart cannot skip it.

    A vote record that is new knows nothing of what its validator signed before (a
    key moved to a new machine, a record lost). Until the replica has heard where the
    network stands the check is ``pending`` and it signs nothing; then it signs nothing
    up to ``until_height``, a few heights past where the network was: any vote it may
    have cast before the record was lost is at a height the others decide without it.
    A network still at this validator's first height (height 1, or the height a
    governance change made it a validator from) has nothing final to wait out: there the
    replica signs nothing in the views the others were heard signing in, and joins them
    from the next (``from_view``), so validators started one after another all take part,
    and a new validator the new set needs for a quorum is not kept out of it.
    """

    #: Where the network stands is not known yet: sign nothing.
    pending: bool = False
    #: Sign nothing at heights up to and including this one (0: no check).
    until_height: int = 0
    #: At the height after ``until_height``, sign nothing in a view below this one (0: no
    #: check). Set only by the first-height rule, whose ``until_height`` is the height
    #: before the validator's first.
    from_view: int = 0

    @property
    def first_height(self) -> int:
        """The height ``from_view`` applies at."""
        return self.until_height + 1


#: A record that holds everything its validator signed: no check.
NO_GUARD = SigningGuard()


class VoteReader(Protocol):
    """What a replica reads of its vote record: it starts every height from the votes
    recorded at it, and signs nothing below the highest height it ever voted at
    (writes go through ``PersistVote`` actions)."""

    def load_votes(self, height: int) -> list[RecordedVote]:
        """Every vote recorded at ``height``, in the order they were saved."""

    def highest_height(self) -> int:
        """The highest height any vote was ever recorded at (0 if none); pruning keeps it."""

    def signing_guard(self) -> SigningGuard:
        """The double-sign check's state, as last saved."""


class VoteRecord(VoteReader, Protocol):
    """Durable storage of signed votes: what the driver writes through, and the replica reads
    (``StoredVoteRecord``, over the node's LevelDB or the simulator's disk)."""

    def save_vote(self, vote: RecordedVote) -> None:
        """Store ``vote`` durably before returning."""

    def prune(self, below_height: int) -> None:
        """Forget votes below ``below_height``: those heights are final."""

    def save_guard(self, until_height: int, from_view: int = 0) -> None:
        """The double-sign check is resolved: store ``until_height`` and ``from_view`` durably."""


class VoteBytes(Protocol):
    """A vote record's storage of encoded votes (``mura.chain.store.VoteStore``)."""

    def save_vote(self, height: int, encoded_vote: bytes) -> None:
        """Durably append an encoded vote at ``height``."""

    def load_votes(self, height: int) -> list[bytes]:
        """The encoded votes at ``height``, in the order they were saved."""

    def highest_height(self) -> int:
        """The highest height a vote was ever saved at (0 if none)."""

    def prune_votes(self, below_height: int) -> None:
        """Forget votes below ``below_height``."""

    def load_guard(self) -> tuple[bool, int, int]:
        """The double-sign check's state: (pending, until height, from view)."""

    def save_guard(self, until_height: int, from_view: int = 0) -> None:
        """Durably record the resolved check."""


class StoredVoteRecord:
    """The ``VoteRecord`` over a store of encoded votes: the node's, on its own LevelDB,
    and the simulator's, on a disk that loses what was not synced when it crashes."""

    def __init__(self, store: VoteBytes) -> None:
        self.store = store

    def save_vote(self, vote: RecordedVote) -> None:
        self.store.save_vote(vote.height, vote.encode())

    def load_votes(self, height: int) -> list[RecordedVote]:
        return [RecordedVote.decode(vote) for vote in self.store.load_votes(height)]

    def highest_height(self) -> int:
        return self.store.highest_height()

    def prune(self, below_height: int) -> None:
        self.store.prune_votes(below_height)

    def signing_guard(self) -> SigningGuard:
        pending, until_height, from_view = self.store.load_guard()
        return SigningGuard(pending=pending, until_height=until_height, from_view=from_view)

    def save_guard(self, until_height: int, from_view: int = 0) -> None:
        self.store.save_guard(until_height, from_view)


class SignedVotes:
    """What this replica signed at one height: the guard consulted before every signature."""

    def __init__(self, height: int, recorded: Iterable[RecordedVote] = ()) -> None:
        self.height = height
        self._digests: dict[tuple[Phase, int], bytes] = {}
        for vote in recorded:
            if vote.height == height:
                self._digests[(vote.phase, vote.view)] = vote.digest

    def signed(self, phase: Phase, view: int) -> bytes | None:
        return self._digests.get((phase, view))

    def highest_view(self) -> int | None:
        return max((view for _, view in self._digests), default=None)

    def has_view_change(self, view: int) -> bool:
        return (Phase.VIEW_CHANGE, view) in self._digests

    def claim(self, phase: Phase, view: int, digest: bytes) -> RecordedVote:
        """Mark ``digest`` signed at (phase, view); raise ``ConflictingVote`` if another was.

        Signing the same digest again is allowed: Ed25519 signatures are
        deterministic, so the repeated vote is the same bytes.
        """
        recorded = self._digests.get((phase, view))
        if recorded is not None and recorded != digest:
            raise ConflictingVote(self.height, view, phase.name, recorded, digest)
        self._digests[(phase, view)] = digest
        return RecordedVote(self.height, view, phase, digest)
