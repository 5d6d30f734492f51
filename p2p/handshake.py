"""The handshake that authenticates a link and keys its encryption.

A SIGMA ("sign-and-MAC") exchange over fresh X25519 keys, in the order the
dialer (who opened the connection) and the listener (who accepted it) speak::

    dialer  -> HELLO   [protocol_version, chain_id, genesis_hash, ephemeral_key]
    listener-> HELLO   (sent only after the dialer's HELLO checked out)
    dialer  -> AUTH    sealed: [node_key, signature]
    listener-> AUTH    sealed, sent only after the dialer's AUTH verified
    dialer  -> READY   sealed, empty

The *transcript* is the SHA-256 of both HELLOs' exact bytes, dialer's first.
Each side derives the X25519 shared secret of the two ephemeral keys and from
it, with HKDF-SHA256 salted by the transcript, one ChaCha20-Poly1305 key per
direction (``mura.p2p.channel``). AUTH carries the sender's Ed25519 node key
and its signature over a domain tag, the chain id, the genesis hash, the
transcript, the sender's *role* and both node keys (the dialer names the key
it means to reach). It is sealed under the sender's directional key, which
binds the proven identity to this connection's keys: only someone who took
part in this exchange of ephemeral keys can produce or read it.

Each side checks that the peer speaks this protocol on this chain, that the
AUTH opens, that the key is admitted and is not its own, that the dialer
reached the key it meant, and that the signature verifies for the peer's role
(so a listener's AUTH cannot be reflected as a dialer's). A relay that only
forwards bytes gains nothing (it cannot open or alter a frame); one that
substitutes its own ephemeral keys gets signatures over a transcript the
other honest side never sees.

The order protects memory as well as identity: a listener signs and sends
nothing of value until the dialer is proven, and neither side sends anything
large until the other has seen its proof and opened its ``ReadGate``
(``on_authenticated``): the listener proves itself only once it opened its
gate, and waits for READY, which the dialer sends once it opened its own.

Every refusal is a ``HandshakeFailed`` whose message says why and whose
``kind`` groups it for rate-limited logging; the caller closes the connection
with its ``told`` reason, which repeats only what the peer sent or proved: a
stranger learns neither this node's chain id nor its genesis hash nor its
protocol version from a refusal. A listener refuses a proven key it will not
take now (a banned one) as soon as its proof verifies, before it opens its
read gate or signs anything (``check_admissible``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mura.chain import codec
from mura.chain.errors import DecodeError, Invalid
from mura.chain.keys import HASH_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, sha256, verify_signature
from mura.chain.transaction import MAX_CHAIN_ID_LENGTH
from mura.p2p.channel import KEY_SIZE, FrameNotAuthentic, SecureChannel
from mura.p2p.frames import decode_frame, encode_frame

PROTOCOL_VERSION = 2
HELLO = "hello"
AUTH = "auth"
READY = "ready"
#: Each handshake message is far smaller; anything bigger is refused before decoding.
MAX_HANDSHAKE_FRAME_SIZE = 1024
#: What a peer may send in all before it is proven (see ``mura.p2p.read_gate``): the
#: HELLO and AUTH it needs, with room to spare for a ping or a close.
PRE_AUTHENTICATION_BYTES = 4 * MAX_HANDSHAKE_FRAME_SIZE
EPHEMERAL_KEY_SIZE = 32

Role = Literal["dialer", "listener"]
_TRANSCRIPT_DOMAIN = "mura/p2p/handshake-transcript/v2"
_KEY_DOMAIN = b"mura/p2p/link-keys/v2"
_AUTH_DOMAIN = "mura/p2p/handshake-auth/v2"
_T = TypeVar("_T")


class HandshakeFailed(Invalid):
    """The peer did not complete a valid handshake; the message says which check failed,
    for this node's log, and ``told`` is what the peer is told."""

    rule = "handshake_failed"

    def __init__(self, message: str, *, kind: str, told: str | None = None) -> None:
        super().__init__(message, kind=kind)
        #: A short fixed name of the check that failed (``timeout``, ``not admitted``, ...).
        self.kind = kind
        #: The close reason sent to the peer: nothing it did not send or prove itself (never
        #: this node's chain id, genesis hash or protocol version); the message when None.
        self.told = message if told is None else told


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
    """The first message each side sends, in the clear."""

    #: ``PROTOCOL_VERSION`` of the sender; both sides must speak the same one.
    protocol_version: int
    #: The sender's chain id.
    chain_id: str
    #: The sender's genesis hash.
    genesis_hash: bytes
    #: A fresh X25519 public key, used for this connection only.
    ephemeral_key: bytes

    def encode(self) -> bytes:
        fields = [self.protocol_version, self.chain_id, self.genesis_hash, self.ephemeral_key]
        return encode_frame(HELLO, fields, max_size=MAX_HANDSHAKE_FRAME_SIZE)

    @classmethod
    def decode(cls, payload: Any) -> Hello:
        """The version is read first, so a peer on another version is told so, not "malformed"."""
        fields = codec.read_list(payload, "hello", max_length=16)
        version = codec.read_int(fields[0] if fields else None, "hello.protocol_version")
        if version != PROTOCOL_VERSION:
            raise HandshakeFailed(f"protocol version {version}, this node speaks {PROTOCOL_VERSION}", kind="version",
                                  told=f"protocol version {version} is not spoken here")
        _, chain_id, genesis_hash, ephemeral_key = codec.read_fields(fields, "hello", 4)
        return cls(
            version,
            codec.read_str(chain_id, "hello.chain_id", max_length=MAX_CHAIN_ID_LENGTH),
            codec.read_bytes(genesis_hash, "hello.genesis_hash", length=HASH_SIZE),
            codec.read_bytes(ephemeral_key, "hello.ephemeral_key", length=EPHEMERAL_KEY_SIZE),
        )


