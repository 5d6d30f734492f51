"""Tests for p2p/handshake.py: HELLO and AUTH checks, the key schedule, and
refusals by a real node of raw clients that speak the protocol wrongly."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mura.chain.errors import DecodeError
from mura.p2p.channel import FrameNotAuthentic
from mura.p2p.client import open_link
from mura.p2p.frames import decode_frame, encode_frame
from mura.p2p.handshake import (
    OTHER_CHAIN,
    PROTOCOL_VERSION,
    Auth,
    HandshakeFailed,
    Hello,
    Role,
    auth_message,
    check_auth,
    check_hello,
    check_peer_key,
    derive_channel,
    transcript_hash,
)

from .conftest import (
    CHAIN_ID,
    GENESIS_HASH,
    HOST,
    Cluster,
    free_port,
    identity,
    key_named,
    limits,
    link_as,
    next_close,
    raw_websocket,
    wait_for,
)

IDENTITY = identity("a", admitted="abc")


def hello(**changes: Any) -> Hello:
    """A HELLO on the test chain with a fresh ephemeral key, with ``changes`` applied."""
    ephemeral = X25519PrivateKey.generate().public_key().public_bytes_raw()
    return replace(Hello(PROTOCOL_VERSION, CHAIN_ID, GENESIS_HASH, ephemeral), **changes)


def test_hello_round_trip_and_invalid_fields() -> None:
    sent = hello()
    assert Hello.decode(decode_frame(sent.encode()).payload) == sent
    with pytest.raises(DecodeError, match=r"hello\.ephemeral_key"):
        Hello.decode([PROTOCOL_VERSION, CHAIN_ID, GENESIS_HASH, b"short"])
    with pytest.raises(HandshakeFailed, match="protocol version 1, this node speaks 2"):
        Hello.decode([1, CHAIN_ID, GENESIS_HASH, key_named("b").public_key, bytes(32)])  # a version-1 HELLO


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"chain_id": "other-chain"}, "wrong chain id"), ({"genesis_hash": bytes(32)}, "wrong genesis hash")],
)
def test_invalid_hello(changes: dict[str, Any], reason: str) -> None:
    check_hello(hello(), IDENTITY)
    with pytest.raises(HandshakeFailed, match=reason):
        check_hello(hello(**changes), IDENTITY)


@pytest.mark.parametrize(("name", "reason"), [("a", "own key"), ("mallory", "not admitted")])
def test_invalid_peer_key(name: str, reason: str) -> None:
    check_peer_key(key_named("b").public_key, IDENTITY)
    with pytest.raises(HandshakeFailed, match=reason):
        check_peer_key(key_named(name).public_key, IDENTITY)


def test_auth_message_binds_chain_transcript_role_and_both_keys() -> None:
    base: dict[str, Any] = dict(chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, transcript=bytes(32), role="dialer",
                                signer=b"s" * 32, other=b"o" * 32)
    message = auth_message(**base)
    for field, other in [("chain_id", "other"), ("genesis_hash", b"\x01" * 32), ("transcript", b"\x01" * 32),
                         ("role", "listener"), ("signer", b"o" * 32), ("other", b"s" * 32)]:
        assert auth_message(**{**base, field: other}) != message


def signed_auth(name: str, transcript: bytes, *, role: Role, other: str) -> Auth:
    key = key_named(name)
    message = auth_message(chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, transcript=transcript, role=role,
                           signer=key.public_key, other=key_named(other).public_key)
    return Auth(key.public_key, key.sign(message))


def test_an_auth_verifies_only_for_its_role_transcript_and_verifier() -> None:
    transcript = transcript_hash(b"dialer hello", b"listener hello")
    auth = signed_auth("b", transcript, role="listener", other="a")
    check_auth(auth, IDENTITY, transcript, role="listener", other=key_named("a").public_key)
    with pytest.raises(HandshakeFailed, match="dialer signature"):  # a listener's proof reflected as a dialer's
        check_auth(auth, IDENTITY, transcript, role="dialer", other=key_named("a").public_key)
    with pytest.raises(HandshakeFailed, match="does not verify"):
        check_auth(auth, IDENTITY, transcript_hash(b"listener hello", b"dialer hello"), role="listener",
                   other=key_named("a").public_key)
    with pytest.raises(HandshakeFailed, match="does not verify"):
        check_auth(auth, IDENTITY, transcript, role="listener", other=key_named("c").public_key)


def test_both_sides_derive_one_key_per_direction_bound_to_the_transcript() -> None:
    dialer, listener = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    dialer_public, listener_public = (key.public_key().public_bytes_raw() for key in (dialer, listener))
    transcript = transcript_hash(b"d", b"l")
    at_dialer = derive_channel(dialer, listener_public, transcript, "dialer")
    at_listener = derive_channel(listener, dialer_public, transcript, "listener")
    assert at_listener.open(at_dialer.seal(b"to the listener")) == b"to the listener"
    assert at_dialer.open(at_listener.seal(b"to the dialer")) == b"to the dialer"
    mirrored = derive_channel(dialer, listener_public, transcript, "listener")  # the dialer's own send key
    with pytest.raises(FrameNotAuthentic):
        mirrored.open(at_dialer.seal(b"reflected"))
    elsewhere = derive_channel(listener, dialer_public, transcript_hash(b"d", b"other"), "listener")
    with pytest.raises(FrameNotAuthentic):
        elsewhere.open(at_dialer.seal(b"another connection"))


def test_invalid_ephemeral_key_of_low_order() -> None:
    with pytest.raises(HandshakeFailed, match="not usable"):
        derive_channel(X25519PrivateKey.generate(), bytes(32), bytes(32), "dialer")


# --- a real node refusing raw clients ---------------------------------------------


Script = Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]]


async def exchange_hellos(websocket: aiohttp.ClientWebSocketResponse, **changes: Any) -> tuple[bytes, bytes, Any]:
    """Send a dialer's HELLO; the bytes of both HELLOs and our ephemeral key."""
    ephemeral = X25519PrivateKey.generate()
    ours = replace(hello(**changes), ephemeral_key=ephemeral.public_key().public_bytes_raw()).encode()
    await websocket.send_bytes(ours)
    message = await websocket.receive()
    assert message.type is aiohttp.WSMsgType.BINARY, message
    return ours, message.data, ephemeral


