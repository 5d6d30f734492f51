"""Tests for chain/mempool.py: admission rules, selection for a proposal, removal after a commit."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mura.chain import state as state_module
from mura.chain.block import Block
from mura.chain.errors import (
    BadSignature,
    DuplicateTransaction,
    MempoolFull,
    NonceAlreadyPending,
    NonceTooHigh,
    NonceTooLow,
    NonPositiveAmount,
    NotAnIssuer,
    TooManyPending,
    PendingSpendExceedsBalance,
    UnknownKind,
    WrongChainId,
)
from mura.chain.keys import SignatureCache, SigningKey, verify_signature
from mura.chain.mempool import Mempool, MempoolStatus
from mura.chain.state import BuiltBlock, ChainRules, MemoryState, apply_block, build_block, build_genesis
from mura.chain.store import Store
from mura.chain.transaction import Body, Burn, Mint, Transaction, Transfer, sign_transaction

CHAIN_ID = "mura-test"
BALANCE = 1_000_000


def make_key(index: int) -> SigningKey:
    """A key fixed by ``index``, so that a failing example replays."""
    return SigningKey.from_private_bytes((index + 1).to_bytes(32, "big"))


class Ledger:
    """A chain in memory: genesis, committed state, head header and this node's signature cache.

    Account 0 is an issuer; every account starts with ``BALANCE``.
    """

    def __init__(self, accounts: int) -> None:
        self.keys = [make_key(index) for index in range(accounts)]
        self.validator = make_key(10_000)
        genesis, changes = build_genesis(
            chain_id=CHAIN_ID,
            timestamp_ms=0,
            validators=[self.validator.public_key],
            issuers=[self.keys[0].public_key],
            allocations=[(key.public_key, BALANCE) for key in self.keys],
        )
        self.state = MemoryState()
        self.state.commit(changes)
        self.head = genesis.header
        self.rules = ChainRules(chain_id=CHAIN_ID)
        self.signatures = SignatureCache()

    def sender(self, index: int) -> bytes:
        return self.keys[index].public_key

    def sign(self, sender: int, nonce: int, body: Body, *, chain_id: str = CHAIN_ID) -> Transaction:
        return sign_transaction(self.keys[sender], chain_id=chain_id, nonce=nonce, body=body)

    def transfer(self, sender: int, nonce: int, amount: int = 1, *, chain_id: str = CHAIN_ID) -> Transaction:
        recipient = self.keys[(sender + 1) % len(self.keys)].public_key
        return self.sign(sender, nonce, Transfer(recipient, amount), chain_id=chain_id)

    def build(self, candidates: Iterable[Transaction]) -> BuiltBlock:
        return build_block(
            self.state,
            self.head,
            candidates,
            proposer=self.validator.public_key,
            timestamp_ms=self.head.timestamp_ms + 1,
            rules=self.rules,
            signatures=self.signatures,
        )

    def commit(self, transactions: Iterable[Transaction]) -> Block:
        """Build a block of exactly ``transactions``, apply it as a replica would, and commit it."""
        built = self.build(transactions)
        assert built.refused == []
        changes = apply_block(self.state, self.head, built.block, rules=self.rules, signatures=self.signatures)
        self.state.commit(changes)
        self.head = built.block.header
        return built.block


@pytest.fixture
def make_ledger() -> Callable[[int], Ledger]:
    return Ledger


@pytest.fixture
def ledger(make_ledger: Callable[[int], Ledger]) -> Ledger:
    return make_ledger(4)


@pytest.fixture
def make_mempool(ledger: Ledger) -> Callable[..., Mempool]:
    def make(**limits: int) -> Mempool:
        return Mempool(rules=ledger.rules, signatures=ledger.signatures, **limits)

    return make


@pytest.fixture
def mempool(make_mempool: Callable[..., Mempool]) -> Mempool:
    return make_mempool()


@pytest.fixture
def count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every signature the state transition verifies from now on, by signer."""
    calls: list[bytes] = []

    def counting_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
        calls.append(public_key)
        return verify_signature(public_key, signature, message)

    monkeypatch.setattr(state_module, "verify_signature", counting_verify)
    return calls


