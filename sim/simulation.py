"""One seeded run: a virtual clock, a virtual network and the nodes on it.

Every event (a delivery, a timer, a crash, a restart, a byzantine tick) sits
in one priority queue ordered by virtual time and then by the order it was
scheduled, and every random choice comes from one ``random.Random(seed)``:
the same scenario always produces the same trace hash.

The network delays each message independently (so it reorders), drops and
duplicates some, loses COMMITs more often when the scenario asks for an
adversarial scheduler, and loses everything across a partition while it
lasts. At ``heal_at_ms`` partitions and losses end and every crashed node has
restarted; the checker then expects new heights within the liveness bound.

Each node's mempool follows the scenario's workload (``_pending``); when
transactions reach a node whose mempool was empty, its replica is told, as the
node tells it (``Replica.transactions_arrived``).
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from mura.chain.block import Block, CommitCertificate, Header
from mura.chain.errors import DecodeError
from mura.chain.keys import SignatureCache
from mura.chain.store import VoteStore
from mura.consensus.config import ReplicaConfig
from mura.consensus.evidence import Equivocation
from mura.consensus.messages import BlockRequest, Commit, Message, decode_message, encode_message
from mura.consensus.replica import Replica
from mura.sim import bugs
from mura.sim.bond_checks import bond_figures
from mura.sim.bugs import injected, replica_class_for, vote_store_class_for
from mura.sim.byzantine import EquivocatorNode, GarbageNode, SwapperNode
from mura.sim.checks import Checker, Violation
from mura.sim.ledger import CHAIN_ID, TransactionSigner, make_genesis, payments_per_block, validator_keys
from mura.sim.nodes import Destination, SimNode, SimulatedCrash
from mura.sim.reconfiguration import GovernanceClients, joiner_keys
from mura.sim.scenario import Byzantine, Crash, IdleStretch, Scenario

DELIVER, TIMER, CRASH, CRASH_NOW, RESTART, GARBAGE, HEAL, DEADLINE, ARRIVE = range(9)
GARBAGE_INTERVAL_MS = 40


@dataclass
class RunResult:
    """What one run did and whether it kept every property."""

    scenario: Scenario
    trace_hash: str
    #: Highest height every honest node reached.
    heights: int
    view_changes: int
    violations: list[Violation]
    #: Faults injected, by kind.
    faults: Counter[str] = field(default_factory=Counter)
    #: What the final chain did: its transactions by kind, and ``expired_assets``.
    ledger: Counter[str] = field(default_factory=Counter)
    #: Virtual time from healing to the liveness target (None if not reached).
    recovery_ms: int | None = None
    end_ms: int = 0


class Simulation:
    """The nodes of one scenario on one virtual network."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.now = 0
        self._queue: list[tuple[int, int, int, int, object]] = []
        self._sequence = 0
        self.faults: Counter[str] = Counter()
        self.trace = hashlib.sha256()
        self._decoded: dict[bytes, Message | None] = {}
        keys = validator_keys(scenario.validators) + joiner_keys(scenario.joiners)
        governance = GovernanceClients(keys, scenario.reconfigurations)
        validators = [key.public_key for key in keys[: scenario.validators]]
        self.genesis = make_genesis(validators, seed=scenario.seed, governance=governance)
        honest = frozenset(index for index in range(scenario.members) if index not in scenario.byzantine)
        self.checker = Checker(
            self.genesis,
            honest,
            scenario=scenario,
            validators_at=self._validators_at,
            honest_keys=frozenset(keys[index].public_key for index in honest),
        )
        self.nodes: list[SimNode] = []
        self.garbage: dict[int, GarbageNode] = {}
        self._build_nodes(keys)
        self.healed = False
        #: The highest height an honest node finalized, when, and the longest wait between two.
        self.highest_final = 0
        self.last_progress_ms = 0
        self.longest_stall_ms = 0
        self.liveness_target: int | None = None
        self.recovery_ms: int | None = None
        self.stopped = False
        #: Whether the ledger reads the clock of the node it runs on (an injected bug).
        self.local_clock_bug = scenario.bug == "payment_by_local_clock"

    # --- set-up ---------------------------------------------------------------------

    def _build_nodes(self, keys: tuple) -> None:  # type: ignore[type-arg]
        scenario = self.scenario
        config = ReplicaConfig(
            chain_id=CHAIN_ID,
            base_timeout_ms=scenario.base_timeout_ms,
            max_timeout_ms=scenario.max_timeout_ms,
            proposal_delay_ms=scenario.proposal_delay_ms,
            empty_proposal_delay_ms=scenario.empty_proposal_delay_ms,
        )
        replica_class = replica_class_for(scenario.bug)
        vote_store_class = vote_store_class_for(scenario.bug)
        signer, signatures = TransactionSigner(), SignatureCache()
        instances: dict[bytes, list[int]] = {}
        for node_id, validator in enumerate(scenario.node_validators()):
            kind = scenario.byzantine.get(validator)
            node_class = _NODE_CLASSES.get(kind, SimNode)
            node = node_class(
                node_id=node_id,
                validator=validator,
                key=keys[validator],
                genesis=self.genesis,
                config=config,
                replica_class=Replica if kind is not None else replica_class,
                vote_store_class=VoteStore if kind is not None else vote_store_class,
                skew_ms=self.rng.randrange(0, scenario.max_clock_skew_ms + 1),
                signer=signer,
                signatures=signatures,
                # A joiner's key is new: nothing was ever recorded for it.
                new_record=scenario.new_network or validator >= scenario.validators,
            )
            if isinstance(node, (EquivocatorNode, SwapperNode)):
                node.set_up_attack(random.Random(self.rng.random()))
            if kind is Byzantine.GARBAGE:
                rng = random.Random(self.rng.random())
                self.garbage[node_id] = GarbageNode(
                    node_id=node_id, validator=validator, key=keys[validator], genesis=self.genesis, rng=rng
                )
            node.pending = partial(self._pending, node)
            self.nodes.append(node)
            instances.setdefault(keys[validator].public_key, []).append(node_id)
        frozen = {key: tuple(ids) for key, ids in instances.items()}
        for node in self.nodes:
            node.instances = frozen

    def _validators_at(self, height: int) -> tuple[bytes, ...]:
        """The set that decides ``height`` as the most advanced honest node's chain says
        (every honest chain agrees, or the checker says otherwise)."""
        leader = max(self.honest_nodes(), key=lambda node: node.ledger.final_height())
        return leader.ledger.validators_at(height)

    def member_of(self, key: bytes) -> int:
        """The validator number (genesis order, then joiners) that holds ``key``."""
        node = self._node_of_key(key)
        assert node is not None, "every validator key belongs to a simulated node"
        return node.validator

    def honest_nodes(self) -> list[SimNode]:
        return [node for node in self.nodes if node.validator not in self.scenario.byzantine]

    # --- the event queue ----------------------------------------------------------------

    def schedule(self, at_ms: int, kind: int, node: int, payload: object = None) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (max(at_ms, self.now), self._sequence, kind, node, payload))

    def run(self) -> RunResult:
        with injected(self.scenario.bug), payments_per_block(self.scenario.payments_per_block):
            return self._run()

    def _run(self) -> RunResult:
        self._schedule_faults()
        late = dict(self.scenario.late_starts)
        for node in self.nodes:
            if self.scenario.byzantine.get(node.validator) in (Byzantine.SILENT, Byzantine.GARBAGE):
                continue
            if node.node_id in late:
                self.schedule(late[node.node_id], RESTART, node.node_id)
                continue
            self._boot(node)
        if self.scenario.new_network:
            for node in self.nodes:
                self._links_open(node)
        while self._queue and not self.stopped:
            at, _, event, node_id, payload = heapq.heappop(self._queue)
            self.now = at
            self.trace.update(struct.pack(">qbh", at, event, node_id))
            self._dispatch(event, node_id, payload)
        self.checker.check_validity(self.now)
        honest = self.honest_nodes()
        self.checker.check_stored_chains([node.ledger.final_blocks() for node in honest], self.now)
        states = [(node.node_id, node.ledger.head, node.ledger.state.lattice.root()) for node in honest]
        self.checker.check_node_states(states, self.now)
        if self.scenario.idle:
            view_changes = sum(node.view_changes() for node in self.honest_nodes())
            self.checker.check_idle(self.scenario, view_changes, self.now)
        return self._result()

    def _dispatch(self, kind: int, node_id: int, payload: object) -> None:
        node = self.nodes[node_id]
        if kind == DELIVER:
            self._deliver(node, payload)  # type: ignore[arg-type]
        elif kind == TIMER:
            if node.driver is not None and payload == node.incarnation:
                self._drive(node, node.driver.timeout)
        elif kind == CRASH:
            crash: Crash = payload  # type: ignore[assignment]
            target = self._current_primary() if crash.primary else node
            if target is not None:
                self._arm_crash(target, crash)
        elif kind == CRASH_NOW:
            if node.crash_armed:
                self._crash(node)
        elif kind == RESTART:
            if node.driver is None:
                self._boot(node)
                self._links_open(node)
        elif kind == GARBAGE:
            self._send_garbage(node_id)
        elif kind == HEAL:
            self._heal()
        elif kind == DEADLINE:
            self._check_liveness_deadline()
        elif kind == ARRIVE:
            self._transactions_arrive(node, payload)  # type: ignore[arg-type]

    def _schedule_faults(self) -> None:
        for crash in self.scenario.crashes:
            self.schedule(crash.at_ms, CRASH, crash.node, crash)
        for node_id in self.garbage:
            self.schedule(self.rng.randrange(0, GARBAGE_INTERVAL_MS), GARBAGE, node_id)
        for stretch in self.scenario.idle:
            for node in self.nodes:
                self.schedule(stretch.arrival_at(node.node_id), ARRIVE, node.node_id, stretch)
        self.schedule(self.scenario.heal_at_ms, HEAL, 0)

    # --- the workload ---------------------------------------------------------------------

    def _pending(self, node: SimNode) -> bool:
        """Whether ``node``'s mempool holds transactions now: not from the moment a block
        proposed in an idle stretch is final there (it took whatever was left) until
        transactions reach the node again after the stretch."""
        for stretch in self.scenario.idle:
            if stretch.start_ms <= self.now < stretch.arrival_at(node.node_id):
                return not self._drains(node.ledger.head, stretch)
        return True

    def _drains(self, header: Header, stretch: IdleStretch) -> bool:
        """Whether the block of ``header`` was proposed within ``stretch`` (its time, less
        its proposer's clock offset, is virtual time)."""
        proposer = self._node_of_key(header.proposer) if header.height > 0 else None
        return proposer is not None and header.timestamp_ms - proposer.skew_ms >= stretch.start_ms

    def _transactions_arrive(self, node: SimNode, stretch: IdleStretch) -> None:
        """Transactions reach ``node`` after ``stretch``: its replica hears of it if its
        mempool was empty, as a node's does."""
        if node.driver is not None and self._drains(node.ledger.head, stretch):
            self._drive(node, node.driver.transactions_arrived)

    def _current_primary(self) -> SimNode | None:
        """The node of the primary of the view the most advanced honest node is in."""
        running = [node for node in self.honest_nodes() if node.replica is not None]
        if not running:
            return None
        ahead = max(running, key=lambda node: (node.ledger.final_height(), node.replica.view if node.replica else 0))
        assert ahead.replica is not None
        return self._node_of_key(ahead.replica.validators.keys[ahead.replica.validators.primary(ahead.replica.view)])

    def _node_of_key(self, key: bytes) -> SimNode | None:
        """The (first) node that holds validator key ``key``."""
        return next((node for node in self.nodes if node.key.public_key == key), None)

    # --- nodes ------------------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        """(Re)start ``node``: a replica and the node's driver over this simulation."""
        ports = NodePorts(self, node)
        driver = node.boot(clock=ports, transport=ports, reports=ports)
        self._drive(node, driver.start)

    def _drive(self, node: SimNode, event: Callable[..., None], *arguments: object) -> None:
        """Hand ``node``'s driver one event; an armed crash may strike inside it, in the
        middle of its actions (see ``SimNode.step``)."""
        if self.local_clock_bug:
            bugs.local_clock_ms = node.clock(self.now)
        try:
            event(*arguments)
        except SimulatedCrash:
            self._crash(node)
        finally:
            bugs.local_clock_ms = None

    def _block_final(self, node: SimNode, block: Block, certificate: CommitCertificate) -> None:
        for destination, data in node.after_commit(block, certificate):
            self._transmit_bytes(node, destination, data)
        honest = node.validator not in self.scenario.byzantine
        self.checker.on_commit(node.node_id, honest, block, certificate, self.now)
        if honest and not self.healed:
            self._note_progress(block.height)
        self.trace.update(block.hash)
        if self.checker.violations:
            self.stopped = True
            return
        self._check_liveness_target()

    def _note_progress(self, height: int) -> None:
        """The first honest commit of each height, during the fault phase: the longest wait
        between two must stay within ``max_stall_ms`` when the scenario owes it."""
        if height <= self.highest_final:
            return
        stall = self.now - self.last_progress_ms
        self.highest_final, self.last_progress_ms = height, self.now
        self.longest_stall_ms = max(self.longest_stall_ms, stall)
        bound = self.scenario.max_stall_ms
        if bound is not None and stall > bound:
            self.checker.fail(
                "stall", self.now, f"{stall} ms without a new final height before height {height}, bound {bound} ms"
            )

    def _arm_crash(self, node: SimNode, crash: Crash) -> None:
        """Crash within the node's next few actions, or soon if it stays idle."""
        if node.replica is None or node.crash_armed:
            return
        node.crash_armed = True
        node.strike_after = self.rng.randrange(3)
        node.down_ms = crash.down_ms
        node.wipe_on_crash = crash.wipe or crash.lose_record
        node.lose_record_on_crash = crash.lose_record
        self.schedule(self.now + self.rng.randrange(1, 200), CRASH_NOW, node.node_id)

    def _links_open(self, node: SimNode) -> None:
        """``node`` has (re)started: its links to every running node open, and each side
        sends the other what it may have missed, as the node does on a link's opening."""
        for other in self.nodes:
            if other is node or other.driver is None or node.driver is None or other.validator == node.validator:
                continue
            index = other.driver.replica.validators.indexes.get(node.key.public_key)
            if index is not None:
                self._drive(other, other.driver.peer_connected, index)
            index = None if node.driver is None else node.driver.replica.validators.indexes.get(other.key.public_key)
            if node.driver is not None and index is not None:
                self._drive(node, node.driver.peer_connected, index)

    def _crash(self, node: SimNode) -> None:
        self.faults["crashes"] += 1
        if node.wipe_on_crash:
            self.faults["wipes"] += 1
        if node.lose_record_on_crash:
            self.faults["records_lost"] += 1
        node.crash()
        self.faults["votes_lost"] = sum(other.lost_votes for other in self.nodes)
        self.schedule(self.now + node.down_ms, RESTART, node.node_id)

    def _deliver(self, node: SimNode, payload: tuple[int, bytes]) -> None:
        """Bytes from node ``source`` reach ``node``: decoded as a node decodes them (blocks
        unchecked), and handed to the replica with the validator that delivered them."""
        source, data = payload
        if node.driver is None:
            return
        # The validator that delivered them, by its place in the set of this node's height.
        origin = node.driver.replica.validators.indexes.get(self.nodes[source].key.public_key)
        message = self._decode(data)
        if isinstance(message, BlockRequest) and (message.requester is None or origin is None):
            # From a node that is no validator at its height: answered by the link it came
            # by, off the replica's path, as the node answers it.
            for destination, answer in node.serve_node((source,), message.height, self.now):
                self._transmit_bytes(node, destination, answer)
            return
        if message is None:
            self._drive(node, partial(node.driver.receive_bytes, data, origin=origin))
            return
        for destination, extra in node.observe(message, self.now):
            self._transmit(node, destination, extra)
        if node.driver is not None:
            self._drive(node, partial(node.driver.receive, message, origin=origin))

    def _decode(self, data: bytes) -> Message | None:
        if data not in self._decoded:
            try:
                self._decoded[data] = decode_message(data)
            except DecodeError:
                self._decoded[data] = None
        return self._decoded[data]

    # --- the network ----------------------------------------------------------------------------

    def _emit(self, node: SimNode, message: Message, to: int | None) -> None:
        for destination, routed in node.route(message, to, self.now):
            self._transmit(node, destination, routed)

    def _transmit(self, node: SimNode, destination: Destination, message: Message) -> None:
        if node.validator not in self.scenario.byzantine:
            self.checker.on_signed(message, self.now)
        self._transmit_bytes(node, destination, encode_message(message), loss=self._loss(message))

    def _transmit_bytes(
        self, node: SimNode, destination: Destination, data: bytes, *, loss: float | None = None
    ) -> None:
        """Send encoded bytes; receivers decode them afresh (a byzantine node's bytes need
        not be what any honest encoder would produce)."""
        targets = [other.node_id for other in self.nodes if other is not node] if destination is None else destination
        loss = self._loss(None) if loss is None else loss
        for target in targets:
            self._send_bytes(node.node_id, target, data, loss)

    def _loss(self, message: Message | None) -> float:
        if self.healed:
            return 0.0
        until = self.scenario.commit_loss_until_ms
        lasting = self.scenario.commit_loss_from_ms <= self.now and (until is None or self.now < until)
        commit_loss = self.scenario.commit_loss if lasting else 0.0
        extra = commit_loss if isinstance(message, Commit) else 0.0
        return 1 - (1 - self.scenario.drop_rate) * (1 - extra)

    def _send_bytes(self, source: int, target: int, data: bytes, loss: float) -> None:
        if target == source:
            return
        if self._partitioned(source, target):
            self.faults["partitioned_messages"] += 1
            return
        if loss and self.rng.random() < loss:
            self.faults["dropped_messages"] += 1
            return
        copies = 1
        if self.scenario.duplicate_rate and self.rng.random() < self.scenario.duplicate_rate:
            self.faults["duplicated_messages"] += 1
            copies = 2
        for _ in range(copies):
            delay = self.rng.randint(self.scenario.min_delay_ms, self.scenario.max_delay_ms)
            self.schedule(self.now + delay, DELIVER, target, (source, data))
        self.trace.update(struct.pack(">hhI", source, target, zlib.crc32(data)))

    def _partitioned(self, source: int, target: int) -> bool:
        for cut in self.scenario.link_cuts:
            if cut.start_ms <= self.now < cut.end_ms and (cut.source, cut.target) == (source, target):
                return True
        for partition in self.scenario.partitions:
            if partition.start_ms <= self.now < partition.end_ms and (
                (source in partition.side) != (target in partition.side)
            ):
                return True
        return False

    def _send_garbage(self, node_id: int) -> None:
        leader = max(self.honest_nodes(), key=lambda node: node.ledger.final_height())
        data = self.garbage[node_id].garbage(leader.ledger.final_height() + 1, leader.ledger.head)
        self.faults["garbage_messages"] += 1
        for target in range(len(self.nodes)):
            self._send_bytes(node_id, target, data, 0.0)
        self.schedule(self.now + self.rng.randrange(1, 2 * GARBAGE_INTERVAL_MS), GARBAGE, node_id)

    # --- healing and liveness ---------------------------------------------------------------------

    def _heal(self) -> None:
        """Partitions and losses end; crashed nodes are back; progress is now owed."""
        self.healed = True
        for node in self.nodes:
            if node.driver is None and node.incarnation > 0:
                self._boot(node)
        reached = max(node.ledger.final_height() for node in self.honest_nodes())
        self.liveness_target = reached + 2
        self.schedule(self.now + self.scenario.liveness_bound_ms, DEADLINE, 0)
        self._check_liveness_target()

    def _check_liveness_target(self) -> None:
        if self.liveness_target is None or self.recovery_ms is not None:
            return
        if all(node.ledger.final_height() >= self.liveness_target for node in self.honest_nodes()):
            self.recovery_ms = self.now - self.scenario.heal_at_ms
            self.stopped = True

    def _check_liveness_deadline(self) -> None:
        if self.recovery_ms is None:
            heights = [node.ledger.final_height() for node in self.honest_nodes()]
            self.checker.fail(
                "liveness",
                self.now,
                f"honest heights {heights} short of {self.liveness_target} "
                f"{self.scenario.liveness_bound_ms} ms after healing",
            )
            self.stopped = True

    def _result(self) -> RunResult:
        faults = self.faults.copy()
        for kind in self.scenario.byzantine.values():
            faults[f"byzantine_{kind.value}"] += 1
        faults["partitions"] += len(self.scenario.partitions)
        faults["link_cuts"] += len(self.scenario.link_cuts)
        honest = self.honest_nodes()
        return RunResult(
            scenario=self.scenario,
            trace_hash=self.trace.hexdigest(),
            heights=min(node.ledger.final_height() for node in honest),
            view_changes=sum(node.view_changes() for node in honest),
            violations=list(self.checker.violations),
            faults=faults,
            ledger=self._ledger(),
            recovery_ms=self.recovery_ms,
            end_ms=self.now,
        )

    def _ledger(self) -> Counter[str]:
        """The final chain's transactions by kind, how many assets expired in it, and what the
        chain paid on bonds: payments made (late ones, redemptions), and payments spread over
        more than one block."""
        ledger = Counter(
            transaction.kind for block in self.checker.blocks.values() for transaction in block.transactions
        )
        state = self.checker.final_state
        if state is not None:
            ledger["expired_assets"] = sum(state.load_asset_state(asset).expired for asset in state.assets())
            ledger.update(bond_figures(state, self.checker.bond_audit))
        return ledger


