"""The node's side of the driver: the consensus task and the parts it runs on.

``mura.consensus.driver.Driver`` executes the replica's actions over a clock, a
transport, the vote record and the ledger. Here are the node's clock (the wall
clock, with asyncio timers), its transport (the peer network) and its reports
(the operator's log, metrics and tx_wait calls), and ``ConsensusRunner``: one
task that takes the node's events and peers' consensus messages from one queue
and hands each to the driver in turn.

A proposal's transaction signatures are verified before the replica sees it, on
every core and off the event loop, once the checks the replica makes before it
validates a block pass (the proposal is its view's first, signed by the primary;
a NEW-VIEW's quorum; a final block's certificate): the replica then finds them
known when it checks the block, and never blocks the loop verifying thousands of
them, while a block the replica would not validate costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import plyvel

from mura.chain import codec
from mura.chain.block import Block, CommitCertificate, MessageBlock, quorum_size
from mura.chain.errors import DecodeError, Invalid
from mura.chain.store import Store, StoreError
from mura.chain.verify import SignatureVerifier, VerifierStopped
from mura.consensus.driver import Driver, Ledger
from mura.consensus.errors import penalized
from mura.consensus.evidence import Equivocation
from mura.consensus.messages import (
    BlockRequest,
    FinalBlock,
    Message,
    NewView,
    PrePrepare,
    Tag,
    decode_message,
    encode_message,
    message_tag,
)
from mura.consensus.replica import Replica
from mura.consensus.votes import VoteRecord
from mura.observers import CertifiedHeights
from mura.p2p.block_service import BlockService
from mura.p2p.inbox import ConsensusInbox
from mura.p2p.network import Network
from mura.progress_log import ProgressLog, consensus_facts, view_change_at_new_height, view_change_reason
from mura.rpc.finality import FinalityWatch
from mura.rpc.metrics import Metrics
from mura.rpc.subscriptions import BlockFeed

LOG = logging.getLogger("mura.node")

CONSENSUS_KIND = "consensus"
#: Seconds between checks for a stalled chain (and the periodic log lines).
PROGRESS_CHECK_SECONDS = 1.0


class InvalidMessageSender(Invalid):
    """A consensus message whose claimed sender is not the peer that sent it."""

    rule = "invalid_message_sender"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class WallClock:
    """The driver's ``Clock``: wall-clock milliseconds, and timers that post a timeout
    event to the consensus task's queue."""

    def __init__(self, post_timeout: Callable[[], None]) -> None:
        self._post_timeout = post_timeout
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def now_ms(self) -> int:
        return now_ms()

    def schedule(self, at_ms: int) -> None:
        if at_ms in self._timers:
            return
        delay = max(0.0, (at_ms - now_ms()) / 1000)

        def fire() -> None:
            remaining = at_ms - now_ms()
            if remaining > 0:
                # The wall clock stepped back: an early call would be ignored and the timer lost.
                self._timers[at_ms] = asyncio.get_running_loop().call_later(remaining / 1000, fire)
                return
            self._timers.pop(at_ms, None)
            self._post_timeout()

        self._timers[at_ms] = asyncio.get_running_loop().call_later(delay, fire)

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class NetworkTransport:
    """The driver's ``Transport`` over the peer network: frames are queued per link (a
    send returns at once), and broadcasts go to the validators of the replica's height
    and the next only (other linked peers, observers, are pushed final blocks instead:
    see ``mura.observers``); final blocks for a validator that is behind are served in
    a task of its own, one at a time per validator."""

    def __init__(self, *, network: Network, replica: Replica, block_service: BlockService) -> None:
        self.network = network
        self.replica = replica
        self.block_service = block_service
        #: Final blocks being served to peers that are behind, by public key.
        self.serving: dict[bytes, asyncio.Task[int]] = {}
        #: Block requests sent to another peer than the one asked (it had no link).
        self._fallbacks = 0

    @property
    def validators(self) -> tuple[bytes, ...]:
        """The public keys of the validators of the replica's height: the replica names
        validators by their index there."""
        return self.replica.validators.keys

    def takes_part(self, peer: bytes) -> bool:
        """Whether ``peer`` is a validator of the replica's height or the next: one added
        by the last change may already work on the height it joins at."""
        return peer in self.replica.participants

    def _outsiders(self) -> list[bytes]:
        """Linked peers that take no part in deciding the heights in progress."""
        participants = self.replica.participants
        return [peer for peer in self.network.connected_peers() if peer not in participants]

    def broadcast(self, message: Message) -> None:
        outsiders = self._outsiders()
        self._queue(message, lambda data: self.network.broadcast(CONSENSUS_KIND, data, exclude=outsiders))

    def send(self, validator: int, message: Message) -> None:
        peer = self.validators[validator]
        if isinstance(message, BlockRequest):
            self._queue(message, lambda data: self._request_blocks(peer, data))
            return
        self._queue(message, lambda data: self.network.send(peer, CONSENSUS_KIND, data))

    def _request_blocks(self, peer: bytes, data: bytes) -> bool:
        """A block request goes to the validator asked; when it has no link (validators of a
        set this node has not caught up with may have replaced it all), to the other linked
        peers in turn: the answer proves itself."""
        if self.network.send(peer, CONSENSUS_KIND, data):
            return True
        others = self.network.connected_peers()
        if not others:
            return False
        self._fallbacks += 1
        return self.network.send(others[self._fallbacks % len(others)], CONSENSUS_KIND, data)

    def relay(self, message: Message, exclude: frozenset[int]) -> None:
        excluded = [self.validators[index] for index in exclude] + self._outsiders()
        self._queue(message, lambda data: self.network.broadcast(CONSENSUS_KIND, data, exclude=excluded))

    def _queue(self, message: Message, queue: Callable[[bytes], object]) -> None:
        try:
            queue(encode_message(message))
        except ValueError as error:
            # A message above p2p.max_frame_bytes: peers would refuse it anyway; consensus
            # recovers through view change, the node keeps running.
            LOG.error("could not send a %s: %s", type(message).__name__, error)

    def serve_blocks(self, validator: int, from_height: int) -> None:
        """Serve a validator that is behind in a task of its own, off the consensus task
        (a request while one runs is dropped; it asks again)."""
        self.serve_peer(self.validators[validator], from_height)

    def serve_peer(self, peer: bytes, from_height: int) -> None:
        if peer in self.serving:
            return
        serving = self.block_service.serve(peer, from_height, now_ms())
        task = asyncio.create_task(serving, name=f"serve-{peer.hex()[:8]}")
        self.serving[peer] = task
        task.add_done_callback(lambda _: self.serving.pop(peer, None))

    def penalize(self, validator: int, rule: str) -> None:
        self.network.penalize(self.validators[validator], f"consensus message refused: {rule}")

    async def stop(self) -> None:
        for task in list(self.serving.values()):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class NodeReports:
    """The driver's ``Reports`` in the node: tx_wait calls woken, subscriptions sent the block, metrics, the progress
    log, equivocations kept and logged, the double-sign check's state logged, and
    ``after_final`` told of each final block (pushes to observers, links following the
    validator set)."""

    def __init__(
        self,
        *,
        replica: Replica,
        store: Store,
        finality: FinalityWatch,
        feed: BlockFeed,
        metrics: Metrics,
        progress: ProgressLog,
        double_sign_check_heights: int,
        after_final: Callable[[Block], None] | None = None,
    ) -> None:
        #: Read when a block is final: whether this node took part in deciding it.
        self.replica = replica
        self.store = store
        self._after_final = after_final
        #: The highest height seen final elsewhere (see ``mura.observers``).
        self.certified = CertifiedHeights(replica.check_certificate, lambda: store.height)
        self.finality = finality
        self.feed = feed
        self.metrics = metrics
        self.progress = progress
        self.double_sign_check_heights = double_sign_check_heights
        #: Equivocations counted per (validator, height), for the log.
        self._equivocations: dict[tuple[int, int], int] = {}
        #: The view of the last certificate this node committed.
        certificate = store.load_certificate(store.height) if store.height > 0 else None
        self.certified_view = 0 if certificate is None else certificate.view
        self._head_timestamp_ms = store.head.timestamp_ms

    def block_final(self, block: Block, certificate: CommitCertificate) -> None:
        # Synchronously after the save: a tx_wait that found nothing in the store is already registered.
        self.finality.block_committed(block)
        self.feed.block_committed(block)
        self.metrics.observe_block(block, self._head_timestamp_ms)
        self._head_timestamp_ms = block.header.timestamp_ms
        self.certified_view = certificate.view
        self._log_final(block, certificate.view)
        if self._after_final is not None:
            self._after_final(block)

    def highest_known_height(self) -> int:
        """The highest height known final somewhere: this node's own, one below a height a
        validator was seen working on, or one a validator sent with a valid certificate."""
        seen = self.replica.catch_up.highest_seen - 1
        return max(self.store.height, seen, self.certified.highest)

    def _log_final(self, block: Block, view: int) -> None:
        """Tell the progress log; the time from the proposal means something only when this
        node took part in deciding the block (it PREPAREd it in the view that certified it),
        not for one fetched with its certificate."""
        replica = self.replica
        prepared = None if replica.index is None else replica.log.prepares.vote_of(view, replica.index)
        took_part = prepared is not None and prepared.block_hash == block.hash
        self.progress.final_block(
            time.monotonic(),
            height=block.height,
            transactions=len(block.transactions),
            view=view,
            latency_ms=max(0, now_ms() - block.header.timestamp_ms) if took_part else None,
            target=max(block.height, self.highest_known_height()),
        )

    def equivocation(self, evidence: Equivocation) -> None:
        """Say it once per validator and height at WARNING (a validator that equivocates in
        every view and phase would otherwise write a line for each); the replica keeps the
        evidence itself."""
        offence = (evidence.validator, evidence.height)
        self._equivocations[offence] = self._equivocations.get(offence, 0) + 1
        if self._equivocations[offence] == 1:
            LOG.warning(
                "equivocation by validator %d at height %d view %d (%s); evidence kept, further ones at this "
                "height are counted", evidence.validator, evidence.height, evidence.view, evidence.phase.name,
            )
            # Only the heights in progress matter: older offences are forgotten.
            for stale in [key for key in self._equivocations if key[1] < evidence.height - 1]:
                self._log_equivocations_at(stale)
        else:
            LOG.debug("equivocation by validator %d at height %d view %d (%s)", evidence.validator, evidence.height,
                      evidence.view, evidence.phase.name)

    def _log_equivocations_at(self, offence: tuple[int, int]) -> None:
        count = self._equivocations.pop(offence)
        if count > 1:
            LOG.warning("validator %d equivocated %d times in all at height %d", offence[0], count, offence[1])

    def signing_guard_saved(self, until_height: int, from_view: int) -> None:
        if until_height:
            LOG.warning(
                "double-sign check: the network works on height %d or so; signing nothing up to height %d",
                max(1, until_height - self.double_sign_check_heights + 1), until_height,
            )
        elif from_view:
            LOG.warning(
                "double-sign check: the network is at its first height and others have signed there; "
                "signing nothing there before view %d",
                from_view,
            )
        else:
            LOG.info("double-sign check: a new network where nobody has signed yet; signing from now on")


