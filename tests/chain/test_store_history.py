"""The store's history indexes: an account's transactions newest first, in pages; any
account's balances and any asset's holders as of a past height.

Each test commits real blocks into a LevelDB store and, beside it, into a
``MemoryState`` whose balances after every block are the expected answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mura.chain.state import GenesisAsset, MemoryState
from mura.chain.store import Store
from mura.chain.transaction import Body, Burn, Mint, Transaction, Transfer, parties, sign_transaction
from mura.tests.ledger_fixtures import (
    ACCOUNTS,
    ASSET,
    CHAIN_ID,
    GENESIS_TIME_MS,
    ISSUER,
    asset_terms,
    certify,
    genesis,
    key,
    load_all_holders_at,
    seal,
)

OTHER = "JPYT"
BOND = "BOND-2031"
#: When the bond expires: the third block after genesis (blocks are a second apart).
BOND_EXPIRY_MS = GENESIS_TIME_MS + 3_000
NEWCOMER = key("newcomer")
GENESIS_ASSETS = (
    GenesisAsset(asset_terms(OTHER), ((ACCOUNTS[0].public_key, 500), (ACCOUNTS[1].public_key, 300))),
    GenesisAsset(
        replace(asset_terms(BOND), expiry_ms=BOND_EXPIRY_MS),
        tuple((account.public_key, 10 * (index + 1)) for index, account in enumerate(ACCOUNTS)),
    ),
)


class History:
    """A store and, beside it, the balances of every asset after each block."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.memory = MemoryState()
        block, changes = genesis(*GENESIS_ASSETS)
        store.initialize(block, changes)
        self.memory.commit(changes)
        self.balances = [self._balances()]
        self.blocks = [block]
        self.nonces: dict[bytes, int] = {}

    def _balances(self) -> dict[str, dict[bytes, int]]:
        return {asset: self.memory.balances(asset) for asset in self.memory.assets()}

    def sign(self, sender: int | None, body: Body) -> Transaction:
        """A transaction from ``ACCOUNTS[sender]`` (the issuer if None) with its next nonce."""
        signer = ISSUER if sender is None else ACCOUNTS[sender]
        nonce = self.nonces.get(signer.public_key, 0)
        self.nonces[signer.public_key] = nonce + 1
        return sign_transaction(signer, chain_id=CHAIN_ID, nonce=nonce, body=body)

    def commit(self, transactions: list[Transaction]) -> None:
        block, changes = seal(self.store, self.blocks[-1], transactions)
        assert list(block.transactions) == transactions
        self.store.save_block(block, certify(block), changes)
        self.memory.commit(changes)
        self.blocks.append(block)
        self.balances.append(self._balances())

    def transactions_of(self, address: bytes) -> list[tuple[int, int, bytes]]:
        """Every ``(height, index, hash)`` naming ``address``, newest first."""
        named = [
            (height, index, transaction.hash)
            for height, block in enumerate(self.blocks)
            for index, transaction in enumerate(block.transactions)
            if address in parties(transaction)
        ]
        return named[::-1]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    """Four blocks after genesis: payments in NAC and JPYT, a newcomer paid at height 2 who
    spends everything at height 4, a mint and a burn, and the bond lapsing at height 3."""
    with Store(tmp_path / "data") as store:
        history = History(store)
        first, second, newcomer = (account.public_key for account in (ACCOUNTS[1], ACCOUNTS[2], NEWCOMER))
        history.commit(
            [
                history.sign(0, Transfer(ASSET, second, 100)),
                history.sign(2, Transfer(ASSET, first, 5)),
                history.sign(3, Transfer(ASSET, ACCOUNTS[4].public_key, 7)),
            ]
        )
        history.commit(
            [
                history.sign(1, Transfer(OTHER, second, 300)),
                history.sign(None, Mint(ASSET, newcomer, 50)),
                history.sign(None, Burn(ASSET, 1_000)),
            ]
        )
        history.commit([history.sign(2, Transfer(ASSET, newcomer, 1))])
        history.commit(
            [
                history.sign(None, Transfer(ASSET, newcomer, 9, "invoice 7")),
                sign_transaction(NEWCOMER, chain_id=CHAIN_ID, nonce=0, body=Transfer(ASSET, second, 60)),
            ]
        )
        yield history


