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
- ``no_double_sign_check``: a replica whose vote record is new signs at once.
- ``skip_body_check``: the block decoder does not check a block's transactions
  against its header's transaction root (the replica is the real one): a body
  swapped under a known header then passes for the block its hash names.
- ``idle_timer_ignored``: a height's first view times out after the view timeout
  whatever the primary waits for, as before idle intervals could exceed it: an
  idle chain changes views at every height.
- ``unsynced_vote_write``: the vote record appends a vote without syncing it, so
  a crash (a power cut) loses votes already sent, and the restarted replica may
  sign a conflicting one (the replica is the real one; the record's code is the
  node's, with one flag flipped).
- ``arrivals_ignored``: arriving transactions cut the primary's own wait short
  but bring no view timer forward, so a primary that failed while the chain was
  idle is replaced only when the idle interval is over.

- ``certificate_wrong_height_set``: a final block's certificate is checked against
  the validator set the replica started with, not the set of the block's height.

Two break the chain's own payments on bonds (the replica is the real one):

- ``payment_after_transactions``: bond steps run after the block's transactions,
  not before them, so a payment pays the holders as the block leaves them (the
  block's pending state) instead of those at the end of the block before, and a
  missed payment is paid in the very block that tops the paying account up.
- ``payment_by_local_clock``: a validator takes a payment as due by its own
  clock when it builds or checks a block, not by the block's timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mura.chain import block as block_module
from mura.chain import state as state_module
from mura.chain.block import Block, Header
from mura.chain.bond_rules import process_bonds
from mura.chain.pending import PendingState, StateChanges
from mura.chain.state import process_expiries
from mura.chain.store import VoteStore
from mura.consensus.actions import Action, Broadcast, PersistVote, ScheduleTimeout
from mura.consensus.evidence import Equivocation
from mura.consensus.log import ADDED, Added, Duplicate, HeightLog, VoteTally
from mura.consensus.messages import Commit, FinalBlock, Message, NewView, Prepare, ViewChange, Vote
from mura.consensus.phase import InView
from mura.consensus.replica import Replica
from mura.consensus.verify import MessageVerifier
from mura.consensus.votes import RecordedVote
from mura.sim.disk import SimulatedDisk


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
        #: Whether the last vote added had been seen before: the broken rule is the
        #: count alone, so repeats are not relayed again (each relay would come back
        #: as another repeat, and the run would never end).
        self.last_was_repeat = False

    def add(self, vote: Vote) -> Added | Duplicate | Equivocation:
        outcome = super().add(vote)
        if isinstance(outcome, Equivocation):
            return outcome
        self.last_was_repeat = isinstance(outcome, Duplicate)
        self._counted.setdefault((vote.view, vote.block_hash), []).append((vote.sender, vote.signature))
        return ADDED

    def signatures(self, view: int, block_hash: bytes) -> tuple[tuple[int, bytes], ...]:
        return tuple(sorted(self._counted.get((view, block_hash), [])))


class CountingLog(HeightLog):
    def __init__(self, height: int) -> None:
        super().__init__(height, prepares=CountingTally(), commits=CountingTally())


class NoVoteDedup(Replica):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options, log_class=CountingLog)

    def relay(self, message: Prepare | Commit | ViewChange | NewView, origin: int | None) -> list[Action]:
        tally = self.log.prepares if isinstance(message, Prepare) else self.log.commits
        if isinstance(message, Prepare | Commit) and isinstance(tally, CountingTally) and tally.last_was_repeat:
            return []
        return super().relay(message, origin)


class LaxVerifier(MessageVerifier):
    def check_new_view_choice(self, message: NewView) -> None:
        return None


class SkipNewViewCheck(Replica):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options, verifier_class=LaxVerifier)


class NoDoubleSignCheck(Replica):
    def signing_held(self, view: int) -> bool:
        return False


class SpeakBeforePersist(Replica):
    def speak(self, vote: RecordedVote, message: Message) -> list[Action]:
        return [Broadcast(message), PersistVote(vote)]


class IdleTimerIgnored(Replica):
    def _first_view_timer(self, now_ms: int) -> list[Action]:
        return self._enter_view_timer(now_ms)


class ArrivalsIgnored(Replica):
    def transactions_arrived(self, now_ms: int) -> list[Action]:
        due = now_ms + self.config.proposal_delay_ms
        phase = self.phase
        if not isinstance(phase, InView) or phase.proposal_due_ms is None or phase.proposal_due_ms <= due:
            return []
        phase.proposal_due_ms = due
        return [ScheduleTimeout(due)]


