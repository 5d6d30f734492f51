"""The handshake that authenticates a link, run by both ends the same way.

Right after the websocket opens each side sends HELLO
``[protocol_version, chain_id, genesis_hash, public_key, nonce]`` and reads the
peer's. It checks that both run the same chain (id and genesis hash) and that
the peer's key is admitted and is not its own. Then each side sends PROOF: its
Ed25519 signature over a domain-tagged encoding of the chain id, the genesis
hash, the *peer's* fresh nonce and both public keys. A proof therefore only
works for this one connection and cannot be replayed to another node or chain.

Every refusal is a ``HandshakeFailed`` whose message says why; the caller logs
it with the remote address and closes the connection.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp

from mura.chain import codec
from mura.chain.errors import DecodeError, Invalid
from mura.chain.keys import HASH_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, verify_signature
from mura.chain.transaction import MAX_CHAIN_ID_LENGTH
from mura.p2p.frames import decode_frame, encode_frame

PROTOCOL_VERSION = 1
NONCE_SIZE = 32
HELLO = "hello"
PROOF = "proof"
#: Handshake frames are tiny; anything bigger is refused before decoding.
MAX_HANDSHAKE_FRAME_SIZE = 1024
_PROOF_DOMAIN = "mura/p2p/handshake-proof/v1"
_T = TypeVar("_T")


class HandshakeFailed(Invalid):
    """The peer did not complete a valid handshake; the message says which check failed."""

    rule = "handshake_failed"


class WebSocket(Protocol):
    """What a link needs of a websocket; aiohttp's client and server ends both fit."""

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None: ...

    async def receive(self, timeout: float | None = None) -> Any: ...

    async def close(self, *, code: int = ..., message: bytes = b"") -> bool: ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this node is and whom it lets in."""

    #: This node's key; its public half is its peer identity.
    key: SigningKey
    #: The network's name, as in genesis.
    chain_id: str
    #: Hash of the genesis block: two nodes with different ones run different chains.
    genesis_hash: bytes
    #: Public keys allowed to connect: the validators from genesis plus configured observers.
    admitted: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message each side sends."""

    #: ``PROTOCOL_VERSION`` of the sender; both sides must speak the same one.
    protocol_version: int
    #: The sender's chain id.
    chain_id: str
    #: The sender's genesis hash.
    genesis_hash: bytes
    #: The sender's node key, which it proves to hold in PROOF.
    public_key: bytes
    #: Fresh random bytes the other side must sign over.
    nonce: bytes

    def encode(self) -> bytes:
        fields = [self.protocol_version, self.chain_id, self.genesis_hash, self.public_key, self.nonce]
        return encode_frame(HELLO, fields, max_size=MAX_HANDSHAKE_FRAME_SIZE)

    @classmethod
    def decode(cls, payload: Any) -> Hello:
        version, chain_id, genesis_hash, public_key, nonce = codec.read_fields(payload, "hello", 5)
        return cls(
            codec.read_int(version, "hello.protocol_version"),
            codec.read_str(chain_id, "hello.chain_id", max_length=MAX_CHAIN_ID_LENGTH),
            codec.read_bytes(genesis_hash, "hello.genesis_hash", length=HASH_SIZE),
            codec.read_bytes(public_key, "hello.public_key", length=PUBLIC_KEY_SIZE),
            codec.read_bytes(nonce, "hello.nonce", length=NONCE_SIZE),
        )


def proof_message(*, chain_id: str, genesis_hash: bytes, nonce: bytes, signer: bytes, verifier: bytes) -> bytes:
    """What ``signer`` signs to prove its key to ``verifier``, who chose ``nonce``."""
    return codec.encode([_PROOF_DOMAIN, chain_id, genesis_hash, nonce, signer, verifier])