@dataclass(frozen=True, slots=True)
class Stake:
    """A body of a kind this network does not know."""

    KIND: ClassVar[str] = "stake"
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.amount]


def contents(pool: Mempool, ledger: Ledger) -> tuple[MempoolStatus, list[list[bytes]]]:
    """Everything observable about the pool, to compare before and after a refusal."""
    return pool.status(), [[tx.hash for tx in pool.pending_for(key.public_key)] for key in ledger.keys]


def assert_refused(pool: Mempool, ledger: Ledger, transaction: Transaction, error: type[Exception]) -> None:
    """``add`` raises exactly ``error`` and leaves the pool as it was."""
    before = contents(pool, ledger)
    with pytest.raises(error) as caught:
        pool.add(transaction, ledger.state)
    assert type(caught.value) is error
    assert contents(pool, ledger) == before


def order(ledger: Ledger, transactions: Iterable[Transaction]) -> list[tuple[int, int]]:
    """``(account index, nonce)`` of each transaction, for readable assertions."""
    index = {key.public_key: position for position, key in enumerate(ledger.keys)}
    return [(index[tx.sender], tx.nonce) for tx in transactions]


def add_all(pool: Mempool, ledger: Ledger, transactions: Iterable[Transaction]) -> None:
    for transaction in transactions:
        pool.add(transaction, ledger.state)


# --- admission -----------------------------------------------------------------


def test_add(mempool: Mempool, ledger: Ledger) -> None:
    transaction = ledger.transfer(1, 0)
    mempool.add(transaction, ledger.state)
    assert transaction.hash in mempool
    assert mempool.get(transaction.hash) == transaction
    assert mempool.pending_for(ledger.sender(1)) == [transaction]
    assert len(mempool) == 1
    assert mempool.size_bytes == len(transaction.encoded)


def test_unique_transaction(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1)])
    assert len(mempool) == 2


def test_invalid_unique_transaction(mempool: Mempool, ledger: Ledger) -> None:
    transaction = ledger.transfer(1, 0)
    mempool.add(transaction, ledger.state)
    assert_refused(mempool, ledger, transaction, DuplicateTransaction)


def test_chain_id(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.transfer(1, 0, chain_id=CHAIN_ID), ledger.state)
    assert len(mempool) == 1


def test_invalid_chain_id(mempool: Mempool, ledger: Ledger) -> None:
    assert_refused(mempool, ledger, ledger.transfer(1, 0, chain_id="mura-other"), WrongChainId)


def test_kind(mempool: Mempool, ledger: Ledger) -> None:
    mint = ledger.sign(0, 1, Mint(ledger.sender(2), 5))
    add_all(mempool, ledger, [ledger.transfer(0, 0), mint, ledger.sign(0, 2, Burn(5))])
    assert [tx.kind for tx in mempool.pending_for(ledger.sender(0))] == ["transfer", "mint", "burn"]


def test_invalid_kind(mempool: Mempool, ledger: Ledger) -> None:
    assert_refused(mempool, ledger, ledger.sign(1, 0, Stake(5)), UnknownKind)


def test_amount(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.transfer(1, 0, amount=1), ledger.state)
    assert len(mempool) == 1


@pytest.mark.parametrize("amount", [0, -1])
def test_invalid_amount(mempool: Mempool, ledger: Ledger, amount: int) -> None:
    assert_refused(mempool, ledger, ledger.transfer(1, 0, amount=amount), NonPositiveAmount)
    assert_refused(mempool, ledger, ledger.sign(0, 0, Burn(amount)), NonPositiveAmount)


def test_nonce_not_used(mempool: Mempool, ledger: Ledger) -> None:
    ledger.commit([ledger.transfer(1, 0)])
    mempool.add(ledger.transfer(1, 1), ledger.state)
    assert len(mempool) == 1


def test_invalid_nonce_not_used(mempool: Mempool, ledger: Ledger) -> None:
    committed = ledger.transfer(1, 0)
    ledger.commit([committed])
    assert_refused(mempool, ledger, committed, NonceTooLow)
    assert_refused(mempool, ledger, ledger.transfer(1, 0, amount=2), NonceTooLow)


