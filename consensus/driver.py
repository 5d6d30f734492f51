"""The driver: one executor of the replica's actions, for the node and the simulator.

The replica decides; the driver carries its decisions out, in the order given,
over four small parts that each world supplies:

- a ``Clock`` (the wall clock and asyncio timers in the node; virtual time in
  the simulator),
- a ``Transport`` (the peer network; the simulated network),
- the ``VoteRecord`` (``StoredVoteRecord`` over the validator's vote record: a
  LevelDB of its own in the node, a simulated disk that loses unsynced writes
  at a crash in the simulator; the same code writes both),
- the ``Ledger`` (the store-backed application; the in-memory one),

and tells its owner what the operator or a checker must hear (``Reports``).

Order is the whole point. A vote is recorded (``VoteRecord.save_vote`` returns
once it is durable) before the message that carries it is handed to the
transport, because the replica lists ``PersistVote`` first; a block is made
final in the ledger before the replica hears ``committed()`` and moves on.
Nothing here does I/O itself: it calls the parts, and an exception from one of
them (a failing disk, a simulated crash) stops the list where it is, as a
crash would.
"""

from __future__ import annotations

from typing import Protocol

from mura.chain.block import Block, CommitCertificate
from mura.chain.state import StateChanges
from mura.consensus.actions import (
    Action,
    Broadcast,
    CommitBlock,
    Misbehaviour,
    PersistGuard,
    PersistVote,
    PruneVotes,
    Relay,
    ReportEquivocation,
    ScheduleTimeout,
    Send,
    ServeBlocks,
)
from mura.consensus.application import Application
from mura.consensus.evidence import Equivocation
from mura.consensus.messages import Message
from mura.consensus.replica import Replica
from mura.consensus.votes import VoteRecord


class Clock(Protocol):
    """The replica's time, in milliseconds, and its one kind of timer."""

    def now_ms(self) -> int:
        """The time now, as the replica reads it (block timestamps are taken from it)."""

    def schedule(self, at_ms: int) -> None:
        """Have the driver's ``timeout()`` called at or after ``at_ms`` (once per time asked)."""


class Transport(Protocol):
    """How messages leave this validator; every call returns at once (sending is queued)."""

    def broadcast(self, message: Message) -> None:
        """Send ``message`` to every other validator."""

    def send(self, validator: int, message: Message) -> None:
        """Send ``message`` to one validator, by index."""

    def relay(self, message: Message, exclude: frozenset[int]) -> None:
        """Pass on another validator's ``message`` to every validator but those in ``exclude``."""

    def serve_blocks(self, validator: int, from_height: int) -> None:
        """Send a validator that is behind final blocks from ``from_height`` on, within its budget."""

    def penalize(self, validator: int, rule: str) -> None:
        """Count a message refused for cause (``rule``) against the validator that delivered it."""


class Ledger(Application, Protocol):
    """The chain the replica orders blocks for, and where final blocks go."""

    def commit(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> None:
        """Make ``block`` final with its certificate and state changes, durably, before returning."""


class Reports(Protocol):
    """What the driver tells its owner: the operator's log and metrics, or a checker."""

    def block_final(self, block: Block, certificate: CommitCertificate) -> None:
        """``block`` is final in the ledger; the replica has not yet moved to the next height."""

    def equivocation(self, evidence: Equivocation) -> None:
        """A validator signed two conflicting statements; ``evidence`` proves it."""

    def signing_guard_saved(self, until_height: int, from_view: int) -> None:
        """The double-sign check is resolved (see ``votes.SigningGuard``) and recorded."""


class Driver:
    """Feeds one replica its events and carries out the actions it returns."""

    def __init__(
        self,
        *,
        replica: Replica,
        clock: Clock,
        transport: Transport,
        votes: VoteRecord,
        ledger: Ledger,
        reports: Reports,
    ) -> None:
        self.replica = replica
        self.clock = clock
        self.transport = transport
        self.votes = votes
        self.ledger = ledger
        self.reports = reports

    # --- events ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin the height the ledger is at (once, after the replica is built)."""
        self.execute(self.replica.start(self.clock.now_ms()))

    def receive(self, message: Message, *, origin: int | None) -> None:
        """A message decoded from the bytes validator ``origin`` delivered."""
        self.execute(self.replica.receive(message, self.clock.now_ms(), origin=origin))

    def receive_bytes(self, data: bytes, *, origin: int | None) -> None:
        """Bytes validator ``origin`` delivered, not yet decoded."""
        self.execute(self.replica.receive_bytes(data, self.clock.now_ms(), origin=origin))

    def timeout(self) -> None:
        """A time asked for through ``Clock.schedule`` has come."""
        self.execute(self.replica.timeout(self.clock.now_ms()))

    def peer_connected(self, validator: int) -> None:
        """A link to ``validator`` opened."""
        self.execute(self.replica.peer_connected(validator, self.clock.now_ms()))

    def transactions_arrived(self) -> None:
        """Transactions a block could take reached the pool."""
        self.execute(self.replica.transactions_arrived(self.clock.now_ms()))

    # --- actions --------------------------------------------------------------------

    def execute(self, actions: list[Action]) -> None:
        """Carry out ``actions`` in order; a ``CommitBlock`` (always the last) is made final
        before the replica hears of it, and what it answers is carried out in turn."""
        for action in actions:
            self._perform(action)

    def _perform(self, action: Action) -> None:
        if isinstance(action, PersistVote):
            self.votes.save_vote(action.vote)
        elif isinstance(action, Broadcast):
            self.transport.broadcast(action.message)
        elif isinstance(action, Send):
            self.transport.send(action.to, action.message)
        elif isinstance(action, Relay):
            self.transport.relay(action.message, action.exclude)
        elif isinstance(action, CommitBlock):
            self.ledger.commit(action.block, action.certificate, action.changes)
            self.reports.block_final(action.block, action.certificate)
            self.execute(self.replica.committed(self.clock.now_ms()))
        elif isinstance(action, ScheduleTimeout):
            self.clock.schedule(action.at_ms)
        elif isinstance(action, PruneVotes):
            self.votes.prune(action.below_height)
        elif isinstance(action, PersistGuard):
            self.votes.save_guard(action.until_height, action.from_view)
            self.reports.signing_guard_saved(action.until_height, action.from_view)
        elif isinstance(action, ServeBlocks):
            self.transport.serve_blocks(action.to, action.from_height)
        elif isinstance(action, ReportEquivocation):
            self.reports.equivocation(action.evidence)
        elif isinstance(action, Misbehaviour):
            self.transport.penalize(action.validator, action.rule)
        else:
            raise TypeError(f"the driver has no rule for {type(action).__name__}")
