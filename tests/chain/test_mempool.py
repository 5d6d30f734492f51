"""Tests for chain/mempool.py: admission rules, selection for a proposal, removal after a commit."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mura.chain import state as state_module
from mura.chain.assets import AssetState, AssetTerms, TransferPolicy
from mura.chain.block import Block
from mura.chain.drops import Dropped
from mura.chain.errors import (
    AccountFrozen,
    AssetExpired,
    BadSignature,
    DuplicateTransaction,
    HolderNotApproved,
    InsufficientBalance,
    InvalidTransaction,
    InvalidValidatorInfo,
    MempoolFull,
    NonceTooHigh,
    NonceTooLow,
    NonPositiveAmount,
    NotAssetIssuer,
    NotAValidator,
    PendingSpendExceedsBalance,
    Replaced,
    ReplacementTooSoon,
    SupplyCapExceeded,
    SupplyOverflow,
    TooManyPending,
    UnknownAsset,
    UnknownKind,
    UnknownProposal,
    WrongChainId,
)
from mura.chain.governance import AddValidator, ValidatorSet, validator_keys
from mura.chain.keys import SignatureCache, SigningKey, verify_signature
from mura.chain.mempool import Mempool, MempoolStatus
from mura.chain.state import (
    MAX_SUPPLY,
    Account,
    BuiltBlock,
    ChainRules,
    GenesisAsset,
    MemoryState,
    apply_block,
    build_block,
    build_genesis,
)
from mura.chain.state_root import LatticeHash
from mura.chain.store import Store
from mura.chain.transaction import (
    Approve,
    Body,
    Burn,
    Freeze,
    Mint,
    Propose,
    Transaction,
    Transfer,
    sign_transaction,
)
from mura.tests.chain.factories import asset_terms

CHAIN_ID = "mura-test"
BALANCE = 1_000_000
#: The asset every account holds ``BALANCE`` of at genesis; account 0 issues it.
ASSET = "NAC"
#: The time transactions are admitted at, where time does not matter.
NOW = 0.0


def make_key(index: int) -> SigningKey:
    """A key fixed by ``index``, so that a failing example replays."""
    return SigningKey.from_private_bytes((index + 1).to_bytes(32, "big"))


class Ledger:
    """A chain in memory: genesis, committed state, head header and this node's signature cache.

    Account 0 has the issuer role and issues ``ASSET``, of which every account starts
    with ``BALANCE``; ``assets`` are more genesis assets.
    """

    def __init__(self, accounts: int, *, assets: Sequence[GenesisAsset] = ()) -> None:
        self.keys = [make_key(index) for index in range(accounts)]
        self.validator = make_key(10_000)
        allocations = tuple((key.public_key, BALANCE) for key in self.keys)
        genesis, changes = build_genesis(
            chain_id=CHAIN_ID,
            timestamp_ms=0,
            validators=[self.validator.public_key],
            issuers=[self.keys[0].public_key],
            assets=[GenesisAsset(asset_terms(ASSET, self.keys[0].public_key), allocations), *assets],
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

    def transfer(
        self, sender: int, nonce: int, amount: int = 1, *, chain_id: str = CHAIN_ID, asset: str = ASSET
    ) -> Transaction:
        recipient = self.keys[(sender + 1) % len(self.keys)].public_key
        return self.sign(sender, nonce, Transfer(asset, recipient, amount), chain_id=chain_id)

    def build(self, candidates: Iterable[Transaction], *, timestamp_ms: int | None = None) -> BuiltBlock:
        return build_block(
            self.state,
            self.head,
            candidates,
            proposer=self.validator.public_key,
            timestamp_ms=self.head.timestamp_ms + 1 if timestamp_ms is None else timestamp_ms,
            rules=self.rules,
            signatures=self.signatures,
        )

    def commit(self, transactions: Iterable[Transaction], *, timestamp_ms: int | None = None) -> Block:
        """Build a block of exactly ``transactions``, apply it as a replica would, and commit it."""
        built = self.build(transactions, timestamp_ms=timestamp_ms)
        assert built.refused == []
        changes = apply_block(self.state, self.head, built.block, rules=self.rules, signatures=self.signatures)
        self.state.commit(changes)
        self.head = built.block.header
        return built.block


@pytest.fixture
def make_ledger() -> Callable[..., Ledger]:
    return Ledger


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger(4)


@pytest.fixture
def make_mempool(ledger: Ledger) -> Callable[..., Mempool]:
    def make(**options: Any) -> Mempool:
        return Mempool(rules=ledger.rules, signatures=ledger.signatures, **options)

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
        pool.add(transaction, ledger.state, now=NOW)
    assert type(caught.value) is error
    assert contents(pool, ledger) == before


def order(ledger: Ledger, transactions: Iterable[Transaction]) -> list[tuple[int, int]]:
    """``(account index, nonce)`` of each transaction, for readable assertions."""
    index = {key.public_key: position for position, key in enumerate(ledger.keys)}
    return [(index[tx.sender], tx.nonce) for tx in transactions]


def add_all(pool: Mempool, ledger: Ledger, transactions: Iterable[Transaction]) -> None:
    for transaction in transactions:
        pool.add(transaction, ledger.state, now=NOW)


# --- admission -----------------------------------------------------------------


def test_add(mempool: Mempool, ledger: Ledger) -> None:
    transaction = ledger.transfer(1, 0)
    mempool.add(transaction, ledger.state, now=NOW)
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
    mempool.add(transaction, ledger.state, now=NOW)
    assert_refused(mempool, ledger, transaction, DuplicateTransaction)


def test_chain_id(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.transfer(1, 0, chain_id=CHAIN_ID), ledger.state, now=NOW)
    assert len(mempool) == 1


def test_invalid_chain_id(mempool: Mempool, ledger: Ledger) -> None:
    assert_refused(mempool, ledger, ledger.transfer(1, 0, chain_id="mura-other"), WrongChainId)


def test_kind(mempool: Mempool, ledger: Ledger) -> None:
    mint = ledger.sign(0, 1, Mint(ASSET, ledger.sender(2), 5))
    add_all(mempool, ledger, [ledger.transfer(0, 0), mint, ledger.sign(0, 2, Burn(ASSET, 5))])
    assert [tx.kind for tx in mempool.pending_for(ledger.sender(0))] == ["transfer", "mint", "burn"]


def test_invalid_kind(mempool: Mempool, ledger: Ledger) -> None:
    assert_refused(mempool, ledger, ledger.sign(1, 0, Stake(5)), UnknownKind)


def test_amount(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.transfer(1, 0, amount=1), ledger.state, now=NOW)
    assert len(mempool) == 1


@pytest.mark.parametrize("amount", [0, -1])
def test_invalid_amount(mempool: Mempool, ledger: Ledger, amount: int) -> None:
    assert_refused(mempool, ledger, ledger.transfer(1, 0, amount=amount), NonPositiveAmount)
    assert_refused(mempool, ledger, ledger.sign(0, 0, Burn(ASSET, amount)), NonPositiveAmount)


def test_nonce_not_used(mempool: Mempool, ledger: Ledger) -> None:
    ledger.commit([ledger.transfer(1, 0)])
    mempool.add(ledger.transfer(1, 1), ledger.state, now=NOW)
    assert len(mempool) == 1


def test_invalid_nonce_not_used(mempool: Mempool, ledger: Ledger) -> None:
    committed = ledger.transfer(1, 0)
    ledger.commit([committed])
    assert_refused(mempool, ledger, committed, NonceTooLow)
    assert_refused(mempool, ledger, ledger.transfer(1, 0, amount=2), NonceTooLow)


def test_nonce_gap(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    ledger.commit([ledger.transfer(1, 0)])
    mempool.add(ledger.transfer(1, 1 + 3), ledger.state, now=NOW)
    assert len(mempool) == 1


def test_invalid_nonce_gap(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    ledger.commit([ledger.transfer(1, 0)])
    assert_refused(mempool, ledger, ledger.transfer(1, 1 + 4), NonceTooHigh)


def test_nonce_gap_counts_from_the_pending_run(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(20)])
    mempool.add(ledger.transfer(1, 20 + 3), ledger.state, now=NOW)
    assert len(mempool) == 21


def test_invalid_nonce_gap_counts_from_the_pending_run(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(max_nonce_gap=3)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(20)])
    assert_refused(mempool, ledger, ledger.transfer(1, 20 + 4), NonceTooHigh)
    # A hole left by a dropped transaction ends the run again.
    mempool.drop_refused([(mempool.pending_for(ledger.sender(1))[10], InsufficientBalance("refused by a proposal"))])
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




def test_signature(mempool: Mempool, ledger: Ledger) -> None:
    transaction = ledger.transfer(1, 0)
    mempool.add(transaction, ledger.state, now=NOW)
    assert transaction.hash in ledger.signatures


def test_invalid_signature(mempool: Mempool, ledger: Ledger) -> None:
    honest = ledger.transfer(1, 0)
    forged = Transaction(honest.chain_id, honest.sender, honest.nonce, honest.body, ledger.transfer(2, 0).signature)
    assert_refused(mempool, ledger, forged, BadSignature)
    assert forged.hash not in ledger.signatures


def test_issuer(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), 5)), ledger.sign(0, 1, Burn(ASSET, 5))])
    assert len(mempool) == 2


def test_invalid_issuer(mempool: Mempool, ledger: Ledger) -> None:
    assert_refused(mempool, ledger, ledger.sign(1, 0, Mint(ASSET, ledger.sender(1), 5)), NotAssetIssuer)
    assert_refused(mempool, ledger, ledger.sign(1, 0, Burn(ASSET, 5)), NotAssetIssuer)


def test_pending_spend_within_balance(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0, amount=BALANCE - 10), ledger.transfer(1, 1, amount=10)])
    assert len(mempool) == 2


def test_invalid_pending_spend_exceeds_balance(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.transfer(1, 0, amount=BALANCE - 10), ledger.state, now=NOW)
    assert_refused(mempool, ledger, ledger.transfer(1, 1, amount=11), PendingSpendExceedsBalance)
    # Mints spend nothing from the issuer; its burns do.
    mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(0), BALANCE)), ledger.state, now=NOW)
    mempool.add(ledger.sign(0, 1, Burn(ASSET, BALANCE - 1)), ledger.state, now=NOW)
    assert_refused(mempool, ledger, ledger.sign(0, 2, Burn(ASSET, 2)), PendingSpendExceedsBalance)


def test_drop_refused_forgets_transactions_and_remembers_why(mempool: Mempool, ledger: Ledger) -> None:
    keep, drop = ledger.transfer(1, 0), ledger.transfer(2, 0)
    add_all(mempool, ledger, [keep, drop])
    mempool.drop_refused(
        [
            (drop, InsufficientBalance("balance 0 does not cover amount 1")),
            (ledger.transfer(3, 0), InsufficientBalance("x")),
        ]
    )
    assert keep.hash in mempool and drop.hash not in mempool
    assert mempool.size_bytes == len(keep.encoded)
    assert mempool.pending_for(ledger.sender(2)) == []
    assert mempool.dropped(drop.hash) == Dropped(
        drop.hash, ledger.sender(2), 0, "insufficient_balance", "balance 0 does not cover amount 1"
    )
    assert mempool.dropped(ledger.transfer(3, 0).hash) is None and mempool.dropped(keep.hash) is None
    assert drop.hash not in ledger.signatures


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
    first = ledger.transfer(1, 0)
    mempool.add(first, ledger.state, now=NOW)
    mempool.add(ledger.transfer(1, 0, amount=2), ledger.state, now=NOW)
    assert count_verifications == [ledger.sender(1)] * 2
    refused = [
        (first, Replaced),
        (ledger.transfer(2, 0, chain_id="mura-other"), WrongChainId),
        (ledger.sign(2, 0, Stake(1)), UnknownKind),
        (ledger.transfer(2, 0, amount=0), NonPositiveAmount),
        (ledger.transfer(2, 3), NonceTooHigh),
        (ledger.transfer(1, 0, amount=3), ReplacementTooSoon),
        (ledger.transfer(2, 0, amount=BALANCE + 1), InsufficientBalance),
        (ledger.sign(0, 0, Mint(ASSET, ledger.sender(0), MAX_SUPPLY)), SupplyOverflow),
        (ledger.transfer(2, 0), MempoolFull),
    ]
    for transaction, error in refused:
        assert_refused(mempool, ledger, transaction, error)
    assert count_verifications == [ledger.sender(1)] * 2


def test_admitted_transaction_is_not_verified_again(
    mempool: Mempool, ledger: Ledger, count_verifications: list[bytes]
) -> None:
    admitted = ledger.transfer(1, 0)
    mempool.add(admitted, ledger.state, now=NOW)
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


# --- the supply ----------------------------------------------------------------

#: An asset of account 0 with a cap, and one of account 1's without: pending mints count per asset.
CAPPED, OTHER = "CAPPED", "JPYT"
CAP = 1_000


def supply_ledger() -> Ledger:
    """Four accounts: ``CAPPED`` (account 0's, 400 of its cap of 1,000 held by account 2) and
    ``OTHER`` (account 1's, none issued) beside ``ASSET``."""
    capped = GenesisAsset(asset_terms(CAPPED, make_key(0).public_key, cap=CAP), ((make_key(2).public_key, 400),))
    other = GenesisAsset(asset_terms(OTHER, make_key(1).public_key))
    return Ledger(4, assets=[capped, other])


def room(ledger: Ledger, asset: str = ASSET) -> int:
    """How much of ``asset`` may still be minted."""
    return MAX_SUPPLY - ledger.state.load_asset_state(asset).supply


def test_mint_up_to_the_largest_supply(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), room(ledger))), ledger.state, now=NOW)
    assert len(mempool) == 1


