"""Tests for chain/state.py: every rule of the state transition, accepted and refused.

Each rule has ``test_<rule>`` (a valid case is accepted with the expected effect)
and ``test_invalid_<rule>`` (the typed exception is raised and nothing changes).
Blocks are applied with a fresh ``SignatureCache``, as by a validator that has
not seen their transactions, so every signature is really checked.

The rules of assets are tested in ``test_state_assets`` (issue, mint, burn, memo),
``test_state_registrar`` (approvals and freezes) and ``test_state_expiry``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mura.chain.state as state_module
from mura.chain import codec
from mura.chain.assets import AssetState, TransferPolicy
from mura.chain.block import Block, transaction_root
from mura.chain.errors import (
    BadSignature,
    BlockTooLarge,
    DecodeError,
    DuplicateTransactionInBlock,
    InsufficientBalance,
    InvalidBlockTransaction,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    NonPositiveAmount,
    NotAssetIssuer,
    StateRootMismatch,
    SupplyOverflow,
    TimestampBeforeParent,
    TransactionRootMismatch,
    UnknownAsset,
    UnknownKind,
    UnknownProposer,
    WrongBlockChainId,
    WrongChainId,
    WrongHeight,
    WrongParent,
)
from mura.chain.governance import validator_keys, validators_hash
from mura.chain.keys import SignatureCache, SigningKey, verify_signature
from mura.chain.state import (
    MAX_SUPPLY,
    Account,
    ChainRules,
    GenesisAsset,
    MemoryState,
    PendingState,
    Role,
    apply_block,
    apply_transaction,
    build_genesis,
    validate_kind,
)
from mura.chain.transaction import Burn, Mint, Transaction, Transfer, sign_transaction
from mura.tests.chain.factories import ASSET, CHAIN_ID, GENESIS_TIME_MS, Chain, asset_terms
from mura.tests.chain.transition import (
    MakeBlock,
    Sign,
    accept,
    apply,
    lattice_from_scratch,
    raw_block,
    refuse_block,
    refuse_transaction,
    with_header,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Stake:
    """A body kind this network does not know."""

    KIND: ClassVar[str] = "stake"
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.amount]


@dataclasses.dataclass(frozen=True, slots=True)
class ImpostorTransfer:
    """A body that claims the ``transfer`` kind but is not the registered class."""

    KIND: ClassVar[str] = "transfer"
    asset: str
    recipient: bytes
    amount: int

    def to_fields(self) -> list[Any]:
        return [self.asset, self.recipient, self.amount, ""]


def assert_ledger_consistent(state: MemoryState) -> None:
    """Each asset's supply is the sum of its balances and its holders the count of its
    positive balances; no balance is negative; the lattice is that of the entries."""
    for asset in state.assets():
        balances = state.balances(asset)
        asset_state = state.load_asset_state(asset)
        assert all(balance > 0 for balance in balances.values())
        assert asset_state.supply == sum(balances.values())
        assert asset_state.holders == len(balances)
    assert state.lattice == lattice_from_scratch(state)


# --- genesis ----------------------------------------------------------------------


def test_genesis(chain: Chain) -> None:
    header = chain.genesis.header
    assert header.height == 0 and header.parent_hash == bytes(32) and chain.genesis.transactions == ()
    assert chain.supply() == 1_001_000 and chain.asset_state().holders == 2
    assert chain.balance(chain.issuer) == 1_000_000 and chain.balance(chain.alice) == 1_000
    assert chain.state.assets() == {ASSET: asset_terms(ASSET, chain.issuer.public_key)}
    assert chain.account(chain.issuer).roles == Role.ISSUER
    assert all(chain.account(key).roles == Role.VALIDATOR for key in chain.validators)
    assert validator_keys(chain.state.load_validators()) == tuple(key.public_key for key in chain.validators)
    assert header.next_validators_hash == validators_hash(chain.state.load_validators())
    assert header.state_root == chain.state.lattice.root() == lattice_from_scratch(chain.state).root()
    assert_ledger_consistent(chain.state)


def _genesis_arguments(keys: Callable[[str], SigningKey], *assets: GenesisAsset) -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "timestamp_ms": GENESIS_TIME_MS,
        "validators": [keys("v").public_key],
        "issuers": [keys("i").public_key],
        "assets": list(assets),
    }


def _genesis_asset(keys: Callable[[str], SigningKey], *allocations: tuple[str, int], **terms: Any) -> GenesisAsset:
    return GenesisAsset(
        asset_terms(terms.pop("asset", ASSET), keys("i").public_key, **terms),
        tuple((keys(name).public_key, amount) for name, amount in allocations),
    )


def test_genesis_commits_to_the_document(keys: Callable[[str], SigningKey]) -> None:
    arguments = _genesis_arguments(keys, _genesis_asset(keys, ("a", 5)))
    document_hash = b"\x42" * 32
    block, changes = build_genesis(**arguments, document_hash=document_hash)
    assert block.header.parent_hash == document_hash
    plain, plain_changes = build_genesis(**arguments)
    assert plain.header.parent_hash == bytes(32) and plain.hash != block.hash
    assert plain_changes == changes  # the document changes the block hash, not the state


def test_genesis_assets(keys: Callable[[str], SigningKey]) -> None:
    """Each genesis asset starts with its allocations as its supply; a restricted one
    approves its allocations' accounts; an expiring one is queued to lapse."""
    restricted = _genesis_asset(
        keys, ("a", 5), ("b", 7), asset="BOND", policy=TransferPolicy.RESTRICTED, expiry_ms=GENESIS_TIME_MS + 1
    )
    _, changes = build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", 5)), restricted))
    state = MemoryState()
    state.commit(changes)
    assert set(state.assets()) == {ASSET, "BOND"}
    assert state.balances("BOND") == {keys("a").public_key: 5, keys("b").public_key: 7}
    assert state.load_asset_state("BOND") == AssetState(supply=12, holders=2)
    pending = PendingState(state)
    terms = restricted.terms
    assert pending.approved(terms, keys("a").public_key) and pending.approved(terms, keys("b").public_key)
    assert not pending.approved(terms, keys("c").public_key) and pending.approved(terms, keys("i").public_key)
    assert PendingState(state, timestamp_ms=GENESIS_TIME_MS + 1).due_expiries(10) == [(GENESIS_TIME_MS + 1, "BOND")]
    assert PendingState(state, timestamp_ms=GENESIS_TIME_MS).due_expiries(10) == []
    assert_ledger_consistent(state)