def test_nonce_gap(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    ledger.commit([ledger.transfer(1, 0)])
    mempool.add(ledger.transfer(1, 1 + 3), ledger.state)
    assert len(mempool) == 1


def test_invalid_nonce_gap(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    ledger.commit([ledger.transfer(1, 0)])
    assert_refused(mempool, ledger, ledger.transfer(1, 1 + 4), NonceTooHigh)


def test_nonce_gap_counts_from_the_pending_run(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(20)])
    mempool.add(ledger.transfer(1, 20 + 3), ledger.state)
    assert len(mempool) == 21


def test_invalid_nonce_gap_counts_from_the_pending_run(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(20)])
    assert_refused(mempool, ledger, ledger.transfer(1, 20 + 4), NonceTooHigh)
    # A hole left by a discarded transaction ends the run again.
    mempool.discard([mempool.pending_for(ledger.sender(1))[10]])
    assert_refused(mempool, ledger, ledger.transfer(1, 20 + 3), NonceTooHigh)


def test_per_sender_limit(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_per_sender=5)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(5)] + [ledger.transfer(2, 0)])
    assert len(mempool) == 6


def test_invalid_per_sender_limit(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_per_sender=5)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(5)])
    assert_refused(mempool, ledger, ledger.transfer(1, 5), TooManyPending)


def test_nonce_free(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(2, 0)])
    assert len(mempool) == 2


def test_invalid_nonce_free(mempool: Mempool, ledger: Ledger) -> None:
    first = ledger.transfer(1, 0, amount=1)
    mempool.add(first, ledger.state)
    assert_refused(mempool, ledger, ledger.transfer(1, 0, amount=2), NonceAlreadyPending)
    assert mempool.pending_for(ledger.sender(1)) == [first]


def test_signature(mempool: Mempool, ledger: Ledger) -> None:
    transaction = ledger.transfer(1, 0)
    mempool.add(transaction, ledger.state)
    assert transaction.hash in ledger.signatures


def test_invalid_signature(mempool: Mempool, ledger: Ledger) -> None:
    honest = ledger.transfer(1, 0)
    forged = Transaction(honest.chain_id, honest.sender, honest.nonce, honest.body, ledger.transfer(2, 0).signature)
    assert_refused(mempool, ledger, forged, BadSignature)
    assert forged.hash not in ledger.signatures


def test_issuer(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.sign(0, 0, Mint(ledger.sender(1), 5)), ledger.sign(0, 1, Burn(5))])
    assert len(mempool) == 2


def test_invalid_issuer(mempool: Mempool, ledger: Ledger) -> None:
    assert_refused(mempool, ledger, ledger.sign(1, 0, Mint(ledger.sender(1), 5)), NotAnIssuer)
    assert_refused(mempool, ledger, ledger.sign(1, 0, Burn(5)), NotAnIssuer)


def test_pending_spend_within_balance(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0, amount=BALANCE - 10), ledger.transfer(1, 1, amount=10)])
    assert len(mempool) == 2


def test_invalid_pending_spend_exceeds_balance(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.transfer(1, 0, amount=BALANCE - 10), ledger.state)
    assert_refused(mempool, ledger, ledger.transfer(1, 1, amount=11), PendingSpendExceedsBalance)
    # Mints spend nothing from the issuer; its burns do.
    mempool.add(ledger.sign(0, 0, Mint(ledger.sender(0), BALANCE)), ledger.state)
    assert_refused(mempool, ledger, ledger.sign(0, 1, Burn(BALANCE + 1)), PendingSpendExceedsBalance)


def test_discard_forgets_transactions(mempool: Mempool, ledger: Ledger) -> None:
    keep, drop = ledger.transfer(1, 0), ledger.transfer(2, 0)
    add_all(mempool, ledger, [keep, drop])
    mempool.discard([drop, ledger.transfer(3, 0)])
    assert keep.hash in mempool and drop.hash not in mempool
    assert mempool.size_bytes == len(keep.encoded)
    assert mempool.pending_for(ledger.sender(2)) == []


