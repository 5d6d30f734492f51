"""Attacks by anyone who can reach the ports, with no key: on the peer endpoint
(through ``peer.py``) and on raw TCP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import time
from collections import Counter
from typing import Any

from mura.p2p.settings import NetworkLimits
from mura.tests.attacks.harness import Context, every
from mura.tests.attacks.peer import (
    HANDSHAKE_FAILURES,
    RELAY_VARIANTS,
    PeerLink,
    Refused,
    RelayRefused,
    Unauthenticated,
    fail_handshake,
    open_unauthenticated,
    relay_impersonation,
    unknown_kind_frame,
    upgrade_and_drop,
)
from mura.tests.attacks.testnet import HONEST

#: The address keyless clients connect from, so the nodes' logs tell them from the validators.
OUTSIDER = "127.0.0.2"
#: Addresses for an attack that needs more handshake slots than one source is given.
OUTSIDERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
TARGET = 0


# --- 5. frames before the handshake -----------------------------------------------------------


async def pre_handshake_frames(context: Context) -> None:
    """Sixteen websockets to /p2p, each sending one 16 MB frame instead of a HELLO, from four
    addresses (a node gives one stranger's address only a few handshake slots at a time)."""
    limits = NetworkLimits()
    connections = limits.max_pending_handshakes
    size = limits.max_frame_size - 1024
    rounds = context.scale.count(1, 4)
    payload = os.urandom(size)
    endings: Counter[str] = Counter()
    sent = 0
    async with context.window(targets=[TARGET]):
        for _ in range(rounds):
            opened: list[Unauthenticated] = []
            for result in await asyncio.gather(
                *(open_unauthenticated(context.cluster.endpoint(TARGET), source_host=OUTSIDERS[number % len(OUTSIDERS)])
                  for number in range(connections)),
                return_exceptions=True,
            ):
                if isinstance(result, Unauthenticated):
                    opened.append(result)
                else:
                    endings[f"not opened: {str(result)[:60]}"] += 1

            async def push(connection: Unauthenticated) -> str:
                await connection.send(payload)
                return await connection.wait_closed(30) or "still open"

            for ending in await asyncio.gather(*(push(connection) for connection in opened), return_exceptions=True):
                endings[str(ending)[:80]] += 1
            sent += len(opened)
            await asyncio.gather(*(connection.close() for connection in opened))
    peak = context.measured["rss_peak_mb"][str(TARGET)]
    before = context.measured["rss_before_mb"][str(TARGET)]
    context.figures.update({
        "frames_sent": sent,
        "connections_turned_away": sum(count for ending, count in endings.items() if ending.startswith("not opened")),
        "frame_mb": round(size / 1e6, 1),
        "rss_peak_mb": peak,
        "rss_peak_growth_mb": None if peak is None or before is None else round(peak - before, 1),
        "endings": dict(endings),
    })


# --- 6. handshake slots ------------------------------------------------------------------------


async def _hold_slots(context: Context, index: int, per_node: int, stop: asyncio.Event, held: Counter[int],
                      refused: Counter[int]) -> None:
    """Keep ``per_node`` idle websockets to node ``index`` open, reopening each as the node closes it."""

    async def one() -> None:
        while not stop.is_set():
            try:
                connection = await open_unauthenticated(
                    context.cluster.endpoint(index), source_host=OUTSIDER, timeout=3
                )
            except Refused:
                refused[index] += 1
                await asyncio.sleep(0.01)  # a slot freed by a timed-out handshake is taken again at once
                continue
            held[index] += 1
            try:
                while not stop.is_set():
                    if await connection.wait_closed(0.5) is not None:
                        break
            finally:
                held[index] -= 1
                await connection.close()

    await asyncio.gather(*(one() for _ in range(per_node)))


async def handshake_slots(context: Context) -> None:
    """Idle websockets in every node's handshake slots; then validator 2 is killed and restarted."""
    cluster = context.cluster
    restarted = HONEST[-1]
    watch = context.scale.grow(12, 60)
    per_node = 3 * NetworkLimits().max_pending_handshakes
    stop = asyncio.Event()
    held: Counter[int] = Counter()
    refused: Counter[int] = Counter()
    series: list[tuple[float, int | None]] = []
    async with context.window(targets=[index for index in HONEST if index != restarted], log_targets=HONEST):
        holders = [asyncio.create_task(_hold_slots(context, index, per_node, stop, held, refused)) for index in HONEST]
        try:
            deadline = time.monotonic() + 10
            slots = NetworkLimits().max_pending_handshakes
            while min(held[index] for index in HONEST) < slots and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            context.figures["slots_held_before_restart"] = {cluster.names[index]: held[index] for index in HONEST}
            cluster.kill(restarted)
            cluster.start(restarted)
            started = time.monotonic()
            reconnected: float | None = None
            async for tick in every(0.5, started + watch):
                try:
                    peers = (await context.status(restarted))["peers"]
                except Exception:
                    peers = None
                series.append((round(tick - started, 1), peers))
                if peers == len(HONEST) - 1 and reconnected is None:
                    reconnected = time.monotonic() - started
                    break
        finally:
            stop.set()
            await asyncio.gather(*holders, return_exceptions=True)
    context.figures.update({
        "restarted": cluster.names[restarted],
        "full_reconnection_s": round(reconnected, 1) if reconnected is not None else f"never within {watch:.0f} s",
        "peers_over_time": _compress(series),
        "max_peers_seen": max((peers for _, peers in series if peers is not None), default=None),
        "outsider_refused_attempts": {cluster.names[index]: refused[index] for index in HONEST},
    })


def _compress(series: list[tuple[float, int | None]]) -> list[tuple[float, int | None]]:
    """Only the points where the value changes (and the last)."""
    kept = [point for position, point in enumerate(series) if position == 0 or point[1] != series[position - 1][1]]
    if series and kept[-1] != series[-1]:
        kept.append(series[-1])
    return kept


# --- 7. slow request heads -----------------------------------------------------------------------


async def _slow_head(host: str, port: int, path: str, interval: float, until: float) -> float | None:
    """Send an HTTP request head one byte at a time; seconds until the server closed, None if it never did."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(OUTSIDER, 0))
    except OSError:
        return 0.0
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {'x' * 200}\r\n".encode()
    closed = asyncio.create_task(reader.read(1))
    try:
        position = 0
        while time.monotonic() < until:
            if closed.done():
                return time.monotonic() - started
            try:
                writer.write(head[position % len(head) : position % len(head) + 1])
                await writer.drain()
            except (ConnectionError, OSError):
                return time.monotonic() - started
            position += 1
            await asyncio.wait([closed], timeout=min(interval, max(0.0, until - time.monotonic())))
        return time.monotonic() - started if closed.done() else None
    finally:
        closed.cancel()
        writer.close()


async def slow_headers(context: Context) -> None:
    """Connections that send a request head a byte every 2 s, to the p2p and to the RPC port."""
    count = context.scale.count(20, 100)
    duration = context.scale.grow(6, 90)
    endpoint = context.cluster.endpoint(TARGET)
    rpc_port = context.cluster.rpc_ports[TARGET]
    async with context.window(targets=[TARGET]):
        until = time.monotonic() + duration
        p2p = [_slow_head(endpoint.host, endpoint.port, "/p2p", 2.0, until) for _ in range(count)]
        rpc = [_slow_head("127.0.0.1", rpc_port, "/", 2.0, until) for _ in range(count)]
        outcomes = await asyncio.gather(*p2p, *rpc)
        probe_start = time.monotonic()
        try:
            await context.status(TARGET)
            probe: float | None = time.monotonic() - probe_start
        except Exception:
            probe = None
    for name, part in (("p2p", outcomes[:count]), ("rpc", outcomes[count:])):
        closed = [seconds for seconds in part if seconds is not None]
        context.figures[f"{name}_open_at_end"] = f"{count - len(closed)}/{count}"
        context.figures[f"{name}_closed_after_s"] = (
            {"min": round(min(closed), 1), "median": round(statistics.median(closed), 1)} if closed else None
        )
    context.figures["held_for_s"] = round(duration, 1)
    context.figures["rpc_answer_after_s"] = None if probe is None else round(probe, 3)


# --- 9. garbage connections ------------------------------------------------------------------------


async def garbage_connections(context: Context) -> None:
    """Connections that fail the handshake (three ways), then connections dropped mid-upgrade."""
    failures = context.scale.count(100, 1_000)
    drops = context.scale.count(10, 100)
    endpoint = context.cluster.endpoint(TARGET)
    testnet = context.cluster.testnet
    # Fewer at once than the handshake slots, so that every one reaches the handshake.
    parallel = asyncio.Semaphore(NetworkLimits().max_pending_handshakes // 2)
    endings: Counter[str] = Counter()

    async def fail(variant: str) -> None:
        async with parallel:
            try:
                ending = await fail_handshake(endpoint, variant, testnet=testnet)
            except Exception as error:
                ending = f"{type(error).__name__}"
            endings[f"{variant}: {ending[:50]}"] += 1

    async def drop(number: int) -> None:
        async with parallel:
            with contextlib.suppress(OSError):
                await upgrade_and_drop(endpoint, reset=number % 2 == 0)

    async with context.window(targets=[TARGET]):
        started = time.monotonic()
        await asyncio.gather(*(fail(HANDSHAKE_FAILURES[number % 3]) for number in range(failures)))
        failing_seconds = time.monotonic() - started
        await asyncio.sleep(1)  # the last refusals reach the log
        marks = context.log_mark([TARGET])
        started = time.monotonic()
        await asyncio.gather(*(drop(number) for number in range(drops)))
        await asyncio.sleep(1)
        dropped = context.log_since(marks)[TARGET]
    total = context.logs[TARGET]
    handshake_lines = total.lines - dropped.lines
    context.figures.update({
        "handshake_failures": failures,
        "handshake_failure_seconds": round(failing_seconds, 1),
        "lines_per_failure": round(handshake_lines / failures, 2),
        "handshake_lines_per_s": round(handshake_lines / failing_seconds, 1) if failing_seconds else None,
        "handshake_tracebacks": total.tracebacks - dropped.tracebacks,
        "upgrade_drops": drops,
        "lines_per_drop": round(dropped.lines / drops, 1),
        "tracebacks_per_drop": round(dropped.tracebacks / drops, 2),
        "endings": dict(endings.most_common(6)),
    })


# --- 13. relay impersonation ---------------------------------------------------------------------------


#: How a node ended an impersonating link, by the reason it gave.
_ENDINGS = (
    ("banned: too many malformed", "admitted; the impersonated key banned"),
    ("replaced by another link", "admitted; replaced by the real validator's link before the ban"),
    ("a link to this peer already exists", "not admitted: the real link was kept"),
    ("banned", "not admitted: the impersonated key is banned already"),
)


async def _impersonate(context: Context, victim: int, signer: int, variant: str,
                       outcomes: list[dict[str, Any]]) -> PeerLink | None:
    """One relay: a link to ``victim`` posing as ``signer``, and at once enough malformed frames
    on it for a ban (the real validator redials within a fraction of a second)."""
    cluster = context.cluster
    record: dict[str, Any] = {"victim": cluster.names[victim], "as": cluster.names[signer], "variant": variant}
    outcomes.append(record)
    try:
        link = await relay_impersonation(cluster.endpoint(victim), cluster.endpoint(signer), testnet=cluster.testnet,
                                         variant=variant, source_host=OUTSIDER)
    except Refused as refusal:
        record["outcome"] = f"refused: {str(refusal)[:300]}"
        if isinstance(refusal, RelayRefused):
            record["endings"] = refusal.endings
        return None
    for number in range(NetworkLimits().malformed_threshold + 5):
        try:
            await link.send(unknown_kind_frame(number), timeout=2)
        except Exception:
            break
    record["malformed_frames_sent"] = link.frames_sent
    reason = await link.wait_closed(within=1.0)
    if reason is None:
        record["outcome"] = "admitted; still open"
        return link
    record["outcome"] = next((outcome for needle, outcome in _ENDINGS if needle in reason), f"closed: {reason[:80]}")
    await link.close()
    return None


def _refusal_digest(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    """Refused attempts by variant and by which node refused and why (the victim's word
    first; numbers and keys left out)."""
    digest: Counter[str] = Counter()
    for outcome in outcomes:
        endings = outcome.get("endings")
        if endings is None:
            continue
        side = "victim" if endings["victim"].startswith("closed (") else "signer"
        digest[f"{outcome['variant']}: {side} {_NUMBERS.sub('#', endings[side])[:70]}"] += 1
    return dict(digest)


_NUMBERS = re.compile(r"\b[0-9a-f]{8,}\b|\b\d+(?:\.\d+)?\b")


async def relay_impersonation_attack(context: Context) -> None:
    """A keyless client relays handshakes to pose as one honest validator to another, and
    would get the impersonated key banned, across every pair of honest validators and
    every relay variant (forwarding both ways, or with its own ephemeral keys)."""
    cluster = context.cluster
    # The link between two validators is the one the smaller key dialed; a link posing as
    # that dialer would replace it. Those pairs first; the rest once their links are gone.
    by_key = sorted(HONEST, key=lambda index: cluster.testnet.validators[index])
    dialer_first = [(victim, signer) for position, victim in enumerate(by_key) for signer in by_key[:position]]
    pairs = dialer_first + [(signer, victim) for victim, signer in dialer_first]
    rounds = context.scale.count(1, 2)
    ban_seconds = NetworkLimits().ban_seconds
    hold = context.scale.grow(8, 65)
    outcomes: list[dict[str, Any]] = []
    links: list[PeerLink] = []
    async with context.window():
        round_started = time.monotonic()
        for number in range(rounds):
            if number:
                await asyncio.sleep(max(0.0, ban_seconds + 1 - (time.monotonic() - round_started)))
            round_started = time.monotonic()
            for victim, signer in pairs:
                for variant in RELAY_VARIANTS:
                    link = await _impersonate(context, victim, signer, variant, outcomes)
                    if link is not None:
                        links.append(link)
        await asyncio.sleep(max(0.0, hold - (time.monotonic() - round_started)))
        await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
    admitted_count = sum(1 for outcome in outcomes if outcome["outcome"].startswith("admitted"))
    # The nodes' own word: a link admitted from the relay's address (no one else connects from it).
    admitted_from_relay = re.compile(rf"connected to peer \w+ at {re.escape(OUTSIDER)}:")
    admitted_in_logs = sum(len(admitted_from_relay.findall(cluster.log(index))) for index in HONEST)
    context.figures.update({
        "rounds": rounds,
        "impersonations_admitted": f"{admitted_count}/{len(outcomes)}",
        "links_from_relay_in_logs": admitted_in_logs,
        "honest_keys_banned": len(context.measured["honest_bans"]),
        "refusals": _refusal_digest(outcomes),
        "attempts": outcomes,
    })
    if admitted_count == 0 and admitted_in_logs == 0:
        context.figures["verdict"] = "refused"
