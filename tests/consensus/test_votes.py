"""The vote record and the guard against signing two different votes."""

from __future__ import annotations

import pytest

from mura.consensus.errors import ConflictingVote
from mura.consensus.messages import Phase
from mura.consensus.votes import RecordedVote, SignedVotes
from mura.sim.disk import vote_record_in_memory


def test_same_vote_may_be_signed_again() -> None:
    guard = SignedVotes(5)
    first = guard.claim(Phase.PREPARE, 2, b"a" * 32)
    assert guard.claim(Phase.PREPARE, 2, b"a" * 32) == first


def test_invalid_conflicting_vote() -> None:
    guard = SignedVotes(5)
    guard.claim(Phase.PREPARE, 2, b"a" * 32)
    with pytest.raises(ConflictingVote):
        guard.claim(Phase.PREPARE, 2, b"b" * 32)
    guard.claim(Phase.PREPARE, 3, b"b" * 32)
    guard.claim(Phase.COMMIT, 2, b"b" * 32)


def test_invalid_conflicting_vote_after_reload() -> None:
    record = vote_record_in_memory()
    record.save_vote(SignedVotes(5).claim(Phase.COMMIT, 1, b"a" * 32))
    reloaded = SignedVotes(5, record.load_votes(5))
    with pytest.raises(ConflictingVote):
        reloaded.claim(Phase.COMMIT, 1, b"b" * 32)


def test_record_keeps_votes_by_height_and_prunes_final_ones() -> None:
    record = vote_record_in_memory()
    votes = [RecordedVote(height, view, Phase.PREPARE, bytes(32)) for height, view in ((1, 0), (2, 0), (2, 1), (3, 0))]
    for vote in votes:
        record.save_vote(vote)
    assert record.load_votes(2) == votes[1:3]
    assert record.highest_height() == 3
    record.prune(3)
    assert record.load_votes(1) == record.load_votes(2) == []
    assert record.load_votes(3) == [votes[3]]
    assert record.highest_height() == 3, "pruning keeps the highest height voted"
