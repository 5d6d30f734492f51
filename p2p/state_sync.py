"""Joining by state sync: the state as of a certified height from peers, checked piece by piece.

A node whose data directory is empty, with ``sync.mode = "snapshot"``, runs
``StateSync`` before anything else. It trusts the genesis file and nothing a
peer says until it is checked:

1. *Offers.* It asks each peer that links to it which snapshots it serves,
   until every configured peer has answered, or ``offer_grace_seconds`` after
   the first offer, or ``wait_seconds`` in all. With no offer it returns None
   and the node replays from genesis.
2. *Accounts of H.* For the highest height H offered, it asks all the peers
   that offered it at once for their account of H and checks each:

   - the validator set changes whose header is at most H: each is the
     certified header before its activation height, checked against the set
     trusted before it (genesis first), whose ``next_validators_hash`` is
     ``validators_hash`` of the new set (``mura.chain.governance``);
   - final block H with its commit certificate, checked against set(H) before
     the body is decoded, and header H - 1, which block H's ``parent_hash``
     binds: its ``next_validators_hash`` must be set(H)'s and header H's must
     be set(H + 1)'s, so a change left out anywhere near H is seen, and set(H)
     is exactly the one that decides H;
   - the manifest of the snapshot at H, page by page, whose ranges must add up
     to header H's state root (``mura.chain.snapshot.check_manifest``).

   A peer whose account does not check has lied: it is penalized and asked
   nothing more. An account that checks is taken only once f + 1 validators of
   set(H) (f the faults set(H) tolerates; observers and validators removed before
   H do not count) have given the same one (the same changes and
   sets, block and manifest: ``_Account.digest``): one of them is honest, and
   honest nodes cut the same manifest from the same state. A manifest can add
   up and still lie (lattice sum moved from one range to another); one nobody
   else vouches for is set aside, its sender not penalized (nothing proves the
   lie), and no honest chunk is ever checked against it.
3. *Chunks.* Each peer that offered H is asked for one range at a time. A
   chunk is checked on its own against the vouched manifest (``check_chunk``)
   in a thread and written to the store; a chunk that fails can only be its
   sender's lie: it is refused, its peer penalized and asked nothing more, and
   the range is asked of another peer. If no peer is left for a range, the
   height is given up and the next one tried.
   Each height has ``height_seconds``, the whole join ``deadline_seconds``; a peer
   busy for ``busy_seconds`` is asked no more, one whose link dropped is asked again
   when it links within ``relink_seconds``.
4. *Finish.* With every range in, the state's lattice is the manifest's total,
   which is H's: the store is finished at H (``Store.finish_state_sync``) with
   the validator history up to H + 1 and the certified headers of the changes,
   and the node follows blocks from H + 1 by the usual catch-up, checking each
   certificate against the set of its height.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mura.chain import codec
from mura.chain.block import Block, CommitCertificate, Header, verify_certificate
from mura.chain.errors import DecodeError, Invalid, InvalidCertificate
from mura.chain.governance import ValidatorSet, validator_keys, validators_hash
from mura.chain.keys import sha256
from mura.chain.snapshot import (
    MANIFEST_PAGE_RANGES,
    MAX_RANGES,
    Manifest,
    SnapshotInvalid,
    StateRange,
    check_chunk,
    check_manifest,
)
from mura.chain.store import Store, StoreError
from mura.p2p.sync_messages import (
    STATE_SYNC_KIND,
    Answer,
    Chunk,
    ChunkRequest,
    ManifestPage,
    ManifestRequest,
    Offers,
    OffersRequest,
    Proof,
    ProofRequest,
    Refusal,
    Request,
    SetChange,
    SetChanges,
    SetChangesRequest,
    encode_sync_message,
)

LOG = logging.getLogger("mura.state_sync")


class SyncNetwork(Protocol):
    """The peer network, as the sync sees it."""

    def send(self, peer_public_key: bytes, kind: str, payload: Any) -> bool: ...

    def connected_peers(self) -> list[bytes]: ...

    def penalize(self, peer_public_key: bytes, reason: str) -> None: ...


class SetChangeRefused(SnapshotInvalid):
    """A validator set change whose header is not certified by the set in force before it,
    or that does not bind the set it claims."""

    rule = "set_change_refused"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSettings:
    """How long the joining node waits for what."""

    #: Longest wait for snapshot offers before replaying from genesis instead.
    wait_seconds: float = 30.0
    #: After the first offer, how long to wait for more (a higher height may come).
    offer_grace_seconds: float = 2.0
    #: Longest wait for one answer.
    request_timeout_seconds: float = 20.0
    #: First and longest pause before asking again a peer that said it is busy.
    busy_pause_seconds: float = 0.05
    busy_pause_max_seconds: float = 1.0
    #: Times a peer may fail to answer in time before it is asked nothing more.
    timeouts_per_peer: int = 3
    #: Longest a join may take in all (offers, accounts, chunks): then the node replays from genesis.
    deadline_seconds: float = 3600.0
    #: Longest spent on one height (its accounts and its chunks): then a lower height is tried.
    height_seconds: float = 1200.0
    #: Longest a peer may answer nothing but ``busy`` or ``over_budget``: then it is asked no more
    #: chunks of the height (not penalized: an honest peer may be busy, but not for ever).
    busy_seconds: float = 60.0
    #: Longest wait for a peer whose link dropped during the chunks to link again.
    relink_seconds: float = 60.0


@dataclass(slots=True)
class SyncOutcome:
    """What a finished state sync did."""

    height: int
    entries: int = 0
    chunks: int = 0
    #: Bytes of the state entries taken (keys and values; framing aside).
    entry_bytes: int = 0
    #: Chunks refused (they did not check) and the peers penalized for them.
    refused_chunks: int = 0
    penalized: set[bytes] = field(default_factory=set)
    seconds: float = 0.0


class _PeerGone(Exception):
    """A peer did not answer: link down, timeout, or a refusal."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Asked:
    request: Request
    answer: asyncio.Future[Answer]


