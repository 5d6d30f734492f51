"""What the RPC reads and writes of a running node: the ``NodeView`` interface.

The methods reach the node only through this small interface, which
``mura.node.Node`` implements over its store, mempool, replica and network.
Everything in it is a plain value or a read of final data; nothing here lets
a client reach into consensus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mura.chain.assets import AssetState, AssetTerms
from mura.chain.block import Block, CommitCertificate, Header
from mura.chain.drops import Dropped
from mura.chain.governance import ValidatorSet
from mura.chain.mempool import MempoolStatus
from mura.chain.state import Account
from mura.chain.transaction import Transaction
from mura.rpc.finality import FinalityWatch
from mura.rpc.metrics import NodeFigures
from mura.rpc.readiness import SyncFacts

if TYPE_CHECKING:  # the store's own module (and LevelDB's binding) is for the node to load, not its readers
    from mura.chain.store import HoldersPage, PaymentShare


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The node's view of the chain and the network, as ``chain_status`` and ``/ready`` report it."""

    #: Height of the last final block.
    height: int
    #: Hash of the last final block.
    head_hash: bytes
    #: The PBFT view this node is in.
    view: int
    #: Public keys of the validators, in order.
    validators: tuple[bytes, ...]
    #: Peers connected now, observers included.
    peers: int
    #: True while the node is catching up and not yet in consensus.
    syncing: bool
    #: The highest final height this node knows of: its own, or one below a height a
    #: validator was seen working on. ``highest_known_height - height`` is how far behind it is.
    highest_known_height: int = 0
    #: View changes this node has started since it began (a figure for metrics).
    view_changes_started: int = 0
    #: Other validators this node has taken no valid vote from lately (see
    #: ``mura.node.Node.missing_validators``): 0 on a healthy network.
    missing_validators: int = 0
    #: True while the chain makes no progress here (see ``mura.progress_log``).
    stalled: bool = False
    #: ``validator`` or ``observer``, as configured.
    role: str = "validator"
    #: True while this node's key is a validator's of the height in progress (it votes).
    voting: bool = True
    #: Final blocks pushed to observers, and pushes dropped (see ``mura.observers``).
    final_blocks_pushed: int = 0
    final_blocks_push_dropped: int = 0
    #: Of ``peers``, those that are validators of the height in progress or the next: what
    #: readiness counts (an observer's link makes or learns no block).
    validator_peers: int = 0


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """The network's fixed identity, from its genesis."""

    #: The network's name; every transaction must carry it.
    chain_id: str
    #: The part of the network's text addresses before the ``1``, e.g. ``tnac``.
    address_prefix: str
    #: The asset methods and commands use when none is named: the genesis's first (None: it declares none).
    default_asset: str | None
    #: Validator names from genesis, by public key.
    validator_names: Mapping[bytes, str] = field(default_factory=dict)