def test_count_limit(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_transactions=2)
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(2, 0)])
    assert len(mempool) == 2


def test_invalid_count_limit(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_transactions=2)
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(2, 0)])
    assert_refused(mempool, ledger, ledger.transfer(3, 0), MempoolFull)


def test_byte_limit(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    transactions = [ledger.transfer(1, 0), ledger.transfer(2, 0)]
    mempool = make_mempool(max_bytes=sum(len(tx.encoded) for tx in transactions))
    add_all(mempool, ledger, transactions)
    assert mempool.size_bytes == mempool.status().max_bytes


def test_invalid_byte_limit(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    transactions = [ledger.transfer(1, 0), ledger.transfer(2, 0)]
    mempool = make_mempool(max_bytes=sum(len(tx.encoded) for tx in transactions) + 10)
    add_all(mempool, ledger, transactions)
    assert_refused(mempool, ledger, ledger.transfer(3, 0), MempoolFull)


def test_invalid_limits(ledger: Ledger) -> None:
    with pytest.raises(ValueError):
        Mempool(rules=ledger.rules, signatures=ledger.signatures, max_transactions=0)


def test_cheap_rules_run_before_the_signature(
    make_mempool: Callable[..., Mempool], ledger: Ledger, count_verifications: list[bytes]
) -> None:
    mempool = make_mempool(max_transactions=1, max_nonce_gap=2)
    mempool.add(ledger.transfer(1, 0), ledger.state)
    assert count_verifications == [ledger.sender(1)]
    refused = [
        (ledger.transfer(2, 0, chain_id="mura-other"), WrongChainId),
        (ledger.sign(2, 0, Stake(1)), UnknownKind),
        (ledger.transfer(2, 0, amount=0), NonPositiveAmount),
        (ledger.transfer(2, 3), NonceTooHigh),
        (ledger.transfer(1, 0, amount=2), NonceAlreadyPending),
        (ledger.transfer(2, 0), MempoolFull),
    ]
    for transaction, error in refused:
        assert_refused(mempool, ledger, transaction, error)
    assert count_verifications == [ledger.sender(1)]


def test_admitted_transaction_is_not_verified_again(
    mempool: Mempool, ledger: Ledger, count_verifications: list[bytes]
) -> None:
    admitted = ledger.transfer(1, 0)
    mempool.add(admitted, ledger.state)
    assert count_verifications == [ledger.sender(1)]
    never_seen = ledger.transfer(2, 0)
    ledger.commit([admitted, never_seen])
    # Only the transaction the mempool never saw is verified, and only once
    # although the block is both built and applied.
    assert count_verifications == [ledger.sender(1), ledger.sender(2)]


def test_status(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_transactions=10, max_bytes=10_000, max_nonce_gap=5)
    transactions = [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(2, 0)]
    add_all(mempool, ledger, transactions)
    assert mempool.status() == MempoolStatus(
        transactions=3,
        bytes=sum(len(tx.encoded) for tx in transactions),
        senders=2,
        max_transactions=10,
        max_bytes=10_000,
        max_nonce_gap=5,
        max_per_sender=1_000,
    )


# --- select --------------------------------------------------------------------


def select_all(pool: Mempool, ledger: Ledger) -> list[Transaction]:
    return pool.select(ledger.state, max_transactions=1_000, max_bytes=1_000_000)


def test_select_orders_each_sender_by_nonce(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 2), ledger.transfer(1, 0), ledger.transfer(1, 1)])
    assert [tx.nonce for tx in select_all(mempool, ledger)] == [0, 1, 2]


def test_select_stops_a_sender_at_a_gap(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(1, 3)])
    add_all(mempool, ledger, [ledger.transfer(2, 1), ledger.transfer(3, 0)])
    chosen = select_all(mempool, ledger)
    assert order(ledger, chosen) == [(1, 0), (3, 0), (1, 1)]
    assert len(mempool) == 5


def test_select_starts_at_the_committed_nonce(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(1, 2)])
    ledger.commit([ledger.transfer(1, 0)])  # a block the pool was not told about
    assert [tx.nonce for tx in select_all(mempool, ledger)] == [1, 2]


