"""A small in-process cluster for replica rule tests: no network, no randomness.

Messages are delivered in order, unless a test filters them; the clock only
moves when a test says so. Ledgers are the simulator's (real state transition).
Every message travels as its bytes, as it does between nodes: a block in it
arrives unchecked, and a replica is told which validator delivered it. Each
replica's actions are carried out by the node's own driver, over the cluster's
queue and clock, and every action list is kept for tests of the lists themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mura.chain.block import Block, CommitCertificate
from mura.chain.keys import SignatureCache
from mura.consensus.actions import Action, Broadcast, Send
from mura.consensus.config import ReplicaConfig
from mura.consensus.driver import Driver
from mura.consensus.evidence import Equivocation
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


class RecordingDriver(Driver):
    """The node's driver, keeping every list of actions it carries out: the replica's
    answers, and what it answers a commit with."""

    #: Where each list goes, with the time it was carried out at (set by the cluster).
    history: list[tuple[int, list[Action]]]

    def execute(self, actions: list[Action]) -> None:
        self.history.append((self.clock.now_ms(), actions))
        super().execute(actions)


class ClusterPorts:
    """One replica's clock, network and reports in the cluster."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        self.cluster = cluster
        self.index = index

    def now_ms(self) -> int:
        return self.cluster.now

    def schedule(self, at_ms: int) -> None:
        self.cluster.timers[self.index].append(at_ms)

    def broadcast(self, message: Message) -> None:
        others = [other for other in range(self.cluster.size) if other != self.index]
        self.cluster.queue += [(self.index, other, message) for other in others]

    def send(self, validator: int, message: Message) -> None:
        self.cluster.queue.append((self.index, validator, message))

    def relay(self, message: Message, exclude: frozenset[int]) -> None:
        others = [other for other in range(self.cluster.size) if other not in exclude]
        self.cluster.queue += [(self.index, other, message) for other in others]

    def serve_blocks(self, validator: int, from_height: int) -> None:
        self.cluster.serve(self.index, validator, from_height)

    def penalize(self, validator: int, rule: str) -> None:
        self.cluster.misbehaviour.append((self.index, validator, rule))

    def block_final(self, block: Block, certificate: CommitCertificate) -> None:
        return None

    def equivocation(self, evidence: Equivocation) -> None:
        return None

    def signing_guard_saved(self, until_height: int, from_view: int) -> None:
        return None


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
        self._drivers: dict[int, RecordingDriver] = {}

    def boot(self, index: int) -> Replica:
        ledger = self.ledgers[index]
        return Replica(
            key=self.keys[index],
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
        """Carry out ``actions`` of replica ``index`` with the node's driver, over the
        replica, vote record and ledger the cluster holds for it now (a test may swap any)."""
        driver = self._drivers.get(index)
        parts = (self.replicas[index], self.records[index], self.ledgers[index])
        held = () if driver is None else (driver.replica, driver.votes, driver.ledger)
        if driver is None or any(old is not new for old, new in zip(held, parts, strict=True)):
            ports = ClusterPorts(self, index)
            driver = RecordingDriver(
                replica=parts[0], votes=parts[1], ledger=parts[2], clock=ports, transport=ports, reports=ports
            )
            driver.history = self.history[index]
            self._drivers[index] = driver
        driver.execute(actions)

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
