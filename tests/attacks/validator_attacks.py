"""Attacks by a dishonest validator: the attacker holds validator 3's key and
speaks to the honest nodes over authenticated links (``peer.py``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from mura.chain.block import Block, Header
from mura.chain.transaction import Burn, Transaction, Transfer
from mura.consensus.config import ReplicaConfig
from mura.consensus.messages import (
    BlockRequest,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    decode_message,
)
from mura.tests.attacks.harness import Context, Drained, every
from mura.tests.attacks.load import load_chain
from mura.tests.attacks.peer import CONSENSUS_KIND, consensus_frame, frame_payload, transactions_frame
from mura.tests.attacks.testnet import ASSET, ATTACKER, HONEST


async def links_to_honest(context: Context) -> list[Drained]:
    """The attacker's links to every honest node."""
    return [await context.link_as_attacker(index) for index in HONEST]


def _header(chain_id: str, height: int, stamp: int, proposer: bytes) -> Header:
    return Header(chain_id, height, bytes(32), stamp, proposer, bytes(32), bytes(32), bytes(32))


# --- 1. NEW-VIEW flood ------------------------------------------------------------------

#: Transactions per frame and per VIEW-CHANGE block (a block holds at most 20,000).
NEW_VIEW_TRANSACTIONS = 72_000
NEW_VIEW_BLOCKS = 4


def filler_transactions(count: int) -> list[Transaction]:
    """Distinct transactions that decode (an empty chain id keeps them small); nothing checks them
    before they are decoded, and being distinct, no decode cache helps."""
    sender = os.urandom(32)
    return [Transaction("", sender, nonce, Burn(ASSET, 1), bytes(64)) for nonce in range(count)]