# Genesis input is trusted (the genesis loader reports a user's mistakes field by
# field), so build_genesis refuses a broken one with ValueError.


def test_invalid_genesis_supply_overflow(keys: Callable[[str], SigningKey]) -> None:
    with pytest.raises(ValueError, match="exceed its cap or"):
        build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", MAX_SUPPLY), ("b", 1))))
    with pytest.raises(ValueError, match="exceed its cap or"):
        build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", 6), ("b", 5), cap=10)))


@pytest.mark.parametrize("amount", [0, -5])
def test_invalid_genesis_allocation_amount(keys: Callable[[str], SigningKey], amount: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", amount))))


def test_invalid_genesis_assets(keys: Callable[[str], SigningKey]) -> None:
    with pytest.raises(ValueError, match="declares asset NAC twice"):
        build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", 1)), _genesis_asset(keys, ("b", 1))))
    with pytest.raises(ValueError, match="not uppercase letters"):
        build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", 1), asset="nac")))
    with pytest.raises(ValueError, match="expires before the genesis time"):
        build_genesis(**_genesis_arguments(keys, _genesis_asset(keys, ("a", 1), expiry_ms=GENESIS_TIME_MS)))


@pytest.mark.parametrize("validators", [[], ["v", "v"]])
def test_invalid_genesis_validators(keys: Callable[[str], SigningKey], validators: list[str]) -> None:
    with pytest.raises(ValueError, match="distinct validators"):
        build_genesis(
            chain_id=CHAIN_ID,
            timestamp_ms=0,
            validators=[keys(name).public_key for name in validators],
            issuers=[],
        )


# --- signature --------------------------------------------------------------------


def test_signature(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    built = make_block(chain, [tx])
    assert built.block.transactions == (tx,) and built.refused == []
    accept(chain, built)
    assert chain.balance(chain.alice) == 990 and chain.balance(chain.bob) == 10


def test_invalid_signature(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    flipped = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    refuse_transaction(chain, make_block, replace(tx, signature=flipped), BadSignature)


def test_invalid_signature_by_another_key(chain: Chain, make_block: MakeBlock) -> None:
    body = Transfer(ASSET, chain.bob.public_key, 10)
    by_bob = sign_transaction(chain.bob, chain_id=CHAIN_ID, nonce=0, body=body)
    forged = Transaction(CHAIN_ID, chain.alice.public_key, 0, body, by_bob.signature)
    refuse_transaction(chain, make_block, forged, BadSignature)


def test_invalid_signature_over_other_fields(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    refuse_transaction(chain, make_block, replace(tx, body=Transfer(ASSET, chain.bob.public_key, 999)), BadSignature)


def test_signatures_are_skipped_only_when_the_caller_says_so(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """A certified block's signatures were checked by the quorum that committed it: the
    caller may skip them, explicitly; every other rule still holds."""
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    valid = make_block(chain, [tx])
    flipped = replace(tx, signature=bytes([tx.signature[0] ^ 1]) + tx.signature[1:])
    forged = raw_block(chain, [flipped], state_root=valid.changes.state_root)
    with pytest.raises(InvalidBlockTransaction) as refused:
        apply_block(chain.state, chain.head, forged, rules=chain.rules, signatures=SignatureCache())
    assert type(refused.value.cause) is BadSignature
    changes = apply_block(
        chain.state, chain.head, forged, rules=chain.rules, signatures=SignatureCache(), verify_signatures=False
    )
    assert changes == valid.changes
    overspend = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10**6))
    with pytest.raises(InvalidBlockTransaction):
        apply_block(chain.state, chain.head, raw_block(chain, [overspend]), rules=chain.rules,
                    signatures=SignatureCache(), verify_signatures=False)


def test_signature_cache_verifies_a_transaction_once(
    chain: Chain, sign: Sign, make_block: MakeBlock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real_verify = verify_signature

    def counting_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
        calls.append(signature)
        return real_verify(public_key, signature, message)

    monkeypatch.setattr(state_module, "verify_signature", counting_verify)
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    cache = SignatureCache()
    built = make_block(chain, [tx], signatures=cache)
    assert calls == [tx.signature]
    assert tx.hash in cache
    apply_block(chain.state, chain.head, built.block, rules=chain.rules, signatures=cache)
    assert calls == [tx.signature]  # already verified: not verified again
    apply_block(chain.state, chain.head, built.block, rules=chain.rules, signatures=SignatureCache())
    assert calls == [tx.signature, tx.signature]  # a node that never saw it verifies it


def test_invalid_signature_is_not_cached(
    chain: Chain, sign: Sign, make_block: MakeBlock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real_verify = verify_signature

    def counting_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
        calls.append(signature)
        return real_verify(public_key, signature, message)

    monkeypatch.setattr(state_module, "verify_signature", counting_verify)
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    bad = replace(tx, signature=bytes(64))
    cache = SignatureCache()
    for _ in range(2):
        built = make_block(chain, [bad], signatures=cache)
        assert [type(reason) for _, reason in built.refused] == [BadSignature]
    assert bad.hash not in cache and len(calls) == 2


# --- chain id ----------------------------------------------------------------------


def test_chain_id(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Burn(ASSET, 1), chain_id=CHAIN_ID)
    assert tx.chain_id == chain.rules.chain_id
    mint = sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 3), chain_id=CHAIN_ID)
    accept(chain, make_block(chain, [mint]))
    assert chain.balance(chain.bob) == 3


def test_invalid_chain_id(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10), chain_id="mura-other")
    cause = refuse_transaction(chain, make_block, tx, WrongChainId)
    assert cause.details == {"expected": CHAIN_ID, "got": "mura-other"}


def test_block_chain_id(chain: Chain, make_block: MakeBlock) -> None:
    built = make_block(chain, [])
    assert built.block.header.chain_id == CHAIN_ID
    accept(chain, built)
    assert chain.head.height == 1


def test_invalid_block_chain_id(chain: Chain, make_block: MakeBlock) -> None:
    block = make_block(chain, []).block
    refuse_block(chain, with_header(block, chain_id="mura-other"), WrongBlockChainId)
    # A correct block is refused by a node that runs another network.
    refuse_block(chain, block, WrongBlockChainId, rules=ChainRules(chain_id="mura-other"))


# --- nonce ------------------------------------------------------------------------


def test_nonce(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    first = [sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1), nonce=n) for n in range(3)]
    accept(chain, make_block(chain, first))
    assert chain.nonce(chain.alice) == 3
    accept(chain, make_block(chain, [sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1), nonce=3)]))
    assert chain.nonce(chain.alice) == 4 and chain.balance(chain.bob) == 4
    assert chain.nonce(chain.bob) == 0  # receiving does not use a nonce