class NodePorts:
    """One node's clock, network and reports in the simulation: what the node's driver
    runs on here (``Clock``, ``Transport`` and ``Reports`` of ``mura.consensus.driver``)."""

    def __init__(self, simulation: Simulation, node: SimNode) -> None:
        self.simulation = simulation
        self.node = node
        self.incarnation = node.incarnation

    def now_ms(self) -> int:
        return self.node.clock(self.simulation.now)

    def schedule(self, at_ms: int) -> None:
        self.simulation.schedule(at_ms - self.node.skew_ms, TIMER, self.node.node_id, self.incarnation)

    def broadcast(self, message: Message) -> None:
        self.node.step()
        self.simulation._emit(self.node, message, None)

    def send(self, validator: int, message: Message) -> None:
        self.node.step()
        self.simulation._emit(self.node, message, validator)

    def relay(self, message: Message, exclude: frozenset[int]) -> None:
        self.node.step()
        simulation = self.simulation
        excluded = {self.node.validator_key(index) for index in exclude}
        targets = tuple(
            other.node_id
            for other in simulation.nodes
            if other is not self.node and other.key.public_key not in excluded
        )
        simulation._transmit(self.node, targets, message)
        simulation.faults["relayed_messages"] += len(targets)

    def serve_blocks(self, validator: int, from_height: int) -> None:
        self.node.step()
        for destination, data in self.node.serve(validator, from_height, self.simulation.now):
            self.simulation._transmit_bytes(self.node, destination, data)

    def penalize(self, validator: int, rule: str) -> None:
        simulation = self.simulation
        simulation.faults["misbehaviour_reported"] += 1
        honest = self.node.validator not in simulation.scenario.byzantine
        culprit = simulation.member_of(self.node.validator_key(validator))
        simulation.checker.on_misbehaviour(self.node.validator, honest, culprit, rule, simulation.now)

    def block_final(self, block: Block, certificate: CommitCertificate) -> None:
        self.simulation._block_final(self.node, block, certificate)

    def equivocation(self, evidence: Equivocation) -> None:
        self.simulation.faults["equivocations_reported"] += 1

    def signing_guard_saved(self, until_height: int, from_view: int) -> None:
        return None


_NODE_CLASSES: dict[Byzantine | None, type[SimNode]] = {
    Byzantine.EQUIVOCATOR: EquivocatorNode,
    Byzantine.SWAPPER: SwapperNode,
}


def run_scenario(scenario: Scenario, *, check_certificates: bool = True) -> RunResult:
    """Run ``scenario``; with ``check_certificates`` False, a bad certificate on an honest
    commit is not itself a violation (to measure how soon a bug forks the chain)."""
    simulation = Simulation(scenario)
    simulation.checker.check_certificates = check_certificates
    return simulation.run()