async def perform_handshake(
    websocket: WebSocket,
    identity: Identity,
    *,
    timeout: float,
    expected_public_key: bytes | None = None,
) -> bytes:
    """Authenticate the peer at the other end of ``websocket`` and return its public key.

    ``expected_public_key`` is set by the dialing side, which knows whom it
    meant to reach. Raises ``HandshakeFailed``; never any other error for
    anything the peer does.
    """
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(websocket, identity, expected_public_key)
    except TimeoutError:
        raise HandshakeFailed(f"no complete handshake within {timeout:g} s") from None
    except (ConnectionError, aiohttp.ClientError) as error:
        raise HandshakeFailed(f"connection failed during the handshake: {error}") from None


async def _exchange(websocket: WebSocket, identity: Identity, expected_public_key: bytes | None) -> bytes:
    """HELLO both ways, check the peer's, PROOF both ways, check the peer's."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    own = Hello(PROTOCOL_VERSION, identity.chain_id, identity.genesis_hash, identity.key.public_key, nonce)
    await websocket.send_bytes(own.encode())
    hello = await _receive(websocket, HELLO, Hello.decode)
    check_hello(hello, identity, expected_public_key)
    signature = identity.key.sign(_proof_for(identity, nonce=hello.nonce, signer=own, verifier=hello))
    await websocket.send_bytes(encode_frame(PROOF, signature, max_size=MAX_HANDSHAKE_FRAME_SIZE))
    peer_signature = await _receive(websocket, PROOF, _decode_proof)
    expected = _proof_for(identity, nonce=nonce, signer=hello, verifier=own)
    if not verify_signature(hello.public_key, peer_signature, expected):
        raise HandshakeFailed(f"the proof signature of {hello.public_key.hex()[:16]} does not verify")
    return hello.public_key


def _proof_for(identity: Identity, *, nonce: bytes, signer: Hello, verifier: Hello) -> bytes:
    return proof_message(
        chain_id=identity.chain_id,
        genesis_hash=identity.genesis_hash,
        nonce=nonce,
        signer=signer.public_key,
        verifier=verifier.public_key,
    )


def check_hello(hello: Hello, identity: Identity, expected_public_key: bytes | None) -> None:
    """The peer speaks our protocol on our chain, and its key is one we let in."""
    if hello.protocol_version != PROTOCOL_VERSION:
        raise HandshakeFailed(f"protocol version {hello.protocol_version}, this node speaks {PROTOCOL_VERSION}")
    if hello.chain_id != identity.chain_id:
        raise HandshakeFailed(f"wrong chain id {hello.chain_id!r}, this node runs {identity.chain_id!r}")
    if hello.genesis_hash != identity.genesis_hash:
        raise HandshakeFailed(f"wrong genesis hash {hello.genesis_hash.hex()[:16]}")
    key = hello.public_key.hex()[:16]
    if hello.public_key == identity.key.public_key:
        raise HandshakeFailed("the peer presents this node's own key (a loop or a copied key)")
    if expected_public_key is not None and hello.public_key != expected_public_key:
        raise HandshakeFailed(f"expected peer {expected_public_key.hex()[:16]}, reached {key}")
    if hello.public_key not in identity.admitted:
        raise HandshakeFailed(f"key {key} is not admitted (neither a validator nor a configured observer)")


def _decode_proof(payload: Any) -> bytes:
    return codec.read_bytes(payload, "proof", length=SIGNATURE_SIZE)


async def _receive(websocket: WebSocket, kind: str, decode: Callable[[Any], _T]) -> _T:
    """The next message, which must be a well-formed ``kind`` handshake frame."""
    message = await websocket.receive()
    if message.type is aiohttp.WSMsgType.BINARY:
        try:
            frame = decode_frame(message.data, max_size=MAX_HANDSHAKE_FRAME_SIZE)
            if frame.kind != kind:
                raise DecodeError(f"expected {kind}, got a {frame.kind!r} frame")
            return decode(frame.payload)
        except DecodeError as error:
            raise HandshakeFailed(f"malformed {kind}: {error}") from None
    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        detail = f": {message.extra}" if message.extra else ""
        raise HandshakeFailed(f"the connection closed while waiting for {kind}{detail}")
    if message.type is aiohttp.WSMsgType.ERROR:
        raise HandshakeFailed(f"connection error while waiting for {kind}: {message.data}")
    raise HandshakeFailed(f"expected a binary {kind} message, got {message.type.name}")
