"""Simulated nodes: a replica and its driver, with the parts that survive a crash.

A node owns its ledger (the committed chain and state) and the disk its vote
record is kept on; it runs the node's own driver (``mura.consensus.driver``) and
vote record (``mura.chain.store.VoteStore`` through ``StoredVoteRecord``), over
the simulation's clock and network. A crash throws away the replica, the driver
and everything in memory, and cuts the disk's power (what was not synced is
lost); a restart opens the record again and builds a new replica from the two,
as the node process does. The node's clock runs ahead of the simulation's by a
fixed skew.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

from mura.chain.block import Block, CommitCertificate, Header
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.state import MemoryState, StateChanges
from mura.chain.store import VOTES, VoteStore
from mura.consensus.config import ReplicaConfig
from mura.consensus.driver import Clock, Driver, Reports, Transport
from mura.consensus.messages import Message, encode_final_block
from mura.consensus.replica import Replica
from mura.consensus.serving import BlockServer
from mura.consensus.votes import StoredVoteRecord
from mura.sim.disk import SimulatedDisk
from mura.sim.ledger import Genesis, SimLedger, TransactionSigner, always_pending

#: Where a message goes: node ids, or None for every other node.
Destination = tuple[int, ...] | None


class SimulatedCrash(Exception):
    """An armed crash strikes: raised from the node's disk or network, it stops the
    driver in the middle of its actions, as the process dying would."""


class SimNode:
    """An honest node: one replica and driver at a time, restartable."""

    def __init__(
        self,
        *,
        node_id: int,
        validator: int,
        key: SigningKey,
        genesis: Genesis,
        config: ReplicaConfig,
        replica_class: type[Replica],
        skew_ms: int,
        signer: TransactionSigner,
        signatures: SignatureCache,
        new_record: bool = False,
        vote_store_class: type[VoteStore] = VoteStore,
    ) -> None:
        self.node_id = node_id
        self.validator = validator
        self.key = key
        self.config = config
        self.replica_class = replica_class
        self.vote_store_class = vote_store_class
        self.skew_ms = skew_ms
        self.signatures = signatures
        self._signer = signer
        #: Whether this node's mempool holds transactions now (the simulation's workload).
        self.pending: Callable[[], bool] = always_pending
        self.ledger = self._new_ledger(genesis)
        self.driver: Driver | None = None
        #: Bumped at each crash, so timers set by a dead incarnation are ignored.
        self.incarnation = 0
        #: A crash is due: it strikes around the next write to the vote record.
        self.crash_armed = False
        #: How many of the driver's disk writes and sends after the armed crash's first
        #: vote record write go through before it strikes (0: that write never lands).
        self.strike_after = 0
        self._countdown: int | None = None
        #: How long the armed crash keeps the node down.
        self.down_ms = 0
        #: Whether the armed crash also wipes the chain data (the vote record stays).
        self.wipe_on_crash = False
        #: Whether it loses the vote record as well.
        self.lose_record_on_crash = False
        #: Votes recorded and then lost to crashes (not synced when the power went).
        self.lost_votes = 0
        #: View changes started by earlier incarnations.
        self.past_view_changes = 0
        #: Node ids by validator public key (twins have two), set by the simulation.
        self.instances: dict[bytes, tuple[int, ...]] = {}
        #: What the node's driver serves peers that are behind (its budget is in memory).
        self.server = BlockServer()
        self.disk = self._new_disk(record_is_new=new_record)

    def make_ledger(self, genesis: Genesis, signer: TransactionSigner, signatures: SignatureCache) -> SimLedger:
        return SimLedger(genesis, signer=signer, signatures=signatures)

    def _new_ledger(self, genesis: Genesis) -> SimLedger:
        ledger = self.make_ledger(genesis, self._signer, self.signatures)
        ledger.pending = lambda: self.pending()
        return ledger

    @property
    def running(self) -> bool:
        return self.driver is not None

    @property
    def replica(self) -> Replica | None:
        return None if self.driver is None else self.driver.replica

    def clock(self, now_ms: int) -> int:
        return now_ms + self.skew_ms

    def _new_disk(self, *, record_is_new: bool) -> SimulatedDisk:
        """A disk holding a vote record for this validator; one that is not new holds a
        complete record (its double-sign check is resolved)."""
        disk = SimulatedDisk()
        store = self._open_record(disk)
        if not record_is_new:
            store.save_guard(0)
        return disk

    def _open_record(self, disk: SimulatedDisk) -> VoteStore:
        disk.before_write = self._before_write
        path = Path(f"simulated/node-{self.node_id}.votes")
        return self.vote_store_class(path, chain=self.ledger.genesis.block.hash, validator=self.key.public_key, db=disk)

    def boot(self, *, clock: Clock, transport: Transport, reports: Reports) -> Driver:
        """Build a replica and its driver from what survived: the ledger and the vote record."""
        votes = StoredVoteRecord(self._open_record(self.disk))
        replica = self.replica_class(
            key=self.key,
            application=self.ledger,
            config=self.config,
            vote_record=votes,
            signature_cache=self.signatures,
        )
        self.driver = Driver(
            replica=replica, clock=clock, transport=transport, votes=votes, ledger=self.ledger, reports=reports
        )
        return self.driver

    def step(self) -> None:
        """The driver writes to disk or sends: an armed crash whose countdown has run out
        strikes here, before the write or the send."""
        if self._countdown is None:
            return
        if self._countdown == 0:
            raise SimulatedCrash(f"node {self.node_id} crashes")
        self._countdown -= 1

    def _before_write(self) -> None:
        if self.crash_armed and self._countdown is None:
            self._countdown = self.strike_after
        self.step()

    def crash(self) -> None:
        if self.driver is not None:
            self.past_view_changes += self.driver.replica.view_changes_started
        self.driver = None
        self.incarnation += 1
        self.crash_armed = False
        self._countdown = None
        self.server = BlockServer()
        recorded = self._recorded_votes()
        self.disk.power_cut()
        self.lost_votes += len(recorded - self._recorded_votes())
        if self.wipe_on_crash:
            # The data directory is gone; the vote record, kept beside the key, is not...
            self.ledger = self._new_ledger(self.ledger.genesis)
            self.wipe_on_crash = False
        if self.lose_record_on_crash:
            # ...unless it is lost too: the key alone on a new machine.
            self.disk = self._new_disk(record_is_new=True)
            self.lose_record_on_crash = False

    def _recorded_votes(self) -> set[object]:
        return set(self.disk.iterator(prefix=VOTES, include_value=False))

    def view_changes(self) -> int:
        current = 0 if self.driver is None else self.driver.replica.view_changes_started
        return self.past_view_changes + current

    def validator_key(self, index: int) -> bytes:
        """The public key of validator ``index`` of this node's height (the replica names
        validators by their place in the set of its height)."""
        replica = self.replica
        keys = self.ledger.genesis.validators if replica is None else replica.validators.keys
        return keys[index]

    def nodes_of(self, index: int) -> tuple[int, ...]:
        """The node ids that run validator ``index`` of this node's height."""
        return self.instances.get(self.validator_key(index), ())

    def serve(self, to: int, start: int, now_ms: int) -> list[tuple[Destination, bytes]]:
        """What the driver sends validator ``to``, behind at ``start``: stored final blocks
        as their own bytes, within ``to``'s budget, as the node does."""
        return self.serve_node(self.nodes_of(to), start, now_ms)

    def serve_node(self, nodes: tuple[int, ...], start: int, now_ms: int) -> list[tuple[Destination, bytes]]:
        """Final blocks from ``start`` for the node(s) ``nodes`` (one budget for them, kept
        by node, as the node keeps it by peer key)."""
        def read(height: int) -> bytes | None:
            final = self.ledger.load_final_block(height)
            return None if final is None else encode_final_block(final.block.encode(), final.certificate.encode())

        answer = self.server.answer(nodes, start, self.ledger.final_height(), now_ms, read)
        return [(nodes, data) for _, data in answer]

    def route(self, message: Message, to: int | None, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        """What actually leaves this node for a Broadcast (``to`` None) or a Send to a
        validator: honest nodes send exactly what the replica said."""
        return ((None if to is None else self.nodes_of(to), message),)

    def after_commit(self, block: Block, certificate: CommitCertificate) -> list[tuple[Destination, bytes]]:
        """Extra bytes a byzantine node sends once it made a block final; none for honest ones."""
        return []

    def observe(self, message: Message, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        """Extra messages a byzantine node sends on seeing ``message``; none for honest ones."""
        return ()


class ForkingLedger(SimLedger):
    """A ledger that keeps the state below each height, so a byzantine node can build
    a conflicting block for a height that is already final."""

    def __init__(self, genesis: Genesis, *, signer: TransactionSigner, signatures: SignatureCache) -> None:
        super().__init__(genesis, signer=signer, signatures=signatures)
        self.snapshots: dict[int, tuple[MemoryState, Header]] = {1: (copy.deepcopy(self.state), self.head)}

    def commit(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> None:
        super().commit(block, certificate, changes)
        self.snapshots[block.height + 1] = (copy.deepcopy(self.state), self.head)