# --- an account's transactions -----------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
def test_load_account_transactions_newest_first_in_pages(history: History, limit: int) -> None:
    for account in [*ACCOUNTS, ISSUER, NEWCOMER]:
        expected = history.transactions_of(account.public_key)
        pages: list[list[tuple[int, int, bytes]]] = []
        before: tuple[int, int] | None = None
        while True:
            page = history.store.load_account_transactions(account.public_key, before=before, limit=limit)
            if not page:
                break
            assert len(page) <= limit
            pages.append(page)
            before = page[-1][:2]
        assert [entry for page in pages for entry in page] == expected
        assert all(len(page) == limit for page in pages[:-1])


def test_load_account_transactions_names_each_party(history: History) -> None:
    """A sender and a recipient see the transaction; a burn concerns its sender alone; a
    transaction to oneself is listed once; nobody else sees it."""
    store = history.store
    newcomer = store.load_account_transactions(NEWCOMER.public_key, before=None, limit=10)
    assert [(height, index) for height, index, _ in newcomer] == [(4, 1), (4, 0), (3, 0), (2, 1)]
    issuer = store.load_account_transactions(ISSUER.public_key, before=None, limit=10)
    assert [(height, index) for height, index, _ in issuer] == [(4, 0), (2, 2), (2, 1)]
    assert store.load_account_transactions(key("nobody").public_key, before=None, limit=10) == []
    for height, index, transaction_hash in newcomer:
        block = store.load_block(height)
        assert block is not None and block.transactions[index].hash == transaction_hash
        assert store.load_transaction_location(transaction_hash) == (height, index)


def test_load_account_transactions_before_a_position(history: History) -> None:
    store = history.store
    second = ACCOUNTS[2].public_key
    everything = store.load_account_transactions(second, before=None, limit=100)
    assert [(height, index) for height, index, _ in everything] == [(4, 1), (3, 0), (2, 0), (1, 1), (1, 0)]
    # ``before`` is exclusive, need not be a position of this account's, and may lie past the head.
    assert store.load_account_transactions(second, before=(3, 0), limit=100) == everything[2:]
    assert store.load_account_transactions(second, before=(2, 1), limit=100) == everything[2:]
    assert store.load_account_transactions(second, before=(99, 0), limit=2) == everything[:2]
    assert store.load_account_transactions(second, before=(1, 0), limit=100) == []


# --- balances at a past height ----------------------------------------------------------------


def test_load_balance_at_every_past_height(history: History) -> None:
    store = history.store
    accounts = [account.public_key for account in [*ACCOUNTS, ISSUER, NEWCOMER]]
    for height, balances in enumerate(history.balances):
        for asset in (ASSET, OTHER, BOND):
            for address in accounts:
                expected = balances[asset].get(address, 0)
                assert store.load_balance_at(address, asset, height) == expected, (height, asset)
    # Past the head: the balance now.
    assert store.load_balance_at(NEWCOMER.public_key, ASSET, 1_000) == history.memory.load_balance(
        NEWCOMER.public_key, ASSET
    )


def test_load_balance_at_of_a_newcomer(history: History) -> None:
    store = history.store
    newcomer = NEWCOMER.public_key
    assert [store.load_balance_at(newcomer, ASSET, height) for height in range(5)] == [0, 0, 50, 51, 0]
    assert store.load_held_assets(newcomer) == [ASSET]
    assert store.load_held_assets(key("nobody").public_key) == []


def test_load_balances_at(history: History) -> None:
    """An account's positive balances by asset at each height: an asset it emptied, or that
    lapsed, is left out from then on, yet it is still among the assets it held."""
    store = history.store
    first = ACCOUNTS[1].public_key
    assert store.load_held_assets(first) == sorted([ASSET, BOND, OTHER])
    for height, balances in enumerate(history.balances):
        expected = {asset: held[first] for asset, held in balances.items() if held.get(first)}
        assert store.load_balances_at(first, height) == expected
    assert set(store.load_balances_at(first, 1)) == {ASSET, OTHER, BOND}
    assert set(store.load_balances_at(first, 2)) == {ASSET, BOND}  # sent all its JPYT
    assert set(store.load_balances_at(first, 3)) == {ASSET}  # the bond lapsed


