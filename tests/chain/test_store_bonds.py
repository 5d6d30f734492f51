"""The store's payment history: each holder's share of each coupon and redemption the
chain paid (``StateChanges.events``), read by payment in account order and by holder in
bond and payment order, a bounded page at a time.

The blocks are real (sealed, certified, saved into a LevelDB store). The first tests
give the payment events a block carries by hand, as the state transition hands them to
the store; the last has the rules pay a bond's coupons and redemption.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mura.chain.bonds import PaymentEvent
from mura.chain.store import PAYMENT_SHARES, PaymentShare, Store
from mura.chain.transaction import Body, IssueBond, Transaction, Transfer, sign_transaction
from mura.tests.ledger_fixtures import (
    ACCOUNTS,
    ASSET,
    CHAIN_ID,
    GENESIS_TIME_MS,
    ISSUER,
    certify,
    genesis,
    key,
    seal,
)

BOND = "NISHI-2031"
#: Sorts before BOND in key order (a shorter id), and after it by id.
SHORT_BOND = "ZED"
HOLDERS = sorted(account.public_key for account in ACCOUNTS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "chain") as opened:
        block, changes = genesis()
        opened.initialize(block, changes)
        yield opened


def commit(store: Store, events: list[PaymentEvent]) -> int:
    """An empty block carrying ``events``, saved; its height."""
    parent = store.load_block(store.height)
    assert parent is not None
    block, changes = seal(store, parent, [])
    store.save_block(block, certify(block), replace(changes, events=tuple(events)))
    return block.height


def coupon(bond: str, index: int, holder: bytes, units: int) -> PaymentEvent:
    """A coupon of 7 per unit (an exact amount is all the store needs)."""
    return PaymentEvent(bond, index, holder, units, 7 * units)


def test_a_payments_shares_come_in_account_order_a_page_at_a_time(store: Store) -> None:
    # The events of one payment arrive in the order the chain paid them, over two blocks.
    first = commit(store, [coupon(BOND, 0, holder, 10 + number) for number, holder in enumerate(HOLDERS[:3])])
    second = commit(store, [coupon(BOND, 0, holder, 13 + number) for number, holder in enumerate(HOLDERS[3:])])
    expected = [
        PaymentShare(BOND, 0, holder, 10 + number, 7 * (10 + number), first if number < 3 else second)
        for number, holder in enumerate(HOLDERS)
    ]
    assert store.load_payment_shares(BOND, 0, after=b"", limit=100) == expected
    pages: list[list[PaymentShare]] = []
    after = b""
    while page := store.load_payment_shares(BOND, 0, after=after, limit=2):
        pages.append(page)
        after = page[-1].holder
    assert pages == [expected[0:2], expected[2:4], expected[4:5]]
    assert store.load_payment_shares(BOND, 0, after=b"", limit=0) == []
    assert store.load_payment_shares(BOND, 1, after=b"", limit=100) == []
    assert store.load_payment_shares("OTHER", 0, after=b"", limit=100) == []


def test_a_holders_payments_by_bond_then_index(store: Store) -> None:
    alice, bob = HOLDERS[0], HOLDERS[1]
    first = commit(store, [coupon(BOND, 0, alice, 5), coupon(BOND, 0, bob, 1), coupon(SHORT_BOND, 0, alice, 2)])
    second = commit(store, [coupon(BOND, 1, alice, 5), PaymentEvent(BOND, 2, alice, 5, 50_000)])
    mine = [
        PaymentShare(BOND, 0, alice, 5, 35, first),
        PaymentShare(BOND, 1, alice, 5, 35, second),
        PaymentShare(BOND, 2, alice, 5, 50_000, second),
    ]
    assert store.load_holder_payments(alice, bond=BOND, limit=100) == mine
    assert store.load_holder_payments(alice, bond=BOND, after=(BOND, 0), limit=1) == mine[1:2]
    assert store.load_holder_payments(alice, bond=BOND, after=(BOND, 2), limit=100) == []
    # Across bonds: the shorter id's key sorts first.
    everything = store.load_holder_payments(alice, limit=100)
    assert everything == [PaymentShare(SHORT_BOND, 0, alice, 2, 14, first), *mine]
    assert store.load_holder_payments(alice, after=(SHORT_BOND, 0), limit=2) == mine[:2]
    assert store.load_holder_payments(alice, limit=0) == []
    assert store.load_holder_payments(bob, limit=100) == [PaymentShare(BOND, 0, bob, 1, 7, first)]
    assert store.load_holder_payments(key("nobody").public_key, limit=100) == []
    with pytest.raises(ValueError, match="is not one of"):
        store.load_holder_payments(alice, bond=BOND, after=(SHORT_BOND, 0), limit=1)


def test_shares_are_written_with_their_block_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "chain"
    with Store(path) as store:
        block, changes = genesis()
        store.initialize(block, changes)
        height = commit(store, [coupon(BOND, 3, HOLDERS[2], 4)])
        # A block without payments writes no share.
        commit(store, [])
        assert sum(1 for _ in store.db.iterator(prefix=PAYMENT_SHARES)) == 1
    with Store(path) as reopened:
        assert reopened.load_payment_shares(BOND, 3, after=b"", limit=10) == [
            PaymentShare(BOND, 3, HOLDERS[2], 4, 28, height)
        ]
        assert reopened.load_holder_payments(HOLDERS[2], limit=10) == [PaymentShare(BOND, 3, HOLDERS[2], 4, 28, height)]


# --- through the rules ------------------------------------------------------------------------------


def test_the_shares_the_chain_pays_are_indexed_with_their_block(tmp_path: Path) -> None:
    """A bond issued, held by two accounts, pays two coupons and its redemption: each
    holder's share reaches the indexes in the block that paid it."""
    t0 = GENESIS_TIME_MS
    body = IssueBond(
        asset=BOND, name="Forest road bond", units=10, registrar=b"", policy="open", settlement=ASSET, face=10_000,
        rate=4_550, frequency=2, first_period_days=0, coupon_times=(t0 + 5_000, t0 + 8_000), maturity_ms=t0 + 8_000,
        issue_ms=t0, paying=b"", proceeds=b"", use_of_proceeds="forest road repair", green=True,
    )  # fmt: skip
    alice, bob = sorted((ACCOUNTS[0], ACCOUNTS[1]), key=lambda account: account.public_key)
    issuer_transactions: list[Body] = [body, Transfer(BOND, alice.public_key, 3), Transfer(BOND, bob.public_key, 5)]
    with Store(tmp_path / "chain") as store:
        block, changes = genesis()
        store.initialize(block, changes)
        for nonce, transaction_body in enumerate(issuer_transactions):
            transaction = sign_transaction(ISSUER, chain_id=CHAIN_ID, nonce=nonce, body=transaction_body)
            commit_sealed(store, [transaction], timestamp_ms=t0 + 1_000 * (nonce + 1))
        assert store.load_payment_shares(BOND, 0, after=b"", limit=10) == []
        # The first block at or after the first coupon's time pays it: 3 x 22.75 and 5 x 22.75, each rounded down.
        first = commit_sealed(store, [], timestamp_ms=t0 + 5_000)
        assert store.load_payment_shares(BOND, 0, after=b"", limit=10) == [
            PaymentShare(BOND, 0, alice.public_key, 3, 68, first),
            PaymentShare(BOND, 0, bob.public_key, 5, 113, first),
        ]
        # The second coupon and the redemption fall at one time: one block pays both.
        last = commit_sealed(store, [], timestamp_ms=t0 + 8_000)
        assert store.load_holder_payments(alice.public_key, bond=BOND, limit=10) == [
            PaymentShare(BOND, 0, alice.public_key, 3, 68, first),
            PaymentShare(BOND, 1, alice.public_key, 3, 68, last),
            PaymentShare(BOND, 2, alice.public_key, 3, 30_000, last),
        ]
        assert store.load_payment_shares(BOND, 2, after=alice.public_key, limit=10) == [
            PaymentShare(BOND, 2, bob.public_key, 5, 50_000, last),
        ]
        assert (store.load_balance(bob.public_key, BOND), store.load_asset_state(BOND).supply) == (0, 0)


def commit_sealed(store: Store, transactions: list[Transaction], *, timestamp_ms: int) -> int:
    """The next block of ``transactions`` at ``timestamp_ms``, as the rules build it, saved; its height."""
    parent = store.load_block(store.height)
    assert parent is not None
    block, changes = seal(store, parent, transactions, timestamp_ms=timestamp_ms)
    assert list(block.transactions) == transactions
    store.save_block(block, certify(block), changes)
    return block.height
