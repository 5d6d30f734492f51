"""The composition root: config -> store -> application -> replica and driver -> p2p -> rpc.

``python node.py --config node.toml`` (or ``python -m mura.node``) runs one
node until SIGINT or SIGTERM: a validator, or an observer (``role``) that
follows the chain without a vote. Everything the node does is decided by the
modules it wires together: ``config`` (settings), ``application`` (the ledger
the replica orders blocks for), ``consensus_runner`` (the driver's clock,
transport and reports, and the consensus task), ``admission`` (transactions in
from wallets and peers), ``observers`` (what a node that does not vote needs,
and what validators push to it), ``peer_set`` (the peers, following the
validator set). This module makes each part once, in order, and starts and
stops them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence

from mura.admission import TRANSACTIONS_KIND, Admission, drops_reporter
from mura.application import LedgerApplication, carry_over_votes
from mura.chain.block import Block, quorum_size
from mura.chain.errors import Invalid
from mura.chain.governance import ValidatorSet
from mura.chain.keys import SignatureCache, SigningKey, load_key
from mura.chain.mempool import Mempool
from mura.chain.state import StateChanges
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
from mura.consensus.config import ReplicaConfig
from mura.consensus.quorum import max_faulty
from mura.consensus.replica import Replica
from mura.consensus.serving import BlockServer
from mura.consensus.votes import StoredVoteRecord, VoteRecord
from mura.consensus_runner import CONSENSUS_KIND, ConsensusRunner, NodeReports, progress_log
from mura.genesis.format import Genesis, genesis_block, load_genesis
from mura.logs import configure_logging
from mura.observers import OBSERVER_ROLE, VALIDATOR_ROLE, FinalBlockPush, FollowerVotes
from mura.p2p.block_service import BlockService
from mura.p2p.connections import raise_open_file_limit
from mura.p2p.gossip import TransactionGossip
from mura.p2p.network import Network
from mura.p2p.read_gate import UnsupportedAiohttp
from mura.p2p.settings import NetworkLimits, PeerAddress
from mura.p2p.snapshot_service import SnapshotKeeper, SnapshotService, SnapshotServingLimits
from mura.p2p.state_sync import StateSync, SyncSettings
from mura.p2p.sync_messages import (
    STATE_SYNC_KIND,
    Offers,
    OffersRequest,
    Refusal,
    decode_sync_message,
    encode_sync_message,
    is_request,
)
from mura.peer_set import Peers, PeerSet
from mura.progress_log import missing_validators
from mura.rpc.cors import CorsPolicy
from mura.rpc.explorer import ExplorerFiles
from mura.rpc.finality import FinalityWatch
from mura.rpc.limits import RpcLimits
from mura.rpc.methods import API_DESCRIPTION, node_methods
from mura.rpc.metrics import Metrics
from mura.rpc.node_view import ChainInfo, NodeStatus, read_figures, read_sync_facts
from mura.rpc.readiness import ReadinessPolicy
from mura.rpc.server import RpcServer
from mura.rpc.subscriptions import BlockFeed

LOG = logging.getLogger("mura.node")


class Node:
    """One validator or observer. Everything it owns is made here, once: what the
    configuration decides is checked first, then the store and the vote record (a
    validator's) are opened and the rest is built on them (a failure on the way closes
    them again); ``start()`` starts the network, RPC and consensus in that order, and
    ``stop()`` stops RPC first, then consensus and the network, and closes the files."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis, self.key = _genesis_and_key(config)
        #: ``validator`` or ``observer`` (see ``mura.observers``).
        self.role: str = config["role"]
        #: This node's name in log lines (its validator name once the store says it has one).
        self.name = f"{self.role} {self.key.public_key.hex()[:8]}"
        self.rules = self.genesis.rules()
        self.address_prefix = self.genesis.address_prefix
        self.chain_info = _chain_info(self.genesis)
        replica_config = _replica_config(config, self.rules.chain_id)
        limits, peers = _network_limits(config), self._genesis_peers()
        #: Told of every final block, so that tx_wait calls wake without polling.
        self.finality = FinalityWatch()
        #: Told of every final block too, for the websockets subscribed to them.
        self.block_feed = BlockFeed(address_prefix=self.address_prefix)
        #: This node's Prometheus registry, served on the RPC's /metrics.
        self.metrics = Metrics()
        self._genesis_block, self._genesis_changes = genesis_block(self.genesis)
        self._replica_config, self._limits, self._peer_addresses = replica_config, limits, peers
        self._built = False
        self._started = False
        self._stopped = False
        self.vote_store: VoteStore | None = None
        #: The join by state sync under way, if any (``sync.mode = "snapshot"`` on an empty data directory).
        self.state_sync: StateSync | None = None
        self._sync_network: Network | None = None
        self._stop_requested = asyncio.Event()
        joining = config["sync.mode"] == "snapshot"
        self.store = _open_store(config, self._genesis_block, self._genesis_changes, join_by_sync=joining)
        if self.store.initialized:
            self._open_and_build()

    def _open_and_build(self) -> None:
        """Check the role against the validator set, open the vote record (a validator's)
        and build everything on the store, which holds the chain now."""
        genesis_hash = self._genesis_block.hash
        try:
            self.name = self._check_role()
            if self.role == VALIDATOR_ROLE:
                self.vote_store = self._open_vote_record(genesis_hash)
            self._build(genesis_hash, self._replica_config, self._limits)
        except BaseException:
            # Nothing else holds a file or a thread yet: a failed construction leaves nothing open.
            if self.vote_store is not None:
                self.vote_store.close()
            self.store.close()
            raise
        self._built = True

    def _check_role(self) -> str:
        """This node's name in log lines; refuses an observer whose key is a validator's of
        the height to decide (it would take a validator's place without ever voting)."""
        height = self.store.height + 1
        record = next(
            (validator for validator in self._validator_records(height) if validator.public_key == self.key.public_key),
            None,
        )
        if self.role == OBSERVER_ROLE and record is not None:
            raise ConfigError(
                f'role: "observer", but key_file {self.config.path("key_file")} is the key of validator '
                f'{record.name} at height {height}: an observer never votes, and the network counts on every '
                'validator\'s vote (run it with role = "validator", or give the observer a key of its own)'
            )
        return record.name if record is not None else self.name

    def _build(self, genesis_hash: bytes, replica_config: ReplicaConfig, limits: NetworkLimits) -> None:
        """Everything built on the open store and vote record."""
        config = self.config
        # Room for every pending transaction and two full blocks beyond them.
        self.signatures = SignatureCache(
            capacity=config["mempool.max_transactions"] + 2 * self.rules.max_block_transactions
        )
        self.verifier = SignatureVerifier(self.signatures)
        self.mempool = Mempool(
            rules=self.rules,
            signatures=self.signatures,
            max_transactions=config["mempool.max_transactions"],
            max_bytes=config["mempool.max_bytes"],
            expire_after=config["mempool.expire_after_seconds"],
            on_drop=drops_reporter(self.finality, self.metrics),
        )
        self.application = LedgerApplication(
            store=self.store,
            mempool=self.mempool,
            rules=self.rules,
            signatures=self.signatures,
            max_proposal_transactions=config["consensus.max_block_transactions"],
            verify_certified_signatures=config["sync.verify_signatures"],
        )
        # An observer's replica works under a key of its own that no validator set holds, so
        # that it can never sign, whatever a governance change names (see mura.observers).
        votes: VoteRecord = FollowerVotes() if self.vote_store is None else StoredVoteRecord(self.vote_store)
        replica_key = SigningKey.generate() if self.role == OBSERVER_ROLE else self.key
        try:
            self.replica = Replica(
                key=replica_key, application=self.application, config=replica_config,
                vote_record=votes,
            )
        except Invalid as error:
            # What the record (or the chain's data) holds at the height to resume cannot be read.
            raise ConfigError(
                f"vote_record: cannot resume from {self.config.vote_record_path()} and data_dir: {error.message}"
            ) from None
        self.peer_set = PeerSet(
            own_key=self.key.public_key,
            own_address=self.config["p2p.listen"],
            observers=self._observers(),
            overrides=[parse_peer(text) for text in self.config["p2p.peers"]],
            validators_at=self._validator_records,
        )
        self.snapshots = SnapshotKeeper(
            store=self.store, interval=config["sync.snapshot_interval"], keep=config["sync.snapshots_kept"]
        )
        self.store.watch_commits(self.snapshots.on_commit)
        self.snapshot_service = SnapshotService(
            keeper=self.snapshots,
            store=self.store,
            send=lambda peer, payload: self.network.send(peer, STATE_SYNC_KIND, payload),
            limits=_snapshot_serving_limits(config),
        )
        self.network = self._network(genesis_hash, self.peer_set.at(self.store.height), limits)
        self.gossip = TransactionGossip(self.network, kind=TRANSACTIONS_KIND)
        self.consensus = ConsensusRunner(
            replica=self.replica,
            votes=votes,
            ledger=self.application,
            network=self.network,
            block_service=BlockService(source=self.store, send=self._send_block, server=BlockServer()),
            reports=NodeReports(
                replica=self.replica,
                store=self.store,
                finality=self.finality,
                feed=self.block_feed,
                metrics=self.metrics,
                progress=progress_log(
                    validators=len(self.replica.validators.keys),
                    base_timeout_ms=config["consensus.base_timeout_ms"],
                    empty_block_interval_ms=config["consensus.empty_block_interval_ms"],
                ),
                double_sign_check_heights=config["consensus.double_sign_check_heights"],
                after_final=self._after_final,
            ),
            verifier=self.verifier,
            verify_certified_signatures=config["sync.verify_signatures"],
            name_of=self._validator_name,
            max_frame_bytes=config["p2p.max_frame_bytes"],
            stop_node=self.request_stop,
        )
        self.admission = Admission(
            store=self.store,
            mempool=self.mempool,
            verifier=self.verifier,
            network=self.network,
            gossip=self.gossip,
            rebroadcast_after_ms=config["mempool.rebroadcast_after_ms"],
            wake_replica=lambda: self.consensus.post(("transactions", None)),
        )
        #: Each block final here goes to the linked peers that take no part in consensus.
        self.pushes = FinalBlockPush(
            network=self.network, source=self.store, kind=CONSENSUS_KIND, takes_part=self.consensus.takes_part
        )
        self.rpc = self._rpc_server()
        #: When each peer was last sent what it may have missed (link opened).
        self._last_offered: dict[bytes, float] = {}
        #: Whether this node's key was a validator's of the height in progress, as last told.
        self._voting = self.replica.member

    @property
    def validators(self) -> tuple[bytes, ...]:
        """The keys of the validators of the height in progress, in order (before the node
        is built, while it joins by state sync: the genesis validators)."""
        if not self._built:
            return self.genesis.validator_keys()
        return self.replica.validators.keys

    def _validator_records(self, height: int) -> ValidatorSet:
        """The validators that decide ``height``, with their names and peer addresses, as the
        chain's state records them (exact up to the head's height + 2)."""
        return self.store.load_validators_at(max(height, 1))

    def _validator_name(self, public_key: bytes) -> str:
        """A validator's name as the chain records it (none recorded: its key, short)."""
        for height in (self.store.height + 1, self.store.height + 2):
            for validator in self._validator_records(height):
                if validator.public_key == public_key and validator.name:
                    return validator.name
        return public_key.hex()[:16]

    def _observers(self) -> list[bytes]:
        return [bytes.fromhex(key) for key in self.config["p2p.observers"]]

    def _genesis_peers(self) -> list[PeerAddress]:
        """Whom a node joining by state sync dials, before it knows the current set: the
        peers configured, or the genesis validators."""
        if self.config["p2p.peers"]:
            return [parse_peer(text) for text in self.config["p2p.peers"]]
        return [
            PeerAddress(validator.public_key, *NodeConfig.split_address(validator.peer_address))
            for validator in self.genesis.validators
            if validator.public_key != self.key.public_key
        ]

    def _open_vote_record(self, genesis_hash: bytes) -> VoteStore:
        """The validator's vote record (an observer has none: it never signs)."""
        try:
            record = VoteStore(self.config.vote_record_path(), chain=genesis_hash, validator=self.key.public_key)
        except StoreError as error:
            raise ConfigError(f"vote_record: {error}") from None
        try:
            if record.new and self.store.kept_votes:
                carried = carry_over_votes(self.store, record)
                LOG.info("the vote record now lives apart from the chain's data (%d votes carried over)", carried)
            # From now on a new record over this data means the record was lost: it is checked.
            self.store.votes_moved()
        except BaseException:
            record.close()
            raise
        return record

    def _sync_network_for(self, genesis_hash: bytes, peers: list[PeerAddress], limits: NetworkLimits) -> Network:
        """The network of a node joining by state sync, before it knows the current set: it
        admits the genesis validators, the configured observers and the keys of ``p2p.peers``
        (how an operator names today's validators when the set has changed since genesis),
        and dials ``peers``."""
        host, port = NodeConfig.split_address(self.config["p2p.listen"])
        configured = [parse_peer(text).public_key for text in self.config["p2p.peers"]]
        admitted = {*self.genesis.validator_keys(), *self._observers(), *configured} - {self.key.public_key}
        try:
            return self._joining_network(host, port, genesis_hash, peers, admitted, limits)
        except ValueError as error:
            raise ConfigError(f"p2p.peers: {error} (a node joining by state sync dials the peers listed there)") \
                from None

    def _joining_network(
        self, host: str, port: int, genesis_hash: bytes, peers: list[PeerAddress], admitted: set[bytes],
        limits: NetworkLimits,
    ) -> Network:
        return Network(
            key=self.key,
            chain_id=self.rules.chain_id,
            genesis_hash=genesis_hash,
            listen_host=host,
            listen_port=port,
            peers=peers,
            admitted=admitted,
            handlers={
                CONSENSUS_KIND: _ignore_while_syncing,
                TRANSACTIONS_KIND: _ignore_while_syncing,
                STATE_SYNC_KIND: self._on_state_sync_frame_while_syncing,
            },
            on_peer_change=self._on_peer_change_while_syncing,
            limits=limits,
        )

    def _network(self, genesis_hash: bytes, peers: Peers, limits: NetworkLimits) -> Network:
        host, port = NodeConfig.split_address(self.config["p2p.listen"])
        self.peer_set.current = peers
        return Network(
            key=self.key,
            chain_id=self.rules.chain_id,
            genesis_hash=genesis_hash,
            listen_host=host,
            listen_port=port,
            peers=peers.dialed,
            admitted=peers.admitted,
            handlers={
                CONSENSUS_KIND: self._on_consensus_frame,
                TRANSACTIONS_KIND: self._on_transactions_frame,
                STATE_SYNC_KIND: self._on_state_sync_frame,
            },
            on_peer_change=self._on_peer_change,
            limits=limits,
        )

    def _readiness(self) -> ReadinessPolicy:
        """Ready by default once linked to enough validators to reach a quorum with this one
        (an observer: to one validator, which sends it every final block), and at most two
        blocks behind the highest height seen final."""
        if self.role == OBSERVER_ROLE:
            # f + 1: at least one of them is honest and sends it every final block.
            return ReadinessPolicy(min_peers=max_faulty(len(self.validators)) + 1, max_behind=2)
        return ReadinessPolicy(min_peers=quorum_size(len(self.validators)) - 1, max_behind=2)

    def _rpc_server(self) -> RpcServer:
        host, port = NodeConfig.split_address(self.config["rpc.listen"])
        self.metrics.watch(lambda: read_figures(self))
        return RpcServer(
            host=host,
            port=port,
            methods=node_methods(self, max_wait_seconds=self.config["rpc.max_wait_seconds"]),
            sync_facts=lambda: read_sync_facts(self),
            readiness=self._readiness(),
            metrics=self.metrics,
            description=API_DESCRIPTION,
            limits=RpcLimits(
                max_body_bytes=self.config["rpc.max_body_bytes"],
                max_batch_length=self.config["rpc.max_batch"],
                body_timeout_seconds=self.config["rpc.body_timeout_seconds"],
                max_waiting=self.config["rpc.max_waiting"],
                max_waiting_per_source=self.config["rpc.max_waiting_per_source"],
                header_timeout_seconds=self.config["rpc.header_timeout_seconds"],
                max_connections_per_source=self.config["rpc.max_connections_per_source"],
                max_websockets=self.config["rpc.max_websockets"],
                max_websockets_per_source=self.config["rpc.max_websockets_per_source"],
                max_subscriptions_per_websocket=self.config["rpc.max_subscriptions_per_websocket"],
                websocket_queue=self.config["rpc.websocket_queue"],
            ),
            cors=CorsPolicy.of(self.config["rpc.cors_origins"]),
            allowed_hosts=self.config["rpc.allowed_hosts"],
            feed=self.block_feed,
            explorer=ExplorerFiles.packaged() if self.config["rpc.explorer"] else None,
        )

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start the network, RPC, consensus and the pool's upkeep; once. A stopped node has
        closed its files and is not started again: make a new one."""
        if self._stopped:
            raise RuntimeError("this node was stopped; a stopped node is not started again")
        if self._started:
            return
        self._started = True
        if not self._built:
            await self._join_by_state_sync()
            self._open_and_build()
        self._log_start()
        if self.replica.guard.pending:
            LOG.warning(
                "the vote record is new (a key on a new machine, or a record lost): this validator signs nothing "
                "until it has heard where the network stands, and then nothing for %d heights more, in case it "
                "voted there before (consensus.double_sign_check_heights)",
                self.config["consensus.double_sign_check_heights"],
            )
        await self._start_network()
        await self._start_rpc()
        self.snapshots.start()
        self.consensus.start()
        self.admission.start()

    def _log_start(self) -> None:
        """What the node is and what it does: an observer follows; a validator whose key is
        not in the set of the height in progress follows too, until a change adds it."""
        store = self.store
        if self.vote_store is None:
            LOG.info(
                "starting %s at height %d (head %s): an observer (role = \"observer\"), it follows the chain, "
                "checking every certificate and block, and never votes",
                self.name, store.height, store.head.hash.hex()[:16],
            )
            return
        LOG.info(
            "starting %s at height %d (head %s); vote record %s, highest height voted %d",
            self.name, store.height, store.head.hash.hex()[:16], self.vote_store.path,
            self.vote_store.highest_height(),
        )
        if not self.replica.member:
            LOG.warning(
                "key %s is not in the validator set of height %d: this node follows the chain as an observer, "
                "without a vote, until a governance change adds it (the validators link to it meanwhile only if "
                "they list its key in p2p.observers)",
                self.key.public_key.hex()[:16], self.replica.height,
            )

    async def _join_by_state_sync(self) -> None:
        """Fill the empty store with the state of a recent certified height from peers, or
        with genesis when none offers one (see ``mura.p2p.state_sync``). Runs on a network of
        its own that answers peers only that this node has no snapshot yet."""
        genesis = self._genesis_block
        network = self._sync_network = self._sync_network_for(genesis.hash, self._peer_addresses, self._limits)
        self.state_sync = StateSync(
            store=self.store,
            network=network,
            peers=[address.public_key for address in self._peer_addresses],
            chain_id=self.rules.chain_id,
            genesis_validators=self._genesis_changes.validators,
            genesis_hash=genesis.hash,
            settings=SyncSettings(
                wait_seconds=self.config["sync.snapshot_wait_seconds"],
                deadline_seconds=self.config["sync.deadline_seconds"],
            ),
        )
        LOG.info("data_dir is empty and sync.mode is snapshot: asking peers for a snapshot of the state")
        await self._start_given_network(network)
        try:
            outcome = await self.state_sync.run()
        finally:
            await network.stop()
            self._sync_network = None
        if outcome is None:
            if self.store.sync_unfinished:
                self.store.abandon_state_sync()
            self.store.initialize(genesis, self._genesis_changes)
            return
        LOG.info(
            "joined by state sync at height %d: %d state entries in %d chunks, %.1f MB, in %.1f s "
            "(%d chunks refused); blocks below %d are not kept on this node",
            outcome.height, outcome.entries, outcome.chunks, outcome.entry_bytes / 1e6, outcome.seconds,
            outcome.refused_chunks, outcome.height,
        )

    async def _start_network(self) -> None:
        await self._start_given_network(self.network)
        await self.gossip.start()

    async def _start_given_network(self, network: Network) -> None:
        host, port = NodeConfig.split_address(self.config["p2p.listen"])
        try:
            await network.start()
        except UnsupportedAiohttp as error:
            raise ConfigError(str(error)) from None
        except OSError as error:
            raise ConfigError(listen_problem("p2p.listen", host, port, error)) from None

    async def _start_rpc(self) -> None:
        host, port = NodeConfig.split_address(self.config["rpc.listen"])
        try:
            await self.rpc.start()
        except OSError as error:
            raise ConfigError(listen_problem("rpc.listen", host, port, error)) from None
        LOG.info("serving JSON-RPC on %s:%d and peers on %s", host, self.rpc.port, self.config["p2p.listen"])

    async def stop(self) -> None:
        """Stop RPC, consensus, the pool's upkeep, gossip and the network, then close the
        store and the vote record; idempotent, and safe before ``start()``."""
        if self._stopped:
            return
        self._stopped = True
        if not self._built:
            # Stopped before or during a join by state sync: only the store is open.
            self.store.close()
            return
        self.finality.close()
        await self.rpc.stop()
        await self.consensus.stop()
        await self.admission.stop()
        await self.gossip.stop()
        await self.snapshot_service.stop()
        await self.network.stop()
        await self.snapshots.stop()
        self.store.close()
        if self.vote_store is not None:
            self.vote_store.close()
        await self.verifier.stop()
        self.consensus.progress.flush()
        # What the last minute's drop line held back.
        summary = self.mempool.drop_summary(now=math.inf)
        if summary is not None:
            LOG.info("%s", summary)
        LOG.info("stopped")

    def request_stop(self) -> None:
        """Have ``run_until_signalled`` stop the node (a fatal consensus error)."""
        self._stop_requested.set()

    # --- peers ----------------------------------------------------------------------

    async def _on_consensus_frame(self, peer: bytes, payload: object) -> None:
        await self.consensus.on_frame(peer, payload)

    async def _on_transactions_frame(self, peer: bytes, payload: object) -> None:
        await self.admission.on_gossip_frame(peer, payload)

    async def _on_state_sync_frame(self, peer: bytes, payload: object) -> None:
        message = decode_sync_message(payload)
        if is_request(message):
            self.snapshot_service.on_request(peer, message)

    async def _send_block(self, peer: bytes, data: bytes) -> bool:
        return self.network.send(peer, CONSENSUS_KIND, data)

    def _on_peer_change(self, peer: bytes, connected: bool) -> None:
        """A validator's link opened: the replica sends it what it may have missed of the
        height in progress, and the pool the transactions a block could take next (an
        observer's pool forwards what it holds; an observer linking to a validator is sent
        nothing: it asks for the blocks it lacks). At most once per base timeout per peer:
        a validator flapping its link hundreds of times a second must not have this node
        resend proposals and transactions as often."""
        index = self.replica.validators.indexes.get(peer)
        if not connected or self._stopped or not self.consensus.takes_part(peer):
            return
        now = time.monotonic()
        if now - self._last_offered.get(peer, -math.inf) < self.config["consensus.base_timeout_ms"] / 1000:
            return
        self._last_offered[peer] = now
        if index is not None:
            self.consensus.post(("peer", index))
        self.admission.offer_pending(peer)

    def _after_final(self, block: Block) -> None:
        """A block is final here: push it to the linked observers, follow a change of the
        validator set in the peers, and say when this node starts or stops voting."""
        self.pushes.block_final(block.height)
        self.peer_set.follow(self.network, block.height)
        self._note_membership(block.height + 1)

    def _note_membership(self, height: int) -> None:
        """Say once, when it happens, that this node's key joined or left the validator set
        (as of ``height``, the next to decide)."""
        member = self.key.public_key in self.application.validators_at(height)
        if member == self._voting:
            return
        self._voting = member
        if self.role == OBSERVER_ROLE and member:
            LOG.warning(
                "this observer's key is a validator's from height %d, and an observer never votes: the set counts "
                "on a vote that will not come; restart this node with role = \"validator\" for it to take part",
                height,
            )
        elif member:
            LOG.info("this node's key is in the validator set from height %d: it takes part in consensus", height)
        else:
            LOG.warning(
                "this node's key is no longer in the validator set from height %d: it follows without a vote, as "
                "an observer; the validators link to it only if they list its key in p2p.observers",
                height,
            )

    async def _on_state_sync_frame_while_syncing(self, peer: bytes, payload: object) -> None:
        """While joining: answers go to the sync; requests learn this node has no snapshot yet."""
        message = decode_sync_message(payload)
        if not is_request(message):
            assert self.state_sync is not None
            self.state_sync.on_answer(peer, message)  # type: ignore[arg-type]
            return
        if self._sync_network is not None:
            answer = Offers(0, ()) if isinstance(message, OffersRequest) else Refusal(
                message.TAG, getattr(message, "height", 0), "no_snapshot"
            )
            self._sync_network.send(peer, STATE_SYNC_KIND, encode_sync_message(answer))

    def _on_peer_change_while_syncing(self, peer: bytes, connected: bool) -> None:
        if connected and self.state_sync is not None:
            self.state_sync.peer_linked(peer)

    # --- what the RPC sees (rpc.methods.NodeView) ------------------------------------------

    async def submit_transaction(self, transaction: Transaction) -> bytes:
        return await self.admission.submit(transaction)

    def status(self) -> NodeStatus:
        replica = self.replica
        connected = self.network.connected_peers()
        highest_known = self.consensus.reports.highest_known_height()
        return NodeStatus(
            height=self.store.height,
            head_hash=self.store.head.hash,
            view=replica.view,
            validators=self.validators,
            peers=len(connected),
            validator_peers=len(self._validator_links(connected)),
            syncing=highest_known > self.store.height,
            highest_known_height=highest_known,
            view_changes_started=replica.view_changes_started,
            missing_validators=missing_validators(replica, connected),
            stalled=self.consensus.progress.stalled(time.monotonic()),
            role=self.role,
            voting=replica.member,
            final_blocks_pushed=self.pushes.pushed,
            final_blocks_push_dropped=self.pushes.dropped,
        )

    def _validator_links(self, connected: Sequence[bytes]) -> list[bytes]:
        """Of ``connected``, the validators of the height in progress or the next."""
        height = self.store.height + 1
        validators = {*self.application.validators_at(height), *self.application.validators_at(height + 1)}
        return [peer for peer in connected if peer in validators]

    async def run_until_signalled(self) -> None:
        """Run until SIGINT or SIGTERM (or a fatal consensus error), then stop in order."""
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, self._stop_requested.set)
        # A join by state sync may take long: a signal during it stops the node too.
        starting = asyncio.create_task(self.start())
        stopping = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                await stopping
            else:
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        finally:
            stopping.cancel()
            await self.stop()


# --- what the configuration decides ----------------------------------------------------------


def _genesis_and_key(config: NodeConfig) -> tuple[Genesis, SigningKey]:
    try:
        genesis = load_genesis(config.path("genesis_file"))
        key = load_key(config.path("key_file"))
    except Invalid as error:
        raise ConfigError(error.message) from None
    limit = genesis.rules().max_block_transactions
    if config["consensus.max_block_transactions"] > limit:
        raise ConfigError(
            f"setting consensus.max_block_transactions: {config['consensus.max_block_transactions']} "
            f"is above the genesis limit of {limit}"
        )
    return genesis, key


def _chain_info(genesis: Genesis) -> ChainInfo:
    return ChainInfo(
        chain_id=genesis.chain_id,
        address_prefix=genesis.address_prefix,
        default_asset=genesis.default_asset,
        validator_names={validator.public_key: validator.name for validator in genesis.validators},
    )


def _replica_config(config: NodeConfig, chain_id: str) -> ReplicaConfig:
    try:
        return ReplicaConfig(
            chain_id=chain_id,
            base_timeout_ms=config["consensus.base_timeout_ms"],
            max_timeout_ms=config["consensus.max_timeout_ms"],
            proposal_delay_ms=config["consensus.block_interval_ms"],
            empty_proposal_delay_ms=config["consensus.empty_block_interval_ms"],
            double_sign_check_heights=config["consensus.double_sign_check_heights"],
        )
    except ValueError as error:
        raise ConfigError(f"settings consensus.*: {error}") from None


def _network_limits(config: NodeConfig) -> NetworkLimits:
    pending = config["p2p.max_pending_handshakes"]
    try:
        return NetworkLimits(
            max_frame_size=config["p2p.max_frame_bytes"],
            max_pending_handshakes=pending,
            max_handshakes_per_source=min(config["p2p.max_handshakes_per_source"], pending),
            reserved_peer_handshakes=pending // 2,
            max_connections_per_source=config["p2p.max_connections_per_source"],
        )
    except ValueError as error:
        raise ConfigError(f"settings p2p.*: {error}") from None


def _open_store(config: NodeConfig, genesis: Block, changes: StateChanges, *, join_by_sync: bool) -> Store:
    """The chain's store, initialized with genesis unless it holds no chain and the node is to
    join by state sync (then it stays empty until the sync fills it)."""
    try:
        store = Store(config.path("data_dir"))
    except StoreError as error:
        raise ConfigError(f"data_dir: {error}") from None
    try:
        if store.sync_unfinished and not join_by_sync:
            LOG.warning("data_dir holds a state sync that did not finish; discarding it to replay from genesis")
            store.abandon_state_sync()
        if not (join_by_sync and not store.initialized and store.load_genesis_hash() is None):
            store.initialize(genesis, changes)
    except StoreError as error:
        store.close()
        raise ConfigError(f"data_dir: {error}") from None
    return store


def _snapshot_serving_limits(config: NodeConfig) -> SnapshotServingLimits:
    rate = config["sync.serve_bytes_per_second"]
    return SnapshotServingLimits(
        bytes_per_second=rate, burst_bytes=2 * rate, concurrent_peers=config["sync.serve_peers"]
    )


async def _ignore_while_syncing(peer: bytes, payload: object) -> None:
    """Consensus and transactions wait until the node has a state to check them against."""


# --- the command line ----------------------------------------------------------------


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