def test_select_takes_senders_in_turn(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(4)])
    add_all(mempool, ledger, [ledger.transfer(2, nonce) for nonce in range(2)])
    add_all(mempool, ledger, [ledger.transfer(3, 0)])
    assert order(ledger, select_all(mempool, ledger)) == [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (1, 2), (1, 3)]


def test_select_busy_sender_does_not_starve_others(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=64)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(60)])
    add_all(mempool, ledger, [ledger.transfer(2, 0), ledger.transfer(3, 0)])
    chosen = mempool.select(ledger.state, max_transactions=3, max_bytes=1_000_000)
    assert {tx.sender for tx in chosen} == {ledger.sender(1), ledger.sender(2), ledger.sender(3)}


def test_select_count_limit(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(sender, nonce) for sender in (1, 2) for nonce in range(3)])
    chosen = mempool.select(ledger.state, max_transactions=4, max_bytes=1_000_000)
    assert len(chosen) == 4
    assert ledger.build(chosen).refused == []


def test_select_byte_limit(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(sender, nonce) for sender in (1, 2) for nonce in range(3)])
    size = len(ledger.transfer(1, 0).encoded)
    chosen = mempool.select(ledger.state, max_transactions=100, max_bytes=3 * size + size // 2)
    assert len(chosen) == 3
    assert sum(len(tx.encoded) for tx in chosen) <= 3 * size + size // 2


def test_select_skips_a_sender_that_does_not_fit(mempool: Mempool, ledger: Ledger) -> None:
    transfers = [ledger.transfer(1, 0), ledger.transfer(2, 0)]
    burn = ledger.sign(0, 0, Burn(5))
    add_all(mempool, ledger, [*transfers, burn])
    assert len(burn.encoded) < len(transfers[1].encoded)
    chosen = mempool.select(ledger.state, max_transactions=100, max_bytes=len(transfers[0].encoded) + len(burn.encoded))
    assert chosen == [transfers[0], burn]


def test_select_does_not_change_the_pool(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(2, 0)])
    before = contents(mempool, ledger)
    assert len(select_all(mempool, ledger)) == 2
    assert contents(mempool, ledger) == before


# --- remove_committed ------------------------------------------------------------


def test_remove_committed_drops_committed_and_keeps_the_rest(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(2, 0)])
    block = ledger.commit(mempool.select(ledger.state, max_transactions=2, max_bytes=1_000_000))
    mempool.remove_committed(block.transactions, ledger.state)
    assert order(ledger, select_all(mempool, ledger)) == [(1, 1)]
    assert all(tx.hash not in mempool for tx in block.transactions)
    assert mempool.status().senders == 1
    assert mempool.size_bytes == len(mempool.pending_for(ledger.sender(1))[0].encoded)


def test_remove_committed_drops_stale(mempool: Mempool, ledger: Ledger) -> None:
    pending = [ledger.transfer(1, 0, amount=1), ledger.transfer(1, 1, amount=1)]
    add_all(mempool, ledger, [*pending, ledger.transfer(2, 0)])
    # Another node proposed a different transaction with sender 1's nonce 0.
    block = ledger.commit([ledger.transfer(1, 0, amount=7)])
    mempool.remove_committed(block.transactions, ledger.state)
    assert pending[0].hash not in mempool
    assert mempool.pending_for(ledger.sender(1)) == [pending[1]]
    assert len(mempool) == 2
    assert [tx.nonce for tx in select_all(mempool, ledger) if tx.sender == ledger.sender(1)] == [1]


def test_remove_committed_forgets_their_signatures(mempool: Mempool, ledger: Ledger) -> None:
    committed, waiting = ledger.transfer(1, 0), ledger.transfer(2, 0)
    add_all(mempool, ledger, [committed, waiting])
    block = ledger.commit([committed])
    mempool.remove_committed(block.transactions, ledger.state)
    assert committed.hash not in ledger.signatures
    assert waiting.hash in ledger.signatures


