"""The store's history of validator sets (table ``W``): the set that decides each height,
written in the block's batch, known two heights ahead, and the same after reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from mura.chain.governance import AddValidator, ValidatorRecord
from mura.chain.store import VALIDATOR_SETS, Store
from mura.chain.transaction import Approve, Propose, Transaction, sign_transaction
from mura.tests.ledger_fixtures import CHAIN_ID, VALIDATORS, certify, genesis, key, seal

NEW = key("new-validator")
ADD = AddValidator(NEW.public_key, "new-office", "10.0.0.9:9700")


def commit(store: Store, *transactions: Transaction) -> None:
    parent = store.load_block(store.height)
    assert parent is not None
    block, changes = seal(store, parent, list(transactions))
    assert list(block.transactions) == list(transactions)
    store.save_block(block, certify(block), changes)


def test_validator_sets_by_height_across_reopening(tmp_path: Path) -> None:
    """The change approved in block 3 decides heights from 5: the store answers set(5) from the
    scheduled entry after block 3, from its history after block 4, and after reopening."""
    path = tmp_path / "data"
    store = Store(path)
    store.initialize(*genesis())
    old = store.load_validators()
    new = (*old, ValidatorRecord(NEW.public_key, ADD.name, ADD.address))
    assert store.load_validators_at(1) == store.load_validators_at(2) == old
    commit(store, sign_transaction(VALIDATORS[0], chain_id=CHAIN_ID, nonce=0, body=Propose(ADD)))
    commit(store, sign_transaction(VALIDATORS[1], chain_id=CHAIN_ID, nonce=0, body=Approve(1)))
    commit(store, sign_transaction(VALIDATORS[2], chain_id=CHAIN_ID, nonce=0, body=Approve(1)))
    assert [store.load_validators_at(height) for height in range(1, 7)] == [old] * 4 + [new] * 2
    commit(store)
    assert store.load_validators() == new
    assert [store.load_validators_at(height) for height in range(1, 8)] == [old] * 4 + [new] * 3
    commit(store)
    store.close()
    with Store(path) as reopened:
        assert [reopened.load_validators_at(height) for height in range(1, 9)] == [old] * 4 + [new] * 4
        heights = [int.from_bytes(key[1:], "big") for key, _ in reopened.db.iterator(prefix=VALIDATOR_SETS)]
        assert heights == [1, 5]
        with pytest.raises(ValueError, match="first decided height is 1"):
            reopened.load_validators_at(0)