def hello_only(**changes: Any) -> Script:
    async def script(websocket: aiohttp.ClientWebSocketResponse) -> None:
        await websocket.send_bytes(hello(**changes).encode())

    return script


def auth_by(
    name: str = "b", *, signer: str | None = None, role: Role = "dialer", sealed: bool = True,
    channel_role: Role = "dialer",
) -> Script:
    """A dialer's HELLO, then an AUTH claiming ``name``: signed by ``signer``'s key for
    ``role``, sealed (or not) under the key of ``channel_role``."""

    async def script(websocket: aiohttp.ClientWebSocketResponse) -> None:
        ours, theirs, ephemeral = await exchange_hellos(websocket)
        transcript = transcript_hash(ours, theirs)
        listener_hello = Hello.decode(decode_frame(theirs).payload)
        channel = derive_channel(ephemeral, listener_hello.ephemeral_key, transcript, channel_role)
        auth = signed_auth(signer or name, transcript, role=role, other="a")
        frame = Auth(key_named(name).public_key, auth.signature).encode()
        await websocket.send_bytes(channel.seal(frame) if sealed else frame)

    return script


async def send_garbage(websocket: aiohttp.ClientWebSocketResponse) -> None:
    await websocket.send_bytes(b"\xc1 not a hello")


async def say_nothing(websocket: aiohttp.ClientWebSocketResponse) -> None:
    pass


async def version_one_hello(websocket: aiohttp.ClientWebSocketResponse) -> None:
    fields = [1, CHAIN_ID, GENESIS_HASH, key_named("b").public_key, bytes(32)]
    await websocket.send_bytes(encode_frame("hello", fields))


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        pytest.param(hello_only(chain_id="other-chain"), "wrong chain id", id="wrong chain id"),
        pytest.param(hello_only(genesis_hash=bytes(32)), "wrong genesis hash", id="wrong genesis hash"),
        pytest.param(version_one_hello, "protocol version 1", id="protocol version"),
        pytest.param(send_garbage, "malformed hello", id="garbage hello"),
        pytest.param(say_nothing, "no HELLO within 0.3 s", id="silent"),
        pytest.param(auth_by("mallory"), "not admitted", id="not admitted"),
        pytest.param(auth_by("a"), "own key", id="own key"),
        pytest.param(auth_by("b", signer="c"), "dialer signature of", id="proof by another key"),
        pytest.param(auth_by("b", role="listener"), "dialer signature of", id="a listener's proof as a dialer's"),
        pytest.param(auth_by("b", sealed=False), "does not open", id="auth not sealed"),
        pytest.param(auth_by("b", channel_role="listener"), "does not open", id="auth sealed the wrong way"),
    ],
)
async def test_invalid_handshake_is_refused_and_logged(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, script: Script, reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="mura.p2p")
    node = await cluster.start("a", limits=limits(hello_timeout=0.3, handshake_timeout=1.0))
    async with raw_websocket(node.network.listen_port) as websocket:
        await script(websocket)
        closing = await next_close(websocket)
    await wait_for(lambda: node.network.stats.handshake_failures == 1, "the node to count the refusal")
    assert websocket.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION, closing
    assert node.network.connected_peers() == []
    refusals = [record.getMessage() for record in caplog.records if "handshake with" in record.getMessage()]
    assert len(refusals) == 1 and reason in refusals[0] and "127.0.0.1:" in refusals[0], refusals
    told = str(closing.extra)
    for secret in (CHAIN_ID, GENESIS_HASH.hex()[:16], f"speaks {PROTOCOL_VERSION}"):
        assert secret not in told, f"a stranger was told {told!r}"