def test_invalid_nonce_too_low(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    accept(chain, make_block(chain, [tx]))
    cause = refuse_transaction(chain, make_block, tx, NonceTooLow)  # the replay of a committed transaction
    assert cause.details == {"expected": 1, "got": 0}
    replay = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 5), nonce=0)
    refuse_transaction(chain, make_block, replay, NonceTooLow)
    assert chain.balance(chain.bob) == 10


def test_invalid_nonce_too_low_within_a_block(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    first = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    again = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 11))  # same nonce, another transaction
    refuse_transaction(chain, make_block, again, NonceTooLow, before=[first])


def test_invalid_nonce_too_high(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10), nonce=1)
    cause = refuse_transaction(chain, make_block, tx, NonceTooHigh)
    assert cause.details == {"expected": 0, "got": 1}


# --- balances ------------------------------------------------------------------------


def test_balance(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    supply = chain.supply()
    accept(chain, make_block(chain, [sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1_000))]))
    assert chain.balance(chain.alice) == 0 and chain.balance(chain.bob) == 1_000
    assert chain.supply() == supply


def test_invalid_insufficient_balance(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1_001))
    cause = refuse_transaction(chain, make_block, tx, InsufficientBalance)
    assert cause.details == {"asset": ASSET, "balance": 1_000, "amount": 1_001}
    refuse_transaction(
        chain, make_block, sign(chain.bob, Transfer(ASSET, chain.alice.public_key, 1)), InsufficientBalance
    )