def faults_tolerated(validators: Sequence[object]) -> int:
    """f: how many of a set of n = 3f + 1 (or more) may be faulty."""
    return (len(validators) - 1) // 3


ValidatorHistory = list[tuple[int, ValidatorSet]]


def validator_history(
    genesis_validators: ValidatorSet, changes: Sequence[SetChange], *, chain_id: str, height: int
) -> ValidatorHistory:
    """``(activation height, set)`` from genesis's set (at 1) through ``changes`` up to
    ``height + 1``, each change checked against the set trusted before it;
    ``SetChangeRefused`` for one that does not check."""
    history: ValidatorHistory = [(1, genesis_validators)]
    extend_history(history, changes, chain_id=chain_id, height=height)
    return history


def extend_history(history: ValidatorHistory, changes: Sequence[SetChange], *, chain_id: str, height: int) -> None:
    """Append ``changes`` to ``history``, each checked against the last set before it."""
    for change in changes:
        header = change.header
        last, current = history[-1]
        if not last < change.activation_height <= height + 1:
            raise SetChangeRefused(f"a validator set change at height {change.activation_height} is out of order")
        try:
            verify_certificate(change.certificate, chain_id=chain_id, height=header.height, block_hash=header.hash,
                               validators=validator_keys(current))
        except InvalidCertificate as error:
            raise SetChangeRefused(f"the header before the change at {change.activation_height}: {error.message}") \
                from None
        if not change.records or header.next_validators_hash != validators_hash(change.records):
            raise SetChangeRefused(f"header {header.height} does not bind the set given for {header.height + 1}")
        history.append((change.activation_height, change.records))


def set_at(history: ValidatorHistory, height: int) -> ValidatorSet:
    """The set of ``history`` that decides ``height``."""
    return [validators for activation, validators in history if activation <= height][-1]


