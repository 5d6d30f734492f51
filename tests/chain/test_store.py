"""The LevelDB store: commits, indexes, recovery on open, refusals."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mura.chain.assets import AssetState
from mura.chain.block import Block
from mura.chain.governance import validator_keys
from mura.chain.keys import SignatureCache
from mura.chain.pending import balance_key
from mura.chain.state import Account, Role, StateChanges, apply_block, build_genesis
from mura.chain.store import Store, StoreError, VoteStore
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.tests.ledger_fixtures import (
    ACCOUNTS,
    ASSET,
    CHAIN_ID,
    GENESIS_BALANCE,
    ISSUER,
    RULES,
    VALIDATORS,
    asset_terms,
    certify,
    genesis,
    seal,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "data")
    genesis_block, changes = genesis()
    store.initialize(genesis_block, changes)
    yield store
    store.close()


def transfer(
    sender_index: int, nonce: int, amount: int = 10, recipient_index: int = 0, *, asset: str = ASSET
) -> Transaction:
    return sign_transaction(
        ACCOUNTS[sender_index],
        chain_id=CHAIN_ID,
        nonce=nonce,
        body=Transfer(asset, ACCOUNTS[recipient_index].public_key, amount),
    )


def commit_next(
    store: Store, transactions: list[Transaction], *, timestamp_ms: int | None = None
) -> tuple[Block, StateChanges]:
    parent = store.load_block(store.height)
    assert parent is not None
    block, changes = seal(store, parent, transactions, timestamp_ms=timestamp_ms)
    assert list(block.transactions) == transactions
    store.save_block(block, certify(block), changes)
    return block, changes


def test_initialize_writes_genesis(store: Store) -> None:
    genesis_block, _ = genesis()
    assert store.height == 0
    assert store.head.hash == genesis_block.hash
    assert store.load_genesis_hash() == genesis_block.hash
    assert store.load_account(ISSUER.public_key).roles == Role.ISSUER
    assert validator_keys(store.load_validators()) == tuple(v.public_key for v in VALIDATORS)
    assert store.load_validators_at(1) == store.load_validators_at(2) == store.load_validators()
    assert store.load_certificate(0) is None
    assert store.load_assets() == [asset_terms()] and store.load_asset(ASSET) == asset_terms()
    assert store.load_asset_state(ASSET) == AssetState(supply=6 * GENESIS_BALANCE, holders=6)
    assert store.load_balance(ACCOUNTS[0].public_key, ASSET) == GENESIS_BALANCE
    assert store.recompute_lattice().root() == genesis_block.header.state_root


def test_initialize_again_with_same_genesis_is_accepted(store: Store) -> None:
    genesis_block, changes = genesis()
    store.initialize(genesis_block, changes)
    assert store.height == 0


def test_invalid_initialize_with_another_genesis(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        store.initialize(*genesis())
        other = build_genesis(
            chain_id="other", timestamp_ms=1, validators=[VALIDATORS[0].public_key], issuers=[]
        )
        with pytest.raises(StoreError, match="another data directory"):
            store.initialize(*other)


def test_save_block_writes_block_certificate_indexes_and_state(store: Store) -> None:
    transactions = [transfer(1, 0, 25), transfer(2, 0, 5, recipient_index=1)]
    block, changes = commit_next(store, transactions)
    assert store.height == 1
    assert store.head == block.header
    assert store.load_block(1) == block
    assert store.load_block_by_hash(block.hash) == block
    assert store.load_height(block.hash) == 1
    certificate = store.load_certificate(1)
    assert certificate is not None and certificate.block_hash == block.hash
    assert store.load_transaction_location(transactions[1].hash) == (1, 1)
    assert store.load_account(ACCOUNTS[1].public_key) == Account(1)
    assert store.load_balance(ACCOUNTS[1].public_key, ASSET) == GENESIS_BALANCE - 25 + 5
    assert store.load_lattice() == changes.lattice


def test_reopen_recovers_head_and_state(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        store.initialize(*genesis())
        commit_next(store, [transfer(1, 0, 40)])
        block, _ = commit_next(store, [transfer(1, 1, 2)])
    with Store(tmp_path / "data") as reopened:
        assert reopened.height == 2
        assert reopened.head == block.header
        assert reopened.load_account(ACCOUNTS[1].public_key) == Account(2)
        assert reopened.load_balance(ACCOUNTS[1].public_key, ASSET) == GENESIS_BALANCE - 42
        assert reopened.load_asset(ASSET) == asset_terms()
        assert reopened.load_asset_state(ASSET) == AssetState(supply=6 * GENESIS_BALANCE, holders=6)
        assert reopened.recompute_lattice().root() == block.header.state_root


def test_recomputed_lattice_matches_after_blocks(store: Store) -> None:
    for nonce in range(3):
        commit_next(store, [transfer(i, nonce, 7 + i, recipient_index=(i + 1) % 5) for i in range(5)])
    assert store.recompute_lattice() == store.load_lattice()
    assert store.load_lattice().root() == store.head.state_root


def test_balance_leaving_the_state_is_deleted(store: Store) -> None:
    commit_next(store, [transfer(3, 0, GENESIS_BALANCE, recipient_index=4)])
    # Account 3 still exists (its nonce is 1); its emptied balance is no entry.
    assert store.load_account(ACCOUNTS[3].public_key) == Account(1)
    assert store.load_balance(ACCOUNTS[3].public_key, ASSET) == 0
    assert store.load_entry(balance_key(ASSET, ACCOUNTS[3].public_key)) is None
    assert store.load_asset_state(ASSET).holders == 5
    assert store.recompute_lattice().root() == store.head.state_root


def test_invalid_save_block_not_extending_head(store: Store) -> None:
    block, changes = commit_next(store, [transfer(1, 0)])
    with pytest.raises(StoreError, match="does not extend"):
        store.save_block(block, certify(block), changes)
    assert store.height == 1


def test_invalid_save_block_with_foreign_certificate(store: Store) -> None:
    parent = store.load_block(0)
    assert parent is not None
    block, changes = seal(store, parent, [transfer(1, 0)])
    other, _ = seal(store, parent, [transfer(2, 0)])
    with pytest.raises(StoreError, match="certificate"):
        store.save_block(block, certify(other), changes)
    assert store.height == 0


def test_invalid_save_block_whose_body_is_not_its_headers(store: Store) -> None:
    """A block with a valid certificate but a swapped body is never stored: its
    transactions would be indexed and served as final under that certificate."""
    parent = store.load_block(0)
    assert parent is not None
    block, changes = seal(store, parent, [transfer(1, 0)])
    forged = Block(block.header, (transfer(2, 0),))
    with pytest.raises(StoreError, match="not those its header commits to"):
        store.save_block(forged, certify(block), changes)
    assert store.height == 0
    assert store.load_transaction_location(forged.transactions[0].hash) is None
    store.save_block(block, certify(block), changes)
    assert store.height == 1


def test_invalid_open_while_another_holds_the_lock(store: Store) -> None:
    with pytest.raises(StoreError) as refused:
        Store(store.path)
    assert str(refused.value) == f"another process is using {store.path} (LevelDB LOCK held); stop it first"


def test_close_is_idempotent_and_closed_store_refuses(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.load_block(0)


def test_uninitialized_store_has_no_head(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        assert not store.initialized
        with pytest.raises(StoreError, match="genesis"):
            _ = store.head


def test_account_cache_is_bounded_and_consistent(tmp_path: Path) -> None:
    with Store(tmp_path / "data", account_cache_size=2) as store:
        store.initialize(*genesis())
        commit_next(store, [transfer(i, 0, 1, recipient_index=0) for i in range(1, 5)])
        assert len(store._account_cache) <= 2 and len(store._balance_cache) <= 2
        for index in range(1, 5):
            assert store.load_account(ACCOUNTS[index].public_key) == Account(1)
            assert store.load_balance(ACCOUNTS[index].public_key, ASSET) == GENESIS_BALANCE - 1
        assert store.load_balance(ACCOUNTS[0].public_key, ASSET) == GENESIS_BALANCE + 4


def test_blocks_replay_into_a_fresh_store(store: Store, tmp_path: Path) -> None:
    for nonce in range(3):
        commit_next(store, [transfer(1, nonce, 3), transfer(2, nonce, 4, recipient_index=3)])
    with Store(tmp_path / "replay") as replay:
        replay.initialize(*genesis())
        for height in range(1, store.height + 1):
            block = store.load_block(height)
            assert block is not None
            changes = apply_block(replay, replay.head, block, rules=RULES, signatures=SignatureCache())
            replay.save_block(block, certify(block), changes)
        assert replay.head == store.head
        assert list(replay.iterate_state()) == list(store.iterate_state())


CHAIN, VALIDATOR = b"g" * 32, b"k" * 32


def record_at(path: Path, *, chain: bytes = CHAIN, validator: bytes = VALIDATOR) -> VoteStore:
    return VoteStore(path, chain=chain, validator=validator)


def test_votes_are_kept_in_order_per_height_and_survive_reopening(tmp_path: Path) -> None:
    with record_at(tmp_path / "votes") as record:
        assert record.new
        record.save_vote(5, b"prepare")
        record.save_vote(5, b"commit")
        record.save_vote(6, b"view-change")
    with record_at(tmp_path / "votes") as reopened:
        assert not reopened.new
        assert reopened.load_votes(5) == [b"prepare", b"commit"]
        assert reopened.load_votes(6) == [b"view-change"]
        assert reopened.load_votes(7) == []


def test_prune_votes_forgets_final_heights_only(tmp_path: Path) -> None:
    with record_at(tmp_path / "votes") as record:
        for height in (1, 2, 3):
            record.save_vote(height, b"vote-%d" % height)
        record.prune_votes(below_height=3)
        assert record.load_votes(1) == [] and record.load_votes(2) == []
        assert record.load_votes(3) == [b"vote-3"]


def test_vote_record_is_apart_from_the_chain_data(tmp_path: Path) -> None:
    """Wiping the chain's data leaves the record of what the validator signed."""
    with Store(tmp_path / "data") as store, record_at(tmp_path / "node.votes") as record:
        store.initialize(*genesis())
        record.save_vote(1, b"prepare")
    shutil.rmtree(tmp_path / "data")
    with record_at(tmp_path / "node.votes") as record:
        assert not record.new and record.load_votes(1) == [b"prepare"]


