"""The composition root: config -> store -> application -> replica -> p2p -> rpc.

``python node.py --config node.toml`` (or ``python -m mura.node``) runs one
validator until SIGINT or SIGTERM. Everything the node does is decided by the
packages it wires together; this module owns only configuration, logging,
the order things start and stop in, and the execution of the replica's
actions over asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import plyvel

from mura.chain import codec
from mura.chain.block import Block, CommitCertificate, quorum_size
from mura.chain.drops import Dropped
from mura.chain.errors import BadSignature, Invalid, NonPositiveAmount, NotAnIssuer, ReplacementTooSoon, WrongChainId
from mura.chain.keys import SignatureCache, load_key
from mura.chain.mempool import Mempool
from mura.chain.state import BuiltBlock, ChainRules, StateChanges, apply_block, build_block
from mura.chain.store import Store, StoreError, VoteStore
from mura.chain.transaction import Transaction
from mura.chain.verify import SignatureVerifier
from mura.config import (
    SETTINGS,
    ConfigError,
    NodeConfig,
    argument_parser,
    check_listen_addresses,
    listen_problem,
    load_config,
    parse_peer,
)
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
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import (
    BlockRequest,
    FinalBlock,
    Message,
    Tag,
    decode_message,
    encode_message,
    message_tag,
)
from mura.consensus.replica import Replica
from mura.consensus.serving import BlockServer
from mura.consensus.votes import RecordedVote, SigningGuard
from mura.genesis.format import genesis_block, load_genesis
from mura.logs import configure_logging
from mura.p2p.block_service import BlockService
from mura.p2p.connections import raise_open_file_limit
from mura.p2p.gossip import DEFAULT_MAX_BATCH, StalledRuns, TransactionGossip, decode_transaction_batch
from mura.p2p.inbox import ConsensusInbox, GossipBudget
from mura.p2p.network import Network
from mura.p2p.read_gate import UnsupportedAiohttp
from mura.p2p.settings import NetworkLimits, PeerAddress
from mura.progress_log import (
    ProgressLog,
    consensus_facts,
    missing_validators,
    view_change_at_new_height,
    view_change_reason,
)
from mura.rpc.cors import CorsPolicy
from mura.rpc.finality import FinalityWatch
from mura.rpc.methods import API_DESCRIPTION, node_methods
from mura.rpc.metrics import Metrics
from mura.rpc.node_view import ChainInfo, NodeStatus, TokenInfo, read_figures, read_sync_facts
from mura.rpc.readiness import ReadinessPolicy
from mura.rpc.server import RpcLimits, RpcServer

LOG = logging.getLogger("mura.node")


# --- the application consensus orders blocks for ---------------------------------------


class LedgerApplication:
    """``consensus.Application`` over the LevelDB store and the mempool."""

    def __init__(
        self,
        *,
        store: Store,
        mempool: Mempool,
        rules: ChainRules,
        verifier: SignatureVerifier,
        max_proposal_transactions: int | None = None,
        verify_certified_signatures: bool = False,
    ) -> None:
        self.store = store
        self.mempool = mempool
        self.rules = rules
        self.verifier = verifier
        self.signatures = verifier.cache
        self.max_proposal_transactions = min(
            rules.max_block_transactions, max_proposal_transactions or rules.max_block_transactions
        )
        self.verify_certified_signatures = verify_certified_signatures

    def final_height(self) -> int:
        return self.store.height

    def load_final_block(self, height: int) -> FinalBlock | None:
        block = self.store.load_block(height)
        certificate = self.store.load_certificate(height)
        return None if block is None or certificate is None else FinalBlock(block, certificate)

    def load_certificate(self, height: int) -> CommitCertificate | None:
        return self.store.load_certificate(height)

    def build_proposal(self, height: int, *, proposer: bytes, timestamp_ms: int) -> BuiltBlock:
        candidates = self.mempool.select(
            self.store, max_transactions=self.max_proposal_transactions, max_bytes=self.rules.max_block_bytes
        )
        built = build_block(
            self.store,
            self.store.head,
            candidates,
            proposer=proposer,
            timestamp_ms=timestamp_ms,
            rules=self.rules,
            signatures=self.signatures,
        )
        # A refused candidate can never apply on this state (its nonce is next in line):
        # it is dropped with the rule that refused it.
        self.mempool.drop_refused(built.refused)
        return built

    def has_pending_transactions(self) -> bool:
        # Ready ones only: a transaction behind a nonce gap waits for its sender, not for a block.
        return len(self.mempool) > 0 and self.mempool.has_ready(self.store)

    def has_full_block(self) -> bool:
        return len(self.mempool) >= self.max_proposal_transactions

    def validate_block(self, block: Block, *, certified: bool = False) -> StateChanges:
        # A certified block's signatures were checked by the quorum that committed it
        # (sync.verify_signatures checks them anyway).
        verify = not certified or self.verify_certified_signatures
        if verify:
            # Signatures gossip did not bring (catch-up, a proposal that raced its gossip)
            # are verified on every core first; a bad one is refused by apply_block itself.
            self.verifier.verify(block.transactions)
        return apply_block(
            self.store, self.store.head, block, rules=self.rules, signatures=self.signatures, verify_signatures=verify
        )


# --- the node ---------------------------------------------------------------------------


CONSENSUS_KIND = "consensus"
TRANSACTIONS_KIND = "transactions"
#: A peer whose link opens is offered up to this many pending transactions (each
#: sender's run of ready nonces, at most ``MAX_OFFERED_RUN`` of it), in gossip frames.
MAX_OFFERED_TRANSACTIONS = 2_000
MAX_OFFERED_RUN = 256
#: Refusals of gossiped transactions that no honest node forwards: it checks these rules
#: before it admits a transaction, whatever the state (signatures and bytes are checked
#: apart). Anything else may be refused here because this node's state differs.
GOSSIP_REFUSALS_FOR_CAUSE = (WrongChainId, NonPositiveAmount, NotAnIssuer)
#: Seconds between checks for a stalled chain (and the periodic log lines).
PROGRESS_CHECK_SECONDS = 1.0


class InvalidMessageSender(Invalid):
    """A consensus message whose claimed sender is not the peer that sent it."""

    rule = "invalid_message_sender"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StoredVotes:
    """The replica's ``VoteReader`` over the validator's ``VoteStore``."""

    def __init__(self, store: VoteStore) -> None:
        self.store = store

    def load_votes(self, height: int) -> list[RecordedVote]:
        return [RecordedVote.decode(vote) for vote in self.store.load_votes(height)]

    def highest_height(self) -> int:
        return self.store.highest_height()

    def signing_guard(self) -> SigningGuard:
        pending, until_height, from_view = self.store.load_guard()
        return SigningGuard(pending=pending, until_height=until_height, from_view=from_view)

    def carry_over(self, chain: Store) -> int:
        """A new record over chain data an earlier version kept its votes in: the votes at
        the height in progress are moved into it, and it then holds what its validator
        signed (no check, even when there were none: the old record was complete)."""
        height = chain.height + 1
        votes = chain.load_votes(height)
        for vote in votes:
            self.store.save_vote(height, vote)
        self.store.save_guard(0)
        return len(votes)


class Node:
    """One validator: store, mempool, replica, peer network and RPC, started in that order."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        try:
            self.genesis = load_genesis(config.path("genesis_file"))
            self.key = load_key(config.path("key_file"))
        except Invalid as error:
            raise ConfigError(error.message) from None
        self.validators = self.genesis.validator_keys()
        self._validator_index = {key: index for index, key in enumerate(self.validators)}
        if self.key.public_key not in self.validators:
            raise ConfigError(f"key_file: {config.path('key_file')} is not the key of a validator in the genesis")
        self.name = self.genesis.validators[self.validators.index(self.key.public_key)].name
        self._names = [validator.name for validator in self.genesis.validators]
        self.rules = self.genesis.rules()
        if config["consensus.max_block_transactions"] > self.rules.max_block_transactions:
            raise ConfigError(
                f"setting consensus.max_block_transactions: {config['consensus.max_block_transactions']} "
                f"is above the genesis limit of {self.rules.max_block_transactions}"
            )
        self.address_prefix = self.genesis.address_prefix
        token = self.genesis.token
        self.chain_info = ChainInfo(
            chain_id=self.genesis.chain_id,
            address_prefix=self.address_prefix,
            token=TokenInfo(token.name, token.symbol, token.decimals),
            validator_names={validator.public_key: validator.name for validator in self.genesis.validators},
        )
        #: Told of every final block, so that tx_wait calls wake without polling.
        self.finality = FinalityWatch()
        #: This node's Prometheus registry, served on the RPC's /metrics.
        self.metrics = Metrics()
        self._store: Store | None = None
        self._votes: VoteStore | None = None
        self.verifier: SignatureVerifier | None = None
        self.replica: Replica | None = None
        self.network: Network | None = None
        self.gossip: TransactionGossip | None = None
        self.rpc: RpcServer | None = None
        # Unbounded for the node's own events (timeouts must never be lost); peer messages
        # are bounded in all and per peer by ``inbox`` (see ``mura.p2p.inbox``).
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.inbox = ConsensusInbox()
        #: Gossiped transactions each peer may have this node look at.
        self.gossip_budget = GossipBudget()
        self._consensus_task: asyncio.Task[None] | None = None
        self._rebroadcast_task: asyncio.Task[None] | None = None
        self._progress_task: asyncio.Task[None] | None = None
        #: What the operator reads about progress (see ``mura.progress_log``); made by ``start()``.
        self.progress: ProgressLog | None = None
        #: The view of the last certificate this node committed.
        self._certified_view = 0
        #: Pending transactions being offered to peers whose links just opened, by validator.
        self._offers: dict[int, asyncio.Task[None]] = {}
        #: When each validator was last sent what it may have missed (link opened).
        self._last_offered: dict[int, float] = {}
        #: Final blocks being served to validators that are behind, by validator.
        self._serving: dict[int, asyncio.Task[int]] = {}
        # A stalled sender's whole backlog may be behind one lost frame: send enough of its run
        # to drain it well faster than a busy sender adds to it.
        self.stalled = StalledRuns(
            after=config["mempool.rebroadcast_after_ms"] / 1000, max_run=MAX_OFFERED_RUN, max_transactions=5_000
        )
        self._timers: dict[int, asyncio.TimerHandle] = {}
        #: Equivocations this node saw, newest last (bounded like the replica's).
        self.evidence: deque[Any] = deque(maxlen=1_024)
        #: Equivocations counted per (validator, height), for the log.
        self._equivocations: dict[tuple[int, int], int] = {}
        #: Senders whose replacement of a pending transaction is being verified (RPC).
        self._replacing: set[bytes] = set()
        #: The height at which arriving transactions last woke the replica (see ``_after_admission``).
        self._woken_at_height = -1
        self._stop_requested = asyncio.Event()
        self._stopped = False

    @property
    def votes(self) -> VoteStore:
        """The validator's vote record; there is none before ``start()``."""
        if self._votes is None:
            raise RuntimeError("the node is not started")
        return self._votes

    @property
    def store(self) -> Store:
        """The node's store; there is none before ``start()``."""
        if self._store is None:
            raise RuntimeError("the node is not started")
        return self._store

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        genesis, changes = genesis_block(self.genesis)
        try:
            self._store = Store(self.config.path("data_dir"))
            self.store.initialize(genesis, changes)
        except StoreError as error:
            raise ConfigError(f"data_dir: {error}") from None
        # Room for every pending transaction and two full blocks beyond them.
        self.signatures = SignatureCache(
            capacity=self.config["mempool.max_transactions"] + 2 * self.rules.max_block_transactions
        )
        self.verifier = SignatureVerifier(self.signatures)
        self.mempool = Mempool(
            rules=self.rules,
            signatures=self.signatures,
            max_transactions=self.config["mempool.max_transactions"],
            max_bytes=self.config["mempool.max_bytes"],
            expire_after=self.config["mempool.expire_after_seconds"],
            on_drop=self._transactions_dropped,
        )
        application = LedgerApplication(
            store=self.store,
            mempool=self.mempool,
            rules=self.rules,
            verifier=self.verifier,
            max_proposal_transactions=self.config["consensus.max_block_transactions"],
            verify_certified_signatures=self.config["sync.verify_signatures"],
        )
        votes = self._open_vote_record(genesis.hash)
        self.replica = Replica(
            key=self.key,
            validators=self.validators,
            application=application,
            config=self._replica_config(),
            vote_record=votes,
        )
        LOG.info(
            "starting %s at height %d (head %s); vote record %s, highest height voted %d",
            self.name, self.store.height, self.store.head.hash.hex()[:16], votes.store.path, votes.highest_height(),
        )
        self._start_progress_log()
        if self.replica.guard.pending:
            LOG.warning(
                "the vote record is new (a key on a new machine, or a record lost): this validator signs nothing "
                "until it has heard where the network stands, and then nothing for %d heights more, in case it "
                "voted there before (consensus.double_sign_check_heights)",
                self.config["consensus.double_sign_check_heights"],
            )
        await self._start_network(genesis.hash)
        await self._start_rpc()
        self._consensus_task = asyncio.create_task(self._run_consensus(), name="consensus")
        self._rebroadcast_task = asyncio.create_task(self._rebroadcast_stalled(), name="rebroadcast")
        self._progress_task = asyncio.create_task(self._watch_progress(), name="progress")
        self._events.put_nowait(("start", None))

    def _open_vote_record(self, genesis_hash: bytes) -> StoredVotes:
        try:
            self._votes = VoteStore(self.config.vote_record_path(), chain=genesis_hash, validator=self.key.public_key)
        except StoreError as error:
            raise ConfigError(f"vote_record: {error}") from None
        votes = StoredVotes(self._votes)
        if self._votes.new and self.store.kept_votes:
            carried = votes.carry_over(self.store)
            LOG.info("the vote record now lives apart from the chain's data (%d votes carried over)", carried)
        # From now on a new record over this data means the record was lost: it is checked.
        self.store.votes_moved()
        return votes

    def _replica_config(self) -> ReplicaConfig:
        try:
            return ReplicaConfig(
                chain_id=self.rules.chain_id,
                base_timeout_ms=self.config["consensus.base_timeout_ms"],
                max_timeout_ms=self.config["consensus.max_timeout_ms"],
                proposal_delay_ms=self.config["consensus.block_interval_ms"],
                empty_proposal_delay_ms=self.config["consensus.empty_block_interval_ms"],
                double_sign_check_heights=self.config["consensus.double_sign_check_heights"],
            )
        except ValueError as error:
            raise ConfigError(f"settings consensus.*: {error}") from None

    async def _start_network(self, genesis_hash: bytes) -> None:
        host, port = NodeConfig.split_address(self.config["p2p.listen"])
        if self.config["p2p.peers"]:
            peers = [parse_peer(text) for text in self.config["p2p.peers"]]
        else:
            peers = [
                PeerAddress(validator.public_key, *NodeConfig.split_address(validator.peer_address))
                for validator in self.genesis.validators
                if validator.public_key != self.key.public_key
            ]
        observers = [bytes.fromhex(key) for key in self.config["p2p.observers"]]
        self.network = Network(
            key=self.key,
            chain_id=self.rules.chain_id,
            genesis_hash=genesis_hash,
            listen_host=host,
            listen_port=port,
            peers=peers,
            admitted=[*self.validators, *observers],
            handlers={CONSENSUS_KIND: self._on_consensus_frame, TRANSACTIONS_KIND: self._on_transactions_frame},
            on_peer_change=self._on_peer_change,
            limits=self._network_limits(),
        )
        try:
            await self.network.start()
        except UnsupportedAiohttp as error:
            raise ConfigError(str(error)) from None
        except OSError as error:
            raise ConfigError(listen_problem("p2p.listen", host, port, error)) from None
        network = self.network

        async def send(peer: bytes, data: bytes) -> bool:
            return await network.send(peer, CONSENSUS_KIND, data)

        self.block_service = BlockService(source=self.store, send=send, server=BlockServer())
        self.gossip = TransactionGossip(self.network, kind=TRANSACTIONS_KIND)
        await self.gossip.start()

    def _network_limits(self) -> NetworkLimits:
        pending = self.config["p2p.max_pending_handshakes"]
        try:
            return NetworkLimits(
                max_frame_size=self.config["p2p.max_frame_bytes"],
                max_pending_handshakes=pending,
                max_handshakes_per_source=min(self.config["p2p.max_handshakes_per_source"], pending),
                reserved_peer_handshakes=pending // 2,
                max_connections_per_source=self.config["p2p.max_connections_per_source"],
            )
        except ValueError as error:
            raise ConfigError(f"settings p2p.*: {error}") from None

    async def _start_rpc(self) -> None:
        host, port = NodeConfig.split_address(self.config["rpc.listen"])
        self.metrics.watch(lambda: read_figures(self))
        self.rpc = RpcServer(
            host=host,
            port=port,
            methods=node_methods(self, max_wait_seconds=self.config["rpc.max_wait_seconds"]),
            sync_facts=lambda: read_sync_facts(self),
            # Ready by default once linked to enough validators to reach a quorum with this one.
            readiness=ReadinessPolicy(min_peers=quorum_size(len(self.validators)) - 1, max_behind=2),
            metrics=self.metrics,
            description=API_DESCRIPTION,
            limits=RpcLimits(
                max_body_bytes=self.config["rpc.max_body_bytes"],
                max_batch_length=self.config["rpc.max_batch"],
                body_timeout_seconds=self.config["rpc.body_timeout_seconds"],
                max_waiting=self.config["rpc.max_waiting"],
                header_timeout_seconds=self.config["rpc.header_timeout_seconds"],
                max_connections_per_source=self.config["rpc.max_connections_per_source"],
            ),
            cors=CorsPolicy.of(self.config["rpc.cors_origins"]),
        )
        try:
            await self.rpc.start()
        except OSError as error:
            raise ConfigError(listen_problem("rpc.listen", host, port, error)) from None
        LOG.info("serving JSON-RPC on %s:%d and peers on %s", host, self.rpc.port, self.config["p2p.listen"])

    async def stop(self) -> None:
        """Stop RPC, consensus, gossip and the network, then close the store; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.finality.close()
        if self.rpc is not None:
            await self.rpc.stop()
        tasks = (self._consensus_task, self._rebroadcast_task, self._progress_task)
        for task in (*tasks, *self._offers.values(), *self._serving.values()):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.gossip is not None:
            await self.gossip.stop()
        if self.network is not None:
            await self.network.stop()
        if self._store is not None:
            self._store.close()
        if self._votes is not None:
            self._votes.close()
        if self.verifier is not None:
            await self.verifier.stop()
        if self.progress is not None:
            self.progress.flush()
            # What the last minute's drop line held back.
            summary = self.mempool.drop_summary(now=math.inf)
            if summary is not None:
                LOG.info("%s", summary)
        LOG.info("stopped")

    # --- consensus: one task executes the replica's actions in order ---------------------

    async def _run_consensus(self) -> None:
        while True:
            # ``get`` does not suspend while events are queued: without this a full queue
            # would run back to back and starve RPC, links and their heartbeats.
            await asyncio.sleep(0)
            event, argument = await self._events.get()
            replica = self._replica
            now = now_ms()
            height, view = replica.height, replica.view
            try:
                if event == "message":
                    peer, message, size = argument
                    self.inbox.release(peer, size)
                    actions = replica.receive(message, now, origin=self._validator_index.get(peer))
                elif event == "peer":
                    actions = replica.peer_connected(argument, now)
                elif event == "timeout":
                    actions = replica.timeout(now)
                elif event == "transactions":
                    actions = replica.transactions_arrived(now)
                else:
                    actions = replica.start(now)
                if replica.height == height and replica.view > view:
                    message = argument[1] if event == "message" else None
                    self._log_view_change(view, view_change_reason(replica, self._names, event, message))
                await self._execute(actions)
                if replica.height > height:
                    self._log_view_at_new_height(view)
            except asyncio.CancelledError:
                raise
            except (StoreError, plyvel.Error) as error:
                # A disk full or failing: what the operator must fix, in one line.
                LOG.critical("consensus stopped: the chain's data or the vote record could not be written: %s", error)
                self._stop_requested.set()
                return
            except Exception:
                # A bug here must not pass silently, nor leave a half-applied block behind.
                LOG.critical("consensus failed; stopping the node", exc_info=True)
                self._stop_requested.set()
                return

    def _log_view_change(self, before: int, reason: str) -> None:
        """One line for the replica's move from view ``before`` to the one it is in now."""
        replica = self._replica
        assert self.progress is not None
        self.progress.view_changed(
            time.monotonic(), height=replica.height, before=before, after=replica.view, reason=reason,
            primary=self._names[replica.view % len(self.validators)],
        )

    def _log_view_at_new_height(self, previous_view: int) -> None:
        """A view the replica did not change to itself at its old height (not while catching
        up, where it would be a line per block)."""
        assert self.progress is not None
        change = view_change_at_new_height(self._replica, previous_view, self._certified_view)
        if change is not None and not self.progress.catching_up:
            self._log_view_change(*change)

    def _start_progress_log(self) -> None:
        """Begin the operator's account of progress; a replica that resumes a view it voted in
        before a restart has changed views, and says so."""
        replica = self._replica
        base_ms = self.config["consensus.base_timeout_ms"]
        self.progress = ProgressLog(
            quorum=quorum_size(len(self.validators)),
            stall_after=(self.config["consensus.empty_block_interval_ms"] + 2 * base_ms) / 1000,
            view_change_limit=2 * base_ms / 1000,
            now=time.monotonic(),
        )
        certificate = self.store.load_certificate(self.store.height) if self.store.height > 0 else None
        self._certified_view = 0 if certificate is None else certificate.view
        if replica.view != self._certified_view or not replica.active:
            self._log_view_change(self._certified_view, "restart: resuming the view this validator last voted in here")

    async def _watch_progress(self) -> None:
        """Check for a stalled chain about once a second (see ``mura.progress_log``)."""
        assert self.progress is not None
        while True:
            await asyncio.sleep(PROGRESS_CHECK_SECONDS)
            assert self.network is not None
            connected = set(self.network.connected_peers())
            facts = consensus_facts(self._replica, self._names, connected, final_height=self.store.height)
            self.progress.check(time.monotonic(), facts)

    @property
    def _replica(self) -> Replica:
        assert self.replica is not None
        return self.replica

    async def _execute(self, actions: list[Action]) -> None:
        assert self.network is not None
        for action in actions:
            if isinstance(action, PersistVote):
                self.votes.save_vote(action.vote.height, action.vote.encode())
            elif isinstance(action, (Broadcast, Send)):
                await self._send(action)
            elif isinstance(action, CommitBlock):
                self._commit(action)
                await self._execute(self._replica.committed(now_ms()))
            elif isinstance(action, ScheduleTimeout):
                self._schedule(action.at_ms)
            elif isinstance(action, PruneVotes):
                self.votes.prune_votes(action.below_height)
            elif isinstance(action, ReportEquivocation):
                self._report_equivocation(action)
            elif isinstance(action, Relay):
                await self._send(action)
            elif isinstance(action, ServeBlocks):
                self._serve_soon(action.to, action.from_height)
            elif isinstance(action, PersistGuard):
                self.votes.save_guard(action.until_height, action.from_view)
                if action.until_height:
                    LOG.warning(
                        "double-sign check: the network works on height %d or so; signing nothing up to height %d",
                        max(1, action.until_height - self.config["consensus.double_sign_check_heights"] + 1),
                        action.until_height,
                    )
                elif action.from_view:
                    LOG.warning(
                        "double-sign check: the network is at its first height and others have signed there; "
                        "signing nothing there before view %d",
                        action.from_view,
                    )
                else:
                    LOG.info("double-sign check: a new network where nobody has signed yet; signing from now on")
            elif isinstance(action, Misbehaviour):
                self.network.penalize(self.validators[action.validator], f"consensus message refused: {action.rule}")

    def _report_equivocation(self, action: ReportEquivocation) -> None:
        """Keep the evidence; say it once per validator and height at WARNING (a validator
        that equivocates in every view and phase would otherwise write a line for each)."""
        self.evidence.append(action.evidence)
        evidence = action.evidence
        offence = (evidence.validator, evidence.height)
        self._equivocations[offence] = self._equivocations.get(offence, 0) + 1
        if self._equivocations[offence] == 1:
            LOG.warning(
                "equivocation by validator %d at height %d view %d (%s); evidence kept, further ones at this "
                "height are counted", evidence.validator, evidence.height, evidence.view, evidence.phase.name,
            )
            # Only the heights in progress matter: older offences are forgotten.
            for stale in [key for key in self._equivocations if key[1] < evidence.height - 1]:
                self._log_equivocations_at(stale)
        else:
            LOG.debug("equivocation by validator %d at height %d view %d (%s)", evidence.validator, evidence.height,
                      evidence.view, evidence.phase.name)

    def _log_equivocations_at(self, offence: tuple[int, int]) -> None:
        count = self._equivocations.pop(offence)
        if count > 1:
            LOG.warning("validator %d equivocated %d times in all at height %d", offence[0], count, offence[1])

    async def _send(self, action: Broadcast | Send | Relay) -> None:
        assert self.network is not None
        try:
            if isinstance(action, Broadcast):
                await self.network.broadcast(CONSENSUS_KIND, encode_message(action.message))
            elif isinstance(action, Relay):
                exclude = [self.validators[index] for index in action.exclude]
                await self.network.broadcast(CONSENSUS_KIND, encode_message(action.message), exclude=exclude)
            else:
                await self.network.send(self.validators[action.to], CONSENSUS_KIND, encode_message(action.message))
        except ValueError as error:
            # A message above p2p.max_frame_bytes: peers would refuse it anyway; consensus
            # recovers through view change, the node keeps running.
            LOG.error("could not send a %s: %s", type(action.message).__name__, error)

    def _commit(self, action: CommitBlock) -> None:
        block = action.block
        parent_timestamp_ms = self.store.head.timestamp_ms
        self.store.save_block(block, action.certificate, action.changes)
        self.mempool.remove_committed(block.transactions, self.store)
        # Synchronously after the save: a tx_wait that found nothing in the store is already registered.
        self.finality.block_committed(block)
        self.metrics.observe_block(block, parent_timestamp_ms)
        self._certified_view = action.certificate.view
        self._log_final(action)

    def _log_final(self, action: CommitBlock) -> None:
        """Tell the progress log; the time from the proposal means something only when this
        node took part in deciding the block (it PREPAREd it in the view that certified it),
        not for one fetched with its certificate."""
        replica, block, view = self._replica, action.block, action.certificate.view
        prepared = replica.log.prepares.vote_of(view, replica.index)
        took_part = prepared is not None and prepared.block_hash == block.hash
        assert self.progress is not None
        self.progress.final_block(
            time.monotonic(),
            height=block.height,
            transactions=len(block.transactions),
            view=view,
            latency_ms=max(0, now_ms() - block.header.timestamp_ms) if took_part else None,
            target=max(block.height, replica.catch_up.highest_seen - 1),
        )

    def _schedule(self, at_ms: int) -> None:
        if at_ms in self._timers:
            return
        delay = max(0.0, (at_ms - now_ms()) / 1000)

        def fire() -> None:
            remaining = at_ms - now_ms()
            if remaining > 0:
                # The wall clock stepped back: an early call would be ignored and the timer lost.
                self._timers[at_ms] = asyncio.get_running_loop().call_later(remaining / 1000, fire)
                return
            self._timers.pop(at_ms, None)
            self._post(("timeout", None))

        self._timers[at_ms] = asyncio.get_running_loop().call_later(delay, fire)

    def _post(self, event: tuple[str, Any]) -> None:
        self._events.put_nowait(event)

    def _post_message(self, peer: bytes, message: Message, size: int) -> bool:
        """Queue a peer's message of ``size`` bytes for the replica, within the queue's bound
        and the peer's share of it; what does not fit is dropped (view change and catch-up
        recover it). True when queued."""
        if not self.inbox.admit(peer, size):
            dropped = self.inbox.dropped["full"]
            if math.log10(dropped).is_integer():
                messages, queued_bytes = self.inbox.queued_by(peer)
                LOG.warning(
                    "consensus queue full (%d queued, %d messages and %d bytes from peer %s); %d dropped so far",
                    len(self.inbox), messages, queued_bytes, peer.hex()[:16], dropped,
                )
            return False
        self._events.put_nowait(("message", (peer, message, size)))
        return True

    async def _rebroadcast_stalled(self) -> None:
        """Every third of ``mempool.rebroadcast_after_ms``, drop expired transactions, log a
        line counting what was dropped since the last one (at most one a minute), and gossip
        stalled senders' runs again."""
        assert self.gossip is not None
        while True:
            await asyncio.sleep(self.stalled.after / 3)
            now = time.monotonic()
            self.mempool.expire(now)
            summary = self.mempool.drop_summary(now=now)
            if summary is not None:
                LOG.info("%s", summary)
            due = self.stalled.due(self.mempool, self.store, time.monotonic(), self.store.height)
            for transaction in due:
                self.gossip.submit(transaction.encoded)
            if due:
                LOG.debug("gossiping %d stalled transactions again", len(due))

    # --- peer frames ---------------------------------------------------------------

    async def _on_consensus_frame(self, peer: bytes, payload: Any) -> None:
        """Take a peer's consensus message in its link task: block requests are answered
        here, off the replica's path; the same bytes seen lately (relayed copies) are
        dropped before decoding; the rest is decoded (cheaply: blocks up to their
        headers), so garbage counts against the peer, and queued for the replica."""
        if peer not in self._validator_index:
            # An observer follows final blocks; it has no part in consensus.
            raise InvalidMessageSender("consensus messages are taken from validators only")
        await asyncio.sleep(0)  # fair to the other links, as for gossip
        raw = codec.read_bytes(payload, "consensus", max_length=self.config["p2p.max_frame_bytes"])
        if message_tag(raw) is Tag.BLOCK_REQUEST:
            await self._on_block_request(peer, decode_message(raw))
            return
        now = time.monotonic()
        digest = self.inbox.repeated(raw, now)
        if digest is None:
            return
        if self._post_message(peer, decode_message(raw), len(raw)):
            self.inbox.remember(digest, now)

    async def _on_block_request(self, peer: bytes, message: Message) -> None:
        if not isinstance(message, BlockRequest):
            raise InvalidMessageSender("a block request frame holds another message")
        requester = message.requester
        if requester >= len(self.validators) or self.validators[requester] != peer:
            # Final blocks go to the requester named inside; only that validator may ask.
            raise InvalidMessageSender(f"block request names validator {requester}, sent by another peer")
        await self.block_service.serve(peer, requester, message.height, now_ms())

    def _serve_soon(self, index: int, start: int) -> None:
        """Serve a validator that is behind in a task of its own, off the consensus task:
        one at a time per validator (a request while one runs is dropped; it asks again)."""
        if index in self._serving:
            return
        peer = self.validators[index]
        task = asyncio.create_task(self.block_service.serve(peer, index, start, now_ms()), name=f"serve-{index}")
        self._serving[index] = task
        task.add_done_callback(lambda _: self._serving.pop(index, None))

    def _on_peer_change(self, peer: bytes, connected: bool) -> None:
        """A validator's link opened: the replica sends it what it may have missed of the
        height in progress, and the pending transactions a block could take next go to it
        too (gossip lost while the link was down is not otherwise sent again until its
        senders stall)."""
        index = self._validator_index.get(peer)
        if not connected or index is None or self._stopped:
            return
        # At most once per base timeout per peer: a validator flapping its link hundreds of
        # times a second must not have this node resend proposals and transactions as often.
        now = time.monotonic()
        if now - self._last_offered.get(index, -math.inf) < self.config["consensus.base_timeout_ms"] / 1000:
            return
        self._last_offered[index] = now
        self._post(("peer", index))
        if len(self.mempool) == 0 or index in self._offers:
            return
        task = asyncio.create_task(self._offer_pending(peer), name=f"offer-pending-{index}")
        self._offers[index] = task
        task.add_done_callback(lambda _: self._offers.pop(index, None))

    async def _offer_pending(self, peer: bytes) -> None:
        assert self.network is not None
        offered: list[bytes] = []
        for run in self.mempool.ready_runs(self.store, max_run=MAX_OFFERED_RUN):
            offered += [transaction.encoded for transaction in run]
            if len(offered) >= MAX_OFFERED_TRANSACTIONS:
                break
        for start in range(0, min(len(offered), MAX_OFFERED_TRANSACTIONS), DEFAULT_MAX_BATCH):
            if not await self.network.send(peer, TRANSACTIONS_KIND, offered[start : start + DEFAULT_MAX_BATCH]):
                return

    async def _on_transactions_frame(self, peer: bytes, payload: Any) -> None:
        """Admit a peer's batch. What depends on the state (already pending or final, a
        balance or nonce that moved on, a full pool) is normal in gossip and skipped; what
        an honest node checks before it forwards anything (the bytes, the signature, the
        chain, the amount, the issuer role) counts against the peer, once per batch,
        after the batch's good transactions are admitted."""
        batch = decode_transaction_batch(payload)
        # Fair to the other links: a peer's frames are handled one after another without
        # this node's other work waiting behind a run of them.
        await asyncio.sleep(0)
        if not self.gossip_budget.take(peer, len(batch), time.monotonic()):
            return
        # A backlog's run of nonces comes in one batch and passes whole.
        transactions = [Transaction.decode(encoded) for encoded in batch]
        now = time.monotonic()
        candidates, refusals = self.mempool.check_batch(transactions, self.store, now=now)
        refused = [error for error in refusals if isinstance(error, GOSSIP_REFUSALS_FOR_CAUSE)]
        assert self.verifier is not None
        forged = await self.verifier.verify_async(candidates)
        now = time.monotonic()
        admitted: list[Transaction] = []
        for transaction in candidates:
            if transaction.hash in forged:
                continue
            try:
                self.mempool.add(transaction, self.store, now=now)
            except Invalid:
                continue
            admitted.append(transaction)
        self._after_admission(admitted)
        if forged:
            raise BadSignature(f"peer forwarded transaction {next(iter(forged)).hex()} with a bad signature")
        if refused:
            raise type(refused[0])(f"peer forwarded {len(refused)} transactions no node admits: {refused[0].message}")

    def _transactions_dropped(self, drops: Sequence[Dropped]) -> None:
        """The mempool dropped these: wake the tx_wait calls waiting for them at once. (The
        INFO line counting drops is logged by ``_rebroadcast_stalled``, at most one a round.)"""
        self.finality.transactions_dropped(drops)
        for dropped in drops:
            self.metrics.observe_drop(dropped.rule)
            LOG.debug("dropped pending transaction %s (%s): %s", dropped.transaction_hash.hex(), dropped.rule,
                      dropped.message)

    def _after_admission(self, admitted: Sequence[Transaction]) -> None:
        """Wake a primary that waits out the idle interval (and shorten the others' view
        timers) once a transaction a block could take arrives: one whose nonce is its
        sender's next. Once per height: later ones find the replica awake."""
        height = self.store.height
        if self._woken_at_height == height:
            return
        if any(transaction.nonce == self.store.load_account(transaction.sender).nonce for transaction in admitted):
            self._woken_at_height = height
            self._post(("transactions", None))

    # --- what the RPC sees (rpc.methods.NodeView) ------------------------------------------

    async def submit_transaction(self, transaction: Transaction) -> bytes:
        assert self.gossip is not None
        # The cheap rules first, then the signature on the verifier's threads (together
        # with the rest of an RPC batch), then admission, which finds it verified.
        replaced = self.mempool.check(transaction, self.store, now=time.monotonic())
        sender = transaction.sender
        if replaced is not None:
            # Versions of one nonce arriving together (an RPC batch, parallel calls) would all
            # pass the check before the first is admitted: one at a time is verified.
            if sender in self._replacing:
                raise ReplacementTooSoon(
                    "another replacement from this sender is being admitted; try again in a moment",
                    retry_after_seconds=0.0,
                )
            self._replacing.add(sender)
        assert self.verifier is not None
        try:
            if await self.verifier.verify_async([transaction]):
                raise BadSignature("signature does not verify against the sender's key")
            self.mempool.add(transaction, self.store, now=time.monotonic())
        finally:
            if replaced is not None:
                self._replacing.discard(sender)
        self._after_admission([transaction])
        self.gossip.submit(transaction.encoded)
        return transaction.hash

    def status(self) -> NodeStatus:
        assert self.network is not None
        replica = self._replica
        return NodeStatus(
            height=self.store.height,
            head_hash=self.store.head.hash,
            view=replica.view,
            validators=self.validators,
            peers=len(self.network.connected_peers()),
            syncing=replica.catch_up.highest_seen > self.store.height + 1,
            # A validator seen working on height h means h - 1 is final somewhere.
            highest_known_height=max(self.store.height, replica.catch_up.highest_seen - 1),
            view_changes_started=replica.view_changes_started,
            missing_validators=missing_validators(replica),
            stalled=self.progress is not None and self.progress.stalled(time.monotonic()),
        )

    async def run_until_signalled(self) -> None:
        """Run until SIGINT or SIGTERM (or a fatal consensus error), then stop in order."""
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, self._stop_requested.set)
        try:
            await self.start()
            await self._stop_requested.wait()
        finally:
            await self.stop()


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m mura.node", require_config: bool = False) -> int:
    """Run a node as the command line asks; 2 with one line on stderr if it cannot start."""
    options = argument_parser(prog=prog, require_config=require_config).parse_args(argv)
    overrides = {setting.path: getattr(options, setting.path) for setting in SETTINGS}
    try:
        config = load_config(options.config, overrides)
        check_listen_addresses(config)
        configure_logging(level=config["log.level"], json_format=config["log.format"] == "json")
        # Room for every connection the per-source caps allow, before anyone can exhaust it.
        raise_open_file_limit()
        node = Node(config)
        asyncio.run(node.run_until_signalled())
    except ConfigError as error:
        print(f"mura-node: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
