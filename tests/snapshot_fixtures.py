"""A store whose state spans several snapshot ranges, for the snapshot and state sync tests.

Its genesis gives ``holders`` accounts a second asset (``JPYT``) beside the
ledger fixtures' ``NAC``, and ``blocks`` blocks of transfers follow, each
certified by the ledger fixtures' validators: the state a joining node
fetches is one that blocks made, not only a genesis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mura.chain.block import Block, CommitCertificate, commit_vote_payload, quorum_size
from mura.chain.governance import AddValidator, RemoveValidator, validator_keys
from mura.chain.keys import SignatureCache, SigningKey, sha256
from mura.chain.state import GenesisAsset, build_block
from mura.chain.store import Store
from mura.chain.transaction import Approve, Body, Propose, Transaction, Transfer, sign_transaction
from mura.tests.ledger_fixtures import (
    ACCOUNTS,
    ASSET,
    CHAIN_ID,
    RULES,
    VALIDATORS,
    asset_terms,
    certify,
    genesis,
    key,
    seal,
)

#: The second asset, held by many accounts.
SECOND_ASSET = "JPYT"


def holder(index: int) -> bytes:
    """The ``index``-th holder's account (32 bytes no one holds the key of)."""
    return sha256(b"holder" + index.to_bytes(4, "big"))


def populated_store(path: Path, *, holders: int = 12_000, blocks: int = 2) -> Store:
    """A store at height ``blocks`` whose state holds about ``holders`` more entries than the ledger fixtures'."""
    allocations = tuple((holder(index), 1 + index) for index in range(holders))
    block, changes = genesis(GenesisAsset(asset_terms(SECOND_ASSET), allocations))
    store = Store(path)
    store.initialize(block, changes)
    for height in range(1, blocks + 1):
        transfer = sign_transaction(ACCOUNTS[0], chain_id=CHAIN_ID, nonce=height - 1,
                                    body=Transfer(ASSET, holder(height), 10 * height))
        parent = store.load_block(store.height)
        assert parent is not None
        block, changes = seal(store, parent, [transfer])
        store.save_block(block, certify(block), changes)
    return store


#: The validator a governed chain adds, and the one it removes.
ADDED = key("added-validator")
ADD_CHANGE = AddValidator(ADDED.public_key, "added-office", "10.0.0.9:9700")


def certify_by_set(store: Store, block: Block, signers: dict[bytes, SigningKey]) -> CommitCertificate:
    """A commit certificate of ``block`` by a quorum of the set that decides its height."""
    keys = validator_keys(store.load_validators_at(block.height))
    payload = commit_vote_payload(CHAIN_ID, block.height, 0, block.hash)
    indexes = list(range(len(keys)))[: quorum_size(len(keys))]
    return CommitCertificate(block.height, 0, block.hash,
                             tuple((index, signers[keys[index]].sign(payload)) for index in indexes))


def extend(store: Store, transactions: Sequence[Transaction] = ()) -> None:
    """Seal and store the next block, proposed and certified by the set of its height."""
    signers = {signer.public_key: signer for signer in [*VALIDATORS, ADDED]}
    parent = store.load_block(store.height)
    assert parent is not None
    keys = validator_keys(store.load_validators_at(parent.height + 1))
    built = build_block(store, parent.header, list(transactions), proposer=keys[parent.height % len(keys)],
                        timestamp_ms=parent.header.timestamp_ms + 1000, rules=RULES, signatures=SignatureCache())
    assert list(built.block.transactions) == list(transactions)
    store.save_block(built.block, certify_by_set(store, built.block, signers), built.changes)


def governed_store(path: Path, *, holders: int = 12_000, height: int = 14) -> Store:
    """``populated_store`` whose validator set then changes twice: ``ADDED`` joins (approved in
    block 5, deciding heights from 7), and validator 3 leaves (approved in block 10, deciding
    heights from 12); empty blocks follow up to ``height``."""
    store = populated_store(path, holders=holders, blocks=2)
    nonces = dict.fromkeys([validator.public_key for validator in [*VALIDATORS, ADDED]], 0)

    def signed(signer: SigningKey, body: Body) -> Transaction:
        nonce = nonces[signer.public_key]
        nonces[signer.public_key] += 1
        return sign_transaction(signer, chain_id=CHAIN_ID, nonce=nonce, body=body)

    extend(store, [signed(VALIDATORS[0], Propose(ADD_CHANGE))])
    extend(store, [signed(VALIDATORS[1], Approve(1))])
    extend(store, [signed(VALIDATORS[2], Approve(1))])
    extend(store)
    extend(store, [signed(VALIDATORS[0], Propose(RemoveValidator(VALIDATORS[3].public_key)))])
    for approver in (VALIDATORS[1], VALIDATORS[2], ADDED):
        extend(store, [signed(approver, Approve(2))])
    while store.height < height:
        extend(store)
    return store
