"""Ledger micro-benchmarks: ``python -m mura.bench.ledger`` (``make bench``).

Prints the figures the README's Performance section quotes:

* Ed25519 verifications per second, on one thread and on every core, and
  transactions verified per second by the node's ``SignatureVerifier``;
* ``apply_block`` on a 10,000-transaction block, in microseconds per
  transaction, with signatures already verified (the normal path: the mempool
  verified them) and with every signature verified inside the block; and on a
  block of transfers in three assets in turn, one restricted, with the state
  entries each block changes per transaction;
* committing that block to LevelDB (one synced batch), per transaction, and what
  the history indexes in that batch cost per transaction (``history_figures``);
* the state-root update per touched balance at 10^4 and 10^6 accounts;
* a bond's coupon paid by the chain to 10,000 holders: the time each block's
  share of it (``PAYMENTS_PER_BLOCK`` holders) adds to applying and to committing
  that block, the whole payment's, and the time if it were all paid in one block;
  and the allotment of an offering of ``MAX_SUBSCRIBERS`` subscriptions, in one block.

Figures, not pass/fail: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import plyvel

from mura.chain import bond_rules
from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.block import Block, CommitCertificate
from mura.chain.bonds import MAX_SUBSCRIBERS
from mura.chain.keys import SignatureCache, SigningKey, sha256, verify_signature
from mura.chain.state import (
    ChainRules,
    GenesisAsset,
    PendingState,
    StateChanges,
    apply_block,
    build_block,
    build_genesis,
)
from mura.chain.store import Store
from mura.chain.transaction import IssueBond, OpenOffering, Subscribe, Transaction, Transfer, sign_transaction
from mura.chain.verify import SignatureVerifier

CHAIN_ID = "mura-bench"
RULES = ChainRules(CHAIN_ID)
#: The asset every transfer moves.
ASSET = "NAC"
#: The assets of the mixed block, taken in turn; the last is restricted (every holder approved).
MIXED_ASSETS = (ASSET, "JPYT", "BOND")
_T = TypeVar("_T")
#: Block sizes the history indexes are measured at.
HISTORY_BLOCK_SIZES = (1_000, 10_000)


def _key(index: int) -> SigningKey:
    return SigningKey.from_private_bytes(sha256(b"bench-%d" % index))


def _address(index: int) -> bytes:
    # Accounts that only receive need no private key: any 32 bytes will do.
    return sha256(b"account-%d" % index)


def verifications_per_second(*, seconds: float, threads: int) -> float:
    key = _key(0)
    message = b"m" * 120
    signature = key.sign(message)

    def work(count: int) -> None:
        for _ in range(count):
            verify_signature(key.public_key, signature, message)

    batch = 2_000
    done = 0
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        while time.perf_counter() - start < seconds:
            list(pool.map(work, [batch] * threads))
            done += batch * threads
    return done / (time.perf_counter() - start)


def verifier_per_second(*, transactions: int) -> float:
    """Distinct transactions verified per second by ``SignatureVerifier`` on every core."""
    senders = [_key(index) for index in range(100)]
    batch = _transfers(senders, transactions, 1_000, random.Random(3))
    verifier = SignatureVerifier(SignatureCache())
    try:
        elapsed, bad = _timed(lambda: verifier.verify(batch))
    finally:
        verifier.close()
    assert not bad
    return transactions / elapsed


def _fresh_store(
    directory: Path, *, senders: list[SigningKey], extra_accounts: int, assets: tuple[str, ...] = (ASSET,),
    restricted: str | None = None,
) -> Store:
    """A store at genesis: ``assets``, issued by the first sender, each held by every sender
    and by ``extra_accounts`` accounts that only receive (``restricted`` approves them all)."""
    issuer = senders[0].public_key
    allocations = [(key.public_key, 10**12) for key in senders]
    allocations += [(_address(index), 1) for index in range(extra_accounts)]
    declared = []
    for asset in assets:
        policy = TransferPolicy.RESTRICTED if asset == restricted else TransferPolicy.OPEN
        terms = AssetTerms(asset, f"{asset} coin", 2, issuer, True, 0, issuer, policy, 0)
        declared.append(GenesisAsset(terms, tuple(allocations)))
    genesis, changes = build_genesis(
        chain_id=CHAIN_ID, timestamp_ms=0, validators=[issuer], issuers=[issuer], assets=declared
    )
    store = Store(directory)
    store.initialize(genesis, changes)
    return store


def _transfers(
    senders: list[SigningKey], count: int, accounts: int, chooser: random.Random, *, assets: tuple[str, ...] = (ASSET,)
) -> list[Transaction]:
    """``count`` signed transfers to random accounts, the ``i``-th in ``assets[i % len(assets)]``."""
    nonces = dict.fromkeys(range(len(senders)), 0)
    transactions = []
    for index in range(count):
        sender = index % len(senders)
        asset = assets[index % len(assets)]
        body = Transfer(asset, _address(chooser.randrange(accounts)), 1 + chooser.randrange(1000))
        transactions.append(sign_transaction(senders[sender], chain_id=CHAIN_ID, nonce=nonces[sender], body=body))
        nonces[sender] += 1
    return transactions


def _timed(action: Callable[[], _T]) -> tuple[float, _T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def block_figures(directory: Path, *, transactions: int, accounts: int) -> dict[str, float]:
    chooser = random.Random(1)
    senders = [_key(index) for index in range(2_000)]
    store = _fresh_store(directory / "block", senders=senders, extra_accounts=accounts)
    batch = _transfers(senders, transactions, accounts, chooser)
    verified = SignatureCache()
    built = build_block(
        store, store.head, batch, proposer=senders[0].public_key, timestamp_ms=1, rules=RULES, signatures=verified
    )
    assert len(built.block.transactions) == transactions, built.refused[:1]
    warm, _ = _timed(lambda: apply_block(store, store.head, built.block, rules=RULES, signatures=verified))
    cold, changes = _timed(
        lambda: apply_block(store, store.head, built.block, rules=RULES, signatures=SignatureCache())
    )
    certificate = CommitCertificate(1, 0, built.block.hash, ((0, bytes(64)),))
    commit, _ = _timed(lambda: store.save_block(built.block, certificate, changes))
    store.close()
    return {
        "apply_block_us_per_tx_verified": warm / transactions * 1e6,
        "apply_block_us_per_tx_with_signatures": cold / transactions * 1e6,
        "state_entries_per_tx": len(changes.entries) / transactions,
        "commit_us_per_tx": commit / transactions * 1e6,
    }


def mixed_block_figures(directory: Path, *, transactions: int, accounts: int) -> dict[str, float]:
    """``apply_block`` per transaction (signatures verified) on a block of transfers in
    ``MIXED_ASSETS`` in turn, and the state entries it changes per transaction: each
    (asset, account) balance is an entry of its own, so a block in three assets touches
    more of them than one in a single asset."""
    senders = [_key(index) for index in range(2_000)]
    store = _fresh_store(
        directory / "mixed", senders=senders, extra_accounts=accounts, assets=MIXED_ASSETS, restricted=MIXED_ASSETS[-1]
    )
    batch = _transfers(senders, transactions, accounts, random.Random(1), assets=MIXED_ASSETS)
    verified = SignatureCache()
    built = build_block(
        store, store.head, batch, proposer=senders[0].public_key, timestamp_ms=1, rules=RULES, signatures=verified
    )
    assert len(built.block.transactions) == transactions, built.refused[:1]
    applied, changes = _timed(lambda: apply_block(store, store.head, built.block, rules=RULES, signatures=verified))
    store.close()
    return {
        "apply_block_us_per_tx_verified_three_assets": applied / transactions * 1e6,
        "state_entries_per_tx_three_assets": len(changes.entries) / transactions,
    }


class _CountingBatch:
    """A write batch that counts what is put into it, and passes it on (if given a batch)."""

    def __init__(self, batch: Any = None) -> None:
        self._batch = batch
        self.entries = 0
        self.bytes = 0

    def put(self, key: bytes, value: bytes) -> None:
        self.entries += 1
        self.bytes += len(key) + len(value)
        if self._batch is not None:
            self._batch.put(key, value)


def history_figures(directory: Path, *, transactions: int, accounts: int) -> dict[str, float]:
    """What the history indexes (``A``, ``R``, ``X``) cost per transaction, for a block of
    ``transactions`` transfers: committing the block with ``Store.save_block`` (the indexes
    in its synced batch), and the indexes alone: ``Store._write_history`` composing them
    (no write), then into a batch of their own written synced to a second LevelDB (with a
    sync of its own, which the commit shares: an upper bound), and the entries and bytes
    (key plus value) it holds. The block's own encoding per transaction is given for scale."""
    senders = [_key(index) for index in range(min(2_000, transactions))]
    store = _fresh_store(directory / f"history-{transactions}", senders=senders, extra_accounts=accounts)
    batch = _transfers(senders, transactions, accounts, random.Random(4))
    verified = SignatureCache()
    built = build_block(
        store, store.head, batch, proposer=senders[0].public_key, timestamp_ms=1, rules=RULES, signatures=verified
    )
    block = built.block
    assert len(block.transactions) == transactions, built.refused[:1]
    changes = apply_block(store, store.head, block, rules=RULES, signatures=verified)
    certificate = CommitCertificate(1, 0, block.hash, ((0, bytes(64)),))
    commit, _ = _timed(lambda: store.save_block(block, certificate, changes))
    store.close()
    counted = _CountingBatch()
    composed, _ = _timed(lambda: Store._write_history(counted, block.height, block.transactions, changes))
    history = _timed_history(directory / f"history-{transactions}-alone", block, changes)
    return {
        f"commit_us_per_tx_at_{transactions}": commit / transactions * 1e6,
        f"history_compose_us_per_tx_at_{transactions}": composed / transactions * 1e6,
        f"history_us_per_tx_at_{transactions}": history / transactions * 1e6,
        f"history_percent_of_commit_at_{transactions}": 100 * history / commit,
        f"history_entries_per_tx_at_{transactions}": counted.entries / transactions,
        f"history_bytes_per_tx_at_{transactions}": counted.bytes / transactions,
        f"block_bytes_per_tx_at_{transactions}": len(block.encode()) / transactions,
    }


