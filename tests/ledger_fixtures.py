"""Deterministic keys, a genesis and block sealing for the store and model tests.

Kept importable by plain path so the crash-test child process can use the same
chain as the parent that checks it.

The genesis issues one asset, ``ASSET`` (``NAC``: reissuable, open, no cap, no
expiry), by ``ISSUER``, which holds ``GENESIS_BALANCE`` of it like each of
``ACCOUNTS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.block import Block, CommitCertificate, commit_vote_payload, quorum_size
from mura.chain.keys import SignatureCache, SigningKey, sha256
from mura.chain.state import (
    ChainRules,
    GenesisAsset,
    StateChanges,
    StateReader,
    apply_block,
    build_block,
    build_genesis,
)
from mura.chain.store import Store
from mura.chain.transaction import Transaction

CHAIN_ID = "mura-test-1"
RULES = ChainRules(CHAIN_ID)
GENESIS_TIME_MS = 1_700_000_000_000
GENESIS_BALANCE = 1_000_000
#: The asset the genesis issues.
ASSET = "NAC"


def key(name: str) -> SigningKey:
    """The same key for the same name, in every process."""
    return SigningKey.from_private_bytes(sha256(name.encode()))


VALIDATORS = [key(f"validator-{index}") for index in range(4)]
ISSUER = key("issuer")
ACCOUNTS = [key(f"account-{index}") for index in range(5)]


def asset_terms(asset: str = ASSET, *, issuer: bytes = ISSUER.public_key) -> AssetTerms:
    """Terms of a reissuable, open asset with no cap and no expiry, whose issuer is its registrar."""
    return AssetTerms(
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


def genesis(*assets: GenesisAsset) -> tuple[Block, StateChanges]:
    """The chain's genesis: ``ASSET`` with its allocations, and ``assets`` beside it."""
    allocations = tuple((account.public_key, GENESIS_BALANCE) for account in [ISSUER, *ACCOUNTS])
    return build_genesis(
        chain_id=CHAIN_ID,
        timestamp_ms=GENESIS_TIME_MS,
        validators=[validator.public_key for validator in VALIDATORS],
        issuers=[ISSUER.public_key],
        assets=[GenesisAsset(asset_terms(), allocations), *assets],
    )


def certify(block: Block, *, view: int = 0, signers: Sequence[SigningKey] = VALIDATORS) -> CommitCertificate:
    """A real commit certificate: a quorum of validators sign the block."""
    payload = commit_vote_payload(block.header.chain_id, block.height, view, block.hash)
    count = quorum_size(len(VALIDATORS))
    indexes = sorted(VALIDATORS.index(signer) for signer in signers)[:count]
    return CommitCertificate(block.height, view, block.hash, tuple((i, VALIDATORS[i].sign(payload)) for i in indexes))


def seal(
    state: StateReader, parent_block: Block, transactions: Sequence[Transaction], *, timestamp_ms: int | None = None
) -> tuple[Block, StateChanges]:
    """Build the next block from ``transactions`` and check it as a peer would."""
    parent = parent_block.header
    built = build_block(
        state,
        parent,
        transactions,
        proposer=VALIDATORS[parent.height % len(VALIDATORS)].public_key,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else parent.timestamp_ms + 1000,
        rules=RULES,
        signatures=SignatureCache(),
    )
    changes = apply_block(state, parent, built.block, rules=RULES, signatures=SignatureCache())
    assert changes.state_root == built.changes.state_root
    return built.block, changes


def load_all_holders_at(store: Store, asset: str, height: int, *, limit: int = 100) -> list[tuple[bytes, int]]:
    """Every ``(account, balance)`` of ``asset``'s holders after the block at ``height``, read
    ``limit`` a page, following each page's ``next_after``; each page is checked to hold at
    most ``limit`` and to go on in account order."""
    found: list[tuple[bytes, int]] = []
    after = b""
    while True:
        page = store.load_holders_at(asset, height, after, limit)
        assert len(page.holders) <= limit
        assert all(address > after for address, _ in page.holders)
        found += page.holders
        if page.next_after is None:
            return found
        assert page.next_after > after
        after = page.next_after
