"""A child process that commits blocks until it dies.

``python -m mura.tests.chain.crash_child DATA_DIR forever`` commits blocks and prints each new
height; the parent kills it with SIGKILL at an arbitrary moment.
``python -m mura.tests.chain.crash_child DATA_DIR die-at HEIGHT PUTS`` commits up to HEIGHT and
calls ``os._exit`` after PUTS writes into HEIGHT's batch (``PUTS = -1``: right
after the batch is written, before the store updates its memory).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mura.chain.store import Store
from mura.chain.transaction import Transfer, sign_transaction
from mura.tests.ledger_fixtures import ACCOUNTS, ASSET, CHAIN_ID, certify, genesis, key, seal


class DyingBatch:
    """Passes writes through, then ends the process at the chosen point."""

    def __init__(self, batch: Any, puts_before_death: int) -> None:
        self._batch = batch
        self._remaining = puts_before_death

    def __enter__(self) -> DyingBatch:
        self._batch.__enter__()
        return self

    def put(self, key: bytes, value: bytes) -> None:
        if self._remaining == 0:
            os._exit(17)
        self._remaining -= 1
        self._batch.put(key, value)

    def delete(self, key: bytes) -> None:
        self._batch.delete(key)

    def __exit__(self, *exc: Any) -> None:
        self._batch.__exit__(*exc)
        os._exit(17)


class DyingDatabase:
    def __init__(self, db: Any, puts_before_death: int) -> None:
        self._db = db
        self._puts = puts_before_death

    def write_batch(self, **options: Any) -> DyingBatch:
        return DyingBatch(self._db.write_batch(**options), self._puts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def next_transactions(store: Store, height: int) -> list[Any]:
    """Three transfers: two between the genesis accounts, one to an account new at ``height``
    (so that each block writes every history index: balances, a first holding, transactions)."""
    senders = [ACCOUNTS[(height + offset) % len(ACCOUNTS)] for offset in range(3)]
    recipients = [ACCOUNTS[(height + 3) % len(ACCOUNTS)]] * 2 + [key(f"newcomer-{height}")]
    return [
        sign_transaction(
            sender,
            chain_id=CHAIN_ID,
            nonce=store.load_account(sender.public_key).nonce,
            body=Transfer(ASSET, recipient.public_key, 1 + height % 7),
        )
        for sender, recipient in zip(senders, recipients, strict=True)
    ]


def commit_one(store: Store) -> None:
    parent = store.load_block(store.height)
    assert parent is not None
    block, changes = seal(store, parent, next_transactions(store, store.height + 1))
    store.save_block(block, certify(block), changes)


def main(argv: list[str]) -> None:
    store = Store(argv[0])
    if not store.initialized:
        store.initialize(*genesis())
    if argv[1] == "forever":
        while True:
            commit_one(store)
            print(store.height, flush=True)
    die_height, puts = int(argv[2]), int(argv[3])
    while store.height < die_height - 1:
        commit_one(store)
    store._db = DyingDatabase(store._db, puts if puts >= 0 else 10**9)
    commit_one(store)
    raise SystemExit("the child should have died inside the commit")


if __name__ == "__main__":
    main(sys.argv[1:])
