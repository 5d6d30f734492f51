"""The simulated disk keeps LevelDB's promises and breaks the rest at a power cut, and
the node's vote record runs on it unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mura.chain.store import VoteStore
from mura.consensus.messages import Phase
from mura.consensus.votes import RecordedVote, StoredVoteRecord
from mura.sim.disk import SimulatedDisk

CHAIN, VALIDATOR = b"c" * 32, b"v" * 32


def test_a_power_cut_loses_what_was_not_synced() -> None:
    disk = SimulatedDisk()
    disk.put(b"a", b"1", sync=True)
    disk.put(b"b", b"2")
    with disk.write_batch() as batch:
        batch.put(b"c", b"3")
        batch.delete(b"a")
    assert disk.get(b"a") is None and disk.get(b"c") == b"3"
    assert disk.power_cut() == 2
    assert (disk.get(b"a"), disk.get(b"b"), disk.get(b"c")) == (b"1", None, None)


def test_a_synced_write_makes_the_writes_before_it_durable() -> None:
    disk = SimulatedDisk()
    disk.put(b"a", b"1")
    with disk.write_batch(sync=True) as batch:
        batch.put(b"b", b"2")
    disk.power_cut()
    assert (disk.get(b"a"), disk.get(b"b")) == (b"1", b"2")


def test_a_transaction_batch_whose_block_fails_writes_nothing() -> None:
    disk = SimulatedDisk()
    with pytest.raises(RuntimeError):
        with disk.write_batch(transaction=True, sync=True) as batch:
            batch.put(b"a", b"1")
            raise RuntimeError("an error inside the batch")
    assert disk.get(b"a") is None and disk.writes == 0


def test_a_plain_batch_whose_block_fails_is_written_as_plyvel_writes_it() -> None:
    """Without ``transaction=True`` plyvel writes what the batch holds even when its
    block raises: code that relies on the opposite is wrong on the real disk."""
    disk = SimulatedDisk()
    with pytest.raises(RuntimeError):
        with disk.write_batch() as batch:
            batch.put(b"a", b"1")
            raise RuntimeError("an error inside the batch")
    assert disk.get(b"a") == b"1"


def test_an_iterator_sees_the_keys_as_they_were_when_it_was_made() -> None:
    """A LevelDB iterator reads a snapshot: writes after it is made, deletes included,
    do not change what it yields."""
    disk = SimulatedDisk()
    for key in (b"x1", b"x2"):
        disk.put(key, key.upper())
    iterator = disk.iterator(prefix=b"x")
    disk.delete(b"x2")
    disk.put(b"x3", b"X3")
    assert list(iterator) == [(b"x1", b"X1"), (b"x2", b"X2")]


def test_prefix_with_bounds_is_refused_as_plyvel_refuses_it() -> None:
    with pytest.raises(TypeError):
        SimulatedDisk().iterator(prefix=b"x", start=b"x1")


def test_iteration_follows_key_order_prefix_and_bounds() -> None:
    disk = SimulatedDisk()
    for key in (b"x2", b"x1", b"y1", b"x3"):
        disk.put(key, key.upper())
    assert list(disk.iterator(prefix=b"x", include_value=False)) == [b"x1", b"x2", b"x3"]
    assert next(disk.iterator(prefix=b"x", reverse=True)) == (b"x3", b"X3")
    assert list(disk.iterator(start=b"x2", stop=b"y1", include_key=False)) == [b"X2", b"X3"]


def test_the_vote_record_keeps_synced_votes_across_a_power_cut() -> None:
    disk = SimulatedDisk()
    record = StoredVoteRecord(VoteStore(Path("node.votes"), chain=CHAIN, validator=VALIDATOR, db=disk))
    assert record.signing_guard().pending  # a new record: the double-sign check is pending
    vote = RecordedVote(height=3, view=1, phase=Phase.PREPARE, digest=b"d" * 32)
    record.save_vote(vote)
    disk.power_cut()
    reopened = StoredVoteRecord(VoteStore(Path("node.votes"), chain=CHAIN, validator=VALIDATOR, db=disk))
    assert reopened.load_votes(3) == [vote]
    assert reopened.highest_height() == 3


def test_a_prune_lost_at_a_power_cut_loses_no_vote() -> None:
    """Pruning is not synced (losing it only brings old votes back): a power cut right
    after it counts no lost write, and the votes are all there."""
    disk = SimulatedDisk()
    record = StoredVoteRecord(VoteStore(Path("node.votes"), chain=CHAIN, validator=VALIDATOR, db=disk))
    vote = RecordedVote(height=3, view=1, phase=Phase.PREPARE, digest=b"d" * 32)
    record.save_vote(vote)
    record.prune(4)
    assert record.load_votes(3) == []
    assert disk.power_cut() == 0
    reopened = StoredVoteRecord(VoteStore(Path("node.votes"), chain=CHAIN, validator=VALIDATOR, db=disk))
    assert reopened.load_votes(3) == [vote]
