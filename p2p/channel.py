"""The encryption of an authenticated link: one ChaCha20-Poly1305 key per
direction, and a frame counter per direction as the nonce.

Every websocket message after the HELLOs is ``seal(frame)``: the frame's
bytes encrypted and authenticated under the sender's directional key, with
the count of messages the sender sealed before it as the nonce. The counter
is not sent: the receiver opens each message under the next count it
expects, so a message that was altered, dropped, repeated, reordered or taken
from another link or direction does not open, and the link ends.

Both keys come from the handshake (see ``mura.p2p.handshake``), fresh for
every connection, so a nonce is never used twice under one key.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mura.chain.errors import Invalid

#: Bytes that sealing adds to a frame (the Poly1305 tag).
SEAL_OVERHEAD = 16
KEY_SIZE = 32
_MAX_COUNTER = 2**64 - 1


class FrameNotAuthentic(Invalid):
    """A message that does not open under the link's key and expected counter:
    altered on the path, replayed, reordered, or not sealed by the peer at all.
    Nothing in it can be attributed to the peer."""

    rule = "frame_not_authentic"


class SecureChannel:
    """Seals outgoing frames and opens incoming ones for one link."""

    __slots__ = ("_opener", "_received", "_sealer", "_sent")

    def __init__(self, *, send_key: bytes, receive_key: bytes) -> None:
        if len(send_key) != KEY_SIZE or len(receive_key) != KEY_SIZE or send_key == receive_key:
            raise ValueError("a channel needs two distinct 32-byte keys")
        self._sealer = ChaCha20Poly1305(send_key)
        self._opener = ChaCha20Poly1305(receive_key)
        self._sent = 0
        self._received = 0

    @property
    def sealed(self) -> int:
        """Messages sealed so far."""
        return self._sent

    @property
    def opened(self) -> int:
        """Messages opened so far."""
        return self._received

    def seal(self, frame: bytes) -> bytes:
        """The wire bytes of ``frame``: encrypted, with its tag; call in sending order."""
        if self._sent == _MAX_COUNTER:
            raise RuntimeError("a link may seal at most 2**64 - 1 frames")
        sealed = self._sealer.encrypt(_nonce(self._sent), frame, None)
        self._sent += 1
        return sealed

    def open(self, message: bytes) -> bytes:
        """The frame inside ``message``; ``FrameNotAuthentic`` if it is not the next
        message the peer sealed on this link (the link must then end)."""
        if len(message) < SEAL_OVERHEAD:
            raise FrameNotAuthentic(f"a message of {len(message)} bytes is shorter than a seal")
        try:
            frame = self._opener.decrypt(_nonce(self._received), message, None)
        except InvalidTag:
            raise FrameNotAuthentic(
                f"message {self._received} from the peer does not open under the link key"
            ) from None
        self._received += 1
        return frame


def _nonce(counter: int) -> bytes:
    """96 bits: four zero bytes, then the counter big-endian."""
    return counter.to_bytes(12, "big")
