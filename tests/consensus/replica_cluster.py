"""A small in-process cluster for replica rule tests: no network, no randomness.

Messages are delivered in order, unless a test filters them; the clock only
moves when a test says so. Ledgers are the simulator's (real state transition).
Every message travels as its bytes, as it does between nodes: a block in it
arrives unchecked, and a replica is told which validator delivered it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mura.chain.keys import SignatureCache
from mura.consensus.actions import (
    Action,
    Broadcast,
    CommitBlock,
    Misbehaviour,
    PersistGuard,
    PersistVote,
    PruneVotes,
    Relay,
    ScheduleTimeout,
    Send,
    ServeBlocks,
)
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import Commit, Message, Prepare, PrePrepare, encode_message
from mura.consensus.replica import Replica
from mura.consensus.serving import BlockServer
from mura.sim.disk import vote_record_in_memory
from mura.sim.ledger import CHAIN_ID, SimLedger, TransactionSigner, make_genesis, validator_keys

Kind = TypeVar("Kind", bound=Message)

#: Decides whether a message from ``sender`` to ``receiver`` is lost.
Filter = Callable[[int, int, Message], bool]


def keep_all(sender: int, receiver: int, message: Message) -> bool:
    return False


@dataclass
class Cluster:
    """``size`` replicas wired to each other through an in-order queue."""

    size: int = 4
    config: ReplicaConfig = field(default_factory=lambda: ReplicaConfig(chain_id=CHAIN_ID, proposal_delay_ms=100))
    now: int = 0
    lose: Filter = keep_all

    def __post_init__(self) -> None:
        self.keys = validator_keys(self.size)
        self.genesis = make_genesis([key.public_key for key in self.keys])
        self.signer = TransactionSigner()
        self.signatures = SignatureCache()
        self.ledgers = [SimLedger(self.genesis, signer=self.signer, signatures=self.signatures) for _ in self.keys]
        self.records = [vote_record_in_memory() for _ in self.keys]
        self.replicas = [self.boot(index) for index in range(self.size)]
        self.queue: list[tuple[int, int, Message]] = []
        #: Every action list each replica returned, in order.
        self.history: list[list[tuple[int, list[Action]]]] = [[] for _ in self.keys]
        self.timers: list[list[int]] = [[] for _ in self.keys]
        self.down: set[int] = set()
        #: Misbehaviour each replica reported, as (reporter, culprit, rule).
        self.misbehaviour: list[tuple[int, int, str]] = []
        self.servers = [BlockServer() for _ in self.keys]

    def boot(self, index: int) -> Replica:
        ledger = self.ledgers[index]
        return Replica(
            key=self.keys[index],
            validators=self.genesis.validators,
            application=ledger,
            config=self.config,
            vote_record=self.records[index],
        )

    def restart(self, index: int) -> None:
        self.replicas[index] = self.boot(index)
        self.down.discard(index)
        self.execute(index, self.replicas[index].start(self.now))

    def start(self) -> None:
        for index, replica in enumerate(self.replicas):
            self.execute(index, replica.start(self.now))

    def execute(self, index: int, actions: list[Action]) -> None:
        self.history[index].append((self.now, actions))
        for action in actions:
            if isinstance(action, PersistVote):
                self.records[index].save_vote(action.vote)
            elif isinstance(action, Broadcast):
                self.queue += [(index, other, action.message) for other in range(self.size) if other != index]
            elif isinstance(action, Send):
                self.queue.append((index, action.to, action.message))
            elif isinstance(action, Relay):
                others = [other for other in range(self.size) if other not in action.exclude]
                self.queue += [(index, other, action.message) for other in others]
            elif isinstance(action, ServeBlocks):
                self.serve(index, action.to, action.from_height)
            elif isinstance(action, Misbehaviour):
                self.misbehaviour.append((index, action.validator, action.rule))
            elif isinstance(action, PersistGuard):
                self.records[index].save_guard(action.until_height, action.from_view)
            elif isinstance(action, ScheduleTimeout):
                self.timers[index].append(action.at_ms)
            elif isinstance(action, PruneVotes):
                self.records[index].prune(action.below_height)
            elif isinstance(action, CommitBlock):
                self.ledgers[index].commit(action.block, action.certificate, action.changes)
                self.execute(index, self.replicas[index].committed(self.now))

    def serve(self, index: int, peer: int, start: int) -> None:
        """What a node's driver does for a peer that is behind: final blocks, within budget."""
        ledger = self.ledgers[index]

        def read(height: int) -> bytes | None:
            final = ledger.load_final_block(height)
            return None if final is None else final.block.encode()

        for height, _ in self.servers[index].answer(peer, start, ledger.final_height(), self.now, read):
            final = ledger.load_final_block(height)
            assert final is not None
            self.queue.append((index, peer, final))

    def deliver(self, receiver: int, message: Message, *, sender: int | None = None) -> list[Action]:
        """Hand ``message`` to ``receiver`` as its bytes, delivered by ``sender`` (None: unknown)."""
        actions = self.replicas[receiver].receive_bytes(encode_message(message), self.now, origin=sender)
        self.execute(receiver, actions)
        return actions

    def flow(self, limit: int = 100_000) -> None:
        """Deliver queued messages in order until none are left."""
        for _ in range(limit):
            if not self.queue:
                return
            sender, receiver, message = self.queue.pop(0)
            if receiver in self.down or self.lose(sender, receiver, message):
                continue
            self.deliver(receiver, message, sender=sender)
        raise AssertionError("messages kept flowing")

    def advance(self, to_ms: int) -> None:
        """Move the clock, firing due timers, and let the messages flow."""
        while True:
            due = [(at, index) for index, timers in enumerate(self.timers) for at in timers if at <= to_ms]
            if not due:
                break
            at, index = min(due)
            self.timers[index].remove(at)
            self.now = max(self.now, at)
            if index not in self.down:
                self.execute(index, self.replicas[index].timeout(self.now))
            self.flow()
        self.now = to_ms
        self.flow()

    @property
    def first_timeout_ms(self) -> int:
        """When a height begun at 0 ms times out in its first view: its primary gathers
        transactions for the proposal delay, then the view timeout runs."""
        return self.config.proposal_delay_ms + self.config.base_timeout_ms

    def heights(self) -> list[int]:
        return [ledger.final_height() for ledger in self.ledgers]

    def sent(self, index: int, kind: type[Kind]) -> list[Kind]:
        """Messages of ``kind`` that replica ``index`` broadcast or sent."""
        return [
            action.message
            for _, actions in self.history[index]
            for action in actions
            if isinstance(action, (Broadcast, Send)) and isinstance(action.message, kind)
        ]


def proposal_for(
    cluster: Cluster, *, view: int = 0, timestamp_ms: int = 100, signer: int | None = None
) -> PrePrepare:
    """A valid block for the next height, proposed in ``view`` (signed by its primary unless told)."""
    sender = view % cluster.size if signer is None else signer
    ledger = cluster.ledgers[sender]
    proposer = cluster.keys[sender].public_key
    built = ledger.build_proposal(ledger.final_height() + 1, proposer=proposer, timestamp_ms=timestamp_ms)
    return PrePrepare.sign(cluster.keys[sender], sender, CHAIN_ID, view, built.block)


def prepare_from(cluster: Cluster, sender: int, proposal: PrePrepare) -> Prepare:
    return Prepare.sign(cluster.keys[sender], sender, CHAIN_ID, proposal.view, proposal.height, proposal.block_hash)


def commit_from(cluster: Cluster, sender: int, proposal: PrePrepare) -> Commit:
    return Commit.sign(cluster.keys[sender], sender, CHAIN_ID, proposal.view, proposal.height, proposal.block_hash)