def _timed_history(path: Path, block: Block, changes: StateChanges) -> float:
    """The time to build the block's history entries and write them, alone, in one synced
    batch to a LevelDB at ``path``."""
    database = plyvel.DB(str(path), create_if_missing=True)
    try:
        start = time.perf_counter()
        with database.write_batch(transaction=True, sync=True) as batch:
            Store._write_history(batch, block.height, block.transactions, changes)
        return time.perf_counter() - start
    finally:
        database.close()


def state_root_figure(directory: Path, *, accounts: int, touched: int) -> dict[str, float]:
    """Time of the state-root update alone, per touched balance, with ``accounts`` in the store."""
    senders = [_key(index) for index in range(touched // 2)]
    path = directory / f"root-{accounts}"
    _fresh_store(path, senders=senders, extra_accounts=accounts).close()
    store = Store(path)  # reopened, so balance reads come from LevelDB, not the cache
    chooser = random.Random(2)
    pending = PendingState(store)
    addresses: dict[bytes, int] = {}
    read_start = time.perf_counter()
    for sender in senders:
        for address in (sender.public_key, _address(chooser.randrange(accounts))):
            addresses[address] = pending.balance(address, ASSET)
    reads = time.perf_counter() - read_start
    for address, balance in addresses.items():
        pending.set_balance(address, ASSET, balance + 1)
    update, changes = _timed(pending.finish)
    touched_count = len(changes.balances)
    store.close()
    return {
        f"state_root_us_per_balance_at_{accounts}": update / touched_count * 1e6,
        f"balance_read_us_at_{accounts}": reads / touched_count * 1e6,
    }


def _seal_timed(
    store: Store, batch: list[Transaction], *, timestamp_ms: int, proposer: bytes, verified: SignatureCache
) -> tuple[float, float]:
    """Build the next block from ``batch`` (every one must be taken) and commit it: the
    seconds ``apply_block`` and the store's synced batch take on it."""
    built = build_block(
        store, store.head, batch, proposer=proposer, timestamp_ms=timestamp_ms, rules=RULES, signatures=verified
    )
    assert len(built.block.transactions) == len(batch), built.refused[:1]
    applied, changes = _timed(lambda: apply_block(store, store.head, built.block, rules=RULES, signatures=verified))
    certificate = CommitCertificate(built.block.height, 0, built.block.hash, ((0, bytes(64)),))
    committed, _ = _timed(lambda: store.save_block(built.block, certificate, changes))
    return applied, committed


def coupon_figures(directory: Path, *, holders: int, per_block: int) -> dict[str, float]:
    """A coupon on a bond held by ``holders`` accounts, paid ``per_block`` holders a block:
    milliseconds the payment adds to applying (``apply_block`` of an empty block) and to
    committing (the synced batch with its history) each of its blocks, and in all."""
    issuer = _key(0)
    store = _fresh_store(directory / f"coupon-{per_block}", senders=[issuer], extra_accounts=0)
    coupon_ms, maturity_ms = 10_000, 20_000
    body = IssueBond(
        "BENCH-BOND", "Bench bond", holders * 10, b"", "open", ASSET, 10_000, 4_550, 2, 0,
        (coupon_ms,), maturity_ms, 0, b"", b"", "bench", False,
    )  # fmt: skip
    nonce = 0
    transactions = [sign_transaction(issuer, chain_id=CHAIN_ID, nonce=nonce, body=body)]
    for index in range(holders):
        nonce += 1
        transfer = Transfer("BENCH-BOND", _address(index), 1 + index % 19)
        transactions.append(sign_transaction(issuer, chain_id=CHAIN_ID, nonce=nonce, body=transfer))
    verified = SignatureCache()

    def seal(batch: list[Transaction], timestamp_ms: int) -> tuple[float, float]:
        return _seal_timed(store, batch, timestamp_ms=timestamp_ms, proposer=issuer.public_key, verified=verified)

    seal(transactions, 1)
    empty = [seal([], 2 + index) for index in range(3)]
    baseline_apply = min(applied for applied, _ in empty)
    baseline_commit = min(committed for _, committed in empty)
    original = bond_rules.PAYMENTS_PER_BLOCK
    bond_rules.PAYMENTS_PER_BLOCK = per_block
    try:
        blocks = [seal([], coupon_ms + index) for index in range(-(-holders // per_block))]
    finally:
        bond_rules.PAYMENTS_PER_BLOCK = original
    store.close()
    added_apply = [max(0.0, applied - baseline_apply) for applied, _ in blocks]
    added_commit = [max(0.0, committed - baseline_commit) for _, committed in blocks]
    label = f"{per_block}_per_block"
    return {
        f"coupon_{holders}_holders_{label}_blocks": len(blocks),
        f"coupon_{holders}_holders_{label}_apply_ms_largest_block": max(added_apply) * 1e3,
        f"coupon_{holders}_holders_{label}_commit_ms_largest_block": max(added_commit) * 1e3,
        f"coupon_{holders}_holders_{label}_apply_ms_total": sum(added_apply) * 1e3,
        f"coupon_{holders}_holders_{label}_commit_ms_total": sum(added_commit) * 1e3,
    }


def allotment_figures(directory: Path, *, subscribers: int) -> dict[str, float]:
    """An oversubscribed offering of ``subscribers`` subscriptions allotted in one block:
    milliseconds it adds to applying and to committing that block."""
    keys = [_key(index) for index in range(subscribers + 1)]
    issuer = keys[0]
    store = _fresh_store(directory / "allotment", senders=keys, extra_accounts=0)
    issue = IssueBond(
        "BENCH-OFFER", "Bench bond", subscribers, b"", "open", ASSET, 10_000, 0, 1, 0, (), 100_000, 0, b"", b"",
        "bench", False,
    )  # fmt: skip
    offer = OpenOffering("BENCH-OFFER", subscribers, 10_000, 0, 50_000, 1, 0, 0)
    opening = [
        sign_transaction(issuer, chain_id=CHAIN_ID, nonce=0, body=issue),
        sign_transaction(issuer, chain_id=CHAIN_ID, nonce=1, body=offer),
    ]
    orders = [
        sign_transaction(key, chain_id=CHAIN_ID, nonce=0, body=Subscribe("BENCH-OFFER", 1 + index % 3))
        for index, key in enumerate(keys[1:])
    ]
    verified = SignatureCache()
    timings = [
        _seal_timed(store, batch, timestamp_ms=timestamp_ms, proposer=issuer.public_key, verified=verified)
        for batch, timestamp_ms in ((opening, 1), (orders, 2), ([], 3), ([], 50_000))
    ]
    store.close()
    (empty_apply, empty_commit), (apply_allotment, commit_allotment) = timings[2], timings[3]
    return {
        f"allotment_{subscribers}_subscribers_apply_ms": max(0.0, apply_allotment - empty_apply) * 1e3,
        f"allotment_{subscribers}_subscribers_commit_ms": max(0.0, commit_allotment - empty_commit) * 1e3,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mura.bench.ledger", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: 10^5 accounts instead of 10^6")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    figures: dict[str, float] = {
        "ed25519_verifications_per_second_1_thread": verifications_per_second(seconds=2, threads=1),
        f"ed25519_verifications_per_second_{cores}_threads": verifications_per_second(seconds=2, threads=cores),
        "transactions_verified_per_second_by_the_verifier": verifier_per_second(transactions=20_000),
    }
    with tempfile.TemporaryDirectory(prefix="mura-bench-") as scratch:
        figures |= block_figures(Path(scratch), transactions=10_000, accounts=10_000)
        figures |= mixed_block_figures(Path(scratch), transactions=10_000, accounts=10_000)
        for size in HISTORY_BLOCK_SIZES:
            figures |= history_figures(Path(scratch), transactions=size, accounts=10_000)
        for accounts in (10_000, 100_000 if options.quick else 1_000_000):
            figures |= state_root_figure(Path(scratch), accounts=accounts, touched=10_000)
        for per_block in (bond_rules.PAYMENTS_PER_BLOCK, 10_000):
            figures |= coupon_figures(Path(scratch), holders=10_000, per_block=per_block)
        figures |= allotment_figures(Path(scratch), subscribers=MAX_SUBSCRIBERS)
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:>12,.1f}")
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
