"""What the mempool remembers of the transactions it dropped, and why.

A pending transaction leaves the pool in one of two ways: its block becomes
final, or the pool drops it (it expired, was replaced, or can never be included
any more). A wallet that asks about a dropped one must hear the reason rather
than "not found", so each drop is remembered as a ``Dropped`` record, by hash,
in a ``DropRecord`` of bounded size (the oldest records go first). The record
also counts drops by rule, for the node's periodic summary line.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

#: How many dropped transactions a mempool remembers, as many as it holds by default.
DEFAULT_MAX_REMEMBERED = 50_000


@dataclass(frozen=True, slots=True)
class Dropped:
    """One transaction the mempool dropped, and why."""

    #: The dropped transaction's hash.
    transaction_hash: bytes
    #: Its sender's public key.
    sender: bytes
    #: Its nonce.
    nonce: int
    #: The rule that dropped it: a chain rule (``supply_overflow``, ``insufficient_balance``,
    #: ``nonce_used``, ...) or a mempool one (``expired``, ``replaced``).
    rule: str
    #: One sentence saying why, for people.
    message: str
    #: For ``replaced``: the hash of the transaction that took its place.
    replaced_by: bytes | None = None


class DropRecord:
    """The last ``capacity`` drops by transaction hash, and counts by rule since last taken."""

    def __init__(self, *, capacity: int = DEFAULT_MAX_REMEMBERED) -> None:
        if capacity < 1:
            raise ValueError("a drop record holds at least one entry")
        self._capacity = capacity
        self._dropped: OrderedDict[bytes, Dropped] = OrderedDict()
        self._counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._dropped)

    def get(self, transaction_hash: bytes) -> Dropped | None:
        """Why the transaction was dropped, if it was (and is still remembered)."""
        return self._dropped.get(transaction_hash)

    def remember(self, dropped: Dropped) -> None:
        self._dropped.pop(dropped.transaction_hash, None)
        self._dropped[dropped.transaction_hash] = dropped
        if len(self._dropped) > self._capacity:
            self._dropped.popitem(last=False)
        self._counts[dropped.rule] += 1

    def forget(self, transaction_hashes: Iterable[bytes]) -> None:
        """Forget drops that no longer hold: the transaction is pending again, or final."""
        for transaction_hash in transaction_hashes:
            self._dropped.pop(transaction_hash, None)

    def take_summary(self) -> str | None:
        """One line counting the drops by rule since the last call (None if there were
        none), e.g. ``dropped 3 pending transactions: expired 2, supply_overflow 1``."""
        if not self._counts:
            return None
        counts, self._counts = self._counts, Counter()
        total = sum(counts.values())
        rules = ", ".join(
            f"{rule} {count}" for rule, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        )
        noun = "transaction" if total == 1 else "transactions"
        return f"dropped {total} pending {noun}: {rules}"