def test_ready_runs(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(1, 3), ledger.transfer(2, 0)])
    add_all(mempool, ledger, [ledger.transfer(3, 1)])
    runs = [[(tx.sender, tx.nonce) for tx in run] for run in mempool.ready_runs(ledger.state, max_run=10)]
    # Sender 1 stops at its gap; sender 3 lacks its committed nonce and has no ready run.
    assert runs == [[(ledger.sender(1), 0), (ledger.sender(1), 1)], [(ledger.sender(2), 0)]]


def test_ready_runs_are_capped(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(5)])
    assert [[tx.nonce for tx in run] for run in mempool.ready_runs(ledger.state, max_run=2)] == [[0, 1]]


# --- a gossiped batch --------------------------------------------------------------


def test_batch_run_passes_whole_past_the_nonce_gap(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    """A backlog arrives as one batch of consecutive nonces: checked one after another
    as if the earlier ones were pending, all of it passes, and the pool is unchanged."""
    mempool = make_mempool(max_nonce_gap=3)
    mempool.add(ledger.transfer(1, 0), ledger.state)
    before = contents(mempool, ledger)
    run = [ledger.transfer(1, nonce) for nonce in range(1, 41)]
    passed, refused = mempool.check_batch(run, ledger.state)
    assert passed == run and refused == []
    assert contents(mempool, ledger) == before
    add_all(mempool, ledger, passed)
    assert len(mempool) == 41


def test_batch_refuses_what_the_batch_together_breaks(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    batch = [
        ledger.transfer(1, 0, amount=BALANCE - 10),
        ledger.transfer(1, 1, amount=11),  # the two together spend more than the balance
        ledger.transfer(2, 0),
        ledger.transfer(2, 0, amount=7),  # the same nonce twice in one batch
        ledger.transfer(2, 5),  # more than 3 beyond the batch's run of sender 2
        ledger.transfer(3, 0),
        ledger.transfer(3, 1),
        ledger.transfer(3, 2),
        ledger.transfer(3, 3),
    ]
    passed, refused = mempool.check_batch(batch, ledger.state)
    assert order(ledger, passed) == [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2), (3, 3)]
    assert [type(error) for error in refused] == [PendingSpendExceedsBalance, NonceAlreadyPending, NonceTooHigh]
    assert len(mempool) == 0
    # The pool's limits count the batch's earlier transactions too.
    mempool = make_mempool(max_transactions=2)
    passed, refused = mempool.check_batch([ledger.transfer(1, 0), ledger.transfer(2, 0), ledger.transfer(3, 0)], ledger.state)
    assert order(ledger, passed) == [(1, 0), (2, 0)] and [type(error) for error in refused] == [MempoolFull]


def test_batch_leaves_the_run_end_as_it_was(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    """After a batch is checked and not admitted, the gap counts from the real pending run."""
    mempool = make_mempool(max_nonce_gap=3)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(5)])
    mempool.check_batch([ledger.transfer(1, nonce) for nonce in range(5, 30)], ledger.state)
    assert_refused(mempool, ledger, ledger.transfer(1, 5 + 4), NonceTooHigh)
    mempool.add(ledger.transfer(1, 5 + 3), ledger.state)


# --- a property over random histories ----------------------------------------------

SENDERS = 4
add_step = st.tuples(st.just("add"), st.integers(0, SENDERS - 1), st.integers(-1, 4), st.integers(1, 3))
select_step = st.tuples(st.just("select"), st.integers(0, 8), st.integers(0, 1_000))
commit_step = st.tuples(st.just("commit"), st.integers(1, 8))
commit_elsewhere_step = st.tuples(st.just("commit_elsewhere"), st.integers(0, SENDERS - 1))
# Adds are weighted up so that histories reach the pool's limits.
steps = st.lists(
    st.one_of(add_step, add_step, add_step, add_step, select_step, commit_step, commit_elsewhere_step),
    min_size=20,
    max_size=60,
)


