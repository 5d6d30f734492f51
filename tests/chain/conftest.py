"""Factories for the chain tests: keys, a committed genesis, signing and block building.

Every factory is deterministic: keys come from their names, and the genesis has
a fixed timestamp, so a failing test shows the same hashes on every run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from mura.chain.block import Block, Header
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.state import (
    Account,
    BuiltBlock,
    ChainRules,
    MemoryState,
    StateChanges,
    build_block,
    build_genesis,
)
from mura.chain.transaction import Body, Transaction, sign_transaction

CHAIN_ID = "mura-test"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000
ISSUER_FUNDS = 1_000_000
ALICE_FUNDS = 1_000


def key_named(name: str) -> SigningKey:
    """The same key for the same name, in every run."""
    return SigningKey.from_private_bytes(hashlib.sha256(b"mura-test-key:" + name.encode()).digest())


@dataclass
class Chain:
    """A chain after genesis, committed into a ``MemoryState``."""

    rules: ChainRules
    state: MemoryState
    genesis: Block
    head: Header
    validators: list[SigningKey]
    issuer: SigningKey
    alice: SigningKey
    bob: SigningKey
    signatures: SignatureCache = field(default_factory=SignatureCache)

    def commit(self, built: BuiltBlock | tuple[Block, StateChanges]) -> None:
        """Commit a built block (or a block and the changes ``apply_block`` returned)."""
        block, changes = (built.block, built.changes) if isinstance(built, BuiltBlock) else built
        self.state.commit(changes)
        self.head = block.header

    def account(self, key: SigningKey | bytes) -> Account:
        address = key.public_key if isinstance(key, SigningKey) else key
        return self.state.load_account(address)

    def balance(self, key: SigningKey | bytes) -> int:
        return self.account(key).balance

    def nonce(self, key: SigningKey | bytes) -> int:
        return self.account(key).nonce

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a committed state holds, to show that nothing changed."""
        return (dict(self.state.accounts), self.state.supply, self.state.validators, self.state.lattice, self.head)


@pytest.fixture
def keys() -> Callable[[str], SigningKey]:
    """``keys(name)``: a deterministic signing key."""
    return key_named


def _make_chain(
    *,
    allocations: Sequence[tuple[str, int]] | None = None,
    rules: ChainRules | None = None,
    validator_count: int = 4,
) -> Chain:
    validators = [key_named(f"validator-{index}") for index in range(validator_count)]
    issuer, alice, bob = key_named("issuer"), key_named("alice"), key_named("bob")
    named = {"issuer": issuer, "alice": alice, "bob": bob}
    if allocations is None:
        allocations = [("issuer", ISSUER_FUNDS), ("alice", ALICE_FUNDS)]
    genesis, changes = build_genesis(
        chain_id=CHAIN_ID,
        timestamp_ms=GENESIS_TIME_MS,
        validators=[key.public_key for key in validators],
        issuers=[issuer.public_key],
        allocations=[(named[name].public_key, amount) for name, amount in allocations],
    )
    state = MemoryState()
    state.commit(changes)
    return Chain(
        rules=rules or ChainRules(chain_id=CHAIN_ID),
        state=state,
        genesis=genesis,
        head=genesis.header,
        validators=validators,
        issuer=issuer,
        alice=alice,
        bob=bob,
    )


@pytest.fixture
def make_chain() -> Callable[..., Chain]:
    """``make_chain(allocations=[(name, amount)], rules=..., validator_count=4)``.

    Names are ``issuer``, ``alice`` and ``bob``; the issuer has the issuer role.
    """
    return _make_chain


@pytest.fixture
def chain() -> Chain:
    """The default chain: four validators, the issuer holds 1,000,000 and alice 1,000."""
    return _make_chain()


def _sign(key: SigningKey, body: Body, *, nonce: int = 0, chain_id: str = CHAIN_ID) -> Transaction:
    return sign_transaction(key, chain_id=chain_id, nonce=nonce, body=body)


@pytest.fixture
def sign() -> Callable[..., Transaction]:
    """``sign(key, body, nonce=0, chain_id=CHAIN_ID)``: a signed transaction."""
    return _sign


def _make_block(
    chain: Chain,
    transactions: Iterable[Transaction],
    *,
    timestamp_ms: int | None = None,
    proposer: bytes | None = None,
    rules: ChainRules | None = None,
    signatures: SignatureCache | None = None,
) -> BuiltBlock:
    return build_block(
        chain.state,
        chain.head,
        transactions,
        proposer=proposer if proposer is not None else chain.validators[0].public_key,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else chain.head.timestamp_ms + BLOCK_INTERVAL_MS,
        rules=rules or chain.rules,
        signatures=signatures if signatures is not None else chain.signatures,
    )


@pytest.fixture
def make_block() -> Callable[..., BuiltBlock]:
    """``make_block(chain, transactions, timestamp_ms=..., proposer=..., rules=..., signatures=...)``.

    Builds the next block on ``chain.head`` with ``build_block``; does not commit it.
    """
    return _make_block
