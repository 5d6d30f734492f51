"""Transactions into the pool: from wallets over RPC and from peers' gossip.

Cheap rules first (the mempool's checks over the committed state and the pool),
then the signature on the verifier's threads, together with whatever else
arrived in the same turn of the loop, then admission, which finds it verified.
What an honest node checks before it forwards anything (the bytes, the
signature, the chain, the amount, the memo, who may issue, mint and register an
asset) counts against the peer that gossiped it; what depends on the state is
normal in gossip and skipped.

The first transaction a block could take at a height wakes the replica (a
primary waiting out the idle interval proposes soon after). Pending
transactions are offered to a validator whose link just opened, and a
sender's run that stalls behind a lost frame is gossiped again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from mura.chain.drops import Dropped
from mura.chain.errors import (
    BadCounterpartySignature,
    BadPayingConsent,
    BadSignature,
    ChainAccountRecipient,
    Invalid,
    InvalidAssetId,
    InvalidAssetTerms,
    InvalidBondTerms,
    InvalidPurpose,
    InvalidValidatorInfo,
    MemoNotPrintable,
    MemoTooLong,
    NonPositiveAmount,
    NotAssetIssuer,
    NotRegistrar,
    NotTradeParty,
    ReplacementTooSoon,
    WrongChainId,
)
from mura.chain.mempool import Mempool
from mura.chain.store import Store
from mura.chain.transaction import Transaction
from mura.chain.verify import SignatureVerifier
from mura.p2p.gossip import DEFAULT_MAX_BATCH, StalledRuns, TransactionGossip, decode_transaction_batch
from mura.p2p.inbox import GossipBudget
from mura.p2p.network import Network
from mura.rpc.finality import FinalityWatch
from mura.rpc.metrics import Metrics

LOG = logging.getLogger("mura.node")

TRANSACTIONS_KIND = "transactions"
#: A peer whose link opens is offered up to this many pending transactions (each
#: sender's run of ready nonces, at most ``MAX_OFFERED_RUN`` of it), in gossip frames.
MAX_OFFERED_TRANSACTIONS = 2_000
MAX_OFFERED_RUN = 256
#: Refusals of gossiped transactions that no honest node forwards: it checks these rules
#: before it admits a transaction, whatever the state (signatures and bytes are checked
#: apart). An asset's issuer and registrar are fixed at its issue: a node that does not
#: know the asset yet refuses it as unknown, and forwards it no more. Roles and the
#: validator set change by governance, so a node a block behind may refuse what another
#: admitted (``not_an_issuer``, ``not_a_validator``): those are not for cause. Anything
#: else may be refused here because this node's state differs.
GOSSIP_REFUSALS_FOR_CAUSE = (
    WrongChainId,
    NonPositiveAmount,
    MemoTooLong,
    MemoNotPrintable,
    InvalidValidatorInfo,
    InvalidAssetId,
    InvalidAssetTerms,
    NotAssetIssuer,
    NotRegistrar,
    InvalidBondTerms,
    ChainAccountRecipient,
    NotTradeParty,
    BadCounterpartySignature,
    BadPayingConsent,
    InvalidPurpose,
)
#: Terms whose check depends on the time, which differs a little between honest nodes'
#: clocks, or on the state (an asset issued a moment ago): a refusal naming one of these
#: does not count against the peer.
_TIME_OR_STATE_FIELDS = frozenset({"expiry_ms", "maturity_ms", "coupon_times", "settlement"})


def refused_for_cause(error: Invalid) -> bool:
    """Whether no honest node would have forwarded a transaction refused with ``error``."""
    return isinstance(error, GOSSIP_REFUSALS_FOR_CAUSE) and error.details.get("field") not in _TIME_OR_STATE_FIELDS


class Admission:
    """The pool's intake from RPC and gossip, and what keeps gossip moving."""

    def __init__(
        self,
        *,
        store: Store,
        mempool: Mempool,
        verifier: SignatureVerifier,
        network: Network,
        gossip: TransactionGossip,
        rebroadcast_after_ms: int,
        wake_replica: Callable[[], None],
    ) -> None:
        self.store = store
        self.mempool = mempool
        self.verifier = verifier
        self.network = network
        self.gossip = gossip
        self._wake_replica = wake_replica
        #: Gossiped transactions each peer may have this node look at.
        self.gossip_budget = GossipBudget()
        # A stalled sender's whole backlog may be behind one lost frame: send enough of its run
        # to drain it well faster than a busy sender adds to it.
        self.stalled = StalledRuns(
            after=rebroadcast_after_ms / 1000, max_run=MAX_OFFERED_RUN, max_transactions=5_000
        )
        #: Senders whose replacement of a pending transaction is being verified (RPC).
        self._replacing: set[bytes] = set()
        #: The height at which arriving transactions last woke the replica (see ``_after_admission``).
        self._woken_at_height = -1
        #: Pending transactions being offered to peers whose links just opened, by peer.
        self._offers: dict[bytes, asyncio.Task[None]] = {}
        self._rebroadcast_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._rebroadcast_task is None:
            self._rebroadcast_task = asyncio.create_task(self._rebroadcast_stalled(), name="rebroadcast")

    async def stop(self) -> None:
        tasks = [*self._offers.values(), *([self._rebroadcast_task] if self._rebroadcast_task else [])]
        for task in tasks:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # --- from wallets -------------------------------------------------------------------

    async def submit(self, transaction: Transaction) -> bytes:
        """Admit a wallet's transaction and gossip it; its hash, or the ``Invalid`` that refuses it."""
        # The cheap rules first, then the signature on the verifier's threads (together
        # with the rest of an RPC batch), then admission, which finds it verified.
        replaced = self.mempool.check(transaction, self.store, now=time.monotonic(), timestamp_ms=_wall_clock_ms())
        sender = transaction.sender
        if replaced is not None:
            # Versions of one nonce arriving together (an RPC batch, parallel calls) would all
            # pass the check before the first is admitted: one at a time is verified.
            if sender in self._replacing:
                raise ReplacementTooSoon(
                    "another replacement from this sender is being admitted; try again in a moment",
                    retry_after_seconds=0.0,
                )
            self._replacing.add(sender)
        try:
            if await self.verifier.verify_async([transaction]):
                raise BadSignature("signature does not verify against the sender's key")
            self.mempool.add(transaction, self.store, now=time.monotonic(), timestamp_ms=_wall_clock_ms())
        finally:
            if replaced is not None:
                self._replacing.discard(sender)
        self._after_admission([transaction])
        self.gossip.submit(transaction.encoded)
        return transaction.hash

    # --- from peers ---------------------------------------------------------------------

    async def on_gossip_frame(self, peer: bytes, payload: Any) -> None:
        """Admit a peer's batch. What depends on the state (already pending or final, a
        balance or nonce that moved on, a full pool) is normal in gossip and skipped; what
        an honest node checks before it forwards anything (``GOSSIP_REFUSALS_FOR_CAUSE``,
        the bytes, the signature) counts against the peer, once per batch,
        after the batch's good transactions are admitted."""
        batch = decode_transaction_batch(payload)
        # Fair to the other links: a peer's frames are handled one after another without
        # this node's other work waiting behind a run of them.
        await asyncio.sleep(0)
        if not self.gossip_budget.take(peer, len(batch), time.monotonic()):
            return
        # A backlog's run of nonces comes in one batch and passes whole.
        transactions = [Transaction.decode(encoded) for encoded in batch]
        candidates, refusals = self.mempool.check_batch(
            transactions, self.store, now=time.monotonic(), timestamp_ms=_wall_clock_ms()
        )
        refused = [error for error in refusals if refused_for_cause(error)]
        forged = await self.verifier.verify_async(candidates)
        now = time.monotonic()
        admitted: list[Transaction] = []
        for transaction in candidates:
            if transaction.hash in forged:
                continue
            try:
                self.mempool.add(transaction, self.store, now=now, timestamp_ms=_wall_clock_ms())
            except Invalid:
                continue
            admitted.append(transaction)
        self._after_admission(admitted)
        if forged:
            raise BadSignature(f"peer forwarded transaction {next(iter(forged)).hex()} with a bad signature")
        if refused:
            raise type(refused[0])(f"peer forwarded {len(refused)} transactions no node admits: {refused[0].message}")

    def offer_pending(self, peer: bytes) -> None:
        """A peer's link opened: the pending transactions a block could take next go to it
        (gossip lost while the link was down is not otherwise sent again until its
        senders stall), in a task of its own, one at a time per peer."""
        if len(self.mempool) == 0 or peer in self._offers:
            return
        task = asyncio.create_task(self._offer(peer), name=f"offer-pending-{peer.hex()[:8]}")
        self._offers[peer] = task
        task.add_done_callback(lambda _: self._offers.pop(peer, None))

    async def _offer(self, peer: bytes) -> None:
        offered: list[bytes] = []
        for run in self.mempool.ready_runs(self.store, max_run=MAX_OFFERED_RUN):
            offered += [transaction.encoded for transaction in run]
            if len(offered) >= MAX_OFFERED_TRANSACTIONS:
                break
        for start in range(0, min(len(offered), MAX_OFFERED_TRANSACTIONS), DEFAULT_MAX_BATCH):
            if not self.network.send(peer, TRANSACTIONS_KIND, offered[start : start + DEFAULT_MAX_BATCH]):
                return
            await asyncio.sleep(0)

    # --- the replica and the pool's upkeep ----------------------------------------------

    def _after_admission(self, admitted: Sequence[Transaction]) -> None:
        """Wake a primary that waits out the idle interval (and shorten the others' view
        timers) once a transaction a block could take arrives: one whose nonce is its
        sender's next. Once per height: later ones find the replica awake."""
        height = self.store.height
        if self._woken_at_height == height:
            return
        if any(transaction.nonce == self.store.load_account(transaction.sender).nonce for transaction in admitted):
            self._woken_at_height = height
            self._wake_replica()

    async def _rebroadcast_stalled(self) -> None:
        """Every third of ``mempool.rebroadcast_after_ms``, drop expired transactions, log a
        line counting what was dropped since the last one (at most one a minute), and gossip
        stalled senders' runs again."""
        while True:
            await asyncio.sleep(self.stalled.after / 3)
            now = time.monotonic()
            self.mempool.expire(now)
            summary = self.mempool.drop_summary(now=now)
            if summary is not None:
                LOG.info("%s", summary)
            due = self.stalled.due(self.mempool, self.store, time.monotonic(), self.store.height)
            for transaction in due:
                self.gossip.submit(transaction.encoded)
            if due:
                LOG.debug("gossiping %d stalled transactions again", len(due))


def drops_reporter(finality: FinalityWatch, metrics: Metrics) -> Callable[[Sequence[Dropped]], None]:
    """The mempool's ``on_drop``: wake the tx_wait calls waiting for what it dropped at
    once, and count the drops. (The INFO line counting drops is logged by the pool's
    upkeep, at most one a round.)"""

    def report(drops: Sequence[Dropped]) -> None:
        finality.transactions_dropped(drops)
        for dropped in drops:
            metrics.observe_drop(dropped.rule)
            LOG.debug("dropped pending transaction %s (%s): %s", dropped.transaction_hash.hex(), dropped.rule,
                      dropped.message)

    return report


def _wall_clock_ms() -> int:
    """The time a block proposed now would carry: the rules that depend on a block's
    timestamp are checked at admission against it."""
    return int(time.time() * 1000)