@dataclass(frozen=True, slots=True)
class _Account:
    """What one peer says of height H, checked as far as one peer's word can be."""

    changes: tuple[SetChange, ...]
    history: ValidatorHistory
    block: Block
    certificate: CommitCertificate
    manifest: Manifest

    @property
    def validators(self) -> ValidatorSet:
        """set(H), exactly (header H - 1 binds it)."""
        return set_at(self.history, self.block.height)

    @property
    def digest(self) -> bytes:
        """The same for every honest peer's account of H (certificates aside: each node holds
        the quorum of signatures it saw)."""
        return sha256(codec.encode([[change.account_fields() for change in self.changes], self.block.hash,
                                    self.manifest.digest]))


class StateSync:
    """One join by state sync over ``network``, into ``store`` (which holds no chain)."""

    def __init__(
        self,
        *,
        store: Store,
        network: SyncNetwork,
        peers: Sequence[bytes],
        chain_id: str,
        genesis_validators: ValidatorSet,
        genesis_hash: bytes,
        settings: SyncSettings = SyncSettings(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._network = network
        self._peers = tuple(peers)
        self._chain_id = chain_id
        self._genesis_validators = tuple(genesis_validators)
        self._genesis_hash = genesis_hash
        self.settings = settings
        self._clock = clock
        self._asked: dict[bytes, _Asked] = {}
        self._linked = asyncio.Event()
        #: When the height being synced is given up (its requests and waits end by then).
        self._until = math.inf
        #: The chunks being fetched, if any.
        self._fetch: _ChunkFetch | None = None
        #: Peers that sent something that did not check: asked nothing more.
        self._distrusted: set[bytes] = set()
        #: Answers that matched no request outstanding (late after a timeout, or unasked).
        self.unexpected = 0
        self.outcome: SyncOutcome | None = None

    # --- the network's side -----------------------------------------------------------

    def peer_linked(self, peer: bytes) -> None:
        """A link to ``peer`` opened: ask it for offers, or for chunks again if it serves them."""
        self._linked.set()
        if self._fetch is not None:
            self._fetch.peer_linked(peer)

    def on_answer(self, peer: bytes, answer: Answer) -> None:
        """An answer from ``peer``: it completes the request outstanding to it if it answers it."""
        asked = self._asked.get(peer)
        if asked is None or asked.answer.done() or not _answers(answer, asked.request):
            self.unexpected += 1
            return
        asked.answer.set_result(answer)

    async def _ask(self, peer: bytes, request: Request) -> Answer:
        """``peer``'s answer to ``request``; ``_PeerGone`` if it does not come or is a refusal."""
        if peer in self._asked:
            raise RuntimeError("one request at a time per peer")
        remaining = self._time_left()
        if remaining <= 0:
            raise _PeerGone("deadline")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._asked[peer] = _Asked(request, future)
        try:
            if not self._network.send(peer, STATE_SYNC_KIND, encode_sync_message(request)):
                raise _PeerGone("not linked")
            try:
                async with asyncio.timeout(min(self.settings.request_timeout_seconds, remaining)):
                    answer = await future
            except TimeoutError:
                raise _PeerGone("no answer in time") from None
        finally:
            del self._asked[peer]
        if isinstance(answer, Refusal):
            raise _PeerGone(answer.reason)
        return answer

    def _time_left(self) -> float:
        """Seconds until the height being synced is given up."""
        return self._until - self._clock()

    def _distrust(self, peer: bytes, error: Invalid) -> None:
        self._distrusted.add(peer)
        self._network.penalize(peer, f"state sync: {error.rule}: {error.message}")
        LOG.warning("state sync: refused what peer %s sent (%s): %s; asking others", peer.hex()[:16], error.rule,
                    error.message)

    # --- the sync -----------------------------------------------------------------------

    async def run(self) -> SyncOutcome | None:
        """Sync the store to the highest snapshot offered that checks; None when no peer offers
        one, or none could be taken within ``deadline_seconds`` (the node then starts from
        genesis). Each height is given ``height_seconds`` at most before a lower one is tried."""
        started = self._clock()
        deadline = started + self.settings.deadline_seconds
        offers = await self._gather_offers()
        heights = sorted({height for offered in offers.values() for height in offered.heights}, reverse=True)
        if not heights:
            LOG.info("state sync: no peer offers a snapshot (%d answered); replaying from genesis", len(offers))
            return None
        for height in heights:
            if self._clock() >= deadline:
                LOG.warning("state sync: no snapshot taken within %.0f s (sync deadline); replaying from genesis",
                            self.settings.deadline_seconds)
                return None
            self._until = min(deadline, self._clock() + self.settings.height_seconds)
            servers = sorted(peer for peer, offered in offers.items() if height in offered.heights)
            outcome = await self._sync_height(height, servers)
            if outcome is not None:
                outcome.seconds = self._clock() - started
                self.outcome = outcome
                return outcome
        LOG.warning("state sync: no snapshot offered could be fetched and checked; replaying from genesis")
        return None

    async def _gather_offers(self) -> dict[bytes, Offers]:
        """The offers of the peers that answer: until every configured peer has, or a while
        after the first offer, or ``wait_seconds``."""
        offers: dict[bytes, Offers] = {}
        asking: dict[bytes, asyncio.Task[Offers | None]] = {}
        until = self._clock() + self.settings.wait_seconds
        try:
            while True:
                # Cleared before looking, so that a link opening after the look wakes the wait.
                self._linked.clear()
                for peer in self._network.connected_peers():
                    if peer not in asking:
                        asking[peer] = asyncio.create_task(self._ask_offers(peer))
                for peer, task in asking.items():
                    offered = task.result() if task.done() else None
                    if offered is not None and peer not in offers:
                        offers[peer] = offered
                        if offered.heights:
                            until = min(until, self._clock() + self.settings.offer_grace_seconds)
                if set(self._peers) <= set(offers) or self._clock() >= until:
                    break
                await self._wait_for_news([task for task in asking.values() if not task.done()], until)
        finally:
            for task in asking.values():
                task.cancel()
            await asyncio.gather(*asking.values(), return_exceptions=True)
        return offers

    async def _wait_for_news(self, pending: list[asyncio.Task[Offers | None]], until: float) -> None:
        """Until a link opens, an answer comes, or ``until``."""
        linked = asyncio.ensure_future(self._linked.wait())
        try:
            await asyncio.wait([linked, *pending], timeout=max(0.0, until - self._clock()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            linked.cancel()

    async def _ask_offers(self, peer: bytes) -> Offers | None:
        try:
            answer = await self._ask(peer, OffersRequest())
        except _PeerGone:
            return None
        return answer if isinstance(answer, Offers) else None

    async def _sync_height(self, height: int, servers: list[bytes]) -> SyncOutcome | None:
        account = await self._vouched_account(height, servers)
        if account is None:
            return None
        manifest = account.manifest
        LOG.info("state sync: fetching the state at height %d (%d entries in %d ranges, %d validator set changes) "
                 "from %d peers", height, manifest.entries, len(manifest.ranges), len(account.changes), len(servers))
        outcome = await self._fetch_state(manifest, servers)
        if outcome is None:
            return None
        try:
            self._store.finish_state_sync(
                account.block, account.certificate, manifest.lattice(), genesis_hash=self._genesis_hash,
                validator_sets=account.history,
                change_points=[(change.header, change.certificate) for change in account.changes],
            )
        except (StoreError, Invalid) as error:
            # f + 1 members of set(H) vouched for it: more than f of them lie. Nothing says which.
            LOG.warning("state sync: the account of height %d does not match the state fetched (%s); "
                        "trying a lower height", height, error)
            return None
        LOG.info("state sync: the state at height %d is in (%d entries, %d chunks, %d chunks refused)",
                 height, outcome.entries, outcome.chunks, outcome.refused_chunks)
        return outcome

    # --- accounts of height H -------------------------------------------------------------

    async def _vouched_account(self, height: int, servers: list[bytes]) -> _Account | None:
        """The account of ``height`` that f + 1 members of set(H) among ``servers`` give alike
        (set(H) as that account's checked history makes it), all asked at once: a slow peer
        delays no one, and the rest are no longer asked once f + 1 agree."""
        asking = {asyncio.create_task(self._account_from(peer, height)): peer
                  for peer in servers if peer not in self._distrusted}
        vouched: dict[bytes, set[bytes]] = {}
        pending = set(asking)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    account, peer = task.result(), asking[task]
                    if account is None or peer not in validator_keys(account.validators):
                        # An observer, or a validator no longer in set(H): its word is no vote.
                        continue
                    vouchers = vouched.setdefault(account.digest, set())
                    vouchers.add(peer)
                    if len(vouchers) > faults_tolerated(account.validators):
                        return account
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        LOG.warning("state sync: no account of height %d is given alike by enough validators of its set (%s); "
                    "none of them is blamed", height,
                    ", ".join(str(len(peers)) for peers in vouched.values()) or "none")
        return None

    async def _account_from(self, peer: bytes, height: int) -> _Account | None:
        """``peer``'s account of ``height``, checked; None if it does not give one, or lies."""
        try:
            changes, history = await self._set_changes_from(peer, height)
            block, certificate = await self._proof_from(peer, height, history)
            manifest = await self._manifest_from(peer, block.header)
        except _PeerGone:
            return None
        except Invalid as error:
            self._distrust(peer, error)
            return None
        return _Account(tuple(changes), history, block, certificate, manifest)

    async def _proof_from(self, peer: bytes, height: int, history: ValidatorHistory) \
            -> tuple[Block, CommitCertificate]:
        answer = await self._ask(peer, ProofRequest(height))
        assert isinstance(answer, Proof)
        certificate = CommitCertificate.decode(answer.certificate)
        # The certificate's signatures are checked against the header alone, before the body is decoded.
        header = Header.from_fields(codec.decode_head(answer.block, count=2, max_size=len(answer.block) + 1),
                                    "block.header")
        if header.height != height:
            raise DecodeError(f"the proof of height {height} holds block {header.height}")
        validators = set_at(history, height)
        verify_certificate(certificate, chain_id=self._chain_id, height=height, block_hash=header.hash,
                           validators=validator_keys(validators))
        parent = answer.parent
        if parent.height != height - 1 or parent.hash != header.parent_hash:
            raise SetChangeRefused(f"the header given before block {height} is not its parent")
        if parent.next_validators_hash != validators_hash(validators):
            raise SetChangeRefused(f"header {height - 1} binds another set for height {height}: a change is left out")
        if header.next_validators_hash != validators_hash(set_at(history, height + 1)):
            raise SetChangeRefused(f"header {height} binds another set for height {height + 1}: a change is left out")
        return Block.decode(answer.block), certificate

    async def _set_changes_from(self, peer: bytes, height: int) -> tuple[list[SetChange], ValidatorHistory]:
        """``peer``'s changes up to ``height`` and the history they make, each page checked as it
        comes (a page must go on from the last: a peer cannot keep the node asking)."""
        changes: list[SetChange] = []
        history: ValidatorHistory = [(1, self._genesis_validators)]
        while True:
            answer = await self._ask(peer, SetChangesRequest(height, history[-1][0]))
            assert isinstance(answer, SetChanges)
            extend_history(history, answer.changes, chain_id=self._chain_id, height=height)
            changes.extend(answer.changes)
            if answer.complete or not answer.changes:
                return changes, history

    async def _manifest_from(self, peer: bytes, header: Header) -> Manifest:
        """``peer``'s manifest of ``header``'s height, in full pages (the last may be short): a
        peer cannot make the node ask more than ceil(total / MANIFEST_PAGE_RANGES) times."""
        ranges: list[StateRange] = []
        total: int | None = None
        while total is None or len(ranges) < total:
            answer = await self._ask(peer, ManifestRequest(header.height, len(ranges)))
            assert isinstance(answer, ManifestPage)
            if total is None:
                total = answer.total
                if not 0 < total <= MAX_RANGES:
                    raise SnapshotInvalid(f"a manifest of {total} ranges (at most {MAX_RANGES})")
            expected = min(MANIFEST_PAGE_RANGES, total - len(ranges))
            if answer.total != total or len(answer.ranges) != expected:
                raise SnapshotInvalid(f"a manifest page of {len(answer.ranges)} ranges from range {len(ranges)} of "
                                      f"{answer.total}, where {expected} of {total} follow")
            ranges.extend(answer.ranges)
        manifest = Manifest(header.height, tuple(ranges))
        check_manifest(manifest, header.state_root)
        return manifest

    # --- the chunks -----------------------------------------------------------------------

    async def _fetch_state(self, manifest: Manifest, servers: list[bytes]) -> SyncOutcome | None:
        await asyncio.to_thread(self._store.begin_state_sync)
        fetch = self._fetch = _ChunkFetch(self, manifest, servers)
        try:
            await fetch.run()
        finally:
            self._fetch = None
        if fetch.missing:
            LOG.warning("state sync: %d ranges of the snapshot at %d could not be fetched and checked from any peer",
                        len(fetch.missing), manifest.height)
            return None
        return fetch.outcome


class _ChunkFetch:
    """The ranges of one manifest still to fetch, and the peers working on them."""

    def __init__(self, sync: StateSync, manifest: Manifest, servers: Sequence[bytes]) -> None:
        self.sync = sync
        self.manifest = manifest
        self.servers = frozenset(servers)
        #: Ranges not fetched yet, and those being fetched now.
        self.missing: set[int] = set(range(len(manifest.ranges)))
        self._queue = sorted(self.missing)
        #: Peers whose chunk of a range did not check, by range.
        self._refused_by: dict[int, set[bytes]] = {}
        #: Each server's worker (ended ones too, until the server links again).
        self._workers: dict[bytes, asyncio.Task[None]] = {}
        #: Peers still fetching.
        self._working = 0
        self._changed = asyncio.Event()
        self.outcome = SyncOutcome(manifest.height)
        self._last_report = sync._clock()

    async def run(self) -> None:
        """Until every range is in, or no worker is left (at the height's deadline at the latest)."""
        for peer in sorted(self.servers):
            self._start(peer)
        while not all(worker.done() for worker in self._workers.values()):
            await asyncio.wait(list(self._workers.values()))

    def peer_linked(self, peer: bytes) -> None:
        """A server whose worker ended (its link dropped, it lost the snapshot) linked again."""
        worker = self._workers.get(peer)
        if peer in self.servers and worker is not None and worker.done() and self.missing:
            self._start(peer)

    def _start(self, peer: bytes) -> None:
        if peer not in self.sync._distrusted and self.sync._time_left() > 0:
            self._workers[peer] = asyncio.create_task(self.work(peer))

    def _next_for(self, peer: bytes) -> int | None:
        for position, index in enumerate(self._queue):
            if peer not in self._refused_by.get(index, set()):
                return self._queue.pop(position)
        return None

    async def work(self, peer: bytes) -> None:
        """Fetch ranges from ``peer`` until none is left, or it is not to be asked any more."""
        self._working += 1
        try:
            await self._work(peer)
        finally:
            self._working -= 1
            self._changed.set()

    async def _work(self, peer: bytes) -> None:
        sync = self.sync
        pause, timeouts = sync.settings.busy_pause_seconds, 0
        #: When the peer began answering nothing but busy (None: it last sent a chunk).
        busy_since: float | None = None
        while self.missing and peer not in sync._distrusted and sync._time_left() > 0:
            index = self._next_for(peer)
            if index is None:
                if self._working == 1 and self._queue:
                    return  # what is left, this peer sent wrong once already, and no one else works
                # Every range left is being fetched by others: wait until one is given back or done.
                self._changed.clear()
                await self._wait(self._changed.wait(), sync._time_left())
                continue
            try:
                answer = await sync._ask(peer, ChunkRequest(self.manifest.height, index))
                assert isinstance(answer, Chunk)
                await asyncio.to_thread(self._accept, index, answer.entries)
            except _PeerGone as gone:
                self._give_back(index)
                if gone.reason in ("busy", "over_budget"):
                    busy_since = sync._clock() if busy_since is None else busy_since
                    if sync._clock() - busy_since >= sync.settings.busy_seconds:
                        LOG.info("state sync: peer %s has been busy for %.0f s; asking the others",
                                 peer.hex()[:16], sync.settings.busy_seconds)
                        return
                    await self._wait(asyncio.sleep(pause), sync._time_left())
                    pause = min(pause * 2, sync.settings.busy_pause_max_seconds)
                    continue
                if gone.reason == "not linked":
                    if await self._relinked(peer):
                        continue
                    return
                timeouts += 1
                if gone.reason in ("no_snapshot", "no_such_range", "deadline") or \
                        timeouts >= sync.settings.timeouts_per_peer:
                    return
                continue
            except Invalid as error:
                self._refused_by.setdefault(index, set()).add(peer)
                self.outcome.refused_chunks += 1
                self.outcome.penalized.add(peer)
                sync._distrust(peer, error)
                self._give_back(index)
                return
            pause, busy_since = sync.settings.busy_pause_seconds, None
            self._done(index, answer)

    async def _relinked(self, peer: bytes) -> bool:
        """Whether ``peer``, whose link dropped, links again within ``relink_seconds``."""
        sync = self.sync
        until = min(sync._until, sync._clock() + sync.settings.relink_seconds)
        while peer not in sync._network.connected_peers():
            remaining = until - sync._clock()
            if remaining <= 0:
                return False
            # Woken by any link opening; looked at again now and then in any case.
            sync._linked.clear()
            await self._wait(sync._linked.wait(), min(remaining, sync.settings.busy_pause_max_seconds))
        return True

    @staticmethod
    async def _wait(awaitable: Awaitable[Any], seconds: float) -> None:
        """Until ``awaitable`` is done or ``seconds`` have passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(awaitable, timeout=max(0.0, seconds))

    def _accept(self, index: int, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """Check a chunk against the manifest and write it (in a thread)."""
        check_chunk(self.manifest, index, entries)
        self.sync._store.save_synced_entries(self.manifest.height, entries)

    def _give_back(self, index: int) -> None:
        self._queue.insert(0, index)
        self._changed.set()

    def _done(self, index: int, answer: Chunk) -> None:
        self.missing.discard(index)
        outcome = self.outcome
        outcome.chunks += 1
        outcome.entries += len(answer.entries)
        outcome.entry_bytes += sum(len(key) + len(value) for key, value in answer.entries)
        self._changed.set()
        now = self.sync._clock()
        if now - self._last_report >= 5.0:
            self._last_report = now
            LOG.info("state sync: %d of %d ranges in (%d entries)", len(self.manifest.ranges) - len(self.missing),
                     len(self.manifest.ranges), outcome.entries)


def _answers(answer: Answer, request: Request) -> bool:
    """Whether ``answer`` is the answer to ``request`` (its kind, height and index)."""
    if isinstance(answer, Refusal):
        return answer.tag == request.TAG and answer.height == getattr(request, "height", 0)
    if answer.TAG != request.TAG + 1:
        return False
    if isinstance(request, OffersRequest):
        return True
    if getattr(answer, "height", None) != request.height:
        return False
    if isinstance(request, ChunkRequest):
        return isinstance(answer, Chunk) and answer.index == request.index
    if isinstance(request, ManifestRequest):
        return isinstance(answer, ManifestPage) and answer.first == request.first
    return True

