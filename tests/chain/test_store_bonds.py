"""The store's payment history: each holder's share of each coupon and redemption the
chain paid (``StateChanges.events``), read by payment in account order and by holder in
bond and payment order, a bounded page at a time.

The blocks are real (sealed, certified, saved into a LevelDB store); the payment events
they carry are given here, as the state transition hands them to the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mura.chain.bonds import PaymentEvent
from mura.chain.store import PAYMENT_SHARES, PaymentShare, Store
from mura.tests.ledger_fixtures import ACCOUNTS, certify, genesis, key, seal

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
