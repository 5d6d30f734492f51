"""Bounded holding of messages that arrived before their height.

A replica deciding height h keeps signed messages for heights h+1 .. h+window
(after checking their signatures, so nobody can fill another validator's
share) and verified final blocks for those heights. Each sender may hold at
most ``per_sender`` messages; what does not fit is dropped and counted, and
the protocol's timers and catch-up recover it.
"""

from __future__ import annotations

from collections import Counter

from mura.consensus.messages import Commit, FinalBlock, NewView, PrePrepare, Prepare, ViewChange

Held = PrePrepare | Prepare | Commit | ViewChange | NewView


class FutureBuffer:
    """Messages and final blocks for later heights, bounded per sender."""

    def __init__(self, *, per_sender: int, heights: int, final_block_bytes: int = 64 * 1024 * 1024) -> None:
        self.per_sender = per_sender
        #: Most final blocks held.
        self.heights = heights
        #: Most transaction bytes in the final blocks held (beyond one block).
        self.final_block_bytes = final_block_bytes
        self._messages: list[Held] = []
        self._counts: Counter[int] = Counter()
        self._final_blocks: dict[int, FinalBlock] = {}
        self._final_bytes = 0
        self._identities: set[tuple[str, int, int, int, bytes]] = set()
        #: Messages refused because their sender's share was full.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._messages) + len(self._final_blocks)

    def hold(self, message: Held) -> bool:
        """Keep ``message`` for later; False when its sender's share is full. A copy of
        a message already held (the network repeats) is not kept twice, so repeats
        cannot use up an honest sender's share."""
        identity = _identity(message)
        if identity in self._identities:
            return True
        if self._counts[message.sender] >= self.per_sender:
            self.dropped += 1
            return False
        self._counts[message.sender] += 1
        self._messages.append(message)
        self._identities.add(identity)
        return True

    def hold_final_block(self, final: FinalBlock) -> None:
        """Keep one verified final block per height (more would prove the same thing),
        within ``heights`` blocks and ``final_block_bytes``."""
        size = final.block.transaction_bytes
        if final.height in self._final_blocks or len(self._final_blocks) >= self.heights:
            return
        if self._final_blocks and self._final_bytes + size > self.final_block_bytes:
            return
        self._final_blocks[final.height] = final
        self._final_bytes += size

    def has_final_block(self, height: int) -> bool:
        return height in self._final_blocks

    def take_final_block(self, height: int) -> FinalBlock | None:
        final = self._final_blocks.pop(height, None)
        if final is not None:
            self._final_bytes -= final.block.transaction_bytes
        return final

    def take(self, height: int) -> Held | None:
        """The oldest held message for ``height``; messages for lower heights are dropped."""
        self._drop_below(height)
        for position, message in enumerate(self._messages):
            if message.height == height:
                del self._messages[position]
                self._counts[message.sender] -= 1
                self._identities.discard(_identity(message))
                return message
        return None

    def _drop_below(self, height: int) -> None:
        stale = [message for message in self._messages if message.height < height]
        for message in stale:
            self._counts[message.sender] -= 1
            self._identities.discard(_identity(message))
        if stale:
            self._messages = [message for message in self._messages if message.height >= height]
        for old in [h for h in self._final_blocks if h < height]:
            self._final_bytes -= self._final_blocks.pop(old).block.transaction_bytes



def _identity(message: Held) -> tuple[str, int, int, int, bytes]:
    """What tells two held messages apart: a signed message by its signature (a
    NEW-VIEW, which has none of its own, by its proposal's)."""
    signature = message.pre_prepare.signature if isinstance(message, NewView) else message.signature
    return type(message).__name__, message.sender, message.view, message.height, signature
