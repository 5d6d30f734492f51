"""Putting transactions on the chain before an attack that needs full blocks.

The benchmark's ``Workload`` funds accounts from the treasury (treasury to hubs,
hubs to accounts) and signs transfers between them; here they are submitted in
JSON-RPC batches to the honest validators, each account through one of them,
and the load waits until every mempool is empty again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mura.bench.rpc import Rpc
from mura.bench.workload import SignedTransaction, Workload
from mura.genesis.testnet import DEFAULT_TREASURY_AMOUNT
from mura.tests.attacks.testnet import HONEST, AttackCluster

BATCH = 100
#: Batches in flight per validator.
CONNECTIONS = 2


async def submit(
    rpc: Rpc, cluster: AttackCluster, transfers: Sequence[SignedTransaction], *, rate: float | None = None
) -> Counter[str]:
    """Submit every transfer to its validator in batches, at most ``rate`` a second over all
    validators if given; the refusals by rule."""
    refused: Counter[str] = Counter()
    queues: dict[int, list[list[SignedTransaction]]] = {index: [] for index in HONEST}
    by_node: dict[int, list[SignedTransaction]] = {index: [] for index in HONEST}
    for transfer in transfers:
        by_node[HONEST[transfer.node % len(HONEST)]].append(transfer)
    for index, mine in by_node.items():
        queues[index] = [mine[start : start + BATCH] for start in range(0, len(mine), BATCH)]

    next_due = time.monotonic()

    async def worker(index: int) -> None:
        nonlocal next_due
        queue = queues[index]
        while queue:
            batch = queue.pop(0)
            if rate is not None:
                due, next_due = next_due, next_due + len(batch) / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            answers = await rpc.batch(cluster.url(index), [("tx_submit", [transfer.raw]) for transfer in batch])
            for answer in answers:
                if "error" in answer:
                    data = answer["error"].get("data") or {}
                    refused[str(data.get("rule", answer["error"].get("message")))] += 1

    await asyncio.gather(*(worker(index) for index in HONEST for _ in range(CONNECTIONS)))
    return refused


async def wait_drained(rpc: Rpc, cluster: AttackCluster, *, timeout: float) -> None:
    """Until every honest mempool is empty (everything admitted is final)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = [(await rpc.call(cluster.url(index), "mempool_status"))["transactions"] for index in HONEST]
        if not any(pending):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"transactions still pending after {timeout:.0f} s: {pending}")
        await asyncio.sleep(0.2)


async def load_chain(
    rpc: Rpc, cluster: AttackCluster, *, transactions: int, accounts: int, rate: float
) -> dict[str, Any]:
    """Fund ``accounts`` accounts and make ``transactions`` transfers between them final, submitted
    at ``rate`` a second (so that they spread over many blocks instead of filling a few)."""
    started = time.monotonic()
    workload = Workload(chain_id=cluster.chain_id, accounts=accounts, nodes=len(HONEST), seed=11)
    amount_each = DEFAULT_TREASURY_AMOUNT * 9 // 10 // accounts
    refused: Counter[str] = Counter()
    for funding in workload.funding_rounds(cluster.treasury, amount_each=amount_each):
        refused += await submit(rpc, cluster, funding)
        await wait_drained(rpc, cluster, timeout=120)
    transfers = workload.sign_transfers(transactions)
    height_before = (await rpc.call(cluster.url(0), "chain_status"))["height"]
    submitted = time.monotonic()
    refused += await submit(rpc, cluster, transfers, rate=rate)
    await wait_drained(rpc, cluster, timeout=300)
    height_after = (await rpc.call(cluster.url(0), "chain_status"))["height"]
    return {
        "loaded_transactions": transactions - sum(refused.values()),
        "loaded_blocks": height_after - height_before,
        "transactions_per_block": round((transactions - sum(refused.values())) / max(1, height_after - height_before)),
        "load_refused": dict(refused),
        "load_seconds": round(time.monotonic() - started, 1),
        "load_rate_tx_s": round(transactions / max(1e-9, time.monotonic() - submitted)),
    }