def test_invalid_mint_past_the_largest_supply(mempool: Mempool, ledger: Ledger) -> None:
    """The largest amount, from the treasury, over a supply that is not zero: the chain's own rule."""
    supply = ledger.state.load_asset_state(ASSET).supply
    with pytest.raises(SupplyOverflow) as caught:
        mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), MAX_SUPPLY)), ledger.state, now=NOW)
    assert caught.value.details == {"asset": ASSET, "amount": MAX_SUPPLY, "supply": supply}
    assert len(mempool) == 0
    # Beside a pending mint: the pool's own count.
    mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), room(ledger) - 5)), ledger.state, now=NOW)
    with pytest.raises(SupplyOverflow) as caught:
        mempool.add(ledger.sign(0, 1, Mint(ASSET, ledger.sender(1), 6)), ledger.state, now=NOW)
    assert caught.value.message == (
        f"minting 6 would take the supply of {ASSET} ({supply}, with {room(ledger) - 5} more in pending mints) "
        f"past {MAX_SUPPLY}"
    )
    assert caught.value.details == {"asset": ASSET, "amount": 6, "supply": supply, "pending_mints": room(ledger) - 5}
    assert len(mempool) == 1


def test_pending_mints_within_the_cap() -> None:
    ledger = supply_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    add_all(mempool, ledger, [ledger.sign(0, nonce, Mint(CAPPED, ledger.sender(3), 200)) for nonce in range(3)])
    # Exactly the cap: a block takes them all.
    built = ledger.build(select_all(mempool, ledger))
    assert built.refused == [] and len(built.block.transactions) == 3


