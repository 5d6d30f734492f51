"""Tests for chain/drops.py: the bounded record of dropped transactions and its summary line."""

from __future__ import annotations

import pytest

from mura.chain.drops import Dropped, DropRecord


def dropped(index: int, rule: str = "expired") -> Dropped:
    return Dropped(index.to_bytes(32, "big"), bytes(32), index, rule, f"dropped for {rule}")


def test_remembers_drops_by_hash() -> None:
    record = DropRecord()
    record.remember(dropped(1))
    assert record.get(dropped(1).transaction_hash) == dropped(1)
    assert record.get(dropped(2).transaction_hash) is None


def test_forgets_the_oldest_beyond_its_capacity() -> None:
    record = DropRecord(capacity=3)
    for index in range(5):
        record.remember(dropped(index))
    assert len(record) == 3
    assert [record.get(dropped(index).transaction_hash) is not None for index in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_a_drop_again_is_the_newest() -> None:
    record = DropRecord(capacity=2)
    record.remember(dropped(1))
    record.remember(dropped(2))
    record.remember(dropped(1, "replaced"))
    record.remember(dropped(3))
    assert record.get(dropped(2).transaction_hash) is None
    assert record.get(dropped(1).transaction_hash) == dropped(1, "replaced")


def test_forget() -> None:
    record = DropRecord()
    record.remember(dropped(1))
    record.forget([dropped(1).transaction_hash, dropped(2).transaction_hash])
    assert len(record) == 0


def test_summary_counts_by_rule_most_first_then_resets() -> None:
    record = DropRecord(capacity=1)
    assert record.take_summary() is None
    for rule in ["supply_overflow", "expired", "expired", "nonce_used"]:
        record.remember(dropped(len(rule), rule))
    # Counted even when the record itself no longer holds them all.
    assert record.take_summary() == "dropped 4 pending transactions: expired 2, nonce_used 1, supply_overflow 1"
    assert record.take_summary() is None
    record.remember(dropped(1, "replaced"))
    assert record.take_summary() == "dropped 1 pending transaction: replaced 1"


def test_invalid_capacity() -> None:
    with pytest.raises(ValueError):
        DropRecord(capacity=0)
