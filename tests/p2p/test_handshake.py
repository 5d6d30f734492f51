"""Tests for p2p/handshake.py: HELLO checks, the proof, and refusals by a real
node of raw clients that speak the protocol wrongly."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from mura.chain.errors import DecodeError
from mura.p2p.frames import decode_frame
from mura.p2p.handshake import (
    HandshakeFailed,
    Hello,
    Identity,
    check_hello,
    proof_message,
)

from .conftest import (
    CHAIN_ID,
    GENESIS_HASH,
    Cluster,
    complete_handshake,
    exchange_hello,
    hello_from,
    key_named,
    limits,
    next_close,
    raw_websocket,
    send_proof,
    wait_for,
)

IDENTITY = Identity(
    key_named("a"), CHAIN_ID, GENESIS_HASH, frozenset(key_named(name).public_key for name in "abc")
)


def test_hello_from_an_admitted_peer_passes() -> None:
    check_hello(hello_from(key_named("b")), IDENTITY, None)
    check_hello(hello_from(key_named("b")), IDENTITY, key_named("b").public_key)


@pytest.mark.parametrize(
    ("hello", "expected", "reason"),
    [
        (hello_from(key_named("b"), protocol_version=2), None, "protocol version"),
        (hello_from(key_named("b"), chain_id="other-chain"), None, "wrong chain id"),
        (hello_from(key_named("b"), genesis_hash=bytes(32)), None, "wrong genesis hash"),
        (hello_from(key_named("a")), None, "own key"),
        (hello_from(key_named("mallory")), None, "not admitted"),
        (hello_from(key_named("c")), key_named("b").public_key, "expected peer"),
    ],
)
def test_invalid_hello(hello: Hello, expected: bytes | None, reason: str) -> None:
    with pytest.raises(HandshakeFailed, match=reason):
        check_hello(hello, IDENTITY, expected)


def test_hello_round_trip_and_invalid_fields() -> None:
    hello = hello_from(key_named("b"))
    assert Hello.decode(decode_frame(hello.encode()).payload) == hello
    with pytest.raises(DecodeError, match="hello.nonce"):
        Hello.decode([1, CHAIN_ID, GENESIS_HASH, key_named("b").public_key, b"short"])


def test_proof_is_bound_to_the_nonce_and_both_keys() -> None:
    base = dict(chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, nonce=bytes(32), signer=b"s" * 32, verifier=b"v" * 32)
    message = proof_message(**base)  # type: ignore[arg-type]
    for field, other in [("nonce", b"\x01" * 32), ("signer", b"v" * 32), ("verifier", b"s" * 32),
                         ("chain_id", "other"), ("genesis_hash", b"\x01" * 32)]:
        assert proof_message(**{**base, field: other}) != message  # type: ignore[arg-type]


# --- a real node refusing raw clients ---------------------------------------------


Script = Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]]


def hello_only(**changes: object) -> Script:
    async def script(websocket: aiohttp.ClientWebSocketResponse) -> None:
        await exchange_hello(websocket, hello_from(key_named("b"), **changes))

    return script


def proof_with(*, signer: str, own_nonce: bool) -> Script:
    async def script(websocket: aiohttp.ClientWebSocketResponse) -> None:
        ours = hello_from(key_named("b"))
        theirs = await exchange_hello(websocket, ours)
        await send_proof(websocket, key_named(signer), ours, theirs, nonce=ours.nonce if own_nonce else None)

    return script


async def send_garbage(websocket: aiohttp.ClientWebSocketResponse) -> None:
    await websocket.send_bytes(b"\xc1 not a hello")


async def say_nothing(websocket: aiohttp.ClientWebSocketResponse) -> None:
    pass


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        pytest.param(hello_only(chain_id="other-chain"), "wrong chain id", id="wrong chain id"),
        pytest.param(hello_only(genesis_hash=bytes(32)), "wrong genesis hash", id="wrong genesis hash"),
        pytest.param(hello_only(public_key=key_named("mallory").public_key), "not admitted", id="not admitted"),
        pytest.param(hello_only(public_key=key_named("a").public_key), "own key", id="own key"),
        pytest.param(hello_only(protocol_version=99), "protocol version", id="protocol version"),
        pytest.param(proof_with(signer="c", own_nonce=False), "does not verify", id="proof by another key"),
        pytest.param(proof_with(signer="b", own_nonce=True), "does not verify", id="proof over a replayed nonce"),
        pytest.param(send_garbage, "malformed hello", id="garbage hello"),
        pytest.param(say_nothing, "no complete handshake", id="silent"),
    ],
)
async def test_invalid_handshake_is_refused_and_logged(
    cluster: Cluster, caplog: pytest.LogCaptureFixture, script: Script, reason: str
) -> None:
    caplog.set_level(logging.WARNING, logger="mura.p2p")
    node = await cluster.start("a", limits=limits(handshake_timeout=0.3))
    async with raw_websocket(node.network.listen_port) as websocket:
        await script(websocket)
        closing = await next_close(websocket)
    await wait_for(lambda: node.network.stats.handshake_failures == 1, "the node to count the refusal")
    assert websocket.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION, closing
    assert node.network.connected_peers() == []
    refusals = [record.getMessage() for record in caplog.records if "handshake with" in record.getMessage()]
    assert len(refusals) == 1 and reason in refusals[0] and "127.0.0.1:" in refusals[0], refusals


async def test_a_correct_raw_handshake_is_admitted(cluster: Cluster) -> None:
    node = await cluster.start("a")
    async with raw_websocket(node.network.listen_port) as websocket:
        await complete_handshake(websocket, key_named("b"))
        await wait_for(lambda: node.network.connected_peers() == [key_named("b").public_key], "the link")
    assert node.network.stats.handshake_failures == 0


async def test_invalid_dialed_peer_presents_another_key(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mura.p2p")
    impostor = await cluster.start("c")
    cluster.ports["b"] = impostor.network.listen_port  # "b" is configured at c's address
    dialer = await cluster.start("a", peers="b")
    await wait_for(lambda: dialer.network.stats.handshake_failures >= 1, "the dialer to refuse the impostor")
    assert dialer.network.connected_peers() == [] and impostor.network.connected_peers() == []
    assert any("expected peer" in record.getMessage() for record in caplog.records)