def test_invalid_pending_mints_past_the_cap() -> None:
    ledger = supply_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    add_all(mempool, ledger, [ledger.sign(0, nonce, Mint(CAPPED, ledger.sender(3), 250)) for nonce in range(2)])
    # Fits the cap alone (400 + 350), not beside the pending 500.
    with pytest.raises(SupplyCapExceeded) as caught:
        mempool.add(ledger.sign(0, 2, Mint(CAPPED, ledger.sender(3), 350)), ledger.state, now=NOW)
    assert caught.value.message == (
        f"minting 350 would take the supply of {CAPPED} (400, with 500 more in pending mints) past its cap {CAP}"
    )
    assert caught.value.details == {"asset": CAPPED, "amount": 350, "supply": 400, "pending_mints": 500, "cap": CAP}
    # Alone past the cap: the chain's own rule says so first.
    with pytest.raises(SupplyCapExceeded) as caught:
        mempool.add(ledger.sign(0, 2, Mint(CAPPED, ledger.sender(3), 601)), ledger.state, now=NOW)
    assert caught.value.details == {"asset": CAPPED, "amount": 601, "supply": 400, "cap": CAP}
    assert len(mempool) == 2


def test_pending_mints_count_per_asset() -> None:
    """A pending mint of one asset takes no room from another's."""
    ledger = supply_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    add_all(mempool, ledger, [ledger.sign(0, 0, Mint(ASSET, ledger.sender(2), room(ledger)))])
    add_all(mempool, ledger, [ledger.sign(0, 1, Mint(CAPPED, ledger.sender(2), CAP - 400))])
    add_all(mempool, ledger, [ledger.sign(1, 0, Mint(OTHER, ledger.sender(2), MAX_SUPPLY))])
    assert len(mempool) == 3
    assert ledger.build(select_all(mempool, ledger)).refused == []


def test_a_replaced_mint_no_longer_counts(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), room(ledger))), ledger.state, now=NOW)
    mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), room(ledger) - 5)), ledger.state, now=NOW)
    mempool.add(ledger.sign(0, 1, Mint(ASSET, ledger.sender(1), 5)), ledger.state, now=NOW)
    assert len(mempool) == 2


# --- what an overspend says --------------------------------------------------------


def test_overspend_with_nothing_pending_is_the_chains_rule(mempool: Mempool, ledger: Ledger) -> None:
    with pytest.raises(InsufficientBalance) as caught:
        mempool.add(ledger.transfer(1, 0, amount=BALANCE + 1), ledger.state, now=NOW)
    assert caught.value.details == {"asset": ASSET, "balance": BALANCE, "amount": BALANCE + 1}
    with pytest.raises(InsufficientBalance):
        mempool.add(ledger.sign(0, 0, Burn(ASSET, BALANCE + 1)), ledger.state, now=NOW)


def test_overspend_with_transactions_pending_counts_them(mempool: Mempool, ledger: Ledger) -> None:
    add_all(mempool, ledger, [ledger.transfer(1, 0, amount=600_000), ledger.transfer(1, 1, amount=300_000)])
    with pytest.raises(PendingSpendExceedsBalance) as caught:
        mempool.add(ledger.transfer(1, 2, amount=200_000), ledger.state, now=NOW)
    assert caught.value.message == (
        f"with other transactions pending, this would spend 1100000 of a balance of {BALANCE} {ASSET}"
    )
    assert caught.value.details == {"asset": ASSET, "balance": BALANCE, "pending_spend": 1_100_000}


def test_overspend_beside_pending_mints_only_is_a_plain_overspend(mempool: Mempool, ledger: Ledger) -> None:
    mempool.add(ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), 5)), ledger.state, now=NOW)
    with pytest.raises(InsufficientBalance):
        mempool.add(ledger.transfer(0, 1, amount=BALANCE + 1), ledger.state, now=NOW)
    mempool.add(ledger.transfer(0, 1, amount=BALANCE), ledger.state, now=NOW)


