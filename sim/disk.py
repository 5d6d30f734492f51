"""A simulated disk for the vote record: plyvel's interface over memory, and a crash
that loses every write not yet synced.

The node's ``VoteStore`` runs on it unchanged (``VoteStore(..., db=disk)``), so the
simulator exercises the record's real code: its key layout, sequence numbers,
highest height, guard and pruning. A simulated crash is the worst kind, a power
cut: like LevelDB's log, a synced write makes everything written before it durable
too, and anything written after the last synced write is gone. A record that
forgets to sync a vote therefore loses it at the next crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from mura.chain.store import VoteStore
from mura.consensus.votes import StoredVoteRecord

Writes = list[tuple[bytes, bytes | None]]


class DiskClosed(Exception):
    """A write or read after ``close()``."""


class SimulatedDisk:
    """An ordered key-value store with LevelDB's write semantics and a crash."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._durable: dict[bytes, bytes] = {}
        self.closed = False
        #: Called before every write (the simulator's crash may strike there).
        self.before_write: Callable[[], None] = lambda: None
        #: False makes every write unsynced, whatever it asks (an injected bug).
        self.syncing = True
        #: Writes that stored a value and are not durable yet (a lost delete only brings
        #: back what was there: pruning is not synced, and losing it loses nothing).
        self.unsynced_writes = 0
        #: Every write, counted.
        self.writes = 0

    # --- plyvel's interface, as much of it as the vote record uses --------------------

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        self._check_open()
        return self._data.get(key, default)

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        self._write([(key, value)], sync=sync)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        self._write([(key, None)], sync=sync)

    def write_batch(self, *, transaction: bool = False, sync: bool = False) -> Batch:
        self._check_open()
        return Batch(self, transaction=transaction, sync=sync)

    def iterator(
        self,
        *,
        prefix: bytes | None = None,
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
        include_key: bool = True,
        include_value: bool = True,
    ) -> Iterator[object]:
        """The items in key order, as they are now: like LevelDB's, the iterator reads a
        snapshot taken when it is made."""
        self._check_open()
        if prefix is not None and (start is not None or stop is not None):
            raise TypeError("'prefix' cannot be used together with 'start' or 'stop'")
        items = sorted(
            (key, value)
            for key, value in self._data.items()
            if (prefix is None or key.startswith(prefix))
            and (start is None or key >= start)
            and (stop is None or key < stop)
        )
        if reverse:
            items.reverse()
        if include_key and include_value:
            return iter(items)
        return iter([key if include_key else value for key, value in items])

    def close(self) -> None:
        self.closed = True

    # --- the crash ---------------------------------------------------------------------

    def power_cut(self) -> int:
        """The machine stops: what was not synced is lost, and the disk can be opened
        again. Returns how many writes that stored a value were lost."""
        lost = self.unsynced_writes
        self._data = dict(self._durable)
        self.unsynced_writes = 0
        self.closed = False
        return lost

    # --- inside -----------------------------------------------------------------------

    def _write(self, writes: Writes, *, sync: bool) -> None:
        self._check_open()
        self.before_write()
        for key, value in writes:
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value
        self.writes += 1
        if sync and self.syncing:
            self._durable = dict(self._data)
            self.unsynced_writes = 0
        elif any(value is not None for _, value in writes):
            self.unsynced_writes += 1

    def _check_open(self) -> None:
        if self.closed:
            raise DiskClosed("the simulated disk is closed")


class Batch:
    """Writes applied together, atomically, when the ``with`` block ends; as in plyvel,
    one made with ``transaction=True`` writes nothing if the block raises, and one
    without writes what it holds even then."""

    def __init__(self, disk: SimulatedDisk, *, transaction: bool, sync: bool) -> None:
        self._disk = disk
        self._transaction = transaction
        self._sync = sync
        self._writes: Writes = []

    def put(self, key: bytes, value: bytes) -> None:
        self._writes.append((key, value))

    def delete(self, key: bytes) -> None:
        self._writes.append((key, None))

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._writes and (kind is None or not self._transaction):
            self._disk._write(self._writes, sync=self._sync)


def vote_record_in_memory(*, new: bool = False, validator: bytes = bytes(32)) -> StoredVoteRecord:
    """The node's vote record on a disk of its own that never crashes: for tests of one
    replica or a few. ``new`` makes one that knows nothing of its validator's past (the
    double-sign check is pending); otherwise it holds everything its validator signed."""
    store = VoteStore(Path("memory.votes"), chain=bytes(32), validator=validator, db=SimulatedDisk())
    if not new:
        store.save_guard(0)
    return StoredVoteRecord(store)