@dataclass(frozen=True, slots=True)
class Auth:
    """A side's proof of its node key, sent sealed under its directional key."""

    #: The sender's Ed25519 node key.
    public_key: bytes
    #: Its signature over ``auth_message`` for its role.
    signature: bytes

    def encode(self) -> bytes:
        return encode_frame(AUTH, [self.public_key, self.signature], max_size=MAX_HANDSHAKE_FRAME_SIZE)

    @classmethod
    def decode(cls, payload: Any) -> Auth:
        public_key, signature = codec.read_fields(payload, "auth", 2)
        return cls(
            codec.read_bytes(public_key, "auth.public_key", length=PUBLIC_KEY_SIZE),
            codec.read_bytes(signature, "auth.signature", length=SIGNATURE_SIZE),
        )


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A completed handshake."""

    #: The peer's proven node key.
    peer_public_key: bytes
    #: The link's encryption, with both counters past the handshake's messages.
    channel: SecureChannel


def transcript_hash(dialer_hello: bytes, listener_hello: bytes) -> bytes:
    """The hash both sides sign and key from: both HELLOs as sent, dialer's first."""
    return sha256(codec.encode([_TRANSCRIPT_DOMAIN, dialer_hello, listener_hello]))


def auth_message(
    *, chain_id: str, genesis_hash: bytes, transcript: bytes, role: Role, signer: bytes, other: bytes
) -> bytes:
    """What ``signer``, speaking as ``role``, signs to prove its key to ``other`` on this connection."""
    return codec.encode([_AUTH_DOMAIN, chain_id, genesis_hash, transcript, role, signer, other])


def derive_channel(
    ephemeral: X25519PrivateKey, peer_ephemeral_key: bytes, transcript: bytes, role: Role
) -> SecureChannel:
    """The link's two directional keys, from the shared secret salted by the transcript."""
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(peer_ephemeral_key))
    except ValueError:  # a low-order point: the "shared" secret would be all zeros
        raise HandshakeFailed("the peer's ephemeral key is not usable", kind="malformed") from None
    keys = HKDF(algorithm=hashes.SHA256(), length=2 * KEY_SIZE, salt=transcript, info=_KEY_DOMAIN).derive(shared)
    dialer_to_listener, listener_to_dialer = keys[:KEY_SIZE], keys[KEY_SIZE:]
    if role == "dialer":
        return SecureChannel(send_key=dialer_to_listener, receive_key=listener_to_dialer)
    return SecureChannel(send_key=listener_to_dialer, receive_key=dialer_to_listener)


# --- the two sides ----------------------------------------------------------------


async def handshake_as_dialer(
    websocket: WebSocket,
    identity: Identity,
    *,
    expected_public_key: bytes,
    timeout: float,
    on_authenticated: Callable[[], None] = lambda: None,
) -> Authenticated:
    """Authenticate the listener at the other end of ``websocket``, which must prove
    ``expected_public_key``. Raises ``HandshakeFailed``, never anything else for what
    the peer does."""
    return await _within(timeout, _dial(websocket, identity, expected_public_key, on_authenticated))


