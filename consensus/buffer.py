"""Bounded holding of messages that arrived before their height.

A replica deciding height h keeps signed messages for heights h+1 .. h+window
(after checking their signatures) and verified final blocks for those heights.
Each validator's deliveries may hold at most ``per_sender`` messages and
``bytes_per_sender`` bytes of the blocks they carry (kept unchecked, as they
arrived: checking waits until their height comes), so nobody can fill another
validator's share, not even with copies of its signed messages around forged
bodies; what does not fit is dropped and counted, and the protocol's timers
and catch-up recover it. Each message is kept with the validator that
delivered it, so a refusal when its height comes counts against the right one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from mura.chain.block import Block, MessageBlock
from mura.chain.keys import sha256
from mura.consensus.messages import Commit, FinalBlock, NewView, Prepare, PrePrepare, ViewChange

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


@dataclass(frozen=True, slots=True)
class _Held:
    """A held message, who delivered it, and what it was counted as."""

    message: Held
    origin: int | None
    identity: tuple[str, int, int, int, bytes, bytes]
    size: int

    @property
    def share(self) -> int:
        return self.message.sender if self.origin is None else self.origin


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
        self._messages: list[_Held] = []
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
        """Keep ``message`` (delivered by ``origin``) for later; False when the share of
        the validator that delivered it (its sender, if not known) is full. The share is
        the deliverer's: a block's body is not signed, so copies of an honest validator's
        message with forged bodies must use up the forger's share, not the signer's. A
        copy of a message already held (the network repeats) is not kept twice."""
        identity = _identity(message)
        if identity in self._identities:
            return True
        held = _Held(message, origin, identity, held_size(message))
        share = held.share
        full = self._counts[share] >= self.per_sender
        if full or (self._counts[share] and self._bytes[share] + held.size > self.bytes_per_sender):
            self.dropped += 1
            return False
        self._counts[share] += 1
        self._bytes[share] += held.size
        self._messages.append(held)
        self._identities.add(identity)
        return True

    def renumber(self, now_at: Callable[[int], int | None]) -> None:
        """The validator set changed: each held message's deliverer is now ``now_at`` its
        old place (None: no longer a validator), and the shares are counted again."""
        kept = [replace(held, origin=None if held.origin is None else now_at(held.origin)) for held in self._messages]
        self._messages, self._counts, self._bytes = kept, Counter(), Counter()
        for held in kept:
            self._counts[held.share] += 1
            self._bytes[held.share] += held.size

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
        for position, held in enumerate(self._messages):
            if held.message.height == height:
                del self._messages[position]
                self._forget(held)
                return held.message, held.origin
        return None

    def _forget(self, held: _Held) -> None:
        self._counts[held.share] -= 1
        self._bytes[held.share] -= held.size
        self._identities.discard(held.identity)

    def _drop_below(self, height: int) -> None:
        stale = [held for held in self._messages if held.message.height < height]
        for held in stale:
            self._forget(held)
        if stale:
            self._messages = [held for held in self._messages if held.message.height >= height]
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