def test_pending_spend_counts_per_asset() -> None:
    """Spending all of one asset leaves another to spend; each is checked against its own balance."""
    ledger = supply_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    add_all(mempool, ledger, [ledger.transfer(2, 0, amount=BALANCE), ledger.transfer(2, 1, amount=400, asset=CAPPED)])
    with pytest.raises(PendingSpendExceedsBalance) as caught:
        mempool.add(ledger.transfer(2, 2, amount=1, asset=CAPPED), ledger.state, now=NOW)
    assert caught.value.details == {"asset": CAPPED, "balance": 400, "pending_spend": 401}
    with pytest.raises(PendingSpendExceedsBalance) as caught:
        mempool.add(ledger.transfer(2, 2, amount=1), ledger.state, now=NOW)
    assert caught.value.details == {"asset": ASSET, "balance": BALANCE, "pending_spend": BALANCE + 1}
    assert ledger.build(select_all(mempool, ledger)).refused == []


# --- the chain's rules at admission -----------------------------------------------------


def rules_ledger() -> Ledger:
    """``BOND``: restricted, account 0's, accounts 0 and 1 approved holders. ``VOUCHER``: account
    0's, held by account 1, expiring at 10 s after genesis."""
    issuer = make_key(0).public_key
    holders = ((issuer, 1_000), (make_key(1).public_key, 100))
    bond = GenesisAsset(asset_terms("BOND", issuer, policy=TransferPolicy.RESTRICTED), holders)
    voucher = GenesisAsset(asset_terms("VOUCHER", issuer, expiry_ms=10_000), holders)
    return Ledger(4, assets=[bond, voucher])


def test_admission_refuses_an_unknown_asset(mempool: Mempool, ledger: Ledger) -> None:
    for transaction in [ledger.transfer(1, 0, asset="XYZ"), ledger.sign(0, 0, Mint("XYZ", ledger.sender(1), 1))]:
        with pytest.raises(UnknownAsset) as caught:
            mempool.add(transaction, ledger.state, now=NOW)
        assert caught.value.details == {"asset": "XYZ"}
    assert len(mempool) == 0


def test_admission_refuses_a_restricted_asset_to_a_holder_not_approved() -> None:
    ledger = rules_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    with pytest.raises(HolderNotApproved) as caught:
        mempool.add(ledger.transfer(1, 0, asset="BOND"), ledger.state, now=NOW)  # to account 2
    assert caught.value.details == {"asset": "BOND", "account": ledger.sender(2).hex(), "party": "recipient"}
    mempool.add(ledger.transfer(0, 0, asset="BOND"), ledger.state, now=NOW)  # to account 1, approved
    assert len(mempool) == 1


def test_admission_refuses_a_frozen_account() -> None:
    ledger = rules_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    ledger.commit([ledger.sign(0, 0, Freeze(ASSET, ledger.sender(1)))])
    with pytest.raises(AccountFrozen) as caught:
        mempool.add(ledger.transfer(1, 0), ledger.state, now=NOW)
    assert caught.value.details == {"asset": ASSET, "account": ledger.sender(1).hex(), "party": "sender"}
    with pytest.raises(AccountFrozen):
        mempool.add(ledger.transfer(0, 1), ledger.state, now=NOW)  # to account 1
    mempool.add(ledger.sign(1, 0, Transfer("BOND", ledger.sender(0), 1)), ledger.state, now=NOW)  # frozen in NAC alone
    assert len(mempool) == 1


def test_admission_refuses_an_expired_asset() -> None:
    ledger = rules_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    mempool.add(ledger.transfer(1, 0, amount=5, asset="VOUCHER"), ledger.state, now=NOW)
    ledger.commit([], timestamp_ms=10_000)
    assert ledger.state.load_asset_state("VOUCHER").expired
    refused = [ledger.transfer(2, 0, asset="VOUCHER"), ledger.sign(0, 0, Mint("VOUCHER", ledger.sender(1), 1))]
    for transaction in refused:
        with pytest.raises(AssetExpired) as caught:
            mempool.add(transaction, ledger.state, now=NOW)
        assert caught.value.details == {"asset": "VOUCHER"}
    # What was admitted before the expiry a proposal refuses, and the pool then drops.
    built = ledger.build(select_all(mempool, ledger))
    assert [type(error) for _, error in built.refused] == [AssetExpired]
    mempool.drop_refused(built.refused)
    assert len(mempool) == 0


# --- replacement -------------------------------------------------------------------


def test_replacement_takes_the_pending_ones_place(ledger: Ledger) -> None:
    reported: list[Dropped] = []
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures, max_transactions=1, on_drop=reported.extend)
    first = ledger.transfer(1, 0, amount=BALANCE)
    mempool.add(first, ledger.state, now=NOW)
    # Admitted as if the first were not pending: the pool is full and the first spends it all.
    second = ledger.transfer(1, 0, amount=BALANCE - 1)
    mempool.add(second, ledger.state, now=NOW)
    assert mempool.pending_for(ledger.sender(1)) == [second] and first.hash not in mempool
    assert mempool.size_bytes == len(second.encoded)
    expected = Dropped(
        first.hash, ledger.sender(1), 0, "replaced",
        f"replaced by transaction {second.hash.hex()} with the same sender and nonce", replaced_by=second.hash,
    )
    assert reported == [expected] and mempool.dropped(first.hash) == expected
    assert first.hash not in ledger.signatures


def test_replacement_of_a_nonce_past_a_hole(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    """A replacement parks nothing further ahead, however far its nonce is from the next one."""
    mempool = make_mempool(max_nonce_gap=1, max_per_sender=3)
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(1, 2)])
    mempool.drop_refused([(mempool.pending_for(ledger.sender(1))[0], InsufficientBalance("refused"))])
    mempool.add(ledger.transfer(1, 2, amount=5), ledger.state, now=NOW)
    assert [cast(Transfer, tx.body).amount for tx in mempool.pending_for(ledger.sender(1))] == [1, 5]


def test_invalid_replacement_leaves_the_pending_one(mempool: Mempool, ledger: Ledger) -> None:
    first = ledger.transfer(1, 0, amount=10)
    add_all(mempool, ledger, [first, ledger.transfer(1, 1, amount=BALANCE - 10)])
    assert_refused(mempool, ledger, ledger.transfer(1, 0, amount=11), PendingSpendExceedsBalance)
    assert_refused(mempool, ledger, ledger.sign(1, 0, Mint(ASSET, ledger.sender(1), 1)), NotAssetIssuer)
    assert mempool.get(first.hash) == first and mempool.dropped(first.hash) is None