async def handshake_as_listener(
    websocket: WebSocket,
    identity: Identity,
    *,
    hello_timeout: float,
    timeout: float,
    on_authenticated: Callable[[], None] = lambda: None,
    check_admissible: Callable[[bytes], None] = lambda key: None,
) -> Authenticated:
    """Authenticate the dialer at the other end of ``websocket``: its HELLO must come
    within ``hello_timeout``, the whole handshake within ``timeout``.

    ``check_admissible(key)`` runs as soon as the dialer's proof of ``key`` verified,
    before this side does anything more (open its read gate, sign, send): it raises
    ``HandshakeFailed`` for a proven key this node refuses for now, e.g. a banned one."""
    return await _within(timeout, _listen(websocket, identity, hello_timeout, on_authenticated, check_admissible))


async def _within(timeout: float, exchange: Any) -> Authenticated:
    try:
        async with asyncio.timeout(timeout):
            result: Authenticated = await exchange
            return result
    except TimeoutError:
        raise HandshakeFailed(f"no complete handshake within {timeout:g} s", kind="timeout") from None
    except (ConnectionError, aiohttp.ClientError) as error:
        raise HandshakeFailed(f"connection failed during the handshake: {error}", kind="closed") from None


async def _dial(
    websocket: WebSocket, identity: Identity, expected: bytes, on_authenticated: Callable[[], None]
) -> Authenticated:
    ephemeral = X25519PrivateKey.generate()
    own_hello = _hello(identity, ephemeral)
    await websocket.send_bytes(own_hello)
    peer_hello_bytes, peer_hello = await _receive_hello(websocket, timeout=None)
    check_hello(peer_hello, identity)
    transcript = transcript_hash(own_hello, peer_hello_bytes)
    channel = derive_channel(ephemeral, peer_hello.ephemeral_key, transcript, "dialer")
    await websocket.send_bytes(channel.seal(_auth(identity, transcript, "dialer", other=expected).encode()))
    auth = await _receive_sealed(websocket, channel, AUTH, Auth.decode)
    if auth.public_key != expected:
        raise HandshakeFailed(
            f"expected peer {expected.hex()[:16]}, reached {auth.public_key.hex()[:16]}", kind="unexpected key",
            told="not the peer this node dialed",
        )
    check_auth(auth, identity, transcript, role="listener", other=identity.key.public_key)
    on_authenticated()
    await websocket.send_bytes(channel.seal(encode_frame(READY, b"")))
    return Authenticated(auth.public_key, channel)


async def _listen(
    websocket: WebSocket,
    identity: Identity,
    hello_timeout: float,
    on_authenticated: Callable[[], None],
    check_admissible: Callable[[bytes], None],
) -> Authenticated:
    peer_hello_bytes, peer_hello = await _receive_hello(websocket, timeout=hello_timeout)
    check_hello(peer_hello, identity)
    ephemeral = X25519PrivateKey.generate()
    own_hello = _hello(identity, ephemeral)
    await websocket.send_bytes(own_hello)
    transcript = transcript_hash(peer_hello_bytes, own_hello)
    channel = derive_channel(ephemeral, peer_hello.ephemeral_key, transcript, "listener")
    auth = await _receive_sealed(websocket, channel, AUTH, Auth.decode)
    check_peer_key(auth.public_key, identity)
    check_auth(auth, identity, transcript, role="dialer", other=identity.key.public_key)
    check_admissible(auth.public_key)
    on_authenticated()
    await websocket.send_bytes(channel.seal(_auth(identity, transcript, "listener", other=auth.public_key).encode()))
    await _receive_sealed(websocket, channel, READY, _decode_ready)
    return Authenticated(auth.public_key, channel)


def _hello(identity: Identity, ephemeral: X25519PrivateKey) -> bytes:
    public = ephemeral.public_key().public_bytes_raw()
    return Hello(PROTOCOL_VERSION, identity.chain_id, identity.genesis_hash, public).encode()


def _auth(identity: Identity, transcript: bytes, role: Role, *, other: bytes) -> Auth:
    own = identity.key.public_key
    message = auth_message(
        chain_id=identity.chain_id,
        genesis_hash=identity.genesis_hash,
        transcript=transcript,
        role=role,
        signer=own,
        other=other,
    )
    return Auth(own, identity.key.sign(message))