def test_invalid_insufficient_balance_after_an_earlier_spend(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    spend = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 600))
    overspend = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 600), nonce=1)
    refuse_transaction(chain, make_block, overspend, InsufficientBalance, before=[spend])


def test_burn_balance(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    accept(chain, make_block(chain, [sign(chain.issuer, Burn(ASSET, 1_000_000))]))
    assert chain.balance(chain.issuer) == 0
    assert chain.supply() == 1_000 and chain.asset_state().holders == 1


def test_invalid_burn_insufficient_balance(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    refuse_transaction(chain, make_block, sign(chain.issuer, Burn(ASSET, 1_000_001)), InsufficientBalance)


def test_transfer_to_self(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    root = chain.state.lattice.root()
    accept(chain, make_block(chain, [sign(chain.alice, Transfer(ASSET, chain.alice.public_key, 1_000))]))
    assert chain.balance(chain.alice) == 1_000
    assert chain.nonce(chain.alice) == 1
    assert chain.supply() == 1_001_000
    assert chain.state.lattice.root() != root  # the nonce changed
    assert chain.state.lattice == lattice_from_scratch(chain.state)


def test_invalid_transfer_to_self_beyond_balance(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.alice.public_key, 1_001))
    refuse_transaction(chain, make_block, tx, InsufficientBalance)


# --- amounts ----------------------------------------------------------------------------


def _body(kind: str, recipient: bytes, amount: int, asset: str = ASSET) -> Transfer | Mint | Burn:
    bodies: dict[str, Transfer | Mint | Burn] = {
        "transfer": Transfer(asset, recipient, amount),
        "mint": Mint(asset, recipient, amount),
        "burn": Burn(asset, amount),
    }
    return bodies[kind]


@pytest.mark.parametrize("kind", ["transfer", "mint", "burn"])
def test_amount(chain: Chain, sign: Sign, make_block: MakeBlock, kind: str) -> None:
    supply = chain.supply()
    accept(chain, make_block(chain, [sign(chain.issuer, _body(kind, chain.bob.public_key, 1))]))
    assert chain.balance(chain.bob) == (0 if kind == "burn" else 1)
    assert chain.supply() == supply + {"transfer": 0, "mint": 1, "burn": -1}[kind]


@pytest.mark.parametrize("kind", ["transfer", "mint", "burn"])
@pytest.mark.parametrize("amount", [0, -1, -1_000, codec.MIN_INT])
def test_invalid_amount(chain: Chain, sign: Sign, make_block: MakeBlock, kind: str, amount: int) -> None:
    tx = sign(chain.issuer, _body(kind, chain.bob.public_key, amount))
    cause = refuse_transaction(chain, make_block, tx, NonPositiveAmount)
    assert cause.details == {"amount": amount}


# --- supply overflow ---------------------------------------------------------------------


def test_supply_at_the_limit(make_chain: Callable[..., Any], sign: Sign, make_block: MakeBlock) -> None:
    chain = make_chain(allocations=[("issuer", MAX_SUPPLY - 10)])
    accept(chain, make_block(chain, [sign(chain.issuer, Mint(ASSET, chain.issuer.public_key, 10))]))
    assert chain.supply() == MAX_SUPPLY
    assert chain.balance(chain.issuer) == MAX_SUPPLY
    transfer = sign(chain.issuer, Transfer(ASSET, chain.bob.public_key, MAX_SUPPLY), nonce=1)
    accept(chain, make_block(chain, [transfer]))
    assert chain.balance(chain.bob) == MAX_SUPPLY


def test_invalid_supply_overflow(make_chain: Callable[..., Any], sign: Sign, make_block: MakeBlock) -> None:
    chain = make_chain(allocations=[("issuer", MAX_SUPPLY - 10)])
    tx = sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 11))
    cause = refuse_transaction(chain, make_block, tx, SupplyOverflow)
    assert cause.details == {"asset": ASSET, "amount": 11, "supply": MAX_SUPPLY - 10}
    cause = refuse_transaction(
        chain, make_block, sign(chain.issuer, Mint(ASSET, chain.bob.public_key, MAX_SUPPLY)), SupplyOverflow
    )
    assert cause.details == {"asset": ASSET, "amount": MAX_SUPPLY, "supply": MAX_SUPPLY - 10}