class History:
    """Drives one mempool and its ledger through random steps, checking invariants after each."""

    def __init__(self) -> None:
        self.ledger = Ledger(SENDERS)
        size = len(self.ledger.transfer(0, 0).encoded)
        self.pool = Mempool(
            rules=self.ledger.rules,
            signatures=self.ledger.signatures,
            max_transactions=6,
            max_bytes=5 * size,
            max_nonce_gap=3,
        )

    def add(self, sender: int, nonce_offset: int, amount: int) -> None:
        nonce = max(0, self.ledger.state.load_account(self.ledger.sender(sender)).nonce + nonce_offset)
        transaction = self.ledger.transfer(sender, nonce, amount)
        before = contents(self.pool, self.ledger)
        try:
            self.pool.add(transaction, self.ledger.state)
        except (DuplicateTransaction, NonceTooLow, NonceTooHigh, NonceAlreadyPending, MempoolFull):
            assert contents(self.pool, self.ledger) == before
        else:
            assert transaction.hash in self.pool

    def select(self, max_transactions: int, max_bytes: int) -> list[Transaction]:
        chosen = self.pool.select(self.ledger.state, max_transactions=max_transactions, max_bytes=max_bytes)
        assert len(chosen) <= max_transactions
        assert sum(len(tx.encoded) for tx in chosen) <= max_bytes
        built = self.ledger.build(chosen)
        assert built.refused == []
        assert list(built.block.transactions) == chosen
        return chosen

    def commit(self, max_transactions: int) -> None:
        block = self.ledger.commit(self.select(max_transactions, 1_000_000))
        self.pool.remove_committed(block.transactions, self.ledger.state)
        assert all(tx.hash not in self.pool for tx in block.transactions)

    def commit_elsewhere(self, sender: int) -> None:
        nonce = self.ledger.state.load_account(self.ledger.sender(sender)).nonce
        block = self.ledger.commit([self.ledger.transfer(sender, nonce, amount=100)])
        self.pool.remove_committed(block.transactions, self.ledger.state)

    def check(self) -> None:
        status = self.pool.status()
        pending = [tx for key in self.ledger.keys for tx in self.pool.pending_for(key.public_key)]
        assert status.transactions == len(self.pool) == len(pending) <= status.max_transactions
        assert status.bytes == self.pool.size_bytes == sum(len(tx.encoded) for tx in pending) <= status.max_bytes
        for transaction in pending:
            assert transaction.nonce >= self.ledger.state.load_account(transaction.sender).nonce


@settings(deadline=None, max_examples=100)
@given(steps)
def test_random_histories_select_valid_blocks_within_limits(history_steps: list[tuple[Any, ...]]) -> None:
    history = History()
    for name, *arguments in history_steps:
        getattr(history, name)(*arguments)
        history.check()


# --- what refusals cost ---------------------------------------------------------


def test_refusals_leave_nothing_behind(tmp_path: Path) -> None:
    """Transfers from keys that hold nothing are refused and cost no memory that stays:
    not the pool's bookkeeping, not the store's account cache. (Each refusal once left
    a few hundred bytes behind: 610,000 of them grew a node from 65 to 175 MB.)"""
    block, changes = build_genesis(
        chain_id="mura-test", timestamp_ms=0, validators=[SigningKey.generate().public_key], issuers=(), allocations=()
    )
    with Store(tmp_path / "data") as store:
        store.initialize(block, changes)
        pool = Mempool(rules=ChainRules(chain_id="mura-test"), signatures=SignatureCache())
        body = Transfer(bytes(32), 5)
        senders = [SigningKey.from_private_bytes(index.to_bytes(32, "big")) for index in range(1, 6_001)]
        refusals = [sign_transaction(key, chain_id="mura-test", nonce=0, body=body) for key in senders]

        def refuse(transactions: list[Transaction]) -> None:
            for transaction in transactions:
                with pytest.raises(PendingSpendExceedsBalance):
                    pool.check(transaction, store)

        refuse(refusals[:3_000])  # warm up whatever is cached on first use
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            refuse(refusals[3_000:])  # 3,000 senders never seen before
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0)
        assert grown < 64 * 1024, f"{grown} bytes stayed behind after 3,000 refusals"
        assert pool.status().senders == 0 and len(pool) == 0
