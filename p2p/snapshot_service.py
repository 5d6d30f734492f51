"""Serving state snapshots to nodes that join, within a budget per peer.

``SnapshotKeeper`` takes a view of the state right after the block at every
final height that is a multiple of ``interval`` is written (a LevelDB snapshot:
later blocks do not change it), builds its manifest (``mura.chain.snapshot``)
in a thread, off the event loop, and keeps the latest ``keep`` whose manifest
is built. Building costs one lattice expansion per state entry, once per
snapshot, whether anyone asks or not; serving costs reading what is asked for.

``SnapshotService`` answers the ``state_sync`` requests of peers. What one
peer may cost this node is bounded, and checked cheapest first, before
anything is read:

- one request of a peer's is served at a time (another meanwhile is refused
  as ``busy``), and at most ``concurrent_peers`` peers are served at once;
- each peer has a bucket of requests (``requests_per_second``) and one of
  bytes (``bytes_per_second``) that every answer is paid from; a peer whose
  bucket is empty is refused as ``over_budget`` until it refills;
- an answer is one manifest page or one chunk (at most ``MAX_RANGE_ENTRIES``
  entries and ``MAX_RANGE_BYTES`` bytes), read in a thread, or at most
  ``MAX_CHANGES_PER_ANSWER`` validator set changes (from the store's history
  ``W``, few entries, kept in memory, and one header read per change).

Refusals are answered (cheap, so the joining node asks elsewhere) and counted,
never penalized: an honest node joining may ask faster than its share. A
request that does not decode is malformed and counts against the peer like
any malformed frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from mura.chain import codec
from mura.chain.block import CommitCertificate, Header
from mura.chain.governance import ValidatorSet
from mura.chain.snapshot import MANIFEST_PAGE_RANGES, Manifest, build_manifest
from mura.chain.store import StateView
from mura.p2p.sync_messages import (
    MAX_CHANGES_PER_ANSWER,
    MAX_OFFERED,
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
    SyncMessage,
    encode_sync_message,
)

LOG = logging.getLogger("mura.snapshots")


class SnapshotSource(Protocol):
    """The store, as snapshots see it."""

    @property
    def height(self) -> int: ...

    @property
    def kept_from(self) -> int: ...

    def open_state_view(self) -> StateView: ...

    def load_block_bytes(self, height: int) -> bytes | None: ...

    def load_certificate_bytes(self, height: int) -> bytes | None: ...

    def load_validator_changes(self, *, after: int, up_to: int, limit: int) -> list[tuple[int, ValidatorSet]]: ...

    def load_change_point(self, height: int) -> tuple[Header, bytes] | None: ...


@dataclass(slots=True)
class ReadySnapshot:
    """A view of the state and its manifest, with the threads reading it now."""

    view: StateView
    manifest: Manifest
    readers: int = 0
    retired: bool = False

    def release_if_unused(self) -> None:
        if self.retired and self.readers == 0:
            self.view.close()


class SnapshotKeeper:
    """The snapshots this node serves: taken at multiples of ``interval``, the latest ``keep`` kept."""

    def __init__(self, *, store: SnapshotSource, interval: int, keep: int) -> None:
        if interval < 1 or keep < 1:
            raise ValueError("a snapshot interval and the number kept must be positive")
        self._store = store
        self.interval = interval
        self.keep = keep
        #: Built snapshots by height, oldest first.
        self.ready: dict[int, ReadySnapshot] = {}
        #: The latest view taken whose manifest is not built yet.
        self._pending: StateView | None = None
        self._wake = asyncio.Event()
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        #: Seconds the last manifest took to build (for the log and measurements).
        self.last_build_seconds = 0.0

    def on_commit(self, header: Header) -> None:
        """The store wrote block ``header``: take a view if its height is a multiple of the interval."""
        if header.height == 0 or header.height % self.interval:
            return
        if self._pending is not None:
            self._pending.close()  # a newer one replaces it before it was built
        self._pending = self._store.open_state_view()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._build_forever(), name="snapshot-builder")

    async def stop(self) -> None:
        """Stop building and release every view; idempotent. Serving must have stopped."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pending is not None:
            self._pending.close()
            self._pending = None
        for snapshot in self.ready.values():
            snapshot.view.close()
        self.ready.clear()

    async def _build_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            view, self._pending = self._pending, None
            if view is None:
                continue
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                manifest = await asyncio.to_thread(build_manifest, view.height, self._entries(view))
            except BaseException:
                view.close()
                raise
            self.last_build_seconds = loop.time() - started
            self._add(ReadySnapshot(view, manifest))
            LOG.info("snapshot of the state at height %d ready to serve: %d entries in %d ranges, built in %.1f s",
                     view.height, manifest.entries, len(manifest.ranges), self.last_build_seconds)

    def _entries(self, view: StateView) -> Iterator[tuple[bytes, bytes]]:
        for entry in view.iterate_state():
            if self._stopping.is_set():
                raise asyncio.CancelledError
            yield entry

    def _add(self, snapshot: ReadySnapshot) -> None:
        self.ready[snapshot.view.height] = snapshot
        while len(self.ready) > self.keep:
            oldest = self.ready.pop(min(self.ready))
            oldest.retired = True
            oldest.release_if_unused()

    def heights(self) -> tuple[int, ...]:
        """The heights served, highest first."""
        return tuple(sorted(self.ready, reverse=True))[:MAX_OFFERED]


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotServingLimits:
    """How much of this node's effort one joining peer may have."""

    #: Requests per second a peer's bucket refills with, and the most it holds.
    requests_per_second: float = 20.0
    request_burst: int = 40
    #: Bytes per second a peer's bucket refills with, and the most it holds.
    bytes_per_second: int = 8 * 1024 * 1024
    burst_bytes: int = 16 * 1024 * 1024
    #: Peers whose requests are read at once.
    concurrent_peers: int = 4

    def __post_init__(self) -> None:
        if min(self.requests_per_second, self.request_burst, self.bytes_per_second, self.burst_bytes,
               self.concurrent_peers) <= 0:
            raise ValueError("snapshot serving limits must be positive")


