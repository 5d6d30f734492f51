"""The store's history of validator sets (table ``W``): the set that decides each height,
written in the block's batch, known two heights ahead, and the same after reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from mura.chain.governance import AddValidator, ValidatorRecord
from mura.chain.store import VALIDATOR_SETS, Store, StoreError
from mura.chain.transaction import Approve, Propose, Transaction, sign_transaction
from mura.tests.ledger_fixtures import CHAIN_ID, VALIDATORS, certify, genesis, key, seal
from mura.tests.snapshot_fixtures import governed_store

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


def test_the_history_is_listed_in_pages_with_the_certified_header_before_each_change(tmp_path: Path) -> None:
    with governed_store(tmp_path / "data", holders=10, height=14) as store:
        everything = store.load_validator_changes(after=0, up_to=100, limit=100)
        assert [height for height, _ in everything] == [1, 7, 12]
        assert [set_ for _, set_ in everything] == [store.load_validators_at(height) for height in (1, 7, 12)]
        assert store.load_validator_changes(after=0, up_to=100, limit=2) == everything[:2]
        assert store.load_validator_changes(after=7, up_to=100, limit=2) == everything[2:]
        assert store.load_validator_changes(after=1, up_to=11, limit=5) == everything[1:2]
        assert store.load_validator_changes(after=0, up_to=100, limit=0) == []
        point = store.load_change_point(11)
        block = store.load_block(11)
        assert point is not None and block is not None
        assert point == (block.header, store.load_certificate_bytes(11))
        # Genesis has no certificate; a height above the head has no block.
        assert store.load_change_point(0) is None and store.load_change_point(15) is None


def test_invalid_synced_history_that_does_not_end_in_the_states_set(tmp_path: Path) -> None:
    with governed_store(tmp_path / "source", holders=10, height=14) as source, Store(tmp_path / "joined") as joined:
        joined.begin_state_sync()
        joined.save_synced_entries(source.height, list(source.iterate_state()))
        block, certificate = source.load_block(14), source.load_certificate(14)
        assert block is not None and certificate is not None
        history = source.load_validator_changes(after=0, up_to=15, limit=10)
        for wrong in (history[:2], history[1:], [*history, (16, history[0][1])]):
            with pytest.raises(StoreError, match="validator history"):
                joined.finish_state_sync(block, certificate, source.load_lattice(), genesis_hash=b"g" * 32,
                                         validator_sets=wrong, change_points=[])
        assert not joined.initialized
        joined.finish_state_sync(block, certificate, source.load_lattice(), genesis_hash=b"g" * 32,
                                 validator_sets=history, change_points=[])
        assert joined.load_validator_changes(after=0, up_to=15, limit=10) == history
        assert [joined.load_validators_at(height) for height in range(1, 17)] == \
            [source.load_validators_at(height) for height in range(1, 17)]