# --- kinds --------------------------------------------------------------------------------


def test_known_kinds(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = [
        sign(chain.issuer, Mint(ASSET, chain.alice.public_key, 5), nonce=0),
        sign(chain.issuer, Burn(ASSET, 5), nonce=1),
        sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 5)),
    ]
    for tx in txs:
        validate_kind(tx)
    built = make_block(chain, txs)
    assert built.block.transactions == tuple(txs)
    accept(chain, built)
    assert (chain.balance(chain.alice), chain.balance(chain.bob), chain.balance(chain.issuer)) == (1_000, 5, 999_995)


def test_invalid_unknown_kind_decoded(chain: Chain) -> None:
    tx = sign_transaction(chain.alice, chain_id=CHAIN_ID, nonce=0, body=Stake(5))
    with pytest.raises(UnknownKind) as caught:
        Transaction.decode(tx.encoded)
    assert isinstance(caught.value, DecodeError) and isinstance(caught.value, InvalidTransaction)
    assert caught.value.details == {"kind": "stake"}


@pytest.mark.parametrize("body", [Stake(5), ImpostorTransfer(ASSET, b"\x01" * 32, 5)])
def test_invalid_unknown_kind(chain: Chain, make_block: MakeBlock, body: Any) -> None:
    tx = sign_transaction(chain.alice, chain_id=CHAIN_ID, nonce=0, body=body)
    with pytest.raises(UnknownKind):
        validate_kind(tx)
    refuse_transaction(chain, make_block, tx, UnknownKind)


# --- block size -----------------------------------------------------------------------------


def _three_transfers(chain: Chain, sign: Sign) -> list[Transaction]:
    return [sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1), nonce=n) for n in range(3)]