class UnsyncedVoteStore(VoteStore):
    """Appends votes as ``VoteStore`` does, but the write is not synced."""

    def save_vote(self, height: int, encoded_vote: bytes) -> None:
        disk = self.db
        assert isinstance(disk, SimulatedDisk), "this bug is injected on the simulated disk only"
        disk.syncing = False
        try:
            super().save_vote(height, encoded_vote)
        finally:
            disk.syncing = True


#: Bugs in the vote record, by name (the replica is the real one).
VOTE_STORE_BUGS: dict[str, type[VoteStore]] = {"unsynced_vote_write": UnsyncedVoteStore}

class CertificateAgainstBootSet(Replica):
    """Checks final blocks' certificates against the validators it was started with,
    whatever their height (``certificate_wrong_height_set``): once the set changes, a
    replica catching up refuses the certificates of the new set (and holds them
    against whoever served them), or takes ones the old set signed."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._boot_verifier = self.verifier

    def check_certificate(self, final: FinalBlock, origin: int | None = None) -> None:
        self._boot_verifier.check_certificate(final)


BUGS: dict[str, type[Replica]] = {
    "quorum_2f": QuorumOfTwoF,
    "no_vote_dedup": NoVoteDedup,
    "skip_new_view_check": SkipNewViewCheck,
    "speak_before_persist": SpeakBeforePersist,
    "skip_body_check": Replica,
    "no_double_sign_check": NoDoubleSignCheck,
    "idle_timer_ignored": IdleTimerIgnored,
    "arrivals_ignored": ArrivalsIgnored,
    "unsynced_vote_write": Replica,
    "payment_after_transactions": Replica,
    "payment_by_local_clock": Replica,
    "certificate_wrong_height_set": CertificateAgainstBootSet,
}

#: The clock of the node whose event the simulation handles now (``payment_by_local_clock``).
local_clock_ms: int | None = None


def _unchecked_body(header: Header, raw_transactions: Sequence[bytes]) -> None:
    return None


def _bonds_after_transactions(pending: PendingState) -> None:
    process_expiries(pending)


def _finish_after_bonds(pending: PendingState) -> StateChanges:
    if pending.height > 0:
        process_bonds(pending)
    return _real_finish(pending)


def _bonds_by_local_clock(pending: PendingState) -> None:
    stamp = pending.timestamp_ms
    if local_clock_ms is not None:
        pending.timestamp_ms = local_clock_ms
    try:
        process_bonds(pending)
    finally:
        pending.timestamp_ms = stamp


_real_finish = PendingState.finish
#: The chain's functions each payment bug replaces (in ``mura.chain.state``, or on ``PendingState``).
_PAYMENT_BUGS: dict[str, dict[str, Callable[..., object]]] = {
    "payment_after_transactions": {"process_automatic_steps": _bonds_after_transactions},
    "payment_by_local_clock": {"process_bonds": _bonds_by_local_clock},
}


@contextmanager
def _payment_bug(bug: str) -> Iterator[None]:
    replaced = _PAYMENT_BUGS[bug]
    originals = {name: getattr(state_module, name) for name in replaced}
    for name, function in replaced.items():
        setattr(state_module, name, function)
    if bug == "payment_after_transactions":
        PendingState.finish = _finish_after_bonds  # type: ignore[method-assign,assignment]  # the injected bug
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(state_module, name, function)
        PendingState.finish = _real_finish  # type: ignore[method-assign]


@contextmanager
def injected(bug: str | None) -> Iterator[None]:
    """Break what ``bug`` breaks outside the replica for the length of one run. Blocks
    decoded meanwhile are forgotten afterwards, so no other run meets one."""
    if bug in _PAYMENT_BUGS:
        with _payment_bug(bug):
            yield
        return
    if bug != "skip_body_check":
        yield
        return
    block_module.forget_decoded_blocks()
    original = Block.__dict__["_check_raw_body"]
    Block._check_raw_body = staticmethod(_unchecked_body)  # type: ignore[method-assign]  # the injected bug
    try:
        yield
    finally:
        Block._check_raw_body = original  # type: ignore[method-assign]
        block_module.forget_decoded_blocks()


def replica_class_for(bug: str | None) -> type[Replica]:
    if bug is None:
        return Replica
    return BUGS[bug]


def vote_store_class_for(bug: str | None) -> type[VoteStore]:
    return VOTE_STORE_BUGS.get(bug or "", VoteStore)


def bug_names() -> Iterable[str]:
    return BUGS.keys()