def test_load_held_assets_in_pages_by_id(history: History) -> None:
    store = history.store
    first = ACCOUNTS[1].public_key
    held = sorted([ASSET, BOND, OTHER])
    assert store.load_held_assets(first, limit=2) == held[:2]
    assert store.load_held_assets(first, after=held[0]) == held[1:]
    assert store.load_held_assets(first, after=held[1], limit=5) == held[2:]
    assert store.load_held_assets(first, after=held[2]) == []
    assert store.load_held_assets(first, limit=0) == []


def test_load_transaction_at_reads_one_transaction_of_a_stored_block(history: History) -> None:
    """What a history page reads per entry: the transaction and its block's hash, as the
    whole block gives them, and None past the block's end or the head."""
    store = history.store
    for height, block in enumerate(history.blocks):
        for index, transaction in enumerate(block.transactions):
            assert store.load_transaction_at(height, index) == (transaction, block.hash)
        assert store.load_transaction_at(height, len(block.transactions)) is None
    assert store.load_transaction_at(len(history.blocks), 0) is None


# --- holders at a past height -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 5, 100])
def test_load_holders_at_in_pages(history: History, limit: int) -> None:
    """Pages follow one another by ``next_after`` to the last, whose ``next_after`` is None."""
    for height, balances in enumerate(history.balances):
        for asset in (ASSET, OTHER, BOND):
            found = load_all_holders_at(history.store, asset, height, limit=limit)
            assert found == sorted(balances[asset].items()), (height, asset)


def test_load_holders_at_a_page_at_a_time(history: History) -> None:
    """A page says where the next starts, or that it is the last; a page of none is the last."""
    store = history.store
    holders = sorted(history.balances[4][ASSET].items())
    head = store.load_holders_at(ASSET, 4, b"", 2)
    assert head.holders == holders[:2] and head.next_after == holders[1][0]
    last = store.load_holders_at(ASSET, 4, holders[-3][0], 5)
    assert last.holders == holders[-2:] and last.next_after is None
    past = sorted(history.balances[1][ASSET].items())
    assert store.load_holders_at(ASSET, 1, past[-1][0], 5).holders == []
    assert store.load_holders_at(ASSET, 1, b"", 0).holders == store.load_holders_at(ASSET, 4, b"", 0).holders == []


def test_load_holders_at_leaves_out_who_held_nothing_then(history: History) -> None:
    store = history.store
    newcomer = NEWCOMER.public_key
    assert newcomer not in dict(load_all_holders_at(store, ASSET, 1))
    assert dict(load_all_holders_at(store, ASSET, 3))[newcomer] == 51
    assert newcomer not in dict(load_all_holders_at(store, ASSET, 4))
    assert load_all_holders_at(store, ASSET, 4) == store.load_holders_after(ASSET, b"", 100)


def test_invalid_history_height(history: History) -> None:
    store = history.store
    with pytest.raises(ValueError, match="negative"):
        store.load_balance_at(NEWCOMER.public_key, ASSET, -1)
    with pytest.raises(ValueError, match="negative"):
        store.load_holders_at(ASSET, -1, b"", 10)


def test_history_records_what_expiry_returns(history: History) -> None:
    """The lapse at the bond's expiry moves balances without a transaction: the balance
    history has it, the transaction index does not."""
    store = history.store
    bond = store.load_asset_state(BOND)
    assert bond.expired and bond.lapse_complete and bond.lapsed == 10 + 20 + 30 + 40 + 50
    assert bond.supply == 150 and bond.holders == 1
    assert load_all_holders_at(store, BOND, 2) == sorted(history.balances[2][BOND].items())
    assert load_all_holders_at(store, BOND, 3) == [(ISSUER.public_key, 150)]
    assert history.blocks[3].header.timestamp_ms >= BOND_EXPIRY_MS > history.blocks[2].header.timestamp_ms
    fourth = ACCOUNTS[4].public_key
    assert [height for height, _, _ in store.load_account_transactions(fourth, before=None, limit=10)] == [1]
