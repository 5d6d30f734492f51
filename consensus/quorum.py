"""Quorum arithmetic and the validator set as consensus sees it.

For any n validators, f = (n - 1) // 3 faults are tolerated. A quorum is
``mura.chain.block.quorum_size(n)``: the smallest count any two of which share
an honest validator. A weak quorum, f + 1, always holds one honest validator.
The primary of view v is ``validators[v mod n]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mura.chain.block import quorum_size


def max_faulty(validator_count: int) -> int:
    """How many validators may fail (crash or lie) without breaking safety."""
    return (validator_count - 1) // 3


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """The ordered validator public keys, with the counts derived from them."""

    #: Public keys in genesis order; a validator is named by its index here.
    keys: tuple[bytes, ...]
    #: Index by public key (derived).
    indexes: dict[bytes, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a validator set needs at least one validator")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("a validator appears twice in the set")
        object.__setattr__(self, "indexes", {key: index for index, key in enumerate(self.keys)})

    @classmethod
    def of(cls, keys: Sequence[bytes]) -> ValidatorSet:
        return cls(tuple(keys))

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def faulty(self) -> int:
        """f: the most faulty validators tolerated."""
        return max_faulty(len(self.keys))

    @property
    def quorum(self) -> int:
        """Votes that prove a decision: any two such sets share an honest validator."""
        return quorum_size(len(self.keys))

    @property
    def weak_quorum(self) -> int:
        """f + 1: enough senders that at least one is honest."""
        return self.faulty + 1

    def primary(self, view: int) -> int:
        """The index of the validator that proposes in ``view``."""
        return view % len(self.keys)

    def contains(self, index: int) -> bool:
        return 0 <= index < len(self.keys)