def test_replacements_one_per_interval_per_sender(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(replacement_interval=1.0)
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(2, 0)])
    mempool.add(ledger.transfer(1, 0, amount=2), ledger.state, now=10.0)
    with pytest.raises(ReplacementTooSoon) as caught:
        mempool.add(ledger.transfer(1, 1, amount=2), ledger.state, now=10.25)
    assert caught.value.details == {"retry_after_seconds": 0.75}
    # Another sender is not held back, and the sender may replace again once the interval passed.
    mempool.add(ledger.transfer(2, 0, amount=2), ledger.state, now=10.25)
    mempool.add(ledger.transfer(1, 1, amount=2), ledger.state, now=11.0)
    assert len(mempool) == 3


def test_a_replaced_transaction_stays_out_while_a_replacement_is_pending(
    make_mempool: Callable[..., Mempool], ledger: Ledger
) -> None:
    """Rebroadcasts of older versions cannot flip the pool back: refused as long as any later
    version is pending; once none is, the old one is admitted again and its record forgotten."""
    mempool = make_mempool(expire_after=100.0)
    first, second, third = (ledger.transfer(1, 0, amount=amount) for amount in (1, 2, 3))
    mempool.add(first, ledger.state, now=0.0)
    mempool.add(second, ledger.state, now=1.0)
    mempool.add(third, ledger.state, now=2.0)
    for old in (first, second):
        with pytest.raises(Replaced) as caught:
            mempool.add(old, ledger.state, now=50.0)
        assert caught.value.details == {"replaced_by": third.hash}
    mempool.expire(102.0)
    assert mempool.dropped(third.hash) is not None and len(mempool) == 0
    mempool.add(first, ledger.state, now=103.0)
    assert first.hash in mempool and mempool.dropped(first.hash) is None


def test_a_batch_replaces_as_its_sender_did(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool()
    first = ledger.transfer(1, 0, amount=1)
    mempool.add(first, ledger.state, now=NOW)
    batch = [ledger.transfer(1, 0, amount=2), ledger.transfer(1, 1, amount=3)]
    passed, refused = mempool.check_batch(batch, ledger.state, now=NOW)
    assert passed == batch and refused == []
    assert mempool.pending_for(ledger.sender(1)) == [first]
    add_all(mempool, ledger, passed)
    assert mempool.pending_for(ledger.sender(1)) == batch


# --- drops after a commit ------------------------------------------------------------


class CountingState:
    """A ``StateReader`` over a ledger's state that records what is read of it."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state
        self.reads: list[tuple[str, Any]] = []

    def load_account(self, address: bytes) -> Account:
        self.reads.append(("account", address))
        return self.state.load_account(address)

    def load_balance(self, address: bytes, asset: str) -> int:
        self.reads.append(("balance", (address, asset)))
        return self.state.load_balance(address, asset)

    def load_asset(self, asset: str) -> AssetTerms | None:
        self.reads.append(("asset", asset))
        return self.state.load_asset(asset)

    def load_asset_state(self, asset: str) -> AssetState:
        self.reads.append(("asset_state", asset))
        return self.state.load_asset_state(asset)

    def load_entry(self, key: bytes) -> bytes | None:
        self.reads.append(("entry", key))
        return self.state.load_entry(key)

    def load_entries_after(self, prefix: bytes, after: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        self.reads.append(("entries", prefix))
        return self.state.load_entries_after(prefix, after, limit)

    def load_validators(self) -> ValidatorSet:
        return self.state.load_validators()

    def load_lattice(self) -> LatticeHash:
        return self.state.load_lattice()


def test_remove_committed_reads_only_what_the_block_touched(make_ledger: Callable[..., Ledger]) -> None:
    """The balances the block's senders spend in the pool, and the supply of an asset it minted."""
    ledger = make_ledger(40)
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    add_all(mempool, ledger, [ledger.transfer(sender, 0) for sender in range(1, 40)])
    add_all(mempool, ledger, [ledger.transfer(1, 1), ledger.sign(0, 0, Mint(ASSET, ledger.sender(1), 5))])
    block = ledger.commit([ledger.transfer(1, 0, amount=3)])
    counting = CountingState(ledger.state)
    mempool.remove_committed(block.transactions, counting)
    assert counting.reads == [("balance", (ledger.sender(1), ASSET))]
    counting.reads.clear()
    block = ledger.commit([mempool.pending_for(ledger.sender(0))[0]])
    mempool.remove_committed(block.transactions, counting)
    assert sorted(counting.reads) == [("asset", ASSET), ("asset_state", ASSET)]


def test_remove_committed_drops_a_used_nonce_as_nonce_used(ledger: Ledger) -> None:
    reported: list[Dropped] = []
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures, on_drop=reported.extend)
    mine = ledger.transfer(1, 0, amount=1)
    mempool.add(mine, ledger.state, now=NOW)
    theirs = ledger.transfer(1, 0, amount=7)
    block = ledger.commit([theirs])
    mempool.remove_committed(block.transactions, ledger.state)
    assert [(dropped.transaction_hash, dropped.rule) for dropped in reported] == [(mine.hash, "nonce_used")]
    assert theirs.hash.hex() in reported[0].message
    assert mempool.dropped(mine.hash) == reported[0]


def test_remove_committed_forgets_drops_that_became_final(mempool: Mempool, ledger: Ledger) -> None:
    """A transaction one node dropped may become final by another's proposal: then it is final, not dropped."""
    first = ledger.transfer(1, 0, amount=1)
    mempool.add(first, ledger.state, now=0.0)
    second = ledger.transfer(1, 0, amount=2)
    mempool.add(second, ledger.state, now=0.0)
    block = ledger.commit([first])
    mempool.remove_committed(block.transactions, ledger.state)
    assert mempool.dropped(first.hash) is None
    assert mempool.dropped(second.hash).rule == "nonce_used"  # type: ignore[union-attr]
    assert len(mempool) == 0


def test_remove_committed_drops_what_the_balance_no_longer_covers(mempool: Mempool, ledger: Ledger) -> None:
    """A proposer that held another version of a nonce spent more than this pool counted."""
    mine = [
        ledger.transfer(1, 0, amount=10),
        ledger.transfer(1, 1, amount=BALANCE - 700),
        ledger.transfer(1, 2, amount=650),
        ledger.transfer(1, 3, amount=30),
    ]
    add_all(mempool, ledger, mine)
    block = ledger.commit([ledger.transfer(1, 0, amount=100)])
    mempool.remove_committed(block.transactions, ledger.state)
    # Balance left: BALANCE - 100. In nonce order, the 650 no longer fits; the 30 still does.
    assert mempool.pending_for(ledger.sender(1)) == [mine[1], mine[3]]
    dropped = mempool.dropped(mine[2].hash)
    assert dropped is not None and dropped.rule == "insufficient_balance"
    assert dropped.message == (
        f"transfer of 650 exceeds the balance of {BALANCE - 100} {ASSET} after the {BALANCE - 700} this "
        "sender's earlier pending transactions spend"
    )


