"""Nodes that follow the chain without a vote, and what validators do for them.

An observer runs the same replica as a validator, following every height: it
takes final blocks (pushed by the validators it is linked to as they become
final, and fetched by catch-up when it is behind), checks each commit
certificate against the validator set of its height and the block against its
own state, and commits it. It never signs anything: its replica works under a
key made at start that no validator set holds, so that not even a governance
change naming the observer's own key can make it vote, and its vote record
(``FollowerVotes``) holds nothing and refuses every write.

A validator takes no part in deciding a height with nodes outside the set:
consensus messages go only to the validators of the height and of the next one,
and every other linked peer (an observer, a validator not yet in the set) is
sent each block once it is final (``FinalBlockPush``): one frame per block and
peer, queued as droppable, so that an observer that cannot keep up loses
pushes (catch-up fetches what it missed) instead of its link or the
validator's memory.

How far behind a follower is comes from the final blocks validators send it:
each one whose certificate checks out is final at some quorum
(``CertifiedHeights``).
"""

from __future__ import annotations

from collections.abc import Callable

from mura.consensus.errors import UnsettledValidators
from mura.consensus.messages import FinalBlock, encode_final_block
from mura.consensus.votes import NO_GUARD, RecordedVote, SigningGuard
from mura.p2p.block_service import FinalBlockSource
from mura.p2p.network import Network

#: ``role`` in the node's config.
VALIDATOR_ROLE = "validator"
OBSERVER_ROLE = "observer"


class FollowerVotes:
    """The vote record of an observer: it has signed nothing and signs nothing, so it
    keeps nothing on disk and any write is a bug."""

    def load_votes(self, height: int) -> list[RecordedVote]:
        return []

    def highest_height(self) -> int:
        return 0

    def signing_guard(self) -> SigningGuard:
        return NO_GUARD

    def save_vote(self, vote: RecordedVote) -> None:
        raise AssertionError(f"an observer signed a vote at height {vote.height}")

    def prune(self, below_height: int) -> None:
        pass  # nothing kept

    def save_guard(self, until_height: int, from_view: int = 0) -> None:
        raise AssertionError("an observer has no double-sign check to resolve")


class FinalBlockPush:
    """A validator's pushes of final blocks to the linked peers that take no part in
    consensus (see the module docstring)."""

    def __init__(
        self,
        *,
        network: Network,
        source: FinalBlockSource,
        kind: str,
        takes_part: Callable[[bytes], bool],
    ) -> None:
        self._network = network
        self._source = source
        self._kind = kind
        self._takes_part = takes_part
        #: Frames queued and frames dropped (an outbox full), for metrics and tests.
        self.pushed = 0
        self.dropped = 0

    def block_final(self, height: int) -> int:
        """Push the block at ``height``, just final here, to every linked peer that does not
        take part in consensus at the heights being decided; returns how many took it."""
        outsiders = [peer for peer in self._network.connected_peers() if not self._takes_part(peer)]
        if not outsiders:
            return 0
        block = self._source.load_block_bytes(height)
        certificate = self._source.load_certificate_bytes(height)
        if block is None or certificate is None:
            raise AssertionError(f"block {height} is final here but not stored with its certificate")
        data = encode_final_block(block, certificate)
        queued = sum(self._network.send(peer, self._kind, data, droppable=True) for peer in outsiders)
        self.pushed += queued
        self.dropped += len(outsiders) - queued
        return queued


class CertifiedHeights:
    """The highest height seen final elsewhere: a final block a validator sent whose
    certificate a quorum of its height's set signed. One faulty validator cannot make it
    up (it holds no quorum); a certificate that does not check out is refused for cause."""

    def __init__(self, check_certificate: Callable[[FinalBlock], None], final_height: Callable[[], int]) -> None:
        self._check_certificate = check_certificate
        self._final_height = final_height
        #: The highest certified height seen (0: none).
        self.highest = 0

    def note(self, final: FinalBlock) -> None:
        """A final block came from a validator: a height above the highest seen and above
        this node's own counts once its certificate verifies (``Invalid`` otherwise; a
        height whose validator set is not settled here yet is not counted, without blame)."""
        if final.height <= max(self.highest, self._final_height()):
            return
        try:
            self._check_certificate(final)
        except UnsettledValidators:
            return
        self.highest = final.height