class ChainReader(Protocol):
    """Read access to the final chain; ``mura.chain.store.Store`` is one."""

    @property
    def head(self) -> Header:
        """The header of the last final block."""
        ...

    @property
    def height(self) -> int:
        """The height of the last final block."""
        ...

    @property
    def kept_from(self) -> int:
        """The lowest height whose block and history this node keeps (0 unless it joined by state sync)."""
        ...

    def load_account(self, address: bytes) -> Account:
        """The nonce and roles of a public key; an empty ``Account`` if it never sent anything."""
        ...

    def load_balance(self, address: bytes, asset: str) -> int:
        """The account's final balance of ``asset`` (0 if none)."""
        ...

    def load_asset(self, asset: str) -> AssetTerms | None:
        """The terms of an issued asset, or None."""
        ...

    def load_asset_state(self, asset: str) -> AssetState:
        """The supply, holders and lapse of an asset (an empty state for an unknown one)."""
        ...

    def load_assets(self, *, after: str = "", limit: int | None = None) -> list[AssetTerms]:
        """The issued assets by id after ``after``: at most ``limit`` of them."""
        ...

    def count_assets(self) -> int:
        """How many assets have been issued."""
        ...

    def load_held_assets(self, address: bytes, *, after: str = "", limit: int | None = None) -> list[str]:
        """The assets the account has ever held, by id after ``after``: at most ``limit``."""
        ...

    def load_balance_at(self, address: bytes, asset: str, height: int) -> int:
        """The account's balance of ``asset`` after the block at ``height`` (at most the head)."""
        ...

    def load_holders_at(self, asset: str, height: int, after: bytes, limit: int) -> HoldersPage:
        """A page of at most ``limit`` ``(account, balance)`` with a positive balance of ``asset``
        after the block at ``height``, in account order after ``after`` (empty: from the first),
        and where the next page starts."""
        ...

    def load_account_transactions(
        self, address: bytes, *, before: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int, bytes]]:
        """Up to ``limit`` ``(height, index, hash)`` of the final transactions naming the account,
        newest first, before position ``before`` (None: from the newest)."""
        ...

    def load_entry(self, key: bytes) -> bytes | None:
        """The raw value of a state entry (None when absent): bonds, offerings, subscriptions."""
        ...

    def load_entries_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` state entries whose key starts with ``prefix``, in key order, each as
        ``(the key after the prefix, value)``, after ``prefix + after`` (b"": from the first)."""
        ...

    def load_payment_shares(self, bond: str, index: int, *, after: bytes, limit: int) -> list[PaymentShare]:
        """Up to ``limit`` holders' shares of ``bond``'s payment ``index``, in account order after ``after``."""
        ...

    def load_holder_payments(
        self, holder: bytes, *, bond: str | None = None, after: tuple[str, int] | None = None, limit: int
    ) -> list[PaymentShare]:
        """Up to ``limit`` of ``holder``'s shares of payments the chain made (of ``bond`` alone when
        given), by bond and payment index, after the payment ``after``."""
        ...

    def load_validators(self) -> ValidatorSet:
        """The validator set of the next height, in PBFT order."""
        ...

    def load_validators_at(self, height: int) -> ValidatorSet:
        """The validator set that decides ``height`` (see ``Store.load_validators_at``)."""
        ...

    def load_block(self, height: int) -> Block | None:
        """The final block at ``height``, if there is one."""
        ...

    def load_block_by_hash(self, block_hash: bytes) -> Block | None:
        """The final block with this hash, if there is one."""
        ...

    def load_certificate(self, height: int) -> CommitCertificate | None:
        """The commit certificate of the block at ``height`` (none for genesis)."""
        ...

    def load_transaction_location(self, transaction_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of a final transaction, or None."""
        ...

    def load_transaction_at(self, height: int, index: int) -> tuple[Transaction, bytes] | None:
        """The final transaction at ``(height, index)`` and its block's hash, or None."""
        ...


class MempoolReader(Protocol):
    """Read access to the pending transactions; ``mura.chain.mempool.Mempool`` is one."""

    def __contains__(self, transaction_hash: object) -> bool:
        """Whether a transaction with this hash is pending."""
        ...

    def pending_for(self, sender: bytes) -> list[Transaction]:
        """``sender``'s pending transactions in nonce order."""
        ...

    def dropped(self, transaction_hash: bytes) -> Dropped | None:
        """Why the mempool dropped this transaction, if it did and it is not pending again."""
        ...

    def status(self) -> MempoolStatus:
        """How full the pool is and its limits."""
        ...


class NodeView(Protocol):
    """What the RPC methods, ``/ready`` and ``/metrics`` need from a running node."""

    @property
    def address_prefix(self) -> str:
        """The network's text address prefix, e.g. ``tnac``."""
        ...

    @property
    def chain_info(self) -> ChainInfo:
        """The network's identity: chain id, prefix, default asset and validator names."""
        ...

    @property
    def store(self) -> ChainReader:
        """The final chain and its state."""
        ...

    @property
    def mempool(self) -> MempoolReader:
        """The transactions waiting for a block."""
        ...

    @property
    def finality(self) -> FinalityWatch:
        """Told by the node of every final block; ``tx_wait`` waits on it."""
        ...

    def submit_transaction(self, transaction: Transaction) -> Awaitable[bytes]:
        """Admit ``transaction`` to the mempool and gossip it; its hash, or ``Invalid`` saying why not.

        ``MempoolRejection`` means the pool cannot take it now; any other
        ``Invalid`` means it breaks a chain rule.
        """
        ...

    def status(self) -> NodeStatus:
        """A snapshot of the node's chain and network status."""
        ...


def read_sync_facts(node: NodeView) -> SyncFacts:
    """What ``/ready`` judges, read from ``node`` now."""
    status = node.status()
    return SyncFacts(
        peers=status.validator_peers, height=status.height, highest_known_height=status.highest_known_height
    )


def read_figures(node: NodeView) -> NodeFigures:
    """What the ``/metrics`` gauges show, read from ``node`` now."""
    status = node.status()
    mempool = node.mempool.status()
    return NodeFigures(
        height=status.height,
        view=status.view,
        view_changes_started=status.view_changes_started,
        peers=status.peers,
        missing_validators=status.missing_validators,
        stalled=int(status.stalled),
        blocks_behind=max(0, status.highest_known_height - status.height),
        voting=int(status.voting),
        final_blocks_pushed=status.final_blocks_pushed,
        final_blocks_push_dropped=status.final_blocks_push_dropped,
        mempool_transactions=mempool.transactions,
        mempool_bytes=mempool.bytes,
    )