def test_block_size_count(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    rules = ChainRules(chain_id=CHAIN_ID, max_block_transactions=3)
    built = make_block(chain, _three_transfers(chain, sign), rules=rules)
    assert len(built.block.transactions) == 3
    chain.commit((built.block, apply(chain, built.block, rules=rules)))
    assert chain.balance(chain.bob) == 3


def test_invalid_block_size_count(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    block = make_block(chain, _three_transfers(chain, sign)).block
    error = refuse_block(chain, block, BlockTooLarge, rules=ChainRules(chain_id=CHAIN_ID, max_block_transactions=2))
    assert error.details["transactions"] == 3


def test_block_size_bytes(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = _three_transfers(chain, sign)
    rules = ChainRules(chain_id=CHAIN_ID, max_block_bytes=sum(len(tx.encoded) for tx in txs))
    built = make_block(chain, txs, rules=rules)
    assert built.block.transactions == tuple(txs)
    chain.commit((built.block, apply(chain, built.block, rules=rules)))
    assert chain.nonce(chain.alice) == 3


def test_invalid_block_size_bytes(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = _three_transfers(chain, sign)
    size = sum(len(tx.encoded) for tx in txs)
    block = make_block(chain, txs).block
    error = refuse_block(chain, block, BlockTooLarge, rules=ChainRules(chain_id=CHAIN_ID, max_block_bytes=size - 1))
    assert error.details["bytes"] == size


def test_build_block_stops_at_the_limits(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = _three_transfers(chain, sign)
    by_count = make_block(chain, txs, rules=ChainRules(chain_id=CHAIN_ID, max_block_transactions=2))
    assert by_count.block.transactions == tuple(txs[:2]) and by_count.refused == []
    size = sum(len(tx.encoded) for tx in txs)
    by_bytes = make_block(chain, txs, rules=ChainRules(chain_id=CHAIN_ID, max_block_bytes=size - 1))
    assert by_bytes.block.transactions == tuple(txs[:2]) and by_bytes.refused == []
    accept(chain, by_bytes)
    assert chain.nonce(chain.alice) == 2


# --- header ---------------------------------------------------------------------------------


def test_height(chain: Chain, make_block: MakeBlock) -> None:
    for expected in (1, 2, 3):
        built = make_block(chain, [])
        assert built.block.height == expected
        accept(chain, built)
    assert chain.head.height == 3


@pytest.mark.parametrize("height", [0, 1, 3, 1_000])
def test_invalid_height(chain: Chain, make_block: MakeBlock, height: int) -> None:
    accept(chain, make_block(chain, []))  # the head is now height 1, so 2 is expected
    block = make_block(chain, []).block
    error = refuse_block(chain, with_header(block, height=height), WrongHeight)
    assert error.details == {"expected": 2, "got": height}


def test_parent(chain: Chain, make_block: MakeBlock) -> None:
    built = make_block(chain, [])
    assert built.block.header.parent_hash == chain.genesis.hash
    accept(chain, built)
    assert make_block(chain, []).block.header.parent_hash == built.block.hash


def test_invalid_parent(chain: Chain, make_block: MakeBlock) -> None:
    block = make_block(chain, []).block
    refuse_block(chain, with_header(block, parent_hash=b"\x01" * 32), WrongParent)
    # A block built on another fork of the same height is refused too.
    fork = make_block(chain, [], timestamp_ms=chain.head.timestamp_ms + 5).block
    accept(chain, make_block(chain, []))
    refuse_block(chain, with_header(fork, height=2), WrongParent)


def test_timestamp(chain: Chain, make_block: MakeBlock) -> None:
    same_time = make_block(chain, [], timestamp_ms=chain.head.timestamp_ms)
    accept(chain, same_time)
    assert chain.head.timestamp_ms == chain.genesis.header.timestamp_ms
    # build_block never goes back in time, whatever clock the proposer has.
    late_clock = make_block(chain, [], timestamp_ms=chain.head.timestamp_ms - 60_000)
    assert late_clock.block.header.timestamp_ms == chain.head.timestamp_ms


def test_invalid_timestamp_before_parent(chain: Chain, make_block: MakeBlock) -> None:
    block = make_block(chain, []).block
    refuse_block(chain, with_header(block, timestamp_ms=chain.head.timestamp_ms - 1), TimestampBeforeParent)


def test_proposer(chain: Chain, make_block: MakeBlock) -> None:
    for validator in chain.validators:
        built = make_block(chain, [], proposer=validator.public_key)
        accept(chain, built)
        assert chain.head.proposer == validator.public_key


@pytest.mark.parametrize("who", ["issuer", "alice", "zeros"])
def test_invalid_unknown_proposer(chain: Chain, make_block: MakeBlock, who: str) -> None:
    proposer = bytes(32) if who == "zeros" else getattr(chain, who).public_key
    block = make_block(chain, [], proposer=proposer).block
    refuse_block(chain, block, UnknownProposer)


# --- transaction root and duplicates ----------------------------------------------------------


def test_transaction_root(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = _three_transfers(chain, sign)
    built = make_block(chain, txs)
    assert built.block.header.transaction_root == transaction_root(txs)
    accept(chain, built)


def test_invalid_transaction_root(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = _three_transfers(chain, sign)
    block = make_block(chain, txs).block
    refuse_block(chain, Block(block.header, block.transactions[:2]), TransactionRootMismatch)
    refuse_block(chain, Block(block.header, ()), TransactionRootMismatch)
    refuse_block(chain, Block(block.header, (txs[1], txs[0], txs[2])), TransactionRootMismatch)
    refuse_block(chain, with_header(block, transaction_root=transaction_root(txs[:2])), TransactionRootMismatch)


def test_unique_transactions(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1))
    built = make_block(chain, [tx, tx])  # build_block drops the repeat
    assert built.block.transactions == (tx,) and built.refused == []
    accept(chain, built)
    assert chain.balance(chain.bob) == 1


def test_invalid_duplicate_transaction_in_block(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1))
    other = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 2), nonce=1)
    refuse_block(chain, raw_block(chain, [tx, tx]), DuplicateTransactionInBlock)
    refuse_block(chain, raw_block(chain, [tx, other, tx]), DuplicateTransactionInBlock)


# --- state root -----------------------------------------------------------------------------


def test_state_root(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    built = make_block(chain, [sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 7))])
    changes = apply(chain, built.block)
    assert changes.state_root == built.block.header.state_root == built.changes.state_root
    assert changes.state_root == changes.lattice.root()
    chain.commit((built.block, changes))
    assert chain.state.lattice == lattice_from_scratch(chain.state)


def test_invalid_state_root(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    built = make_block(chain, [sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 7))])
    tampered = with_header(built.block, state_root=bytes(32))
    error = refuse_block(chain, tampered, StateRootMismatch)
    assert error.details == {"expected": built.changes.state_root.hex(), "got": bytes(32).hex()}
    # A block that claims the pre-state root (as if the transfer did nothing) is refused too.
    refuse_block(chain, with_header(built.block, state_root=chain.head.state_root), StateRootMismatch)


def test_empty_block_keeps_the_state_root(chain: Chain, make_block: MakeBlock) -> None:
    built = make_block(chain, [])
    assert built.block.header.state_root == chain.genesis.header.state_root
    assert built.changes.entries == {} and built.changes.accounts == {} and built.changes.balances == {}
    accept(chain, built)


# --- building blocks -------------------------------------------------------------------------


def test_build_block_leaves_out_and_reports_refused(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    good = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10))
    bad_signature = replace(sign(chain.bob, Transfer(ASSET, chain.alice.public_key, 1)), signature=bytes(64))
    skips_nonce = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10), nonce=5)
    good_next = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 20), nonce=1)
    not_issuer = sign(chain.bob, Mint(ASSET, chain.bob.public_key, 1))  # only NAC's issuer mints it
    built = make_block(chain, [good, bad_signature, skips_nonce, good_next, not_issuer])
    assert built.block.transactions == (good, good_next)
    assert [(tx, type(error)) for tx, error in built.refused] == [
        (bad_signature, BadSignature),
        (skips_nonce, NonceTooHigh),
        (not_issuer, NotAssetIssuer),
    ]
    accept(chain, built)
    assert chain.balance(chain.bob) == 30 and chain.nonce(chain.alice) == 2 and chain.nonce(chain.bob) == 0


