"""Parallel signature verification, recorded once in the signature cache."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.chain.verify import SignatureVerifier, VerifierStopped

KEYS = [SigningKey.generate() for _ in range(3)]


def transfers(count: int) -> list[Transaction]:
    return [
        sign_transaction(
            KEYS[i % 3], chain_id="mura-test", nonce=i, body=Transfer("NAC", KEYS[0].public_key, 1 + i)
        )
        for i in range(count)
    ]


def forged(transaction: Transaction) -> Transaction:
    body = Transfer("NAC", KEYS[1].public_key, 1)
    other = sign_transaction(KEYS[2], chain_id="mura-test", nonce=99, body=body)
    return Transaction(transaction.chain_id, transaction.sender, transaction.nonce, transaction.body, other.signature)


@pytest.fixture
def verifier() -> Iterator[SignatureVerifier]:
    verifier = SignatureVerifier(SignatureCache(), threads=2)
    yield verifier
    verifier.close()


@pytest.mark.parametrize("count", [1, 40])
def test_verify_records_valid_signatures(verifier: SignatureVerifier, count: int) -> None:
    batch = transfers(count)
    assert verifier.verify(batch) == set()
    assert all(tx.hash in verifier.cache for tx in batch)


@pytest.mark.parametrize("count", [1, 40])
def test_invalid_signatures_are_reported_and_not_cached(verifier: SignatureVerifier, count: int) -> None:
    batch = transfers(count)
    bad = [forged(batch[index]) for index in range(0, count, 7)]
    mixed = batch + bad
    assert verifier.verify(mixed) == {tx.hash for tx in bad}
    assert not any(tx.hash in verifier.cache for tx in bad)
    assert all(tx.hash in verifier.cache for tx in batch)


def test_cached_transactions_are_not_verified_again(
    verifier: SignatureVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = transfers(30)
    verifier.verify(batch)
    calls = []

    def counting_verify(*args: object) -> bool:
        calls.append(args)
        return True

    monkeypatch.setattr("mura.chain.verify.verify_signature", counting_verify)
    assert verifier.verify(batch) == set()
    assert calls == []


async def test_verify_async_matches_verify(verifier: SignatureVerifier) -> None:
    batch = transfers(50)
    bad = forged(batch[3])
    assert await verifier.verify_async([*batch, bad]) == {bad.hash}
    assert all(tx.hash in verifier.cache for tx in batch)
    assert await verifier.verify_async(batch) == set()


async def test_transactions_submitted_in_one_turn_are_verified_as_one_batch(
    verifier: SignatureVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mura.chain.verify as verify_module

    chunk_sizes: list[int] = []
    real = verify_module._verify_chunk

    def counting(chunk: list[Transaction]) -> list[bool]:
        chunk_sizes.append(len(chunk))
        return real(chunk)

    monkeypatch.setattr(verify_module, "_verify_chunk", counting)
    batch = transfers(40)
    bad = forged(batch[5])
    results = await asyncio.gather(*(verifier.verify_async([tx]) for tx in [*batch, bad]))
    assert results[-1] == {bad.hash} and all(result == set() for result in results[:-1])
    # 41 single submissions, verified as two chunks (one per thread), not 41 hand-offs.
    assert sorted(chunk_sizes) == [20, 21]


async def test_stop_wakes_the_callers_of_a_batch_in_flight_and_leaves_no_task(
    verifier: SignatureVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import mura.chain.verify as verify_module

    started, release = threading.Event(), threading.Event()
    real = verify_module._verify_chunk

    def slow(chunk: list[Transaction]) -> list[bool]:
        started.set()
        release.wait(10)
        return real(chunk)

    monkeypatch.setattr(verify_module, "_verify_chunk", slow)
    waiting = asyncio.ensure_future(verifier.verify_async(transfers(40)))
    assert await asyncio.to_thread(started.wait, 10), "the batch reached the pool"
    stopping = asyncio.ensure_future(verifier.stop())
    with pytest.raises(VerifierStopped):
        await waiting
    release.set()
    await stopping
    assert not verifier._tasks
    await verifier.stop()  # idempotent
    with pytest.raises(VerifierStopped):
        await verifier.verify_async(transfers(1))


async def test_stop_abandons_a_batch_still_gathering(verifier: SignatureVerifier) -> None:
    waiting = asyncio.ensure_future(verifier.verify_async(transfers(3)))
    await asyncio.sleep(0)  # the call has joined the open batch, which closes next turn
    await verifier.stop()
    with pytest.raises(VerifierStopped):
        await waiting
    assert not verifier._tasks
