"""The chain's durable store: LevelDB through plyvel.

Tables are key prefixes in one database:

==========  ===================================  ============================
prefix      key                                  value
==========  ===================================  ============================
``B``       height (8 bytes, big-endian)         encoded block
``C``       height                               encoded commit certificate
``H``       block hash                           height
``T``       transaction hash                     height + index (4 bytes)
``S``       state entry key (see ``state``)       state entry value
``A``       asset, account, height               the account's balance of the
                                                 asset after that block (a
                                                 block that changed it)
``R``       account, asset id (no length, so     (empty): the account has
            the keys run in id order)            held the asset
``X``       account, height, index (4 bytes)     hash of a transaction the
                                                 account sent or was named in
``P``       bond, payment index (4 bytes),       ``[units, amount, height]``:
            holder                               the holder's share of a
                                                 payment the chain made
``Q``       holder, bond, payment index          the same share, by holder
``M``       ``head``, ``lattice``, ``genesis``   head height + hash, lattice
                                                 hash, genesis block hash
``W``       activation height (8 bytes)          the validator set that
                                                 decides heights from it on
                                                 (written where it changes;
                                                 genesis: height 1)
``G``       height (8 bytes)                     ``[header, certificate]`` of a
                                                 block before a set change,
                                                 below the height a state
                                                 sync joined at (the proof it
                                                 checked, kept to serve)
``V``       height + sequence (4 bytes)          an encoded vote this node
                                                 signed (only in a
                                                 ``VoteStore`` now; read
                                                 here to carry old records
                                                 over)
==========  ===================================  ============================

The validator's vote record is a ``VoteStore``: the same ``V`` table in a
LevelDB of its own beside the validator's key, so that wiping the chain's data
never loses what the validator signed.

``A``, ``R`` and ``X`` are the history an auditor asks for: any account's
balances and any asset's holders as of any past height, and an account's
transactions newest first. ``P`` and ``Q`` keep what the chain paid on its
own, which no transaction records: each holder's share of each coupon and
redemption of a bond (``StateChanges.events``), by payment and by holder.
Assets are keyed as in the state (``asset_key``).

Each committed block is one ``write_batch(transaction=True, sync=True)``
holding the block, its certificate, every index, the state changes, the new
lattice hash and the head: a crash leaves the block wholly in or wholly out,
and opening the store finds the head again.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar, cast

import plyvel

from mura.chain import codec
from mura.chain.assets import AssetState, AssetTerms, asset_key, split_asset_key
from mura.chain.block import MAX_VALIDATORS, Block, CommitCertificate, Header, read_stored_transaction
from mura.chain.errors import TransactionRootMismatch
from mura.chain.governance import ScheduledSet, ValidatorSet
from mura.chain.keys import PUBLIC_KEY_SIZE
from mura.chain.pending import (
    ACCOUNT_PREFIX,
    ASSET_PREFIX,
    BALANCE_PREFIX,
    BOND_QUEUE_PREFIX,
    EXPIRY_PREFIX,
    MISSED_PREFIX,
    OPEN_PROPOSAL_PREFIX,
    SCHEDULED_KEY,
    VALIDATORS_KEY,
    Account,
    StateChanges,
    account_key,
    asset_state_key,
    asset_terms_key,
    balance_key,
    decode_balance,
    decode_validators,
    encode_validators,
)
from mura.chain.state_root import LatticeHash, update_lattice
from mura.chain.transaction import Transaction, parties

BLOCKS = b"B"
#: The state tables every block scans from their start.
_QUEUE_TABLES = frozenset({EXPIRY_PREFIX, BOND_QUEUE_PREFIX, MISSED_PREFIX, OPEN_PROPOSAL_PREFIX})
CERTIFICATES = b"C"
HEIGHT_BY_HASH = b"H"
TRANSACTION_LOCATIONS = b"T"
STATE = b"S"
META = b"M"
VOTES = b"V"
BALANCE_HISTORY = b"A"
HELD_ASSETS = b"R"
ACCOUNT_TRANSACTIONS = b"X"
PAYMENT_SHARES = b"P"
HOLDER_PAYMENTS = b"Q"
VALIDATOR_SETS = b"W"
CHANGE_POINTS = b"G"

_CHAIN = META + b"chain"
_VALIDATOR = META + b"validator"
_GUARD = META + b"guard"
_HIGHEST_VOTED = META + b"highest-voted"
_HEAD = META + b"head"
_LATTICE = META + b"lattice"
_GENESIS = META + b"genesis"
#: Set in the chain's data once a vote record apart from it has taken over.
_VOTES_MOVED = META + b"votes-moved"
#: The height a state sync joined at (absent: this store holds every block from genesis).
_SYNCED_FROM = META + b"synced-from"
#: Present while a state sync fills the store.
_SYNCING = META + b"syncing"


_K = TypeVar("_K")
_V = TypeVar("_V")


class StoreError(Exception):
    """The store cannot be used: locked, corrupted, or holding another chain."""


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + height.to_bytes(8, "big")


class Store:
    """Blocks, certificates, indexes and state of one chain, in one LevelDB."""

    def __init__(self, path: Path | str, *, account_cache_size: int = 200_000) -> None:
        self.path = Path(path)
        self._db: plyvel.DB | None = _open(self.path, "store")
        self._account_cache: OrderedDict[bytes, Account] = OrderedDict()
        self._balance_cache: OrderedDict[tuple[str, bytes], int] = OrderedDict()
        self._account_cache_size = account_cache_size
        # Every asset read so far: issuers create them, so there are few.
        self._assets: dict[str, AssetTerms] = {}
        self._asset_states: dict[str, AssetState] = {}
        self._asset_ids: list[str] | None = None
        #: Queue tables every block scans (expiries, bond steps, missed bonds) found empty and
        #: not written since: a block of plain transfers then reads none of them from LevelDB.
        self._empty_tables: set[bytes] = set()
        self._head: Header | None = None
        self._lattice: LatticeHash | None = None
        self._validators: ValidatorSet | None = None
        #: ``W``, read once: ``(activation height, set)`` in height order (few entries).
        self._validator_history: list[tuple[int, ValidatorSet]] | None = None
        self._commit_watchers: list[Callable[[Header], None]] = []
        self._recover()

    def _recover(self) -> None:
        head = self.db.get(_HEAD)
        if head is None:
            return
        height = int.from_bytes(head[:8], "big")
        block = self.load_block(height)
        if block is None or block.hash != head[8:]:
            raise StoreError(f"the store's head names block {height}, which it does not hold intact")
        self._head = block.header
        self._lattice = LatticeHash.from_bytes(self._get_required(_LATTICE))

    @property
    def db(self) -> plyvel.DB:
        if self._db is None:
            raise StoreError("the store is closed")
        return self._db

    def close(self) -> None:
        """Close the database; closing twice is harmless."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _get_required(self, key: bytes) -> bytes:
        value = self.db.get(key)
        if value is None:
            raise StoreError(f"the store is missing {key!r}")
        return value  # type: ignore[no-any-return]

    # --- head and genesis ------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self._head is not None

    @property
    def head(self) -> Header:
        """The header of the last final block."""
        if self._head is None:
            raise StoreError("the store holds no chain yet; initialize it with a genesis")
        return self._head

    @property
    def height(self) -> int:
        return self.head.height

    def load_genesis_hash(self) -> bytes | None:
        return self.db.get(_GENESIS)  # type: ignore[no-any-return]

    def initialize(self, genesis: Block, changes: StateChanges) -> None:
        """Write the genesis block and state; on an existing store, check it is the same chain."""
        existing = self.load_genesis_hash()
        if existing is not None:
            if existing != genesis.hash:
                raise StoreError(
                    f"the store at {self.path} holds chain with genesis {existing.hex()}, "
                    f"not {genesis.hash.hex()}; use another data directory"
                )
            return
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(_GENESIS, genesis.hash)
            self._write_block(batch, genesis, None, changes)
        self._after_commit(genesis, changes)

    # --- committing ---------------------------------------------------------------

    def save_block(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> None:
        """Append a final block with its certificate and state changes, atomically."""
        head = self.head
        if block.height != head.height + 1 or block.header.parent_hash != head.hash:
            raise StoreError(f"block {block.height} does not extend the head at {head.height}")
        if certificate.block_hash != block.hash or certificate.height != block.height:
            raise StoreError(f"certificate does not belong to block {block.height}")
        try:
            block.check_body()
        except TransactionRootMismatch as error:
            # Indexing transactions the header does not commit to would serve a forgery
            # under a valid certificate.
            raise StoreError(f"refusing to store block {block.height}: {error.message}") from None
        with self.db.write_batch(transaction=True, sync=True) as batch:
            self._write_block(batch, block, certificate, changes)
        self._after_commit(block, changes)
        for watcher in self._commit_watchers:
            watcher(block.header)

    def _write_block(
        self, batch: plyvel.WriteBatch, block: Block, certificate: CommitCertificate | None, changes: StateChanges
    ) -> None:
        height = block.height
        batch.put(_height_key(BLOCKS, height), block.encode())
        if certificate is not None:
            batch.put(_height_key(CERTIFICATES, height), certificate.encode())
        batch.put(HEIGHT_BY_HASH + block.hash, height.to_bytes(8, "big"))
        for index, transaction in enumerate(block.transactions):
            batch.put(TRANSACTION_LOCATIONS + transaction.hash, struct.pack(">QI", height, index))
        for key, value in changes.entries.items():
            self._write_entry(batch, key, value)
        if VALIDATORS_KEY in changes.entries:
            batch.put(_height_key(VALIDATOR_SETS, height + 1), encode_validators(changes.validators))
        self._write_history(batch, height, block.transactions, changes)
        batch.put(_LATTICE, changes.lattice.to_bytes())
        batch.put(_HEAD, height.to_bytes(8, "big") + block.hash)

    @staticmethod
    def _write_history(
        batch: plyvel.WriteBatch, height: int, transactions: tuple[Transaction, ...], changes: StateChanges
    ) -> None:
        """The history indexes of one block: each changed balance, each new holding, each
        transaction under every account it names, and each holder's share of a payment the chain made."""
        at = height.to_bytes(8, "big")
        for (asset, address), balance in changes.balances.items():
            batch.put(BALANCE_HISTORY + asset_key(asset) + address + at, codec.encode(balance))
        for asset, address in changes.first_holdings:
            batch.put(HELD_ASSETS + address + asset.encode(), b"")
        for index, transaction in enumerate(transactions):
            suffix = at + index.to_bytes(4, "big")
            for address in parties(transaction):
                batch.put(ACCOUNT_TRANSACTIONS + address + suffix, transaction.hash)
        for event in changes.events:
            share = codec.encode([event.units, event.amount, height])
            payment = asset_key(event.bond) + event.index.to_bytes(4, "big")
            batch.put(PAYMENT_SHARES + payment + event.holder, share)
            batch.put(HOLDER_PAYMENTS + event.holder + payment, share)

    @staticmethod
    def _write_entry(batch: plyvel.WriteBatch, key: bytes, value: bytes | None) -> None:
        if value is None:
            batch.delete(STATE + key)
        else:
            batch.put(STATE + key, value)

    def _after_commit(self, block: Block, changes: StateChanges) -> None:
        self._head = block.header
        self._lattice = changes.lattice
        self._validators = changes.validators
        if VALIDATORS_KEY in changes.entries and self._validator_history is not None:
            self._validator_history.append((block.height + 1, changes.validators))
        for address, account in changes.accounts.items():
            self._cache(self._account_cache, address, account)
        for pair, balance in changes.balances.items():
            self._cache(self._balance_cache, pair, balance)
        self._assets.update(changes.assets)
        if self._asset_ids is not None:
            for asset in changes.assets:
                bisect.insort(self._asset_ids, asset)
        self._asset_states.update(changes.asset_states)
        if self._empty_tables:
            self._empty_tables.difference_update({key[:1] for key, value in changes.entries.items() if value})

    # --- state (the StateReader protocol) --------------------------------------------

    def load_account(self, address: bytes) -> Account:
        account = self._account_cache.get(address)
        if account is not None:
            self._account_cache.move_to_end(address)
            return account
        value = self.db.get(STATE + account_key(address))
        if value is None:
            # Not cached: anyone can name accounts that do not exist, as many as they like.
            return Account()
        account = Account.decode(value)
        self._cache(self._account_cache, address, account)
        return account

    def load_balance(self, address: bytes, asset: str) -> int:
        pair = (asset, address)
        balance = self._balance_cache.get(pair)
        if balance is not None:
            self._balance_cache.move_to_end(pair)
            return balance
        value = self.db.get(STATE + balance_key(asset, address))
        if value is None:
            return 0
        balance = decode_balance(value)
        self._cache(self._balance_cache, pair, balance)
        return balance

    def _cache(self, cache: OrderedDict[_K, _V], key: _K, value: _V) -> None:
        cache[key] = value
        cache.move_to_end(key)
        if len(cache) > self._account_cache_size:
            cache.popitem(last=False)

    def load_asset(self, asset: str) -> AssetTerms | None:
        terms = self._assets.get(asset)
        if terms is None:
            value = self.db.get(STATE + asset_terms_key(asset))
            if value is None:
                return None
            terms = self._assets[asset] = AssetTerms.decode(value)
        return terms

    def load_asset_state(self, asset: str) -> AssetState:
        state = self._asset_states.get(asset)
        if state is None:
            if self.load_asset(asset) is None:
                return AssetState()
            value = self.db.get(STATE + asset_state_key(asset))
            state = self._asset_states[asset] = AssetState() if value is None else AssetState.decode(value)
        return state

    def load_entry(self, key: bytes) -> bytes | None:
        return self.db.get(STATE + key)  # type: ignore[no-any-return]

    def load_entries_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        start = STATE + prefix + after
        found: list[tuple[bytes, bytes]] = []
        if limit <= 0 or prefix in self._empty_tables:
            return found
        with self.db.iterator(start=start, include_start=not after) as entries:
            for key, value in entries:
                if not key.startswith(STATE + prefix):
                    break
                found.append((key[len(STATE) + len(prefix) :], value))
                if len(found) >= limit:
                    break
        if not found and not after and prefix in _QUEUE_TABLES:
            self._empty_tables.add(prefix)
        return found

    def load_holders_after(self, asset: str, after: bytes, limit: int) -> list[tuple[bytes, int]]:
        """Up to ``limit`` ``(account, balance)`` of ``asset``'s holders, in account order, after ``after``."""
        prefix = BALANCE_PREFIX + asset_key(asset)
        return [(address, decode_balance(value)) for address, value in self.load_entries_after(prefix, after, limit)]

    def load_validators(self) -> ValidatorSet:
        if self._validators is None:
            value = self.db.get(STATE + VALIDATORS_KEY)
            self._validators = () if value is None else decode_validators(value)
        return self._validators

    def load_validators_at(self, height: int) -> ValidatorSet:
        """The validator set that decides ``height``: known for certain from 1 to the head's
        height + 2 (the head's + 1 is ``v``; + 2 the set scheduled in the head block, if
        any, else the same); above that, the latest known set."""
        if height < 1:
            raise ValueError(f"height {height} has no validator set: the first decided height is 1")
        if height > self.height + 1:
            value = self.load_entry(SCHEDULED_KEY)
            if value is not None:
                return ScheduledSet.decode(value, MAX_VALIDATORS).validators
            return self.load_validators()
        history = self._load_validator_history()
        index = bisect.bisect_right(history, height, key=lambda item: item[0]) - 1
        if index < 0:
            raise StoreError(f"the store holds no validator set for height {height}")
        return history[index][1]

    def load_validator_changes(self, *, after: int, up_to: int, limit: int) -> list[tuple[int, ValidatorSet]]:
        """Up to ``limit`` ``(activation height, set)`` of the history ``W``, in height order,
        with ``after < activation height <= up_to`` (genesis's set is at height 1)."""
        history = self._load_validator_history()
        start = bisect.bisect_right(history, after, key=lambda item: item[0])
        found: list[tuple[int, ValidatorSet]] = []
        for activation, validators in history[start:]:
            if activation > up_to or len(found) >= limit:
                break
            found.append((activation, validators))
        return found

    def load_change_point(self, height: int) -> tuple[Header, bytes] | None:
        """The header of block ``height`` and its encoded commit certificate: from the block
        when this node keeps it, else as a state sync checked it (``G``); None if neither."""
        block = self.db.get(_height_key(BLOCKS, height))
        certificate = self.db.get(_height_key(CERTIFICATES, height))
        if block is not None and certificate is not None:
            return Header.from_fields(codec.decode_head(block, count=2, max_size=len(block) + 1), "block.header"), \
                certificate
        kept = self.db.get(_height_key(CHANGE_POINTS, height))
        if kept is None:
            return None
        header, certificate = codec.read_fields(codec.decode(kept), "change point", 2)
        return Header.from_fields(header, "change point.header"), codec.read_bytes(certificate, "change point")

    def _load_validator_history(self) -> list[tuple[int, ValidatorSet]]:
        if self._validator_history is None:
            self._validator_history = [
                (int.from_bytes(key[len(VALIDATOR_SETS) :], "big"), decode_validators(value))
                for key, value in self.db.iterator(prefix=VALIDATOR_SETS)
            ]
        return self._validator_history

    def load_lattice(self) -> LatticeHash:
        return self._lattice if self._lattice is not None else LatticeHash()

    def iterate_state(self) -> Iterator[tuple[bytes, bytes]]:
        """Every state entry as ``(key, value)``."""
        for key, value in self.db.iterator(prefix=STATE):
            yield key[len(STATE) :], value

    def iterate_accounts(self) -> Iterator[tuple[bytes, Account]]:
        for key, value in self.db.iterator(prefix=STATE + ACCOUNT_PREFIX):
            yield key[len(STATE) + len(ACCOUNT_PREFIX) :], Account.decode(value)

    def load_assets(self, *, after: str = "", limit: int | None = None) -> list[AssetTerms]:
        """The issued assets by id after ``after``: at most ``limit`` of them."""
        ids = self._sorted_asset_ids()
        start = bisect.bisect_right(ids, after) if after else 0
        chosen = ids[start:] if limit is None else ids[start : start + max(limit, 0)]
        return [cast(AssetTerms, self.load_asset(asset)) for asset in chosen]

    def count_assets(self) -> int:
        return len(self._sorted_asset_ids())

    def _sorted_asset_ids(self) -> list[str]:
        """Every issued asset's id, sorted: read from the state once, then kept at each commit."""
        if self._asset_ids is None:
            prefix = STATE + ASSET_PREFIX
            keys = self.db.iterator(prefix=prefix, include_value=False)
            self._asset_ids = sorted(split_asset_key(key[len(prefix) :])[0] for key in keys)
        return self._asset_ids

    # --- history ------------------------------------------------------------------------

    def load_balance_at(self, address: bytes, asset: str, height: int) -> int:
        """``address``'s balance of ``asset`` after the block at ``height`` (the head's for a later height)."""
        _check_height(height)
        if height >= self.height:
            return self.load_balance(address, asset)
        prefix = BALANCE_HISTORY + asset_key(asset) + address
        return self._latest_at(prefix, height)

    def _latest_at(self, prefix: bytes, height: int) -> int:
        """The value under the highest ``prefix`` + height key at or below ``height`` (0 if none)."""
        with self.db.iterator(
            start=prefix, stop=prefix + (height + 1).to_bytes(8, "big"), reverse=True, include_key=False
        ) as entries:
            value = next(entries, None)
        return 0 if value is None else codec.read_int(codec.decode(value), "balance history")

    def load_held_assets(self, address: bytes, *, after: str = "", limit: int | None = None) -> list[str]:
        """The assets ``address`` has ever held, by id after ``after``: at most ``limit`` of them."""
        prefix = HELD_ASSETS + address
        start = prefix + after.encode() if after else prefix
        found: list[str] = []
        if limit is not None and limit <= 0:
            return found
        with self.db.iterator(start=start, include_start=not after, include_value=False) as keys:
            for key in keys:
                if not key.startswith(prefix):
                    break
                found.append(key[len(prefix) :].decode())
                if limit is not None and len(found) >= limit:
                    break
        return found

    def load_balances_at(self, address: bytes, height: int) -> dict[str, int]:
        """``address``'s positive balances after the block at ``height``, by asset (every asset it
        ever held is looked at: for audits and tests; pages use ``load_held_assets``)."""
        balances = {asset: self.load_balance_at(address, asset, height) for asset in self.load_held_assets(address)}
        return {asset: balance for asset, balance in balances.items() if balance}

    def load_holders_at(self, asset: str, height: int, after: bytes, limit: int) -> HoldersPage:
        """A page of ``asset``'s holders after the block at ``height``, in account order after
        ``after``: at most ``limit`` of them. At the head they come from the state. Before it,
        from history, where every account that ever held the asset is looked at (two seeks
        each) and skipped if its balance was zero then; at most ``2 * limit`` accounts are
        looked at per page, so a page may hold fewer than ``limit``: go on from ``next_after``."""
        _check_height(height)
        if limit <= 0:
            return HoldersPage([], after or None)
        if height >= self.height:
            holders = self.load_holders_after(asset, after, limit)
            return HoldersPage(holders, holders[-1][0] if len(holders) == limit else None)
        prefix = BALANCE_HISTORY + asset_key(asset)
        found: list[tuple[bytes, int]] = []
        cursor = prefix + after + b"\xff" * 8 if after else prefix
        stop = prefix + b"\xff" * (PUBLIC_KEY_SIZE + 9)
        for _ in range(2 * limit):
            with self.db.iterator(start=cursor, stop=stop, include_value=False) as keys:
                key = next(keys, None)
            if key is None:
                return HoldersPage(found, None)
            address = key[len(prefix) : len(prefix) + PUBLIC_KEY_SIZE]
            balance = self._latest_at(prefix + address, height)
            if balance:
                found.append((address, balance))
            cursor = prefix + address + b"\xff" * 8
            if len(found) >= limit:
                break
        return HoldersPage(found, address)

    def load_account_transactions(
        self, address: bytes, *, before: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int, bytes]]:
        """Up to ``limit`` ``(height, index, hash)`` of the transactions naming ``address``,
        newest first, starting before position ``before`` (None: from the newest)."""
        if limit <= 0:
            return []
        prefix = ACCOUNT_TRANSACTIONS + address
        stop = prefix + before[0].to_bytes(8, "big") + before[1].to_bytes(4, "big") if before else prefix + b"\xff" * 13
        found: list[tuple[int, int, bytes]] = []
        with self.db.iterator(start=prefix, stop=stop, reverse=True) as entries:
            for key, value in entries:
                height, index = struct.unpack(">QI", key[len(prefix) :])
                found.append((height, index, value))
                if len(found) >= limit:
                    break
        return found

    def load_payment_shares(self, bond: str, index: int, *, after: bytes, limit: int) -> list[PaymentShare]:
        """Up to ``limit`` holders' shares of ``bond``'s payment ``index``, in account order
        after the holder ``after`` (b"": from the first)."""
        prefix = PAYMENT_SHARES + asset_key(bond) + index.to_bytes(4, "big")
        return [
            _read_share(bond, index, key[len(prefix) :], value)
            for key, value in self._page(prefix, after, limit)
        ]

    def load_holder_payments(
        self, holder: bytes, *, bond: str | None = None, after: tuple[str, int] | None = None, limit: int
    ) -> list[PaymentShare]:
        """Up to ``limit`` of ``holder``'s shares of the payments the chain made, by bond
        (in state key order: shorter ids first) and payment index, of ``bond`` alone when
        given, after the payment ``after`` (``(bond, index)``; None: from the first)."""
        scope = b"" if bond is None else asset_key(bond)
        position = scope if after is None else asset_key(after[0]) + after[1].to_bytes(4, "big")
        if not position.startswith(scope):
            raise ValueError(f"payment {after} is not one of {bond}'s")
        shares: list[PaymentShare] = []
        for key, value in self._page(HOLDER_PAYMENTS + holder + scope, position[len(scope) :], limit):
            found_bond, rest = split_asset_key(key[len(HOLDER_PAYMENTS) + PUBLIC_KEY_SIZE :])
            shares.append(_read_share(found_bond, int.from_bytes(rest, "big"), holder, value))
        return shares

    def _page(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` ``(key, value)`` under ``prefix``, in key order, after ``prefix + after``."""
        found: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return found
        with self.db.iterator(start=prefix + after, include_start=not after) as entries:
            for key, value in entries:
                if not key.startswith(prefix):
                    break
                found.append((key, value))
                if len(found) >= limit:
                    break
        return found

    def recompute_lattice(self) -> LatticeHash:
        """The lattice hash rebuilt from every stored entry (for audits and tests)."""
        return update_lattice(LatticeHash(), [(key, None, value) for key, value in self.iterate_state()])

    # --- blocks and indexes ------------------------------------------------------------

    def load_block(self, height: int) -> Block | None:
        data = self.db.get(_height_key(BLOCKS, height))
        return None if data is None else Block.decode(data)

    def load_block_bytes(self, height: int) -> bytes | None:
        return self.db.get(_height_key(BLOCKS, height))  # type: ignore[no-any-return]

    def load_height(self, block_hash: bytes) -> int | None:
        value = self.db.get(HEIGHT_BY_HASH + block_hash)
        return None if value is None else int.from_bytes(value, "big")

    def load_block_by_hash(self, block_hash: bytes) -> Block | None:
        height = self.load_height(block_hash)
        return None if height is None else self.load_block(height)

    def load_certificate(self, height: int) -> CommitCertificate | None:
        data = self.db.get(_height_key(CERTIFICATES, height))
        return None if data is None else CommitCertificate.decode(data)

    def load_certificate_bytes(self, height: int) -> bytes | None:
        return self.db.get(_height_key(CERTIFICATES, height))  # type: ignore[no-any-return]

    def load_transaction_at(self, height: int, index: int) -> tuple[Transaction, bytes] | None:
        """The final transaction at ``(height, index)`` and its block's hash, decoding that
        transaction alone (None if there is none)."""
        data = self.db.get(_height_key(BLOCKS, height))
        found = None if data is None else read_stored_transaction(data, index)
        if found is None:
            return None
        header, raw = found
        return Transaction.decode(raw), header.hash

    def load_transaction_location(self, transaction_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of a final transaction, or None."""
        value = self.db.get(TRANSACTION_LOCATIONS + transaction_hash)
        if value is None:
            return None
        height, index = struct.unpack(">QI", value)
        return height, index

    # --- votes recorded here by earlier versions ---------------------------------------

    def load_votes(self, height: int) -> list[bytes]:
        """Votes an earlier version recorded at ``height`` in the chain's own database (the
        record now lives apart, in a ``VoteStore``): read once, to carry them over."""
        return [value for _, value in self.db.iterator(prefix=_height_key(VOTES, height))]

    @property
    def kept_votes(self) -> bool:
        """Whether an earlier version kept the vote record in this database: it holds
        final blocks and no vote record apart has taken over (``votes_moved``)."""
        return self.height > 0 and self.db.get(_VOTES_MOVED) is None

    def votes_moved(self) -> None:
        """A vote record apart from the chain's data has taken over (synced, once)."""
        if self.db.get(_VOTES_MOVED) is None:
            self.db.put(_VOTES_MOVED, b"", sync=True)

    # --- snapshots and state sync (see ``mura.chain.snapshot``) --------------------------

    def watch_commits(self, callback: Callable[[Header], None]) -> None:
        """Have ``callback(header)`` called right after each block's batch is written, before
        anything else can write: a snapshot taken there holds exactly that block's state."""
        self._commit_watchers.append(callback)

    def open_state_view(self) -> StateView:
        """A consistent view of the state as of the head now, unchanged by later blocks; the
        caller closes it (it pins what LevelDB would otherwise compact away)."""
        return StateView(self.head, self.db.snapshot())

    @property
    def kept_from(self) -> int:
        """The lowest height whose block and history this node keeps: 0, or the height it
        joined at by state sync (it holds no block below)."""
        value = self.db.get(_SYNCED_FROM)
        return 0 if value is None else int.from_bytes(value, "big")

    @property
    def sync_unfinished(self) -> bool:
        """A state sync began in this store and did not finish (its state is partial)."""
        return self.db.get(_SYNCING) is not None

    def begin_state_sync(self) -> None:
        """Start (or start again) filling a store that holds no chain with a synced state:
        any partial state of an earlier attempt goes."""
        if self.initialized:
            raise StoreError("a state sync fills a store that holds no chain yet")
        self.db.put(_SYNCING, b"", sync=True)
        self._delete_partial_state()

    def abandon_state_sync(self) -> None:
        """Forget a sync that did not finish: its partial state goes, and the store holds no
        chain again (to be initialized from genesis)."""
        self._delete_partial_state()
        self.db.delete(_SYNCING, sync=True)

    def _delete_partial_state(self) -> None:
        """Delete the state and history rows a sync that did not finish wrote."""
        for prefix in (STATE, BALANCE_HISTORY, HELD_ASSETS):
            keys = self.db.iterator(prefix=prefix, include_value=False)
            while batch_keys := list(itertools.islice(keys, 10_000)):
                with self.db.write_batch() as batch:
                    for key in batch_keys:
                        batch.delete(key)

    def save_synced_entries(self, height: int, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """Write checked state entries of the snapshot at ``height``, with the history rows a
        balance has (its value at ``height``, and that its account holds the asset)."""
        at = height.to_bytes(8, "big")
        with self.db.write_batch() as batch:
            for key, value in entries:
                batch.put(STATE + key, value)
                if key.startswith(BALANCE_PREFIX):
                    asset, address = split_asset_key(key[len(BALANCE_PREFIX) :])
                    batch.put(BALANCE_HISTORY + key[len(BALANCE_PREFIX) :] + at, value)
                    batch.put(HELD_ASSETS + address + asset.encode(), b"")

    def finish_state_sync(
        self,
        block: Block,
        certificate: CommitCertificate,
        lattice: LatticeHash,
        *,
        genesis_hash: bytes,
        validator_sets: Sequence[tuple[int, ValidatorSet]],
        change_points: Sequence[tuple[Header, CommitCertificate]],
    ) -> None:
        """Make the synced state this store's chain: its head is ``block`` (final by
        ``certificate``), whose state root ``lattice`` gives; below it the store holds no block.

        ``validator_sets`` is the history ``W`` up to the height after ``block`` (genesis's set
        at 1, then each checked change), and ``change_points`` the certified headers before
        each change, kept to serve them: the synced node answers the set of every height and
        serves the changes to the next node that joins."""
        if lattice.root() != block.header.state_root:
            raise StoreError(f"the synced state does not have block {block.height}'s state root")
        block.check_body()
        height = block.height
        self._check_synced_history(height, validator_sets)
        with self.db.write_batch(transaction=True, sync=True) as batch:
            for activation, validators in validator_sets:
                batch.put(_height_key(VALIDATOR_SETS, activation), encode_validators(validators))
            for header, point_certificate in change_points:
                if header.height < height:
                    batch.put(_height_key(CHANGE_POINTS, header.height),
                              codec.encode([header.to_fields(), point_certificate.encode()]))
            batch.put(_GENESIS, genesis_hash)
            batch.put(_height_key(BLOCKS, height), block.encode())
            batch.put(_height_key(CERTIFICATES, height), certificate.encode())
            batch.put(HEIGHT_BY_HASH + block.hash, height.to_bytes(8, "big"))
            for index, transaction in enumerate(block.transactions):
                batch.put(TRANSACTION_LOCATIONS + transaction.hash, struct.pack(">QI", height, index))
            batch.put(_LATTICE, lattice.to_bytes())
            batch.put(_HEAD, height.to_bytes(8, "big") + block.hash)
            batch.put(_SYNCED_FROM, height.to_bytes(8, "big"))
            # A vote record opened over this store is new or kept: it never inherits votes from here.
            batch.put(_VOTES_MOVED, b"")
            batch.delete(_SYNCING)
        self._validators = None
        self._validator_history = None
        self._recover()

    def _check_synced_history(self, height: int, validator_sets: Sequence[tuple[int, ValidatorSet]]) -> None:
        """The history given ends in the set the synced state holds for the next height."""
        activations = [activation for activation, _ in validator_sets]
        if not activations or activations[0] != 1 or activations != sorted(set(activations)) or \
                activations[-1] > height + 1:
            raise StoreError(f"a synced store's validator history runs from height 1 up to {height + 1}, "
                             f"got activation heights {activations[:8]}")
        value = self.db.get(STATE + VALIDATORS_KEY)
        if value is None or decode_validators(value) != validator_sets[-1][1]:
            raise StoreError(f"the validator history given does not end in the set the state at {height} holds")


class StateView:
    """The state as of one final block, unchanged by later ones (a LevelDB snapshot).

    Reading it from several threads at once is safe; ``close`` waits for no reader, so
    its owner closes it only once no one reads it any more."""

    def __init__(self, header: Header, snapshot: plyvel.Snapshot) -> None:
        #: The header of the block whose state this is.
        self.header = header
        self._snapshot: plyvel.Snapshot | None = snapshot

    @property
    def height(self) -> int:
        return self.header.height

    def iterate_state(self, *, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """The state's entries in key order, from key ``start`` on."""
        if self._snapshot is None:
            raise StoreError(f"the view of the state at {self.height} is closed")
        for key, value in self._snapshot.iterator(start=STATE + start, stop=_after(STATE)):
            yield key[len(STATE) :], value

    def load_entries(self, start: bytes, count: int) -> list[tuple[bytes, bytes]]:
        """Up to ``count`` entries in key order from key ``start`` on."""
        return list(itertools.islice(self.iterate_state(start=start), count))

    def close(self) -> None:
        """Let LevelDB forget this view; closing twice is harmless."""
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None


@dataclass(frozen=True, slots=True)
class HoldersPage:
    """One page of an asset's holders."""

    #: ``(account, balance)`` in account order.
    holders: list[tuple[bytes, int]]
    #: Where the next page starts (pass it as ``after``), or None when this is the last.
    next_after: bytes | None


@dataclass(frozen=True, slots=True)
class PaymentShare:
    """One holder's share of a coupon or redemption the chain paid."""

    bond: str
    #: The payment's place in the bond's schedule.
    index: int
    holder: bytes
    #: Units it was paid on (redeemed, for the redemption) and the settlement amount received.
    units: int
    amount: int
    #: The block that paid it.
    height: int


def _read_share(bond: str, index: int, holder: bytes, value: bytes) -> PaymentShare:
    units, amount, height = codec.read_fields(codec.decode(value), "payment share", 3)
    return PaymentShare(
        bond,
        index,
        holder,
        codec.read_int(units, "payment share.units"),
        codec.read_int(amount, "payment share.amount"),
        codec.read_int(height, "payment share.height"),
    )


def _after(prefix: bytes) -> bytes:
    """The first key after every key that starts with the one-letter ``prefix``."""
    return bytes([prefix[0] + 1])


def _check_height(height: int) -> None:
    if height < 0:
        raise ValueError(f"height {height} is negative")


def _open(path: Path, what: str) -> plyvel.DB:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the {what} at {path}: {error.strerror or error}") from None
    try:
        return plyvel.DB(str(path), create_if_missing=True)
    except plyvel.IOError as error:
        reason = _reason(error)
        if "lock" in reason.lower() and "LOCK" in reason:
            raise StoreError(f"another process is using {path} (LevelDB LOCK held); stop it first") from None
        raise StoreError(f"cannot open the {what} at {path}: {reason}") from None
    except plyvel.CorruptionError as error:
        raise StoreError(f"the {what} at {path} is corrupted: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    """LevelDB's message as text: plyvel gives it as bytes."""
    message = error.args[0] if error.args else error
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


class VoteStore:
    """The validator's vote record (persist before you speak), in a LevelDB of its own.

    It lives beside the validator's key, apart from the chain's data: wiping the
    chain's data to resync never loses what the validator signed, so it never signs
    twice. Each vote is appended with ``sync``. A record belongs to one validator
    key on one chain (its genesis hash), and refuses to open for another. It also
    keeps the double-sign check's state (``load_guard``), so that a restart cannot
    skip the check: a record created by this opening (``new``) starts with the check
    pending.
    """

    def __init__(self, path: Path | str, *, chain: bytes, validator: bytes, db: plyvel.DB | None = None) -> None:
        self.path = Path(path)
        #: ``db``: an open database with plyvel's interface to keep the record in instead
        #: of the LevelDB at ``path`` (the simulator's disk, which models a crash).
        self._db: plyvel.DB | None = _open(self.path, "vote record") if db is None else db
        stored_chain, stored_validator = self.db.get(_CHAIN), self.db.get(_VALIDATOR)
        #: True when this opening created the record.
        self.new = stored_chain is None
        if self.new:
            with self.db.write_batch(transaction=True, sync=True) as batch:
                batch.put(_CHAIN, chain)
                batch.put(_VALIDATOR, validator)
                batch.put(_GUARD, b"")
            return
        if stored_chain != chain or stored_validator != validator:
            self.close()
            whose = "another chain" if stored_chain != chain else "another validator key"
            raise StoreError(
                f"the vote record at {self.path} belongs to {whose} "
                f"(genesis {bytes(stored_chain).hex()[:16]}, key {bytes(stored_validator or b'').hex()[:16]}); "
                "it is what that validator signed: move it away only if that chain is gone"
            )

    def load_guard(self) -> tuple[bool, int, int]:
        """The double-sign check's state: (pending, until height, from view). Pending: the
        height the network works on is not known yet, sign nothing. Otherwise sign nothing
        at heights up to and including ``until height`` (0: no check), nor at height 1 in
        views below ``from view``."""
        value = self.db.get(_GUARD)
        if value is None:
            return False, 0, 0
        if value == b"":
            return True, 0, 0
        return False, int.from_bytes(value[:8], "big"), int.from_bytes(value[8:16], "big")

    def save_guard(self, until_height: int, from_view: int = 0) -> None:
        """The check is resolved: sign nothing up to ``until_height``, nor at height 1 in
        views below ``from_view``. Synced. Without a view, in the 8 bytes earlier versions
        read (one going back to such a version must not read a height times 2**64)."""
        value = until_height.to_bytes(8, "big") + (from_view.to_bytes(8, "big") if from_view else b"")
        self.db.put(_GUARD, value, sync=True)

    @property
    def db(self) -> plyvel.DB:
        if self._db is None:
            raise StoreError("the vote record is closed")
        return self._db

    def close(self) -> None:
        """Close the database; closing twice is harmless."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> VoteStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def save_vote(self, height: int, encoded_vote: bytes) -> None:
        """Durably append a vote this node signed at ``height``; returns once it is on disk."""
        prefix = _height_key(VOTES, height)
        last = next(self.db.iterator(prefix=prefix, reverse=True, include_value=False), None)
        sequence = 0 if last is None else int.from_bytes(last[len(prefix) :], "big") + 1
        with self.db.write_batch(transaction=True, sync=True) as batch:
            batch.put(prefix + sequence.to_bytes(4, "big"), encoded_vote)
            if height > self.highest_height():
                batch.put(_HIGHEST_VOTED, height.to_bytes(8, "big"))

    def load_votes(self, height: int) -> list[bytes]:
        """The votes recorded at ``height``, in the order they were saved."""
        return [value for _, value in self.db.iterator(prefix=_height_key(VOTES, height))]

    def highest_height(self) -> int:
        """The highest height a vote was ever saved at (0 if none); pruning keeps it."""
        value = self.db.get(_HIGHEST_VOTED)
        return 0 if value is None else int.from_bytes(value, "big")

    def prune_votes(self, below_height: int) -> None:
        """Forget votes below ``below_height``; those heights are final."""
        with self.db.write_batch() as batch:
            for key in self.db.iterator(start=VOTES, stop=_height_key(VOTES, below_height), include_value=False):
                batch.delete(key)
