"""Tests of ``LedgerApplication``: proposals within the node's cap, and how
much checking a block gets depending on whether a commit certificate vouches for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mura.application import LedgerApplication
from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.block import Block
from mura.chain.errors import InvalidBlockTransaction
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.mempool import Mempool
from mura.chain.state import ChainRules, GenesisAsset, build_block, build_genesis
from mura.chain.store import Store
from mura.chain.transaction import Transaction, Transfer, sign_transaction

CHAIN_ID = "mura-test"
KEYS = [SigningKey.from_private_bytes((index + 1).to_bytes(32, "big")) for index in range(8)]
VALIDATOR = SigningKey.from_private_bytes(b"\x77" * 32)
ASSET = "NAC"
COIN = AssetTerms(
    asset=ASSET, name="Nishiawakura Coin", decimals=2, issuer=KEYS[0].public_key, reissuable=True, cap=0,
    registrar=KEYS[0].public_key, policy=TransferPolicy.OPEN, expiry_ms=0,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    genesis, changes = build_genesis(
        chain_id=CHAIN_ID,
        timestamp_ms=0,
        validators=[VALIDATOR.public_key],
        issuers=[KEYS[0].public_key],
        assets=[GenesisAsset(COIN, tuple((key.public_key, 1_000) for key in KEYS))],
    )
    store = Store(tmp_path / "data")
    store.initialize(genesis, changes)
    yield store
    store.close()


def make_application(store: Store, **options: object) -> LedgerApplication:
    rules = ChainRules(chain_id=CHAIN_ID)
    signatures = SignatureCache()
    mempool = Mempool(rules=rules, signatures=signatures)
    return LedgerApplication(store=store, mempool=mempool, rules=rules, signatures=signatures, **options)  # type: ignore[arg-type]


def transfer(sender: int, nonce: int = 0) -> Transaction:
    return sign_transaction(KEYS[sender], chain_id=CHAIN_ID, nonce=nonce, body=Transfer(ASSET, KEYS[0].public_key, 1))


def block_with_a_forged_signature(store: Store) -> tuple[Transaction, Block]:
    """A block whose second transaction's signature does not verify, built by a
    proposer that did not check it (as a faulty one would)."""
    good = transfer(1)
    honest = transfer(2)
    forged = replace(honest, signature=bytes([honest.signature[0] ^ 1]) + honest.signature[1:])
    trusting = SignatureCache()
    trusting.add(forged.hash)
    built = build_block(
        store, store.head, [good, forged], proposer=VALIDATOR.public_key, timestamp_ms=1,
        rules=ChainRules(chain_id=CHAIN_ID), signatures=trusting,
    )
    assert built.refused == []
    return forged, built.block


def test_proposal_within_the_node_cap(store: Store) -> None:
    application = make_application(store, max_proposal_transactions=3)
    for sender in range(1, 8):
        application.mempool.add(transfer(sender), store, now=0.0)
    built = application.build_proposal(1, proposer=VALIDATOR.public_key, timestamp_ms=1)
    assert len(built.block.transactions) == 3
    assert len(application.mempool) == 7


def test_proposal_cap_never_above_the_rules() -> None:
    rules = ChainRules(chain_id=CHAIN_ID)
    signatures = SignatureCache()
    application = LedgerApplication(
        store=None,  # type: ignore[arg-type]
        mempool=Mempool(rules=rules, signatures=signatures),
        rules=rules,
        signatures=signatures,
        max_proposal_transactions=rules.max_block_transactions * 2,
    )
    assert application.max_proposal_transactions == rules.max_block_transactions


def test_invalid_proposed_block_with_a_forged_signature(store: Store) -> None:
    application = make_application(store)
    _, block = block_with_a_forged_signature(store)
    with pytest.raises(InvalidBlockTransaction, match="signature"):
        application.validate_block(block)


def test_certified_block_is_not_checked_for_signatures_by_default(store: Store) -> None:
    application = make_application(store)
    forged, block = block_with_a_forged_signature(store)
    changes = application.validate_block(block, certified=True)
    assert changes.state_root == block.header.state_root
    # Nothing about the forged transaction was remembered as verified.
    assert forged.hash not in application.signatures


def test_invalid_certified_block_when_the_node_verifies_every_signature(store: Store) -> None:
    application = make_application(store, verify_certified_signatures=True)
    _, block = block_with_a_forged_signature(store)
    with pytest.raises(InvalidBlockTransaction, match="signature"):
        application.validate_block(block, certified=True)
