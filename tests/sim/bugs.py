"""Deliberately broken replicas, to prove the checker sees what they break.

Each is the real replica with one rule removed; ``replica_class_for`` picks
one by name for a scenario (honest nodes run it; byzantine ones do not).

- ``quorum_2f``: a quorum of 2f instead of the smallest intersecting quorum.
- ``no_vote_dedup``: votes are counted per message, not per validator, so a
  repeated vote (the network duplicates) counts twice.
- ``skip_new_view_check``: a NEW-VIEW's proposal is not checked against the
  prepared block its view changes force.
- ``speak_before_persist``: a vote is broadcast before it is recorded, so a
  crash between the two lets the restarted replica sign a conflicting one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mura.consensus.actions import Action, Broadcast, PersistVote
from mura.consensus.evidence import Equivocation
from mura.consensus.log import ADDED, Added, Duplicate, HeightLog, VoteTally
from mura.consensus.messages import Message, NewView, Vote
from mura.consensus.replica import Replica
from mura.consensus.verify import MessageVerifier
from mura.consensus.votes import RecordedVote


class QuorumOfTwoF(Replica):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.quorum = 2 * self.validators.faulty
        self.verifier.quorum = self.quorum


class CountingTally(VoteTally):
    """Counts every vote message, repeats included."""

    def __init__(self) -> None:
        super().__init__()
        self._counted: dict[tuple[int, bytes], list[tuple[int, bytes]]] = {}

    def add(self, vote: Vote) -> Added | Duplicate | Equivocation:
        outcome = super().add(vote)
        if isinstance(outcome, Equivocation):
            return outcome
        self._counted.setdefault((vote.view, vote.block_hash), []).append((vote.sender, vote.signature))
        return ADDED

    def signatures(self, view: int, block_hash: bytes) -> tuple[tuple[int, bytes], ...]:
        return tuple(sorted(self._counted.get((view, block_hash), [])))


class CountingLog(HeightLog):
    def __init__(self, height: int) -> None:
        super().__init__(height, prepares=CountingTally(), commits=CountingTally())


class NoVoteDedup(Replica):
    log_class = CountingLog


class LaxVerifier(MessageVerifier):
    def check_new_view_choice(self, message: NewView) -> None:
        return None


class SkipNewViewCheck(Replica):
    verifier_class = LaxVerifier


class SpeakBeforePersist(Replica):
    def speak(self, vote: RecordedVote, message: Message) -> list[Action]:
        return [Broadcast(message), PersistVote(vote)]


BUGS: dict[str, type[Replica]] = {
    "quorum_2f": QuorumOfTwoF,
    "no_vote_dedup": NoVoteDedup,
    "skip_new_view_check": SkipNewViewCheck,
    "speak_before_persist": SpeakBeforePersist,
}


def replica_class_for(bug: str | None) -> type[Replica]:
    if bug is None:
        return Replica
    return BUGS[bug]


def bug_names() -> Iterable[str]:
    return BUGS.keys()
