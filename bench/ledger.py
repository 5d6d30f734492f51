"""Ledger micro-benchmarks: ``python -m mura.bench.ledger`` (``make bench``).

Prints the figures the README's Performance section quotes:

* Ed25519 verifications per second, on one thread and on every core, and
  transactions verified per second by the node's ``SignatureVerifier``;
* ``apply_block`` on a 10,000-transaction block, in microseconds per
  transaction, with signatures already verified (the normal path: the mempool
  verified them) and with every signature verified inside the block;
* committing that block to LevelDB (one synced batch), per transaction;
* the state-root update per touched account at 10^4 and 10^6 accounts.

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

from mura.chain.block import CommitCertificate
from mura.chain.keys import SignatureCache, SigningKey, sha256, verify_signature
from mura.chain.state import ChainRules, PendingState, apply_block, build_block, build_genesis
from mura.chain.store import Store
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.chain.verify import SignatureVerifier

CHAIN_ID = "mura-bench"
RULES = ChainRules(CHAIN_ID)


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


def _fresh_store(directory: Path, *, senders: list[SigningKey], extra_accounts: int) -> Store:
    allocations = [(key.public_key, 10**12) for key in senders]
    allocations += [(_address(index), 1) for index in range(extra_accounts)]
    genesis, changes = build_genesis(
        chain_id=CHAIN_ID,
        timestamp_ms=0,
        validators=[senders[0].public_key],
        issuers=[],
        allocations=allocations,
    )
    store = Store(directory)
    store.initialize(genesis, changes)
    return store


def _transfers(senders: list[SigningKey], count: int, accounts: int, chooser: random.Random) -> list[Transaction]:
    nonces = dict.fromkeys(range(len(senders)), 0)
    transactions = []
    for index in range(count):
        sender = index % len(senders)
        body = Transfer(_address(chooser.randrange(accounts)), 1 + chooser.randrange(1000))
        transactions.append(sign_transaction(senders[sender], chain_id=CHAIN_ID, nonce=nonces[sender], body=body))
        nonces[sender] += 1
    return transactions


def _timed(action: Callable[[], object]) -> tuple[float, object]:
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
    commit, _ = _timed(lambda: store.save_block(built.block, certificate, changes))  # type: ignore[arg-type]
    store.close()
    return {
        "apply_block_us_per_tx_verified": warm / transactions * 1e6,
        "apply_block_us_per_tx_with_signatures": cold / transactions * 1e6,
        "commit_us_per_tx": commit / transactions * 1e6,
    }


def state_root_figure(directory: Path, *, accounts: int, touched: int) -> dict[str, float]:
    """Time of the state-root update alone, per touched account, with ``accounts`` in the store."""
    senders = [_key(index) for index in range(touched // 2)]
    path = directory / f"root-{accounts}"
    _fresh_store(path, senders=senders, extra_accounts=accounts).close()
    store = Store(path)  # reopened, so account reads come from LevelDB, not the cache
    chooser = random.Random(2)
    pending = PendingState(store)
    read_start = time.perf_counter()
    for sender in senders:
        pending.account(sender.public_key)
        pending.account(_address(chooser.randrange(accounts)))
    reads = time.perf_counter() - read_start
    for address in list(pending._accounts):
        account = pending.account(address)
        pending.set_account(address, type(account)(account.balance + 1, account.nonce, account.roles))
    update, changes = _timed(pending.finish)
    touched_count = len(changes.accounts)  # type: ignore[attr-defined]
    store.close()
    return {
        f"state_root_us_per_account_at_{accounts}": update / touched_count * 1e6,
        f"account_read_us_at_{accounts}": reads / touched_count * 1e6,
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
        for accounts in (10_000, 100_000 if options.quick else 1_000_000):
            figures |= state_root_figure(Path(scratch), accounts=accounts, touched=10_000)
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:>12,.1f}")
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