# --- checks -------------------------------------------------------------------------


#: What a peer on another chain is told: the same words for either field, so that a
#: stranger cannot find the chain id by trying names.
OTHER_CHAIN = "wrong chain id or genesis hash"


def check_hello(hello: Hello, identity: Identity) -> None:
    """The peer runs our chain (its protocol version was checked while decoding)."""
    if hello.chain_id != identity.chain_id:
        raise HandshakeFailed(f"wrong chain id {hello.chain_id!r}, this node runs {identity.chain_id!r}", kind="chain",
                              told=OTHER_CHAIN)
    if hello.genesis_hash != identity.genesis_hash:
        raise HandshakeFailed(
            f"wrong genesis hash {hello.genesis_hash.hex()[:16]}, this node's is {identity.genesis_hash.hex()[:16]}",
            kind="chain", told=OTHER_CHAIN)


def check_peer_key(public_key: bytes, identity: Identity) -> None:
    """A key this node lets in, and not its own."""
    if public_key == identity.key.public_key:
        raise HandshakeFailed("the peer presents this node's own key (a loop or a copied key)", kind="own key")
    if public_key not in identity.admitted:
        raise HandshakeFailed(
            f"key {public_key.hex()[:16]} is not admitted (neither a validator nor a configured observer)",
            kind="not admitted",
        )


def check_auth(auth: Auth, identity: Identity, transcript: bytes, *, role: Role, other: bytes) -> None:
    """``auth`` is ``auth.public_key``'s signature, as ``role``, over this connection's transcript."""
    message = auth_message(
        chain_id=identity.chain_id,
        genesis_hash=identity.genesis_hash,
        transcript=transcript,
        role=role,
        signer=auth.public_key,
        other=other,
    )
    if not verify_signature(auth.public_key, auth.signature, message):
        hint = " (or it meant to reach another node)" if role == "dialer" else ""
        raise HandshakeFailed(
            f"the {role} signature of {auth.public_key.hex()[:16]} does not verify for this connection{hint}",
            kind="signature",
        )


# --- reading --------------------------------------------------------------------------


def _decode_ready(payload: Any) -> None:
    codec.read_bytes(payload, "ready", max_length=0)  # raises unless empty


async def _receive_hello(websocket: WebSocket, *, timeout: float | None) -> tuple[bytes, Hello]:
    """The peer's HELLO, as its exact bytes (for the transcript) and decoded."""
    try:
        async with asyncio.timeout(timeout):
            data = await _receive_binary(websocket, HELLO)
    except TimeoutError:
        raise HandshakeFailed(f"no HELLO within {timeout:g} s", kind="timeout") from None
    return data, _decode(data, HELLO, Hello.decode)


async def _receive_sealed(websocket: WebSocket, channel: SecureChannel, kind: str, decode: Callable[[Any], _T]) -> _T:
    data = await _receive_binary(websocket, kind)
    try:
        frame = channel.open(data)
    except FrameNotAuthentic:
        raise HandshakeFailed(
            f"the peer's {kind} does not open under this connection's key", kind="not authentic"
        ) from None
    return _decode(frame, kind, decode)


def _decode(data: bytes, kind: str, decode: Callable[[Any], _T]) -> _T:
    try:
        frame = decode_frame(data, max_size=MAX_HANDSHAKE_FRAME_SIZE)
        if frame.kind != kind:
            raise DecodeError(f"expected {kind}, got a {frame.kind!r} frame")
        return decode(frame.payload)
    except DecodeError as error:
        raise HandshakeFailed(f"malformed {kind}: {error}", kind="malformed") from None


async def _receive_binary(websocket: WebSocket, kind: str) -> bytes:
    """The next websocket message, which must be binary."""
    message = await websocket.receive()
    if message.type is aiohttp.WSMsgType.BINARY:
        data: bytes = message.data
        return data
    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        detail = f": {message.extra}" if message.extra else ""
        raise HandshakeFailed(f"the connection closed while waiting for {kind}{detail}", kind="closed")
    if message.type is aiohttp.WSMsgType.ERROR:
        error = message.data
        if getattr(error, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            raise HandshakeFailed(f"oversized message while waiting for {kind}: {error}", kind="oversized")
        raise HandshakeFailed(f"connection error while waiting for {kind}: {error}", kind="closed")
    raise HandshakeFailed(f"expected a binary {kind} message, got {message.type.name}", kind="malformed")
