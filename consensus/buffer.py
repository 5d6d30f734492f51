"""Bounded holding of messages that arrived before their height.

A replica deciding height h keeps signed messages for heights h+1 .. h+window
(after checking their signatures, so nobody can fill another validator's
share) and verified final blocks for those heights. Each sender may hold at
most ``per_sender`` messages and ``bytes_per_sender`` bytes of the blocks they
carry (kept unchecked, as they arrived: checking waits until their height
comes); what does not fit is dropped and counted, and the protocol's timers
and catch-up recover it. Each message is kept with the validator that
delivered it, so a refusal when its height comes counts against the right one.
"""

from __future__ import annotations

from collections import Counter

from mura.chain.block import Block, MessageBlock
from mura.chain.keys import sha256
from mura.consensus.messages import Commit, FinalBlock, NewView, PrePrepare, Prepare, ViewChange

Held = PrePrepare | Prepare | Commit | ViewChange | NewView
#: What a held message costs beyond the block it carries.
_MESSAGE_BYTES = 256


def _carried_block(message: Held) -> MessageBlock | None:
    if isinstance(message, PrePrepare):
        return message.block
    if isinstance(message, NewView):
        return message.pre_prepare.block
    if isinstance(message, ViewChange):
        return message.prepared_block
    return None


def held_size(message: Held) -> int:
    """The bytes a held message takes: the block it carries, if any, and a little more."""
    block = _carried_block(message)
    return _MESSAGE_BYTES + (0 if block is None else block.transaction_bytes)


class FutureBuffer:
    """Messages and final blocks for later heights, bounded per sender."""

    def __init__(
        self,
        *,
        per_sender: int,
        heights: int,
        bytes_per_sender: int = 16 * 1024 * 1024,
        final_block_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.per_sender = per_sender
        #: Most bytes of held messages per sender (beyond one message).
        self.bytes_per_sender = bytes_per_sender
        #: Most final blocks held.
        self.heights = heights
        #: Most transaction bytes in the final blocks held (beyond one block).
        self.final_block_bytes = final_block_bytes
        self._messages: list[tuple[Held, int | None]] = []
        self._counts: Counter[int] = Counter()
        self._bytes: Counter[int] = Counter()
        self._final_blocks: dict[int, FinalBlock] = {}
        self._final_bytes = 0
        self._identities: set[tuple[str, int, int, int, bytes, bytes]] = set()
        #: Messages refused because their sender's share was full.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._messages) + len(self._final_blocks)

    def hold(self, message: Held, origin: int | None = None) -> bool:
        """Keep ``message`` (delivered by ``origin``) for later; False when its sender's
        share is full. A copy of a message already held (the network repeats) is not
        kept twice, so repeats cannot use up an honest sender's share."""
        identity = _identity(message)
        if identity in self._identities:
            return True
        sender, size = message.sender, held_size(message)
        full = self._counts[sender] >= self.per_sender
        if full or (self._counts[sender] and self._bytes[sender] + size > self.bytes_per_sender):
            self.dropped += 1
            return False
        self._counts[sender] += 1
        self._bytes[sender] += size
        self._messages.append((message, origin))
        self._identities.add(identity)
        return True

    def hold_final_block(self, final: FinalBlock) -> None:
        """Keep one verified final block per height (more would prove the same thing),
        within ``heights`` blocks and ``final_block_bytes``. Its certificate must be
        verified and its body checked: the first one kept is the one used."""
        if not isinstance(final.block, Block) or not final.block.body_checked:
            raise ValueError("a final block is held once its body is checked")
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

    def take(self, height: int) -> tuple[Held, int | None] | None:
        """The oldest held message for ``height`` with who delivered it; messages for
        lower heights are dropped."""
        self._drop_below(height)
        for position, (message, origin) in enumerate(self._messages):
            if message.height == height:
                del self._messages[position]
                self._forget(message)
                return message, origin
        return None

    def _forget(self, message: Held) -> None:
        self._counts[message.sender] -= 1
        self._bytes[message.sender] -= held_size(message)
        self._identities.discard(_identity(message))

    def _drop_below(self, height: int) -> None:
        stale = [message for message, _ in self._messages if message.height < height]
        for message in stale:
            self._forget(message)
        if stale:
            self._messages = [(message, origin) for message, origin in self._messages if message.height >= height]
        for old in [h for h in self._final_blocks if h < height]:
            self._final_bytes -= self._final_blocks.pop(old).block.transaction_bytes



def _identity(message: Held) -> tuple[str, int, int, int, bytes, bytes]:
    """What tells two held messages apart: a signed message by its signature (a
    NEW-VIEW, which has none of its own, by its proposal's) and by the bytes of the
    block it carries, which no signature covers: a copy with a forged body must not
    pass for the genuine one and push it out."""
    signature = message.pre_prepare.signature if isinstance(message, NewView) else message.signature
    block = _carried_block(message)
    body = b"" if block is None else sha256(block.encode())
    return type(message).__name__, message.sender, message.view, message.height, signature, body