def test_apply_block_reproduces_the_built_state_root(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    txs = [
        sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 50), nonce=0),
        sign(chain.issuer, Burn(ASSET, 25), nonce=1),
        sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 5)),
        sign(chain.bob, Transfer(ASSET, chain.alice.public_key, 30)),  # spends what it received earlier in the block
    ]
    built = make_block(chain, txs)
    assert built.block.transactions == tuple(txs)
    changes = apply(chain, built.block)
    assert changes == built.changes
    assert changes.state_root == built.block.header.state_root
    chain.commit((built.block, changes))
    assert chain.supply() == 1_001_025 and chain.balance(chain.bob) == 25
    assert_ledger_consistent(chain.state)


def test_refused_transaction_leaves_pending_state_unchanged(chain: Chain, sign: Sign) -> None:
    pending = PendingState(chain.state)
    cache = SignatureCache()
    apply_transaction(
        pending, sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 100)), rules=chain.rules, signatures=cache
    )
    before = pending.finish()
    refusals = [
        (sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 901), nonce=1), InsufficientBalance),
        (sign(chain.alice, Mint(ASSET, chain.bob.public_key, 5), nonce=1), NotAssetIssuer),
        (sign(chain.alice, Transfer("JPYT", chain.bob.public_key, 1), nonce=1), UnknownAsset),
        (sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1), nonce=0), NonceTooLow),
        (sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 0), nonce=1), NonPositiveAmount),
        (
            replace(sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1), nonce=1), signature=bytes(64)),
            BadSignature,
        ),
        (sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 1), nonce=1, chain_id="x"), WrongChainId),
    ]
    for tx, error in refusals:
        with pytest.raises(InvalidTransaction) as caught:
            apply_transaction(pending, tx, rules=chain.rules, signatures=cache)
        assert type(caught.value) is error
        assert pending.finish() == before
        assert pending.account(chain.alice.public_key) == Account(1, Role.NONE)
        assert pending.balance(chain.alice.public_key, ASSET) == 900
    assert before.accounts == {chain.alice.public_key: Account(1)}
    assert before.balances == {(ASSET, chain.alice.public_key): 900, (ASSET, chain.bob.public_key): 100}
    assert before.first_holdings == ((ASSET, chain.bob.public_key),)
    assert before.asset_states[ASSET].holders == 3