class _Buckets:
    """A peer's request and byte buckets."""

    __slots__ = ("bytes", "requests", "updated")

    def __init__(self, limits: SnapshotServingLimits, now: float) -> None:
        self.requests = float(limits.request_burst)
        self.bytes = float(limits.burst_bytes)
        self.updated = now

    def refill(self, limits: SnapshotServingLimits, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.requests = min(float(limits.request_burst), self.requests + elapsed * limits.requests_per_second)
        self.bytes = min(float(limits.burst_bytes), self.bytes + elapsed * limits.bytes_per_second)
        self.updated = now


#: Sends a ``state_sync`` payload to one peer; False when it could not be queued.
SendPayload = Callable[[bytes, Any], bool]


class SnapshotService:
    """Answers ``state_sync`` requests from the kept snapshots and the store, within each peer's budget."""

    def __init__(
        self,
        *,
        keeper: SnapshotKeeper | None,
        store: SnapshotSource,
        send: SendPayload,
        limits: SnapshotServingLimits = SnapshotServingLimits(),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._keeper = keeper
        self._store = store
        self._send = send
        self.limits = limits
        self._clock = clock
        self._buckets: dict[bytes, _Buckets] = {}
        self._serving: set[bytes] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Requests refused, by reason.
        self.refused: Counter[str] = Counter()
        #: Answers and bytes sent, by kind of answer (``chunk``, ``manifest``, ``proof``, ...).
        self.served: Counter[str] = Counter()
        self.served_bytes: Counter[str] = Counter()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def on_request(self, peer: bytes, request: Request) -> None:
        """Answer ``request`` from ``peer``: at once when cheap, else in a task of its own."""
        refusal = self._admit(peer)
        if refusal is not None:
            self._refuse(peer, request, refusal)
            return
        if isinstance(request, OffersRequest):
            heights = self._keeper.heights() if self._keeper is not None else ()
            self._answer(peer, "offers", Offers(self._store.height, heights))
            return
        self._serving.add(peer)
        task = asyncio.create_task(self._serve(peer, request), name="snapshot-serve")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit(self, peer: bytes) -> str | None:
        """Why a request of ``peer``'s is not served now, or None; a request served pays one token."""
        if peer in self._serving or len(self._serving) >= self.limits.concurrent_peers:
            return "busy"
        now = self._now()
        buckets = self._buckets.get(peer)
        if buckets is None:
            buckets = self._buckets[peer] = _Buckets(self.limits, now)
        buckets.refill(self.limits, now)
        if buckets.requests < 1 or buckets.bytes <= 0:
            return "over_budget"
        buckets.requests -= 1
        return None

    async def _serve(self, peer: bytes, request: ProofRequest | SetChangesRequest | ManifestRequest | ChunkRequest) \
            -> None:
        try:
            answer = await self._read(request)
            if isinstance(answer, Refusal):
                self.refused[answer.reason] += 1
                self._send(peer, encode_sync_message(answer))
                return
            size = self._answer(peer, type(answer).__name__.lower(), answer)
            self._buckets[peer].bytes -= size
        finally:
            self._serving.discard(peer)

    async def _read(self, request: ProofRequest | SetChangesRequest | ManifestRequest | ChunkRequest) -> SyncMessage:
        if isinstance(request, ProofRequest):
            return self._proof(request)
        if isinstance(request, SetChangesRequest):
            return self._set_changes(request)
        snapshot = self._keeper.ready.get(request.height) if self._keeper is not None else None
        if snapshot is None:
            return Refusal(request.TAG, request.height, "no_snapshot")
        manifest = snapshot.manifest
        if isinstance(request, ManifestRequest):
            ranges = manifest.ranges[request.first : request.first + MANIFEST_PAGE_RANGES]
            return ManifestPage(request.height, len(manifest.ranges), request.first, ranges)
        assert isinstance(request, ChunkRequest)
        if request.index >= len(manifest.ranges):
            return Refusal(request.TAG, request.height, "no_such_range")
        state_range = manifest.ranges[request.index]
        snapshot.readers += 1
        try:
            entries = await asyncio.to_thread(snapshot.view.load_entries, state_range.first_key, state_range.entries)
        finally:
            snapshot.readers -= 1
            snapshot.release_if_unused()
        return Chunk(request.height, request.index, tuple(entries))

    def _proof(self, request: ProofRequest) -> SyncMessage:
        height = request.height
        # Block H - 1 too (its header): a node that joined at H by state sync does not serve H.
        if height <= self._store.kept_from or height > self._store.height:
            return Refusal(request.TAG, height, "not_kept")
        block = self._store.load_block_bytes(height)
        certificate = self._store.load_certificate_bytes(height)
        parent = self._store.load_change_point(height - 1) if height > 1 else None
        if block is None or certificate is None or (height > 1 and parent is None):
            return Refusal(request.TAG, height, "not_kept")
        return Proof(height, block, certificate, parent[0] if parent is not None else self._genesis_header())

    def _genesis_header(self) -> Header:
        genesis = self._store.load_block_bytes(0)
        assert genesis is not None, "a node that serves height 1 holds genesis"
        return Header.from_fields(codec.decode_head(genesis, count=2, max_size=len(genesis) + 1), "genesis.header")

    def _set_changes(self, request: SetChangesRequest) -> SyncMessage:
        """The changes from the history ``W`` with activation heights in ``(after, height + 1]``
        (genesis's set, at 1, is no change), each with the certified header before it."""
        if request.height > self._store.height:
            return Refusal(request.TAG, request.height, "not_kept")
        history = self._store.load_validator_changes(after=max(request.after, 1), up_to=request.height + 1,
                                                     limit=MAX_CHANGES_PER_ANSWER + 1)
        changes = []
        for activation, validators in history[:MAX_CHANGES_PER_ANSWER]:
            point = self._store.load_change_point(activation - 1)
            if point is None:
                return Refusal(request.TAG, request.height, "not_kept")
            header, certificate = point
            changes.append(SetChange(header, CommitCertificate.decode(certificate), validators))
        return SetChanges(request.height, tuple(changes), len(history) <= MAX_CHANGES_PER_ANSWER)

    def _answer(self, peer: bytes, kind: str, answer: SyncMessage) -> int:
        payload = encode_sync_message(answer)
        # What the answer costs on the wire, within a few bytes of framing.
        size = _payload_size(answer)
        if self._send(peer, payload):
            self.served[kind] += 1
            self.served_bytes[kind] += size
        return size

    def _refuse(self, peer: bytes, request: Request, reason: str) -> None:
        self.refused[reason] += 1
        self._send(peer, encode_sync_message(Refusal(request.TAG, getattr(request, "height", 0), reason)))

    async def stop(self) -> None:
        """Cancel the answers being read; idempotent."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _payload_size(answer: SyncMessage) -> int:
    if isinstance(answer, Chunk):
        return sum(len(key) + len(value) + 8 for key, value in answer.entries) + 16
    if isinstance(answer, ManifestPage):
        return sum(len(state_range.first_key) + 2060 for state_range in answer.ranges) + 16
    if isinstance(answer, Proof):
        return len(answer.block) + len(answer.certificate) + 300
    if isinstance(answer, SetChanges):
        return sum(300 + 80 * len(change.certificate.signatures) + 400 * len(change.records)
                   for change in answer.changes) + 16
    return 64
