"""Factories for the chain tests: keys, a committed genesis, signing and block building
(``conftest`` offers them as fixtures; helpers of several test modules import them).

Every factory is deterministic: keys come from their names, and the genesis has
a fixed timestamp, so a failing test shows the same hashes on every run.

The genesis issues one asset, ``NAC`` (reissuable, open, no cap, no expiry),
by the issuer; most tests move it and never name another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mura.chain.assets import AssetState, AssetTerms, TransferPolicy
from mura.chain.block import Block, Header
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.state import (
    Account,
    BuiltBlock,
    ChainRules,
    GenesisAsset,
    MemoryState,
    StateChanges,
    build_block,
    build_genesis,
)
from mura.chain.transaction import Body, IssueAsset, Transaction, sign_transaction

CHAIN_ID = "mura-test"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000
ISSUER_FUNDS = 1_000_000
ALICE_FUNDS = 1_000
#: The asset the default chain starts with.
ASSET = "NAC"


def key_named(name: str) -> SigningKey:
    """The same key for the same name, in every run."""
    return SigningKey.from_private_bytes(hashlib.sha256(b"mura-test-key:" + name.encode()).digest())


def asset_terms(asset: str, issuer: bytes, **changes: Any) -> AssetTerms:
    """Terms of a reissuable, open asset with no cap and no expiry whose issuer is its registrar;
    ``changes`` set any other field."""
    terms = AssetTerms(
        asset=asset,
        name=f"{asset} coin",
        decimals=2,
        issuer=issuer,
        reissuable=True,
        cap=0,
        registrar=issuer,
        policy=TransferPolicy.OPEN,
        expiry_ms=0,
    )
    return replace(terms, **changes)


def issue_body(asset: str, **changes: Any) -> IssueAsset:
    """An ``issue_asset`` body that passes every rule for an issuer: supply 1,000, reissuable,
    open, no cap, no expiry, the issuer its own registrar; ``changes`` set any other field."""
    body = IssueAsset(
        asset=asset,
        name=f"{asset} coin",
        decimals=2,
        supply=1_000,
        reissuable=True,
        cap=0,
        registrar=b"",
        policy="open",
        expiry_ms=0,
    )
    return replace(body, **changes)


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
        return self.state.load_account(_address(key))

    def balance(self, key: SigningKey | bytes, asset: str = ASSET) -> int:
        return self.state.load_balance(_address(key), asset)

    def nonce(self, key: SigningKey | bytes) -> int:
        return self.account(key).nonce

    def asset_state(self, asset: str = ASSET) -> AssetState:
        return self.state.load_asset_state(asset)

    def supply(self, asset: str = ASSET) -> int:
        return self.asset_state(asset).supply

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a committed state holds, to show that nothing changed."""
        return (dict(self.state.entries), self.state.lattice, self.head)


def _address(key: SigningKey | bytes) -> bytes:
    return key.public_key if isinstance(key, SigningKey) else key


def make_chain(
    *,
    allocations: Sequence[tuple[str, int]] | None = None,
    rules: ChainRules | None = None,
    validator_count: int = 4,
    terms: dict[str, Any] | None = None,
    assets: Sequence[GenesisAsset] = (),
) -> Chain:
    validators = [key_named(f"validator-{index}") for index in range(validator_count)]
    issuer, alice, bob = key_named("issuer"), key_named("alice"), key_named("bob")
    named = {"issuer": issuer, "alice": alice, "bob": bob}
    if allocations is None:
        allocations = [("issuer", ISSUER_FUNDS), ("alice", ALICE_FUNDS)]
    default = GenesisAsset(
        asset_terms(ASSET, issuer.public_key, **(terms or {})),
        tuple((named[name].public_key, amount) for name, amount in allocations),
    )
    genesis, changes = build_genesis(
        chain_id=CHAIN_ID,
        timestamp_ms=GENESIS_TIME_MS,
        validators=[key.public_key for key in validators],
        issuers=[issuer.public_key],
        assets=[default, *assets],
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


def sign(key: SigningKey, body: Body, *, nonce: int = 0, chain_id: str = CHAIN_ID) -> Transaction:
    return sign_transaction(key, chain_id=chain_id, nonce=nonce, body=body)


def make_block(
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