def test_refused_block_leaves_committed_state_unchanged(chain: Chain, sign: Sign) -> None:
    # Two valid transactions precede the bad one: none of their effects may stay.
    txs = [
        sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 100)),
        sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 100)),
        sign(chain.bob, Transfer(ASSET, chain.alice.public_key, 500)),
    ]
    before = chain.snapshot()
    with pytest.raises(InvalidBlockTransaction) as caught:
        apply(chain, raw_block(chain, txs))
    assert caught.value.index == 2 and type(caught.value.cause) is InsufficientBalance
    assert chain.snapshot() == before


# --- the ledger as a whole (property) ---------------------------------------------------------

#: A second genesis asset, so that operations on one must leave the other alone.
OTHER = "JPYT"
operations = st.lists(
    st.tuples(
        st.sampled_from(["issuer", "alice", "bob"]),
        st.sampled_from(["transfer", "transfer", "mint", "burn"]),
        st.sampled_from([ASSET, ASSET, OTHER]),
        st.sampled_from(["issuer", "alice", "bob"]),
        st.integers(min_value=1, max_value=300) | st.integers(min_value=-2, max_value=1_500),
        st.booleans(),  # the block ends after this operation
    ),
    max_size=12,
)


def _two_asset_chain(make_chain: Callable[..., Chain], keys: Callable[[str], SigningKey]) -> Chain:
    other = GenesisAsset(
        asset_terms(OTHER, keys("issuer").public_key),
        ((keys("alice").public_key, 400), (keys("bob").public_key, 300)),
    )
    return make_chain(assets=[other])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_ledger_invariants(
    make_chain: Callable[..., Chain], make_block: MakeBlock, keys: Callable[[str], SigningKey], ops: list[Any]
) -> None:
    chain = _two_asset_chain(make_chain, keys)
    replay = _two_asset_chain(make_chain, keys)
    people = {"issuer": chain.issuer, "alice": chain.alice, "bob": chain.bob}
    nonces = {name: 0 for name in people}
    pending: list[Transaction] = []
    blocks: list[Block] = []
    for sender, kind, asset, recipient, amount, ends_block in ops:
        body = _body(kind, people[recipient].public_key, amount, asset)
        pending.append(sign_transaction(people[sender], chain_id=CHAIN_ID, nonce=nonces[sender], body=body))
        if not ends_block and len(pending) < 5:
            continue
        built = make_block(chain, pending)
        for tx in built.block.transactions:
            nonces[next(name for name, key in people.items() if key.public_key == tx.sender)] += 1
        previous = [chain.nonce(key) for key in people.values()]
        accept(chain, built)
        blocks.append(built.block)
        assert all(chain.nonce(key) >= before for key, before in zip(people.values(), previous, strict=True))
        assert_ledger_consistent(chain.state)
        pending = []
    # Replaying every block from genesis reproduces every state root.
    for block in blocks:
        changes = apply_block(replay.state, replay.head, block, rules=chain.rules, signatures=SignatureCache())
        assert changes.state_root == block.header.state_root
        replay.commit((block, changes))
    assert replay.state.entries == chain.state.entries and replay.state.lattice == chain.state.lattice