def new_view_frame(context: Context, transactions: list[Transaction], number: int, height: int) -> bytes:
    """A NEW-VIEW whose VIEW-CHANGEs carry blocks of ``transactions``; fresh block bytes per ``number``."""
    chain_id = context.cluster.chain_id
    proposer = context.cluster.testnet.validators[ATTACKER]
    share = -(-len(transactions) // NEW_VIEW_BLOCKS)
    changes = []
    for position in range(NEW_VIEW_BLOCKS):
        chunk = tuple(transactions[position * share : (position + 1) * share])
        block = Block(_header(chain_id, height, number * NEW_VIEW_BLOCKS + position, proposer), chunk)
        changes.append(ViewChange(1, height, None, block, position, bytes(64)))
    proposal = PrePrepare(1, Block(_header(chain_id, height, number, proposer), ()), ATTACKER, bytes(64))
    return consensus_frame(NewView(1, height, tuple(changes), proposal))


async def new_view_flood(context: Context) -> None:
    """NEW-VIEW frames of ~8 MB, each decoded to the last transaction before any check."""
    scale = context.scale
    frames = context.scale.count(2, 15)
    duration = scale.grow(3, 20)
    transactions = filler_transactions(NEW_VIEW_TRANSACTIONS)
    height = (await context.status())["height"] + 1
    prepared = [new_view_frame(context, transactions, number, height) for number in range(frames)]
    links = await links_to_honest(context)
    delivered: Counter[str] = Counter()

    async def flood(link: Drained, until: float) -> None:
        number = 0
        async for _ in every(duration / frames, time.monotonic() + duration):
            remaining = until - time.monotonic()
            if remaining <= 0 or number >= frames:
                return
            if not await link.send(prepared[number], timeout=remaining):
                return
            delivered[link.name] += 1
            number += 1

    async with context.window():
        until = time.monotonic() + duration + 5
        await asyncio.gather(*(flood(link, until) for link in links))
    cpu = context.measured["cpu_s"]
    delivered_total = sum(delivered.values())
    context.figures.update({
        "frames": frames,
        "frame_mb": round(len(prepared[0]) / 1e6, 2),
        "transactions_per_frame": NEW_VIEW_TRANSACTIONS,
        "frames_written": dict(delivered),
        "cpu_s_per_frame": round(sum(cpu.values()) / delivered_total, 2) if delivered_total else None,
    })


# --- 2. BlockRequest flood -------------------------------------------------------------------


async def block_request_flood(context: Context) -> None:
    """BlockRequests for a new start height each time, ~40 a second, on a chain of full blocks."""
    scale = context.scale
    # Paced so that the chain grows by a few hundred blocks of a few hundred transactions.
    loaded = await load_chain(context.rpc, context.cluster, transactions=scale.count(3_000, 100_000), accounts=1_200,
                              rate=1_000)
    context.figures.update(loaded)
    head = (await context.status())["height"]
    links = await links_to_honest(context)
    duration = scale.grow(4, 25)
    rate = 40.0
    requested = 0
    requests = 0
    async with context.window():
        received_before = sum(link.bytes_in for link in links)
        start = time.monotonic()
        number = 0
        async for _ in every(1 / rate, start + duration):
            link = links[number % len(links)]
            frame = consensus_frame(BlockRequest(1 + number % max(1, head - 1), ATTACKER))
            number += 1
            if link.open and await link.send(frame, timeout=5):
                requested += len(frame)
                requests += 1
        # Answers already queued keep arriving for a while; what came by the window's end counts.
        await asyncio.sleep(2)
        received = sum(link.bytes_in for link in links) - received_before
    received_by_close = sum(link.bytes_in for link in links) - received_before
    attacker = context.cluster.short_key(ATTACKER)
    # What the nodes had queued for the attacker when they cut it for not reading fast enough.
    queued = sum(size for index in HONEST for key, _, size in context.logs[index].overflows if key == attacker)
    context.figures.update({
        "chain_height": head,
        "requests": requests,
        "requested_kb": round(requested / 1024, 1),
        "received_mb": round(received / 1e6, 1),
        "received_mb_by_window_close": round(received_by_close / 1e6, 1),
        "queued_mb_when_cut": round(queued / 1e6, 1),
        "amplification": round(received / requested) if requested else None,
    })


# --- 4. refused gossip ---------------------------------------------------------------------------


def zero_balance_batch(chain_id: str, count: int) -> list[bytes]:
    """Transfers from fresh keys with nothing to spend (signatures never get looked at)."""
    return [Transaction(chain_id, os.urandom(32), 0, Transfer(ASSET, os.urandom(32), 1), os.urandom(64)).encoded
            for _ in range(count)]


def forged_batch(chain_id: str, sender: bytes, count: int, salt: int) -> list[bytes]:
    """Transfers from a funded account (the treasury) with forged signatures: they pass every
    cheap rule, so each costs a signature check."""
    return [Transaction(chain_id, sender, nonce, Transfer(ASSET, os.urandom(32), 1 + salt), os.urandom(64)).encoded
            for nonce in range(count)]


async def refused_gossip(context: Context) -> None:
    """Gossip that every node refuses: zero-balance senders (free to send), then forged signatures."""
    scale = context.scale
    phase = scale.grow(2, 15)
    chain_id = context.cluster.chain_id
    treasury = context.cluster.treasury.public_key
    links = await links_to_honest(context)
    figures: dict[str, Any] = {}

    async def gossip(link: Drained, until: float, make: Any, sent: Counter[str]) -> None:
        salt = 0
        while time.monotonic() < until and link.open:
            salt += 1
            if not await link.send(transactions_frame(make(salt)), timeout=max(0.1, until - time.monotonic())):
                return
            sent[link.name] += 1
            await asyncio.sleep(0)

    async with context.window():
        zero_sent: Counter[str] = Counter()
        until = time.monotonic() + phase
        await asyncio.gather(*(gossip(link, until, lambda salt: zero_balance_batch(chain_id, 500), zero_sent)
                               for link in links), return_exceptions=True)
        figures["zero_balance_frames"] = sum(zero_sent.values())
        figures["zero_balance_transactions"] = 500 * sum(zero_sent.values())
        figures["zero_balance_cut"] = [link.name for link in links if not link.open]
        forged_sent: Counter[str] = Counter()
        started = time.monotonic()
        until = started + phase
        await asyncio.gather(*(gossip(link, until, lambda salt: forged_batch(chain_id, treasury, 64, salt), forged_sent)
                               for link in links), return_exceptions=True)
        figures["forged_frames"] = dict(forged_sent)
        figures["forged_cut"] = [link.name for link in links if not link.open]
    figures["penalized_for_zero_balance"] = bool(figures["zero_balance_cut"])
    figures["penalized_for_forgeries"] = bool(context.measured["attacker_banned"])
    context.figures.update(figures)


# --- 10. equivocation in the log ----------------------------------------------------------------


async def equivocation_log(context: Context) -> None:
    """Two PREPAREs and two COMMITs for different hashes in every view of the window, each height."""
    key = context.cluster.key(ATTACKER)
    chain_id = context.cluster.chain_id
    window = ReplicaConfig(chain_id=chain_id).view_window
    duration = context.scale.grow(4, 20)
    links = await links_to_honest(context)
    heights_attacked = 0
    votes = 0
    async with context.window():
        last = -1
        async for _ in every(0.05, time.monotonic() + duration):
            try:
                status = await context.status()
            except Exception:
                continue
            height, view = status["height"] + 1, status["view"]
            if height == last:
                continue
            last = height
            frames = []
            for target_view in range(max(0, view - window), view + window + 1):
                for digest in (os.urandom(32), os.urandom(32)):
                    frames.append(consensus_frame(Prepare.sign(key, ATTACKER, chain_id, target_view, height, digest)))
                    frames.append(consensus_frame(Commit.sign(key, ATTACKER, chain_id, target_view, height, digest)))
            for link in links:
                for frame in frames:
                    await link.send(frame, timeout=5)
            heights_attacked += 1
            votes += len(frames)
    context.figures.update({"heights_attacked": heights_attacked, "votes_per_node": votes})
    equivocations = sum(context.logs[index].count("equivocation by validator") for index in HONEST)
    context.figures["equivocation_lines"] = equivocations
    context.figures["lines_per_height_per_node"] = (
        round(equivocations / heights_attacked / len(HONEST), 1) if heights_attacked else None
    )


# --- 11. far-future votes --------------------------------------------------------------------------


async def far_future_votes(context: Context) -> None:
    """Validly signed votes for a height a million ahead; honest nodes then ask the attacker for blocks."""
    key = context.cluster.key(ATTACKER)
    chain_id = context.cluster.chain_id
    duration = context.scale.grow(3, 20)
    requests: Counter[str] = Counter()

    def counter(name: str) -> Callable[[bytes], None]:
        def on_frame(frame: bytes) -> None:
            payload = frame_payload(frame, CONSENSUS_KIND)
            if isinstance(payload, bytes):
                try:
                    if isinstance(decode_message(payload), BlockRequest):
                        requests[name] += 1
                except Exception:
                    pass
        return on_frame

    links = [await context.link_as_attacker(index, counter(context.cluster.names[index])) for index in HONEST]
    sent = 0
    async with context.window():
        async for _ in every(0.2, time.monotonic() + duration):
            height = (await context.status())["height"] + 1_000_000
            digest = os.urandom(32)
            for link in links:
                await link.send(consensus_frame(Prepare.sign(key, ATTACKER, chain_id, 0, height, digest)), timeout=5)
                await link.send(consensus_frame(Commit.sign(key, ATTACKER, chain_id, 0, height, digest)), timeout=5)
                sent += 2
    context.figures.update({"votes_sent": sent, "block_requests_received": dict(requests),
                            "block_requests_total": sum(requests.values())})


# --- 12. bad signatures ------------------------------------------------------------------------------


async def bad_signature_votes(context: Context) -> None:
    """PREPAREs with signatures that do not verify, as the attacker and in other validators' names."""
    duration = context.scale.grow(3, 20)
    rate = context.scale.grow(500, 2_000)
    links = await links_to_honest(context)
    sent: Counter[str] = Counter()
    status = await context.status()
    async with context.window():
        height, view = status["height"] + 1, status["view"]
        number = 0
        async for _ in every(0.1, time.monotonic() + duration):
            try:
                status = await context.status()
                height, view = status["height"] + 1, status["view"]
            except Exception:
                pass
            for _ in range(int(rate / 10)):
                sender = ATTACKER if number % 2 == 0 else HONEST[number % len(HONEST)]
                frame = consensus_frame(Prepare(view, height, os.urandom(32), sender, os.urandom(64)))
                for link in links:
                    if await link.send(frame, timeout=5):
                        sent["own" if sender == ATTACKER else "claiming_others"] += 1
                number += 1
    cpu = sum(context.measured["cpu_s"].values())
    total = sum(sent.values())
    context.figures.update({
        "messages_sent": dict(sent),
        "rate_per_node_s": rate,
        "cpu_ms_per_message": round(1000 * cpu / total, 3) if total else None,
    })

