"""Simulated nodes: a replica with the parts that survive a crash.

A node owns its ledger (the committed chain and state) and its vote record;
a crash throws away the replica and everything in its memory, and a restart
builds a new replica from those two, as the node process will. The node's
clock runs ahead of the simulation's by a fixed skew.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from mura.chain.block import Block, CommitCertificate, Header
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.state import MemoryState, StateChanges
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import Message, encode_final_block
from mura.consensus.replica import Replica
from mura.consensus.serving import BlockServer
from mura.consensus.votes import MemoryVoteRecord
from mura.tests.sim.ledger import Genesis, SimLedger, TransactionSigner, always_pending

#: Where a message goes: node ids, or None for every other node.
Destination = tuple[int, ...] | None


class SimNode:
    """An honest node: one replica instance, restartable."""

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
    ) -> None:
        self.node_id = node_id
        self.validator = validator
        self.key = key
        self.config = config
        self.replica_class = replica_class
        self.skew_ms = skew_ms
        self.signatures = signatures
        self._signer = signer
        #: Whether this node's mempool holds transactions now (the simulation's workload).
        self.pending: Callable[[], bool] = always_pending
        self.ledger = self._new_ledger(genesis)
        self.votes = MemoryVoteRecord(new=new_record)
        self.replica: Replica | None = None
        #: Bumped at each crash, so timers set by a dead incarnation are ignored.
        self.incarnation = 0
        #: A crash is due: it strikes inside the next list of actions that records a vote.
        self.crash_armed = False
        #: How long the armed crash keeps the node down.
        self.down_ms = 0
        #: Whether the armed crash also wipes the chain data (the vote record stays).
        self.wipe_on_crash = False
        #: Whether it loses the vote record as well.
        self.lose_record_on_crash = False
        #: View changes started by earlier incarnations.
        self.past_view_changes = 0
        #: Node ids by validator index (twins have two), set by the simulation.
        self.instances: dict[int, tuple[int, ...]] = {}
        #: What the node's driver serves peers that are behind (its budget is in memory).
        self.server = BlockServer()

    def make_ledger(self, genesis: Genesis, signer: TransactionSigner, signatures: SignatureCache) -> SimLedger:
        return SimLedger(genesis, signer=signer, signatures=signatures)

    def _new_ledger(self, genesis: Genesis) -> SimLedger:
        ledger = self.make_ledger(genesis, self._signer, self.signatures)
        ledger.pending = lambda: self.pending()
        return ledger

    @property
    def running(self) -> bool:
        return self.replica is not None

    def clock(self, now_ms: int) -> int:
        return now_ms + self.skew_ms

    def boot(self) -> Replica:
        """Build a replica from what survived: the ledger and the votes at the next height."""
        self.replica = self.replica_class(
            key=self.key,
            validators=self.ledger.genesis.validators,
            application=self.ledger,
            config=self.config,
            vote_record=self.votes,
            signature_cache=self.signatures,
        )
        return self.replica

    def crash(self) -> None:
        if self.replica is not None:
            self.past_view_changes += self.replica.view_changes_started
        self.replica = None
        self.incarnation += 1
        self.crash_armed = False
        self.server = BlockServer()
        if self.wipe_on_crash:
            # The data directory is gone; the vote record, kept beside the key, is not...
            self.ledger = self._new_ledger(self.ledger.genesis)
            self.wipe_on_crash = False
        if self.lose_record_on_crash:
            # ...unless it is lost too: the key alone on a new machine.
            self.votes = MemoryVoteRecord(new=True)
            self.lose_record_on_crash = False

    def view_changes(self) -> int:
        current = 0 if self.replica is None else self.replica.view_changes_started
        return self.past_view_changes + current

    def commit(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> None:
        self.ledger.commit(block, certificate, changes)

    def serve(self, to: int, start: int, now_ms: int) -> list[tuple[Destination, bytes]]:
        """What the driver sends validator ``to``, behind at ``start``: stored final blocks
        as their own bytes, within ``to``'s budget, as the node does."""
        def read(height: int) -> bytes | None:
            final = self.ledger.load_final_block(height)
            return None if final is None else encode_final_block(final.block.encode(), final.certificate.encode())

        answer = self.server.answer(to, start, self.ledger.final_height(), now_ms, read)
        return [(self.instances[to], data) for _, data in answer]

    def route(self, message: Message, to: int | None, now_ms: int) -> Sequence[tuple[Destination, Message]]:
        """What actually leaves this node for a Broadcast (``to`` None) or a Send to a
        validator: honest nodes send exactly what the replica said."""
        return ((None if to is None else self.instances[to], message),)

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