def test_invalid_second_opening_of_a_vote_record(tmp_path: Path) -> None:
    """Two nodes with one key on one machine cannot share a record: the second refuses to start."""
    with record_at(tmp_path / "votes"):
        with pytest.raises(
            StoreError, match=r"^another process is using .*votes \(LevelDB LOCK held\); stop it first$"
        ):
            record_at(tmp_path / "votes")


def test_new_vote_record_starts_with_the_double_sign_check_pending_and_keeps_its_state(tmp_path: Path) -> None:
    with record_at(tmp_path / "votes") as record:
        assert record.load_guard() == (True, 0, 0)
        record.save_guard(41)
    with record_at(tmp_path / "votes") as reopened:
        assert reopened.load_guard() == (False, 41, 0)
        reopened.save_guard(0, 3)
    with record_at(tmp_path / "votes") as again:
        assert again.load_guard() == (False, 0, 3)
        # Without a view, the 8 bytes earlier versions read as the height.
        again.save_guard(7)
        assert again.db.get(b"Mguard") == (7).to_bytes(8, "big")


@pytest.mark.parametrize(
    ("chain", "validator", "whose"),
    [(b"o" * 32, VALIDATOR, "another chain"), (CHAIN, b"o" * 32, "another validator key")],
)
def test_invalid_vote_record_of_another_chain_or_key(
    tmp_path: Path, chain: bytes, validator: bytes, whose: str
) -> None:
    """A network reset (data wiped, a new genesis) or a key swapped must not meet a record
    that would keep the validator from signing, or let it sign, by another's history."""
    with record_at(tmp_path / "votes") as record:
        record.save_vote(30, b"prepare")
    with pytest.raises(StoreError, match=whose):
        record_at(tmp_path / "votes", chain=chain, validator=validator)
    with record_at(tmp_path / "votes") as again:
        assert again.load_votes(30) == [b"prepare"]


def test_chain_data_knows_whether_an_earlier_version_kept_the_votes(store: Store) -> None:
    """Final blocks and no vote record apart yet: an earlier version kept the record here
    (complete, so taking it over needs no double-sign check). Once a record apart has
    taken over, a new one over the same data means that record was lost."""
    assert not store.kept_votes  # nothing final: a new chain
    commit_next(store, [transfer(1, 0)])
    assert store.kept_votes
    store.votes_moved()
    store.votes_moved()
    assert not store.kept_votes


def test_invalid_vote_record_path_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "file", tmp_path / "file" / "votes"):
        with pytest.raises(StoreError, match="cannot create the vote record at"):
            VoteStore(path, chain=b"c" * 32, validator=b"v" * 32)
