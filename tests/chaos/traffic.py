"""A steady load of transfers over JSON-RPC, as wallets would send them.

The treasury first funds a few sender accounts. Each sender then sends
transfers to a fixed set of recipients through one node (sender s uses node
s mod n, as a wallet sticks to its node), one nonce after the other: a
transfer is signed once and its same bytes are submitted again until the node
takes it (or says it already has it), so a lost answer never leaves a gap in
the sender's nonces. A pacer hands out the offered rate; a sender held up by a
node that cannot reach the others simply takes fewer turns.

Every transfer signed is recorded (when its node first took it, and when a
node first reported it final), which gives finality latencies and lets the end
of a run check the chain's balances against the transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mura.bench.rpc import Rpc, RpcFailure
from mura.chain.keys import SigningKey
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.tests.chaos.observer import POLL_ERRORS

#: Refusals that mean the node already has the transfer (pending or final).
ALREADY_TAKEN = frozenset({"duplicate_transaction", "nonce_too_low"})
#: The asset moved: the testnet's coin, which the treasury issues.
ASSET = "NAC"
#: Smallest units each sender is funded with.
SENDER_FUNDS = 1_000_000
#: Seconds between attempts when a node refuses or does not answer.
RETRY_SECONDS = 0.25


@dataclass(slots=True)
class TransferRecord:
    """One signed transfer and what became of it."""

    transaction: Transaction
    node: int
    #: ``time.monotonic()`` of the first submission.
    submitted: float
    #: When a node first took it (None: never, as far as the sender knows).
    accepted: float | None = None
    #: When a node first reported it final, and at which height.
    final: float | None = None
    height: int | None = None
    #: Refusals met before it was taken, by rule (or "transport").
    attempts: int = 0


class Traffic:
    """Funding, then paced transfers; ``start()`` it, ``stop()`` it once done."""

    def __init__(
        self,
        rpc: Rpc,
        urls: Sequence[str],
        *,
        treasury: SigningKey,
        chain_id: str,
        rate: float,
        senders: int = 8,
        recipients: int = 16,
        seed: int = 0,
    ) -> None:
        self.rpc = rpc
        self.urls = list(urls)
        self.treasury = treasury
        self.chain_id = chain_id
        self.rate = rate
        self._random = random.Random(seed)
        self.senders = [SigningKey.generate() for _ in range(senders)]
        self.recipients = [SigningKey.generate().public_key for _ in range(recipients)]
        #: Every transfer signed, by hash (0x-prefixed hex, as the RPC shows it).
        self.records: dict[str, TransferRecord] = {}
        #: Refusals by rule, over the run.
        self.refusals: dict[str, int] = {}
        self._turns: asyncio.Queue[None] = asyncio.Queue(maxsize=max(1, senders))
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- funding -------------------------------------------------------------------------

    async def fund(self, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Give every sender ``SENDER_FUNDS`` from the treasury and wait until that is final;
        node 0's ``tx_wait`` answers (the final transactions with their places)."""
        hashes = []
        for nonce, sender in enumerate(self.senders):
            body = Transfer(ASSET, sender.public_key, SENDER_FUNDS)
            transaction = sign_transaction(self.treasury, chain_id=self.chain_id, nonce=nonce, body=body)
            record = self._record(transaction, node=0)
            await self._submit_until_taken(record)
            hashes.append(record.transaction.hash)
        deadline = time.monotonic() + timeout
        answers = []
        for transaction_hash in hashes:
            remaining = max(1, int(deadline - time.monotonic()))
            answers.append(
                await self.rpc.call(self.urls[0], "tx_wait", "0x" + transaction_hash.hex(), min(remaining, 60))
            )
        return answers

    # --- the load ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._pace(), name="pacer")]
        self._tasks += [
            asyncio.create_task(self._send(index, sender), name=f"sender-{index}")
            for index, sender in enumerate(self.senders)
        ]

    async def stop(self) -> None:
        """Stop offering transfers; a transfer being submitted is given up. Idempotent."""
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pace(self) -> None:
        """A turn every 1/rate seconds; turns no sender is free to take are not saved up."""
        interval = 1.0 / self.rate
        due = time.monotonic()
        while True:
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            with contextlib.suppress(asyncio.QueueFull):
                self._turns.put_nowait(None)

    async def _send(self, index: int, sender: SigningKey) -> None:
        node = index % len(self.urls)
        nonce = 0
        while True:
            await self._turns.get()
            body = Transfer(ASSET, self._random.choice(self.recipients), self._random.randint(1, 100))
            transaction = sign_transaction(sender, chain_id=self.chain_id, nonce=nonce, body=body)
            await self._submit_until_taken(self._record(transaction, node=node))
            nonce += 1

    def _record(self, transaction: Transaction, *, node: int) -> TransferRecord:
        record = TransferRecord(transaction, node, submitted=time.monotonic())
        self.records["0x" + transaction.hash.hex()] = record
        return record

    async def _submit_until_taken(self, record: TransferRecord) -> None:
        url = self.urls[record.node]
        while True:
            try:
                await self.rpc.call(url, "tx_submit", record.transaction.encoded.hex())
                taken = True
            except RpcFailure as failure:
                data = failure.error.get("data") or {}
                rule = data.get("rule") or str(failure.error.get("message"))
                taken = rule in ALREADY_TAKEN
                if not taken:
                    self._refused(rule)
            except POLL_ERRORS:
                self._refused("transport")
                taken = False
            if taken:
                if record.accepted is None:
                    record.accepted = time.monotonic()
                return
            record.attempts += 1
            await asyncio.sleep(RETRY_SECONDS)

    def _refused(self, rule: str) -> None:
        self.refusals[rule] = self.refusals.get(rule, 0) + 1

    # --- what the observer tells --------------------------------------------------------

    def on_final(self, transaction_hash: str, seen: float, height: int) -> None:
        record = self.records.get(transaction_hash)
        if record is not None and record.final is None:
            record.final = seen
            record.height = height

    def accepted_not_final(self) -> list[TransferRecord]:
        return [record for record in self.records.values() if record.accepted is not None and record.final is None]

    def dump(self, path: Path) -> None:
        """Every transfer as a CSV row, times as ``time.time()``."""
        offset = time.time() - time.monotonic()
        senders = {sender.public_key: index for index, sender in enumerate(self.senders)}

        def wall(moment: float | None) -> str:
            return "" if moment is None else f"{moment + offset:.3f}"

        with open(path, "w") as file:
            file.write("hash,sender,nonce,node,submitted,accepted,final,height,refusals\n")
            for name, record in self.records.items():
                transaction = record.transaction
                file.write(f"{name},{senders.get(transaction.sender, 'treasury')},{transaction.nonce},{record.node},"
                           f"{wall(record.submitted)},{wall(record.accepted)},{wall(record.final)},"
                           f"{'' if record.height is None else record.height},{record.attempts}\n")

    def latencies(self, start: float, end: float) -> list[float]:
        """Finality latencies (seconds, from acceptance) of transfers accepted within [start, end)."""
        return sorted(
            record.final - record.accepted
            for record in self.records.values()
            if record.accepted is not None and record.final is not None and start <= record.accepted < end
        )