async def test_a_stranger_on_another_chain_learns_nothing_it_did_not_send(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The close reason once named this node's chain id; the log line still does."""
    caplog.set_level(logging.INFO, logger="mura.p2p")
    node = await cluster.start("a")
    reasons = []
    for changes in ({"chain_id": "guess"}, {"genesis_hash": bytes(32)}, {"protocol_version": 7}):
        async with raw_websocket(node.network.listen_port) as websocket:
            await websocket.send_bytes(hello(**changes).encode())
            reasons.append((await next_close(websocket)).extra)
    assert reasons == [OTHER_CHAIN, OTHER_CHAIN, "protocol version 7 is not spoken here"]
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert f"this node runs {CHAIN_ID!r}" in logged and f"this node speaks {PROTOCOL_VERSION}" in logged


async def test_a_correct_handshake_is_admitted_both_ways(cluster: Cluster) -> None:
    node = await cluster.start("a")
    async with link_as(node, "b") as link:
        await wait_for(lambda: node.network.connected_peers() == [key_named("b").public_key], "the link")
        assert link.peer_public_key == node.public_key
        await link.send_frame(encode_frame("data", b"hello, a"))
        await wait_for(lambda: node.payloads("data") == [b"hello, a"], "the frame")
        assert node.network.send(key_named("b").public_key, "data", b"hello, b")
        assert decode_frame(await link.receive_frame(timeout=5)).payload == b"hello, b"
    assert node.network.stats.handshake_failures == 0


async def test_invalid_dialed_peer_presents_another_key(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mura.p2p")
    impostor = await cluster.start("c")
    cluster.ports["b"] = impostor.network.listen_port  # "b" is configured at c's address
    dialer = await cluster.start("a", peers="b")
    await wait_for(lambda: dialer.network.stats.handshake_failures >= 1, "the dialer to refuse the impostor")
    assert dialer.network.connected_peers() == [] and impostor.network.connected_peers() == []
    # The dialer's proof names the key it meant to reach, so c refuses it and proves nothing itself.
    await wait_for(lambda: impostor.network.stats.handshake_failures >= 1, "c to refuse a proof meant for b")
    messages = [record.getMessage() for record in caplog.records]
    assert any("dialer signature" in message and "another node" in message for message in messages), messages


async def test_invalid_listener_proof_made_for_the_dialer_role() -> None:
    """A listener that answers with an AUTH signed for the dialer's role is refused by the dialer."""

    async def reflecting_listener(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        dialer_hello = (await websocket.receive()).data
        ephemeral = X25519PrivateKey.generate()
        ours = replace(hello(), ephemeral_key=ephemeral.public_key().public_bytes_raw()).encode()
        await websocket.send_bytes(ours)
        transcript = transcript_hash(dialer_hello, ours)
        peer = Hello.decode(decode_frame(dialer_hello).payload)
        channel = derive_channel(ephemeral, peer.ephemeral_key, transcript, "listener")
        await websocket.receive()  # the dialer's AUTH
        auth = signed_auth("c", transcript, role="dialer", other="a")
        await websocket.send_bytes(channel.seal(auth.encode()))
        await websocket.receive()
        return websocket

    app = web.Application()
    app.router.add_get("/p2p", reflecting_listener)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        with pytest.raises(HandshakeFailed, match="listener signature of"):
            await open_link(f"http://{HOST}:{port}/p2p", identity("a"), expected_public_key=key_named("c").public_key)
    finally:
        await runner.cleanup()


def test_transcript_keeps_the_order_of_the_hellos() -> None:
    assert transcript_hash(b"x", b"y") != transcript_hash(b"y", b"x")
    assert transcript_hash(b"x", b"y") != transcript_hash(b"xy", b""), "the two HELLOs stay apart"