@pytest.mark.parametrize(("asset", "rule"), [(CAPPED, "supply_cap_exceeded"), (ASSET, "supply_overflow")])
def test_remove_committed_drops_mints_the_supply_no_longer_fits(asset: str, rule: str) -> None:
    """Another node's version of a pending mint became final first and minted more: the pending
    mints of that asset that no longer fit beside it are dropped in arrival order; another
    asset's are kept."""
    ledger = supply_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    left = room(ledger, asset) if asset == ASSET else CAP - 400
    small, large, later = (
        ledger.sign(0, nonce, Mint(asset, ledger.sender(3), amount))
        for nonce, amount in enumerate([1, left // 2, left // 4])
    )
    other = ledger.sign(1, 0, Mint(OTHER, ledger.sender(3), 5))
    add_all(mempool, ledger, [small, large, later, other])
    block = ledger.commit([ledger.sign(0, 0, Mint(asset, ledger.sender(2), left - left // 2 + 1))])
    mempool.remove_committed(block.transactions, ledger.state)
    assert mempool.pending_for(ledger.sender(0)) == [later] and mempool.pending_for(ledger.sender(1)) == [other]
    assert [mempool.dropped(tx.hash).rule for tx in (small, large)] == ["nonce_used", rule]  # type: ignore[union-attr]
    assert ledger.build(select_all(mempool, ledger)).refused == []


def test_remove_committed_drops_overspends_per_asset() -> None:
    """A version of a nonce this pool did not hold spent more of one asset: only the pending
    spends of that asset that no longer fit are dropped."""
    ledger = supply_ledger()
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures)
    mine = [
        ledger.transfer(2, 0, amount=10),
        ledger.transfer(2, 1, amount=300, asset=CAPPED),
        ledger.transfer(2, 2, amount=BALANCE - 10),
        ledger.transfer(2, 3, amount=100, asset=CAPPED),
    ]
    add_all(mempool, ledger, mine)
    block = ledger.commit([ledger.transfer(2, 0, amount=500)])
    mempool.remove_committed(block.transactions, ledger.state)
    assert mempool.pending_for(ledger.sender(2)) == [mine[1], mine[3]]
    dropped = mempool.dropped(mine[2].hash)
    assert dropped is not None and dropped.rule == "insufficient_balance"
    assert dropped.message == f"transfer of {BALANCE - 10} exceeds the balance of {BALANCE - 500} {ASSET}"


def test_drop_refused_keeps_what_waits_behind_an_earlier_nonce(mempool: Mempool, ledger: Ledger) -> None:
    waiting = ledger.transfer(1, 1)
    add_all(mempool, ledger, [ledger.transfer(1, 0), waiting])
    refused: list[tuple[Transaction, InvalidTransaction]] = [
        (ledger.transfer(1, 0), InsufficientBalance("refused")),
        (waiting, NonceTooHigh("skips ahead")),
    ]
    mempool.drop_refused(refused)
    assert mempool.pending_for(ledger.sender(1)) == [waiting] and mempool.dropped(waiting.hash) is None


# --- expiry ------------------------------------------------------------------------


def test_expire_drops_what_waited_too_long(ledger: Ledger) -> None:
    reported: list[Dropped] = []
    mempool = Mempool(rules=ledger.rules, signatures=ledger.signatures, expire_after=10.0, on_drop=reported.extend)
    older, newer, later_nonce = ledger.transfer(1, 0), ledger.transfer(2, 0), ledger.transfer(1, 1)
    mempool.add(older, ledger.state, now=100.0)
    mempool.add(newer, ledger.state, now=105.0)
    mempool.add(later_nonce, ledger.state, now=106.0)
    mempool.expire(109.9)
    assert len(mempool) == 3 and reported == []
    mempool.expire(110.0)
    assert older.hash not in mempool and [dropped.rule for dropped in reported] == ["expired"]
    assert reported[0].message == "pending for 10 s without being included; a transaction waits at most 10 s"
    # Its later nonce waits behind the hole (a wallet may fill it), until it expires in turn.
    assert mempool.pending_for(ledger.sender(1)) == [later_nonce]
    assert ledger.build(select_all(mempool, ledger)).block.transactions == (newer,)
    mempool.expire(200.0)
    assert len(mempool) == 0 and len(reported) == 3


def test_expire_drops_at_most_its_limit_oldest_first(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(expire_after=10.0)
    for sender in range(1, 4):
        mempool.add(ledger.transfer(sender, 0), ledger.state, now=float(sender))
    mempool.expire(100.0, limit=2)
    assert [len(mempool.pending_for(ledger.sender(sender))) for sender in range(1, 4)] == [0, 0, 1]
    mempool.expire(100.0, limit=2)
    assert len(mempool) == 0


def test_expire_after_zero_keeps_transactions_forever(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(expire_after=0)
    mempool.add(ledger.transfer(1, 0), ledger.state, now=0.0)
    mempool.expire(10.0**9)
    assert len(mempool) == 1


def test_an_expired_transaction_is_admitted_again(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(expire_after=10.0)
    transaction = ledger.transfer(1, 0)
    mempool.add(transaction, ledger.state, now=0.0)
    mempool.expire(10.0)
    assert mempool.dropped(transaction.hash) is not None
    mempool.add(transaction, ledger.state, now=11.0)
    assert mempool.dropped(transaction.hash) is None
    mempool.expire(20.0)
    assert transaction.hash in mempool


def test_drop_summary_counts_drops_by_rule_once(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    mempool = make_mempool(expire_after=10.0)
    add_all(mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(2, 0)])
    mempool.add(ledger.transfer(3, 0, amount=1), ledger.state, now=5.0)
    mempool.add(ledger.transfer(3, 0, amount=2), ledger.state, now=5.0)
    mempool.expire(10.0)
    assert mempool.drop_summary(now=10.0) == "dropped 3 pending transactions: expired 2, replaced 1"
    assert mempool.drop_summary(now=10.0) is None


def test_a_sender_replacing_every_second_gets_a_summary_line_a_minute_not_a_second(
    make_mempool: Callable[..., Mempool], ledger: Ledger
) -> None:
    """One key may replace once a second on every node; the node asks for a summary every second."""
    mempool = make_mempool()
    lines = []
    for second in range(0, 182):
        mempool.add(ledger.transfer(1, 0, amount=1 + second), ledger.state, now=float(second))
        summary = mempool.drop_summary(now=second + 0.5)
        if summary is not None:
            lines.append(summary)
    assert lines[0] == "dropped 1 pending transaction: replaced 1"
    assert len(lines) == 4 and lines[1] == "dropped 60 pending transactions: replaced 60"


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


def test_has_ready_only_when_a_block_could_take_a_transaction(mempool: Mempool, ledger: Ledger) -> None:
    assert not mempool.has_ready(ledger.state)
    add_all(mempool, ledger, [ledger.transfer(1, 2), ledger.transfer(2, 1)])
    assert not mempool.has_ready(ledger.state), "both wait behind a missing nonce"
    add_all(mempool, ledger, [ledger.transfer(2, 0)])
    assert mempool.has_ready(ledger.state)


def test_has_ready_looks_at_a_bounded_number_of_senders(mempool: Mempool, ledger: Ledger) -> None:
    """Many keys parking transactions cost a bounded scan: past the bound the answer is yes."""
    add_all(mempool, ledger, [ledger.transfer(index, 1) for index in range(4)])
    reads: list[bytes] = []
    load_account = ledger.state.load_account

    def counting(address: bytes) -> Any:
        reads.append(address)
        return load_account(address)

    ledger.state.load_account = counting  # type: ignore[method-assign]
    assert not mempool.has_ready(ledger.state, max_senders=4)
    assert len(reads) == 4
    reads.clear()
    assert mempool.has_ready(ledger.state, max_senders=2), "past the bound, assumed ready"
    assert len(reads) == 2


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
    burn = ledger.sign(0, 0, Burn(ASSET, 5))
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
    add_all(
        mempool, ledger, [ledger.transfer(1, 0), ledger.transfer(1, 1), ledger.transfer(1, 3), ledger.transfer(2, 0)]
    )
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
    mempool.add(ledger.transfer(1, 0), ledger.state, now=NOW)
    before = contents(mempool, ledger)
    run = [ledger.transfer(1, nonce) for nonce in range(1, 41)]
    passed, refused = mempool.check_batch(run, ledger.state, now=NOW)
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
        ledger.transfer(2, 0, amount=7),  # the same nonce twice in one batch: a replacement
        ledger.transfer(2, 5),  # more than 3 beyond the batch's run of sender 2
        ledger.transfer(3, 0),
        ledger.transfer(3, 1),
        ledger.transfer(3, 2),
        ledger.transfer(3, 3),
    ]
    passed, refused = mempool.check_batch(batch, ledger.state, now=NOW)
    assert order(ledger, passed) == [(1, 0), (2, 0), (2, 0), (3, 0), (3, 1), (3, 2), (3, 3)]
    assert [type(error) for error in refused] == [PendingSpendExceedsBalance, NonceTooHigh]
    assert len(mempool) == 0
    # The pool's limits count the batch's earlier transactions too.
    mempool = make_mempool(max_transactions=2)
    passed, refused = mempool.check_batch(
        [ledger.transfer(1, 0), ledger.transfer(2, 0), ledger.transfer(3, 0)], ledger.state, now=NOW
    )
    assert order(ledger, passed) == [(1, 0), (2, 0)] and [type(error) for error in refused] == [MempoolFull]


def test_batch_leaves_the_run_end_as_it_was(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    """After a batch is checked and not admitted, the gap counts from the real pending run."""
    mempool = make_mempool(max_nonce_gap=3)
    add_all(mempool, ledger, [ledger.transfer(1, nonce) for nonce in range(5)])
    mempool.check_batch([ledger.transfer(1, nonce) for nonce in range(5, 30)], ledger.state, now=NOW)
    assert_refused(mempool, ledger, ledger.transfer(1, 5 + 4), NonceTooHigh)
    mempool.add(ledger.transfer(1, 5 + 3), ledger.state, now=NOW)


# --- a property over random histories ----------------------------------------------

SENDERS = 4
MINTS = [1, 1_000, MAX_SUPPLY // 3, MAX_SUPPLY // 2]
add_step = st.tuples(st.just("add"), st.integers(0, SENDERS - 1), st.integers(-1, 4), st.integers(1, 3))
mint_step = st.tuples(st.just("mint"), st.integers(-1, 3), st.sampled_from(MINTS))
select_step = st.tuples(st.just("select"), st.integers(0, 8), st.integers(0, 1_000))
commit_step = st.tuples(st.just("commit"), st.integers(1, 8))
commit_elsewhere_step = st.tuples(st.just("commit_elsewhere"), st.integers(0, SENDERS - 1), st.booleans())
tick_step = st.tuples(st.just("tick"), st.floats(0, 6))
# Adds are weighted up so that histories reach the pool's limits.
steps = st.lists(
    st.one_of(
        add_step, add_step, add_step, add_step, mint_step, select_step, commit_step, commit_elsewhere_step, tick_step
    ),
    min_size=20,
    max_size=60,
)
#: Refusals a history may meet; each must leave the pool as it was.
EXPECTED_REFUSALS = (
    DuplicateTransaction,
    InsufficientBalance,
    NonceTooLow,
    NonceTooHigh,
    MempoolFull,
    Replaced,
    ReplacementTooSoon,
    SupplyOverflow,
    PendingSpendExceedsBalance,
)


class History:
    """Drives one mempool and its ledger through random steps, checking invariants after each.

    Account 0 is an issuer; other nodes' blocks (``commit_elsewhere``) may use a nonce the
    pool holds another transaction for, spend more, or mint what the pool's mints then no
    longer fit beside.
    """

    def __init__(self) -> None:
        self.ledger = Ledger(SENDERS)
        size = len(self.ledger.transfer(0, 0).encoded)
        self.now = 0.0
        self.reported: list[Dropped] = []
        self.pool = Mempool(
            rules=self.ledger.rules,
            signatures=self.ledger.signatures,
            max_transactions=6,
            max_bytes=5 * size,
            max_nonce_gap=3,
            expire_after=10.0,
            on_drop=self.reported.extend,
        )

    def _admit(self, transaction: Transaction) -> None:
        before = contents(self.pool, self.ledger)
        try:
            self.pool.add(transaction, self.ledger.state, now=self.now)
        except EXPECTED_REFUSALS:
            assert contents(self.pool, self.ledger) == before
        else:
            assert transaction.hash in self.pool and self.pool.dropped(transaction.hash) is None

    def _next_nonce(self, sender: int, offset: int) -> int:
        return max(0, self.ledger.state.load_account(self.ledger.sender(sender)).nonce + offset)

    def add(self, sender: int, nonce_offset: int, amount: int) -> None:
        self._admit(self.ledger.transfer(sender, self._next_nonce(sender, nonce_offset), amount))

    def mint(self, nonce_offset: int, amount: int) -> None:
        mint = Mint(ASSET, self.ledger.sender(1), amount)
        self._admit(self.ledger.sign(0, self._next_nonce(0, nonce_offset), mint))

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

    def commit_elsewhere(self, sender: int, large: bool) -> None:
        """A block from a proposer that held other transactions than this pool."""
        nonce = self._next_nonce(sender, 0)
        if sender == 0 and large:
            room = MAX_SUPPLY - self.ledger.state.load_asset_state(ASSET).supply
            transaction = self.ledger.sign(0, nonce, Mint(ASSET, self.ledger.sender(2), max(1, room // 2)))
        else:
            balance = self.ledger.state.load_balance(self.ledger.sender(sender), ASSET)
            if balance == 0:
                return
            transaction = self.ledger.transfer(sender, nonce, amount=balance if large else min(100, balance))
        block = self.ledger.commit([transaction])
        self.pool.remove_committed(block.transactions, self.ledger.state)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.pool.expire(self.now)

    def check(self) -> None:
        status = self.pool.status()
        state = self.ledger.state
        pending = [tx for key in self.ledger.keys for tx in self.pool.pending_for(key.public_key)]
        assert status.transactions == len(self.pool) == len(pending) <= status.max_transactions
        assert status.bytes == self.pool.size_bytes == sum(len(tx.encoded) for tx in pending) <= status.max_bytes
        for transaction in pending:
            assert transaction.nonce >= state.load_account(transaction.sender).nonce
        # What admission promised still holds after every commit, drop and expiry.
        minted = sum(tx.body.amount for tx in pending if isinstance(tx.body, Mint))
        assert state.load_asset_state(ASSET).supply + minted <= MAX_SUPPLY
        for key in self.ledger.keys:
            spend = sum(
                cast(Transfer | Burn, tx.body).amount
                for tx in self.pool.pending_for(key.public_key)
                if not isinstance(tx.body, Mint)
            )
            assert spend <= state.load_balance(key.public_key, ASSET)
        for dropped in self.reported:
            if dropped.transaction_hash in self.pool:
                assert self.pool.dropped(dropped.transaction_hash) is None
        assert self.pool.dropped(b"\0" * 32) is None


@settings(deadline=None, max_examples=150)
@given(steps)
def test_random_histories_keep_the_admission_rules_and_select_valid_blocks(
    history_steps: list[tuple[Any, ...]],
) -> None:
    history = History()
    for name, *arguments in history_steps:
        getattr(history, name)(*arguments)
        history.check()


# --- what refusals cost ---------------------------------------------------------


def test_refusals_leave_nothing_behind(tmp_path: Path) -> None:
    """Transfers from keys that hold nothing are refused and cost no memory that stays:
    not the pool's bookkeeping, not the store's account cache. (Each refusal once left
    a few hundred bytes behind: 610,000 of them grew a node from 65 to 175 MB.)"""
    issuer = SigningKey.generate().public_key
    block, changes = build_genesis(
        chain_id="mura-test",
        timestamp_ms=0,
        validators=[SigningKey.generate().public_key],
        issuers=(),
        assets=[GenesisAsset(asset_terms(ASSET, issuer), ((issuer, 1),))],
    )
    with Store(tmp_path / "data") as store:
        store.initialize(block, changes)
        pool = Mempool(rules=ChainRules(chain_id="mura-test"), signatures=SignatureCache())
        body = Transfer(ASSET, bytes(32), 5)
        senders = [SigningKey.from_private_bytes(index.to_bytes(32, "big")) for index in range(1, 6_001)]
        refusals = [sign_transaction(key, chain_id="mura-test", nonce=0, body=body) for key in senders]

        def refuse(transactions: list[Transaction]) -> None:
            for transaction in transactions:
                with pytest.raises(InsufficientBalance):
                    pool.check(transaction, store, now=NOW)

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


def test_a_batch_passes_one_replacement_per_sender(make_mempool: Callable[..., Mempool], ledger: Ledger) -> None:
    """Versions of one pending nonce in one batch: each that passed ``check_batch`` would be verified,
    yet ``add`` takes only the first as a replacement. The rest are refused before verification."""
    mempool = make_mempool()
    mempool.add(ledger.transfer(1, 0, amount=1), ledger.state, now=NOW)
    versions = [ledger.transfer(1, 0, amount=amount) for amount in range(2, 102)]
    other = ledger.transfer(2, 0, amount=1)
    passed, refused = mempool.check_batch([*versions, other], ledger.state, now=5.0)
    assert passed == [versions[0], other]
    assert len(refused) == 99 and all(isinstance(error, ReplacementTooSoon) for error in refused)


# --- governance -------------------------------------------------------------------------------


def test_governance_admission_runs_the_rules(mempool: Mempool, ledger: Ledger) -> None:
    """A validator's proposal is admitted; one from an account outside the set, an approval
    of no proposal, and a malformed validator are refused with their rules."""
    validator = ledger.validator
    change = AddValidator(make_key(20_000).public_key, "new-office", "10.0.0.9:9700")
    outsider = ledger.sign(1, 0, Propose(change))
    with pytest.raises(NotAValidator):
        mempool.add(outsider, ledger.state, now=NOW)
    unknown = sign_transaction(validator, chain_id=CHAIN_ID, nonce=0, body=Approve(1))
    with pytest.raises(UnknownProposal):
        mempool.add(unknown, ledger.state, now=NOW)
    malformed = Propose(AddValidator(change.public_key, "New Office", change.address))
    with pytest.raises(InvalidValidatorInfo):
        mempool.add(sign_transaction(validator, chain_id=CHAIN_ID, nonce=0, body=malformed), ledger.state, now=NOW)
    proposal = sign_transaction(validator, chain_id=CHAIN_ID, nonce=0, body=Propose(change))
    mempool.add(proposal, ledger.state, now=NOW)
    assert proposal.hash in mempool
    # The single validator's proposal is approved at once when its block applies.
    ledger.commit([proposal])
    assert validator_keys(ledger.state.load_validators()) == (validator.public_key,)
    ledger.commit([])
    assert validator_keys(ledger.state.load_validators()) == (validator.public_key, change.public_key)