class ConsensusRunner:
    """One task hands the driver every event in order: peers' consensus messages (bounded
    in all and per peer by the inbox), timeouts, links opening, transactions arriving."""

    def __init__(
        self,
        *,
        replica: Replica,
        votes: VoteRecord,
        ledger: Ledger,
        network: Network,
        block_service: BlockService,
        reports: NodeReports,
        verifier: SignatureVerifier,
        verify_certified_signatures: bool,
        name_of: Callable[[bytes], str],
        max_frame_bytes: int,
        stop_node: Callable[[], None],
    ) -> None:
        self.replica = replica
        self.network = network
        self.reports = reports
        self.verifier = verifier
        self.verify_certified_signatures = verify_certified_signatures
        self._name_of = name_of
        self.max_frame_bytes = max_frame_bytes
        self._stop_node = stop_node
        self.block_service = block_service
        # Unbounded for the node's own events (timeouts must never be lost); peer messages
        # are bounded in all and per peer by ``inbox`` (see ``mura.p2p.inbox``).
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.inbox = ConsensusInbox()
        self.clock = WallClock(lambda: self.post(("timeout", None)))
        self.transport = NetworkTransport(network=network, replica=replica, block_service=block_service)
        self.driver = Driver(
            replica=replica, clock=self.clock, transport=self.transport, votes=votes, ledger=ledger, reports=reports
        )
        self._tasks: list[asyncio.Task[None]] = []
        #: The next height's proposal verified ahead last, as (height, view): one per view.
        self._next_height_checked: tuple[int, int] | None = None

    @property
    def names(self) -> list[str]:
        """The names of the validators of the replica's height, by index."""
        return [self._name_of(key) for key in self.replica.validators.keys]

    def _validator_index(self, peer: bytes) -> int | None:
        """The peer's index in the validator set of the replica's height (None: none)."""
        return self.replica.validators.indexes.get(peer)

    def takes_part(self, peer: bytes) -> bool:
        """Whether ``peer`` is a validator of the replica's height or the next."""
        return self.transport.takes_part(peer)

    @property
    def progress(self) -> ProgressLog:
        return self.reports.progress

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the consensus task and the progress watch; the replica begins its height."""
        if self._tasks:
            return
        self._log_resumed_view()
        self._tasks = [
            asyncio.create_task(self._run(), name="consensus"),
            asyncio.create_task(self._watch_progress(), name="progress"),
        ]
        self.post(("start", None))

    async def stop(self) -> None:
        """Stop both tasks and every timer and block-serving task; idempotent."""
        self.clock.cancel_all()
        for task in self._tasks:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.transport.stop()

    # --- intake ---------------------------------------------------------------------------

    def post(self, event: tuple[str, Any]) -> None:
        self.events.put_nowait(event)

    def post_message(self, peer: bytes, message: Message, size: int) -> bool:
        """Queue a peer's message of ``size`` bytes for the replica, within the queue's bound
        and the peer's share of it; what does not fit is dropped (view change and catch-up
        recover it). True when queued."""
        if not self.inbox.admit(peer, size):
            dropped = self.inbox.dropped["full"]
            if math.log10(dropped).is_integer():
                messages, queued_bytes = self.inbox.queued_by(peer)
                LOG.warning(
                    "consensus queue full (%d queued, %d messages and %d bytes from peer %s); %d dropped so far",
                    len(self.inbox), messages, queued_bytes, peer.hex()[:16], dropped,
                )
            return False
        self.events.put_nowait(("message", (peer, message, size)))
        return True

    async def on_frame(self, peer: bytes, payload: Any) -> None:
        """Take a peer's consensus message in its link task: block requests are answered
        here, off the replica's path; the same bytes seen lately (relayed copies) are
        dropped before decoding; the rest is decoded (cheaply: blocks up to their
        headers), so garbage counts against the peer, and queued for the replica."""
        await asyncio.sleep(0)  # fair to the other links, as for gossip
        raw = codec.read_bytes(payload, "consensus", max_length=self.max_frame_bytes)
        if message_tag(raw) is Tag.BLOCK_REQUEST:
            await self._on_block_request(peer, decode_message(raw))
            return
        if message_tag(raw) is not Tag.FINAL_BLOCK and not self.takes_part(peer):
            # No validator of the heights in progress here: an observer, one removed, or a
            # validator of a set this node has not reached yet (it is behind). Its votes
            # are dropped unread and without blame (this node may be the one behind); its
            # final blocks prove themselves and are taken.
            self.inbox.dropped["not_a_validator_here"] += 1
            return
        now = time.monotonic()
        digest = self.inbox.repeated(raw, now)
        if digest is None:
            return
        message = decode_message(raw)
        if isinstance(message, FinalBlock):
            self.reports.certified.note(message)
        if self.post_message(peer, message, len(raw)):
            self.inbox.remember(digest, now)

    async def _on_block_request(self, peer: bytes, message: Message) -> None:
        if not isinstance(message, BlockRequest):
            raise InvalidMessageSender("a block request frame holds another message")
        # Final blocks go back by the link the request came by, whatever place in a set
        # its ``requester`` names: they prove themselves.
        await self.block_service.serve(peer, message.height, now_ms())

    # --- the task -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            # ``get`` does not suspend while events are queued: without this a full queue
            # would run back to back and starve RPC, links and their heartbeats.
            await asyncio.sleep(0)
            event, argument = await self.events.get()
            try:
                if event == "message":
                    await self._verify_ahead(argument[1])
                self._handle(event, argument)
            except asyncio.CancelledError:
                raise
            except (StoreError, plyvel.Error) as error:
                # A disk full or failing: what the operator must fix, in one line.
                LOG.critical("consensus stopped: the chain's data or the vote record could not be written: %s", error)
                self._stop_node()
                return
            except VerifierStopped:
                return  # the node is stopping: the verifier stops after this task
            except Exception:
                # A bug here must not pass silently, nor leave a half-applied block behind.
                LOG.critical("consensus failed; stopping the node", exc_info=True)
                self._stop_node()
                return

    def _handle(self, event: str, argument: Any) -> None:
        replica, driver = self.replica, self.driver
        height, view = replica.height, replica.view
        if event == "message":
            peer, message, size = argument
            self.inbox.release(peer, size)
            origin = self._validator_index(peer)
            if origin is not None or not isinstance(message, FinalBlock) or self._proves_itself(peer, message):
                driver.receive(message, origin=origin)
        elif event == "peer":
            driver.peer_connected(argument)
        elif event == "timeout":
            driver.timeout()
        elif event == "transactions":
            driver.transactions_arrived()
        else:
            driver.start()
        if replica.height == height and replica.view > view:
            message = argument[1] if event == "message" else None
            self._log_view_change(view, view_change_reason(replica, self.names, event, message))
        elif replica.height > height:
            self._log_view_at_new_height(view)

    def _proves_itself(self, peer: bytes, final: FinalBlock) -> bool:
        """A final block from a peer that is no validator of this height is checked here,
        before the replica takes it: the replica cannot name that peer, so a certificate
        that does not verify counts against it here."""
        replica = self.replica
        if not replica.wants_final_block(final.height):
            return True  # the replica drops it unread
        try:
            replica.check_certificate(final)
        except Invalid as error:
            replica.rejected[error.rule] += 1
            if penalized(error):
                self.network.penalize(peer, f"consensus message refused: {error.rule}")
            return False
        return True

    async def _verify_ahead(self, message: Message) -> None:
        """Verify the transaction signatures of a block the replica is about to check, off
        the event loop (see ``_block_to_check``)."""
        block = self._block_to_check(message)
        if block is None:
            return
        try:
            transactions = block.check().transactions
        except DecodeError:
            return  # the replica refuses it, and counts it against the peer
        await self.verifier.verify_async(transactions)

    def _block_to_check(self, message: Message) -> MessageBlock | None:
        """The block of ``message`` the replica validates when it takes the message (or
        as soon as its height is final), found with the checks the replica makes before
        it validates, cheapest first: the view's first proposal, from its primary (see
        ``_proposal_to_check``); a NEW-VIEW that moves the replica into its view; a final
        block it wants, whose certificate verifies (when certified blocks are checked
        too). Anything else (a later view's proposal, a primary's second one) the replica
        never validates, and nothing is verified for it."""
        replica = self.replica
        try:
            if isinstance(message, PrePrepare):
                return self._proposal_to_check(message)
            if isinstance(message, NewView):
                moves = message.view > replica.view or (message.view == replica.view and not replica.active)
                if message.height != replica.height or not moves:
                    return None
                replica.verifier.check_new_view(message)
                return message.pre_prepare.block
            if isinstance(message, FinalBlock):
                if not self.verify_certified_signatures or not replica.wants_final_block(message.height):
                    return None
                replica.check_certificate(message)
                return message.block
        except Invalid:
            return None  # the replica refuses it, and counts it against the peer
        return None

    def _proposal_to_check(self, message: PrePrepare) -> MessageBlock | None:
        """The current view's first proposal for this height; or, for the next height, the
        first in this view, which the replica holds until this height is final and then
        validates at once (a primary with a backlog proposes as soon as it has made the
        height final, often before this node has)."""
        replica = self.replica
        if message.view != replica.view:
            return None
        if message.height == replica.height:
            if not replica.active or message.view in replica.log.proposals or message.block_hash in replica.log.refused:
                return None
        elif message.height != replica.height + 1 or (message.height, message.view) == self._next_height_checked:
            return None
        replica.verifier_at(message.height).check_pre_prepare(message)
        if message.height > replica.height:
            self._next_height_checked = (message.height, message.view)
        return message.block

    # --- what the operator reads ------------------------------------------------------------

    def _log_view_change(self, before: int, reason: str) -> None:
        """One line for the replica's move from view ``before`` to the one it is in now."""
        replica = self.replica
        self.progress.view_changed(
            time.monotonic(), height=replica.height, before=before, after=replica.view, reason=reason,
            primary=self.names[replica.validators.primary(replica.view)],
        )

    def _log_view_at_new_height(self, previous_view: int) -> None:
        """A view the replica did not change to itself at its old height (not while catching
        up, where it would be a line per block)."""
        change = view_change_at_new_height(self.replica, previous_view, self.reports.certified_view)
        if change is not None and not self.progress.catching_up:
            self._log_view_change(*change)

    def _log_resumed_view(self) -> None:
        """A replica that resumes a view it voted in before a restart has changed views,
        and says so."""
        certified_view = self.reports.certified_view
        if self.replica.view != certified_view or not self.replica.active:
            self._log_view_change(certified_view, "restart: resuming the view this validator last voted in here")

    async def _watch_progress(self) -> None:
        """Check for a stalled chain about once a second (see ``mura.progress_log``)."""
        while True:
            await asyncio.sleep(PROGRESS_CHECK_SECONDS)
            connected = set(self.network.connected_peers())
            facts = consensus_facts(
                self.replica, self.names, connected, highest_known=self.reports.highest_known_height()
            )
            self.progress.check(time.monotonic(), facts)


def progress_log(*, validators: int, base_timeout_ms: int, empty_block_interval_ms: int) -> ProgressLog:
    """The operator's account of progress (see ``mura.progress_log``) for these timers."""
    return ProgressLog(
        quorum=quorum_size(validators),
        stall_after=(empty_block_interval_ms + 2 * base_timeout_ms) / 1000,
        view_change_limit=2 * base_timeout_ms / 1000,
        now=time.monotonic(),
    )
