"""The composition root: config -> store -> application -> replica and driver -> p2p -> rpc.

``python node.py --config node.toml`` (or ``python -m mura.node``) runs one
validator until SIGINT or SIGTERM. Everything the node does is decided by the
modules it wires together: ``config`` (settings), ``application`` (the ledger
the replica orders blocks for), ``consensus_runner`` (the driver's clock,
transport and reports, and the consensus task), ``admission`` (transactions in
from wallets and peers). This module makes each part once, in order, and starts
and stops them.
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
from mura.consensus.replica import Replica
from mura.consensus.serving import BlockServer
from mura.consensus.votes import StoredVoteRecord
from mura.consensus_runner import CONSENSUS_KIND, ConsensusRunner, NodeReports, progress_log
from mura.genesis.format import Genesis, genesis_block, load_genesis
from mura.logs import configure_logging
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
from mura.progress_log import missing_validators
from mura.rpc.cors import CorsPolicy
from mura.rpc.finality import FinalityWatch
from mura.rpc.methods import API_DESCRIPTION, node_methods
from mura.rpc.metrics import Metrics
from mura.rpc.node_view import ChainInfo, NodeStatus, read_figures, read_sync_facts
from mura.rpc.readiness import ReadinessPolicy
from mura.rpc.server import RpcLimits, RpcServer

LOG = logging.getLogger("mura.node")


class Node:
    """One validator. Everything it owns is made here, once: what the configuration
    decides is checked first, then the store and the vote record are opened and the
    rest is built on them (a failure on the way closes them again); ``start()`` starts
    the network, RPC and consensus in that order, and ``stop()`` stops RPC first, then
    consensus and the network, and closes the files."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis, self.key = _genesis_and_key(config)
        self.validators = self.genesis.validator_keys()
        self.name = self.genesis.validators[self.validators.index(self.key.public_key)].name
        self.rules = self.genesis.rules()
        self.address_prefix = self.genesis.address_prefix
        self.chain_info = _chain_info(self.genesis)
        replica_config = _replica_config(config, self.rules.chain_id)
        limits, peers = _network_limits(config), self._peers()
        #: Told of every final block, so that tx_wait calls wake without polling.
        self.finality = FinalityWatch()
        #: This node's Prometheus registry, served on the RPC's /metrics.
        self.metrics = Metrics()
        self._genesis_block, self._genesis_changes = genesis_block(self.genesis)
        self._replica_config, self._limits, self._peer_addresses = replica_config, limits, peers
        self._built = False
        self._started = False
        self._stopped = False
        #: The join by state sync under way, if any (``sync.mode = "snapshot"`` on an empty data directory).
        self.state_sync: StateSync | None = None
        self._sync_network: Network | None = None
        self._stop_requested = asyncio.Event()
        joining = config["sync.mode"] == "snapshot"
        self.store = _open_store(config, self._genesis_block, self._genesis_changes, join_by_sync=joining)
        if self.store.initialized:
            self._open_and_build()

    def _open_and_build(self) -> None:
        """Open the vote record and build everything on the store, which holds the chain now."""
        genesis_hash = self._genesis_block.hash
        try:
            self.vote_store = self._open_vote_record(genesis_hash)
        except BaseException:
            self.store.close()
            raise
        try:
            self._build(genesis_hash, self._replica_config, self._limits, self._peer_addresses)
        except BaseException:
            # Nothing else holds a file or a thread yet: a failed construction leaves nothing open.
            self.vote_store.close()
            self.store.close()
            raise
        self._built = True

    def _build(
        self, genesis_hash: bytes, replica_config: ReplicaConfig, limits: NetworkLimits, peers: list[PeerAddress]
    ) -> None:
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
        votes = StoredVoteRecord(self.vote_store)
        try:
            self.replica = Replica(
                key=self.key, application=self.application, config=replica_config,
                vote_record=votes,
            )
        except Invalid as error:
            # What the record (or the chain's data) holds at the height to resume cannot be read.
            raise ConfigError(
                f"vote_record: cannot resume from {self.vote_store.path} and data_dir: {error.message}"
            ) from None
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
        self.network = self._network(genesis_hash, peers, limits)
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
                metrics=self.metrics,
                progress=progress_log(
                    validators=len(self.validators),
                    base_timeout_ms=config["consensus.base_timeout_ms"],
                    empty_block_interval_ms=config["consensus.empty_block_interval_ms"],
                ),
                double_sign_check_heights=config["consensus.double_sign_check_heights"],
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
        self.rpc = self._rpc_server()
        #: When each validator was last sent what it may have missed (link opened).
        self._last_offered: dict[int, float] = {}

    def _validator_name(self, public_key: bytes) -> str:
        """A validator's name as genesis gives it (a validator added later: its key, short)."""
        for validator in self.genesis.validators:
            if validator.public_key == public_key:
                return validator.name
        return public_key.hex()[:16]

    def _peers(self) -> list[PeerAddress]:
        if self.config["p2p.peers"]:
            return [parse_peer(text) for text in self.config["p2p.peers"]]
        return [
            PeerAddress(validator.public_key, *NodeConfig.split_address(validator.peer_address))
            for validator in self.genesis.validators
            if validator.public_key != self.key.public_key
        ]

    def _open_vote_record(self, genesis_hash: bytes) -> VoteStore:
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

    def _network(
        self, genesis_hash: bytes, peers: list[PeerAddress], limits: NetworkLimits, *, syncing: bool = False
    ) -> Network:
        host, port = NodeConfig.split_address(self.config["p2p.listen"])
        observers = [bytes.fromhex(key) for key in self.config["p2p.observers"]]
        if syncing:
            return Network(
                key=self.key,
                chain_id=self.rules.chain_id,
                genesis_hash=genesis_hash,
                listen_host=host,
                listen_port=port,
                peers=peers,
                admitted=[*self.validators, *observers],
                handlers={
                    CONSENSUS_KIND: _ignore_while_syncing,
                    TRANSACTIONS_KIND: _ignore_while_syncing,
                    STATE_SYNC_KIND: self._on_state_sync_frame_while_syncing,
                },
                on_peer_change=self._on_peer_change_while_syncing,
                limits=limits,
            )
        return Network(
            key=self.key,
            chain_id=self.rules.chain_id,
            genesis_hash=genesis_hash,
            listen_host=host,
            listen_port=port,
            peers=peers,
            admitted=[*self.validators, *observers],
            handlers={
                CONSENSUS_KIND: self._on_consensus_frame,
                TRANSACTIONS_KIND: self._on_transactions_frame,
                STATE_SYNC_KIND: self._on_state_sync_frame,
            },
            on_peer_change=self._on_peer_change,
            limits=limits,
        )

    def _rpc_server(self) -> RpcServer:
        host, port = NodeConfig.split_address(self.config["rpc.listen"])
        self.metrics.watch(lambda: read_figures(self))
        return RpcServer(
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
        LOG.info(
            "starting %s at height %d (head %s); vote record %s, highest height voted %d",
            self.name, self.store.height, self.store.head.hash.hex()[:16], self.vote_store.path,
            self.vote_store.highest_height(),
        )
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

    async def _join_by_state_sync(self) -> None:
        """Fill the empty store with the state of a recent certified height from peers, or
        with genesis when none offers one (see ``mura.p2p.state_sync``). Runs on a network of
        its own that answers peers only that this node has no snapshot yet."""
        genesis = self._genesis_block
        network = self._sync_network = self._network(genesis.hash, self._peer_addresses, self._limits, syncing=True)
        self.state_sync = StateSync(
            store=self.store,
            network=network,
            peers=[address.public_key for address in self._peer_addresses],
            chain_id=self.rules.chain_id,
            genesis_validators=self._genesis_changes.validators,
            genesis_hash=genesis.hash,
            settings=SyncSettings(wait_seconds=self.config["sync.snapshot_wait_seconds"]),
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
        height in progress, and the pool the transactions a block could take next. At most
        once per base timeout per peer: a validator flapping its link hundreds of times a
        second must not have this node resend proposals and transactions as often."""
        index = self.replica.validators.indexes.get(peer)
        if not connected or index is None or self._stopped:
            return
        now = time.monotonic()
        if now - self._last_offered.get(index, -math.inf) < self.config["consensus.base_timeout_ms"] / 1000:
            return
        self._last_offered[index] = now
        self.consensus.post(("peer", index))
        self.admission.offer_pending(peer)

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
            self.state_sync.peer_linked()

    # --- what the RPC sees (rpc.methods.NodeView) ------------------------------------------

    async def submit_transaction(self, transaction: Transaction) -> bytes:
        return await self.admission.submit(transaction)

    def status(self) -> NodeStatus:
        replica = self.replica
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
            stalled=self.consensus.progress.stalled(time.monotonic()),
        )

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
    if key.public_key not in genesis.validator_keys():
        raise ConfigError(f"key_file: {config.path('key_file')} is not the key of a validator in the genesis")
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
