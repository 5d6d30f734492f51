"""A store whose state spans several snapshot ranges, for the snapshot and state sync tests.

Its genesis gives ``holders`` accounts a second asset (``JPYT``) beside the
ledger fixtures' ``NAC``, and ``blocks`` blocks of transfers follow, each
certified by the ledger fixtures' validators: the state a joining node
fetches is one that blocks made, not only a genesis.
"""

from __future__ import annotations

from pathlib import Path

from mura.chain.keys import sha256
from mura.chain.state import GenesisAsset
from mura.chain.store import Store
from mura.chain.transaction import Transfer, sign_transaction
from mura.tests.ledger_fixtures import ACCOUNTS, ASSET, CHAIN_ID, asset_terms, certify, genesis, seal

#: The second asset, held by many accounts.
SECOND_ASSET = "JPYT"


def holder(index: int) -> bytes:
    """The ``index``-th holder's account (32 bytes no one holds the key of)."""
    return sha256(b"holder" + index.to_bytes(4, "big"))


def populated_store(path: Path, *, holders: int = 12_000, blocks: int = 2) -> Store:
    """A store at height ``blocks`` whose state holds about ``holders`` more entries than the ledger fixtures'."""
    allocations = tuple((holder(index), 1 + index) for index in range(holders))
    block, changes = genesis(GenesisAsset(asset_terms(SECOND_ASSET), allocations))
    store = Store(path)
    store.initialize(block, changes)
    for height in range(1, blocks + 1):
        transfer = sign_transaction(ACCOUNTS[0], chain_id=CHAIN_ID, nonce=height - 1,
                                    body=Transfer(ASSET, holder(height), 10 * height))
        parent = store.load_block(store.height)
        assert parent is not None
        block, changes = seal(store, parent, [transfer])
        store.save_block(block, certify(block), changes)
    return store
