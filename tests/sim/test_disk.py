"""The simulated disk keeps LevelDB's promises and breaks the rest at a power cut, and
the node's vote record runs on it unchanged."""

from __future__ import annotations

from pathlib import Path

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


def test_a_batch_whose_block_fails_writes_nothing() -> None:
    disk = SimulatedDisk()
    try:
        with disk.write_batch(sync=True) as batch:
            batch.put(b"a", b"1")
            raise RuntimeError("the process died inside the batch")
    except RuntimeError:
        pass
    assert disk.get(b"a") is None and disk.writes == 0


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
