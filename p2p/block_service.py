"""Serving stored final blocks to validators that are behind.

A ``BlockRequest`` is answered in the link task of the peer that sent it, never
on the replica's path, from the store's own bytes of each block and its
certificate (no decoding), within that peer's budget (``BlockServer``). The
replica's ``ServeBlocks`` actions (a peer's VIEW-CHANGE shows it is behind)
take the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from mura.consensus.messages import encode_final_block
from mura.consensus.serving import BlockServer


class FinalBlockSource(Protocol):
    """The store, as serving sees it."""

    @property
    def height(self) -> int: ...

    @property
    def kept_from(self) -> int: ...

    def load_block_bytes(self, height: int) -> bytes | None: ...

    def load_certificate_bytes(self, height: int) -> bytes | None: ...


#: Queues a consensus message's bytes for one peer; False when it could not.
SendBytes = Callable[[bytes, bytes], Awaitable[bool]]


class BlockService:
    """Answers for validators that are behind, within each one's budget."""

    def __init__(self, *, source: FinalBlockSource, send: SendBytes, server: BlockServer) -> None:
        self._source = source
        self._send = send
        self.server = server

    async def serve(self, peer: bytes, start: int, now_ms: int) -> int:
        """Send ``peer`` final blocks from ``start`` on, within its budget (kept by its key,
        whatever its place in the validator set); returns how many went out (0 when the
        request repeats, is out of range or over budget, or starts below what this node keeps)."""
        if start < self._source.kept_from:
            # Joined by state sync: no block below its height here; the peer asks another.
            self.server.refused["not_kept"] += 1
            return 0
        sent = 0
        for _, data in self.server.answer(peer, start, self._source.height, now_ms, self._read):
            if not await self._send(peer, data):
                break
            sent += 1
        return sent

    def _read(self, height: int) -> bytes | None:
        block = self._source.load_block_bytes(height)
        certificate = self._source.load_certificate_bytes(height)
        return None if block is None or certificate is None else encode_final_block(block, certificate)
