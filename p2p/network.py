"""The node's peer network: a websocket server, a dialer per configured peer,
one authenticated, encrypted link per peer (see ``mura.p2p.registry`` for the
dedupe rule), frame dispatch, and the bans of peers that misbehave.

Frames are dispatched to ``handlers[kind](peer_public_key, payload)`` in the
task that reads the link: frames from one peer are handled in order, and a
handler must hand long work off rather than hold up its peer's link. An
unknown kind, an undecodable frame or a handler raising ``Invalid`` is
*malformed*; any other exception is a bug in this node and is logged with its
traceback, keeping the link. A frame the node refuses later, for cause (a
consensus message or a transaction that fails its checks), is reported with
``penalize``. Malformed and penalized frames count towards the same ban.

What one stranger can cost the node is bounded before it proves a key: at
most ``max_connections_per_source`` open connections from its address (see
``mura.p2p.connections``), a complete HTTP request head within
``header_timeout``, a handshake slot (see ``mura.p2p.slots``), a HELLO within
``hello_timeout`` and the whole handshake within ``handshake_timeout``, and at
most ``PRE_AUTHENTICATION_BYTES`` read (see ``mura.p2p.read_gate``). A banned
key is refused as soon as its proof verifies, and a peer that opens links
faster than ``max_links_per_minute`` is banned. Repeated warnings are
rate-limited per kind (``mura.p2p.logs``), and while the network runs, the
loop reports accept failures for want of descriptors once per interval.

A peer that cannot be reached is most often one that is starting or
restarting: the first failed dial of an outage is one INFO line, the retries
are DEBUG, and only a peer still unreachable ``unreachable_warning_after``
seconds later gets a WARNING, repeated at most every
``unreachable_warning_every`` seconds; the outage ends when a link to the
peer opens, either way (INFO, with how long it lasted, if it was warned of).

Sending only queues (see ``mura.p2p.outbox`` for the policy when a peer's
queue is full), so it never waits on the network.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import aiohttp
from aiohttp import web
from yarl import URL

from mura.chain.errors import DecodeError, Invalid
from mura.chain.keys import SigningKey
from mura.p2p.accounting import Accounting, Misbehaviour, NetworkStats
from mura.p2p.backoff import Backoff
from mura.p2p.channel import SEAL_OVERHEAD
from mura.p2p.connections import AcceptErrorLog, CappedSite, install_accept_error_log, remove_accept_error_log
from mura.p2p.frames import decode_frame, encode_frame
from mura.p2p.handshake import (
    PRE_AUTHENTICATION_BYTES,
    Authenticated,
    HandshakeFailed,
    Identity,
    WebSocket,
    handshake_as_dialer,
    handshake_as_listener,
)
from mura.p2p.link import Link, short_key
from mura.p2p.logs import ClientErrorLog, RateLimitedLog
from mura.p2p.outbox import Outbox, OutboxOverflow
from mura.p2p.read_gate import ReadGate, SentBeforeUpgrade, check_supported, gate_client_reads, prepare_gated
from mura.p2p.registry import LinkRegistry
from mura.p2p.settings import NetworkLimits, PeerAddress, PeerLink
from mura.p2p.slots import HandshakeSlots

log = logging.getLogger(__name__)

Handler = Callable[[bytes, Any], Awaitable[None]]

#: The HTTP path peers open their websocket on.
PATH = "/p2p"

State = Literal["new", "running", "stopping", "stopped"]


@dataclass(slots=True)
class Unreachable:
    """An outage of one peer: dials fail and no link has opened since."""

    #: When the first dial of the outage failed (loop time, seconds).
    since: float
    #: When a WARNING about it was last written, if ever.
    warned_at: float | None = None


class Network:
    """Authenticated links to the admitted peers; ``start()`` it, ``stop()`` it once done.

    A stopped network cannot be started again: build a new one.
    """

    def __init__(
        self,
        *,
        key: SigningKey,
        chain_id: str,
        genesis_hash: bytes,
        listen_host: str,
        listen_port: int,
        peers: Sequence[PeerAddress],
        admitted: Collection[bytes],
        handlers: Mapping[str, Handler],
        on_peer_change: Callable[[bytes, bool], None] | None = None,
        limits: NetworkLimits = NetworkLimits(),
    ) -> None:
        self._identity = Identity(key, chain_id, genesis_hash, frozenset(admitted))
        #: Every key admitted at some time: one no longer admitted may still have sent a frame.
        self._ever_admitted = set(self._identity.admitted)
        self._listen_host = listen_host
        self._listen_port = listen_port
        #: The peers to dial, by key.
        self._peers = {address.public_key: address for address in _check_peers(peers, self._identity)}
        self._handlers = dict(handlers)
        self._limits = limits
        self._accounting = Accounting()
        self._log = RateLimitedLog(log, interval=limits.log_interval)
        self._misbehaviour = Misbehaviour(
            threshold=limits.malformed_threshold,
            window=limits.malformed_window,
            ban_seconds=limits.ban_seconds,
            links_per_minute=limits.max_links_per_minute,
        )
        self._registry = LinkRegistry(
            own_public_key=key.public_key,
            accounting=self._accounting,
            misbehaviour=self._misbehaviour,
            on_peer_change=self._peer_changed,
            log_interval=limits.log_interval,
        )
        self._on_peer_change = on_peer_change
        self._slots = HandshakeSlots(
            total=limits.max_pending_handshakes,
            per_source=limits.max_handshakes_per_source,
            reserved=limits.reserved_peer_handshakes,
            known_peers=[(address.public_key, address.host) for address in self._peers.values()],
        )
        self._handshaking: set[web.WebSocketResponse] = set()
        #: One dialer per peer address; it ends once its address is no longer a peer's.
        self._dialers: dict[PeerAddress, asyncio.Task[None]] = {}
        self._runner: web.AppRunner | None = None
        self._site: CappedSite | None = None
        self._accept_errors: AcceptErrorLog | None = None
        self._session: aiohttp.ClientSession | None = None
        self._bound_port: int | None = None
        #: Peers whose last dial failed and that have had no link since.
        self._unreachable: dict[bytes, Unreachable] = {}
        self._dialing: set[bytes] = set()
        self._state: State = "new"
        self._stopped = asyncio.Event()

    @property
    def public_key(self) -> bytes:
        return self._identity.key.public_key

    @property
    def listen_port(self) -> int:
        """The port the server listens on (the chosen one when configured as 0)."""
        if self._bound_port is None:
            raise RuntimeError("the network is not started")
        return self._bound_port

    @property
    def stats(self) -> NetworkStats:
        return self._accounting.snapshot(
            connected=len(self.connected_peers()),
            connecting=len(self._handshaking) + len(self._dialing),
            connections_turned_away=self._site.refused if self._site is not None else 0,
        )

    def connections_from(self, address: str) -> int:
        """Connections to the peer port open now from ``address``'s source (see ``mura.p2p.connections``)."""
        return self._site.open_from(address) if self._site is not None else 0

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Serve ``/p2p`` on the listen address and start dialing every configured peer."""
        if self._state != "new":
            raise RuntimeError(f"a network can be started once; this one is {self._state}")
        check_supported()
        self._state = "running"
        self._accept_errors = install_accept_error_log(interval=self._limits.log_interval)
        try:
            await self._start_server()
        except BaseException:
            await self.stop()
            raise
        self._session = aiohttp.ClientSession()
        for address in self._peers.values():
            self._start_dialer(address)
        log.info("p2p listening on %s:%d as %s", self._listen_host, self.listen_port, short_key(self.public_key))

    async def _start_server(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._accept)
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self._limits.close_timeout,
            # aiohttp closes a connection that has not sent a complete request head this
            # long after it opened: the header timeout (a websocket turns it off on upgrade).
            keepalive_timeout=self._limits.header_timeout,
            logger=ClientErrorLog(logging.getLogger("aiohttp.server")),
        )
        await self._runner.setup()
        self._site = CappedSite(self._runner, self._listen_host, self._listen_port,
                                max_per_source=self._limits.max_connections_per_source,
                                log_interval=self._limits.log_interval)
        await self._site.start()
        self._bound_port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every link and the server, cancel every task; idempotent."""
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        if self._state == "stopping":
            await self._stopped.wait()
            return
        self._state = "stopping"
        try:
            await self._close_everything()
        finally:
            self._log.flush()
            self._registry.flush_log()
            if self._site is not None:
                self._site.flush_log()
            if self._accept_errors is not None:
                remove_accept_error_log(asyncio.get_running_loop(), self._accept_errors)
            self._state = "stopped"
            self._stopped.set()

    async def _close_everything(self) -> None:
        links = self._registry.registered()
        for link in links:
            link.close_soon("the node is shutting down")
        closing = [asyncio.ensure_future(link.wait_closed()) for link in links]
        closing += [
            asyncio.ensure_future(self._close_quietly(websocket, "the node is shutting down"))
            for websocket in self._handshaking
        ]
        if closing:
            # Links stuck writing to a peer that reads nothing are cut off below.
            await asyncio.wait(closing, timeout=self._limits.close_timeout)
        dialers = list(self._dialers.values())
        for task in dialers + closing:
            task.cancel()
        await asyncio.gather(*dialers, *closing, return_exceptions=True)
        self._dialers.clear()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # --- who the peers are ------------------------------------------------------

    @property
    def admitted(self) -> frozenset[bytes]:
        """The keys allowed to link to this node now."""
        return self._identity.admitted

    @property
    def peers(self) -> tuple[PeerAddress, ...]:
        """The peers this node dials and keeps links to now."""
        return tuple(self._peers.values())

    def set_peers(self, *, admitted: Collection[bytes], peers: Sequence[PeerAddress]) -> None:
        """From now on admit exactly ``admitted`` and dial exactly ``peers`` (each admitted,
        distinct, not this node; ``ValueError`` otherwise): links to keys no longer admitted
        are closed, telling the peer why, and handshakes under way with them are refused
        when they complete; a dialer starts for each new peer or new address, and the
        dialer of a peer no longer listed ends once its link does (a link an admitted
        peer dialed stays)."""
        identity = replace(self._identity, admitted=frozenset(admitted))
        wanted = {address.public_key: address for address in _check_peers(peers, identity)}
        self._identity = identity
        self._ever_admitted |= identity.admitted
        self._peers = wanted
        for link in self._registry.live():
            if link.peer_public_key not in identity.admitted:
                log.info("closing the link to peer %s at %s: no longer admitted", short_key(link.peer_public_key),
                         link.remote)
                link.close_soon("no longer admitted: not a validator of the current set nor an observer here",
                                code=aiohttp.WSCloseCode.POLICY_VIOLATION)
        if self._state != "running":
            return
        for address in wanted.values():
            if address not in self._dialers:
                self._slots.learn(address.public_key, address.host)
                self._start_dialer(address)

    def _start_dialer(self, address: PeerAddress) -> None:
        task = asyncio.create_task(self._dial_forever(address), name=f"p2p-dialer-{short_key(address.public_key)}")
        self._dialers[address] = task
        task.add_done_callback(lambda _: self._dialer_ended(address, task))

    def _dialer_ended(self, address: PeerAddress, task: asyncio.Task[None]) -> None:
        if self._dialers.get(address) is task:
            del self._dialers[address]

    def _wants(self, address: PeerAddress) -> bool:
        return self._peers.get(address.public_key) == address

    # --- sending ---------------------------------------------------------------

    def connected_peers(self) -> list[bytes]:
        """Public keys of the peers with a live link."""
        return [link.peer_public_key for link in self._registry.live()]

    def peer_links(self) -> list[PeerLink]:
        """The live links, with their remote address and direction."""
        return [
            PeerLink(link.peer_public_key, link.remote, link.initiator == self.public_key)
            for link in self._registry.live()
        ]

    def send(self, peer_public_key: bytes, kind: str, payload: Any, *, droppable: bool | None = None) -> bool:
        """Queue a frame for one peer; False when it is not connected or cannot keep up.

        Returns at once. Raises ``FrameTooLarge`` for a frame above the cap; the frame
        is encoded only for a connected peer. ``droppable`` overrides whether the outbox
        may discard this frame under pressure (by default: whether its kind may be
        dropped); a droppable frame that does not fit is dropped (False) and the link stays.
        """
        link = self._registry.get(peer_public_key)
        if link is None:
            return False
        data = encode_frame(kind, payload, max_size=self._limits.max_frame_size)
        return self._enqueue(link, kind, data, droppable=droppable)

    def broadcast(self, kind: str, payload: Any, *, exclude: Collection[bytes] = ()) -> int:
        """Queue a frame for every connected peer but ``exclude``; returns how many took it."""
        data = encode_frame(kind, payload, max_size=self._limits.max_frame_size)
        links = [link for link in self._registry.live() if link.peer_public_key not in exclude]
        return sum(self._enqueue(link, kind, data) for link in links)

    def _enqueue(self, link: Link, kind: str, data: bytes, *, droppable: bool | None = None) -> bool:
        if droppable is None:
            droppable = kind in self._limits.droppable_kinds
        try:
            return link.enqueue(data, droppable=droppable)
        except OutboxOverflow as error:
            log.warning("peer %s at %s cannot keep up, disconnecting: %s", short_key(link.peer_public_key),
                        link.remote, error)
            link.close_soon("too slow to take this node's frames", code=aiohttp.WSCloseCode.TRY_AGAIN_LATER)
            return False

    # --- receiving -------------------------------------------------------------

    async def _on_frame(self, link: Link, data: bytes) -> None:
        if self._misbehaviour.ban_remaining(link.peer_public_key, _now()):
            return
        try:
            frame = decode_frame(data, max_size=self._limits.max_frame_size)
        except DecodeError as error:
            self._on_malformed(link, str(error))
            return
        handler = self._handlers.get(frame.kind)
        if handler is None:
            self._on_malformed(link, f"unknown frame kind {frame.kind!r}")
            return
        try:
            await handler(link.peer_public_key, frame.payload)
        except Invalid as error:
            self._on_malformed(link, f"{frame.kind} refused: {error}")
        except Exception:
            log.exception("the %r handler failed on a frame from peer %s; the link stays open", frame.kind,
                          short_key(link.peer_public_key))

    def _on_malformed(self, link: Link, reason: str) -> None:
        peer = link.peer_public_key
        self._accounting.add(peer, "malformed")
        self._log.warning(("malformed", peer), "dropped a malformed frame from peer %s at %s: %s", short_key(peer),
                          link.remote, reason)
        self._count_offence(peer)

    def penalize(self, peer_public_key: bytes, reason: str) -> None:
        """Count a frame this node refused for cause against ``peer_public_key``.

        For refusals found after the handler returned, e.g. a consensus message
        whose signature or content fails the replica's checks, or a gossiped
        transaction with a forged signature; never for what is normal between
        honest peers (a duplicate, a message for a height already final). It
        counts towards the same ban as malformed frames (``malformed_threshold``
        within ``malformed_window``: the link is closed and the key refused for
        ``ban_seconds``), shows in ``stats`` as ``refused``, and is logged at
        WARNING, rate-limited per peer. Raises ``ValueError`` for a key that was
        never admitted (no frame can have come from it); one admitted no longer has
        no link to ban, and nothing is counted.
        """
        if peer_public_key not in self._ever_admitted:
            raise ValueError(f"penalize: key {short_key(peer_public_key)} is not an admitted peer")
        if peer_public_key not in self._identity.admitted:
            return
        link = self._registry.get(peer_public_key)
        self._accounting.add(peer_public_key, "refused")
        self._log.warning(("refused", peer_public_key), "refused a frame from peer %s at %s: %s",
                          short_key(peer_public_key), link.remote if link else "(no link)", reason)
        self._count_offence(peer_public_key)

    def _count_offence(self, peer: bytes) -> None:
        if self._misbehaviour.record_offence(peer, _now()):
            limits = self._limits
            self._banned(peer, f"more than {limits.malformed_threshold} malformed or refused frames within "
                               f"{limits.malformed_window:g} s", told="banned: too many malformed or refused frames")

    def _count_link(self, peer: bytes) -> None:
        """The peer opened a link to this node: counted, and banned when it flaps."""
        self._accounting.add(peer, "links_opened")
        if self._misbehaviour.record_link(peer, _now()):
            self._banned(peer, f"more than {self._limits.max_links_per_minute} links opened within a minute",
                         told="banned: too many links opened")

    def _banned(self, peer: bytes, why: str, *, told: str) -> None:
        """``peer`` has just been banned for ``why``: counted, logged, and its link closed."""
        self._accounting.add(peer, "bans")
        link = self._registry.get(peer)
        log.warning("banning peer %s at %s for %g s: %s", short_key(peer), link.remote if link else "(no link)",
                    self._limits.ban_seconds, why)
        if link is not None:
            link.close_soon(told, code=aiohttp.WSCloseCode.POLICY_VIOLATION)

    def _refuse_if_banned(self, peer: bytes, remote: str) -> None:
        """Raise ``HandshakeFailed`` for a banned key that has just proved itself."""
        remaining = self._misbehaviour.ban_remaining(peer, _now())
        if remaining:
            self._log.warning(("banned", peer), "refused banned peer %s at %s for another %.1f s", short_key(peer),
                              remote, remaining)
            raise HandshakeFailed(f"peer {short_key(peer)} is banned", kind="banned",
                                  told=f"banned for another {remaining:.0f} s")

    def _on_not_authentic(self, link: Link, reason: str) -> None:
        """A message on ``link`` did not open: anyone on the path may have sent it, so the
        link ends (the peer redials) and nothing counts against the peer."""
        self._log.warning(("not authentic", link.peer_public_key),
                          "closed the link to peer %s at %s: %s (altered on the path?)",
                          short_key(link.peer_public_key), link.remote, reason)

    # --- links -----------------------------------------------------------------

    def _new_link(self, websocket: WebSocket, authenticated: Authenticated, *, initiator: bytes, remote: str) -> Link:
        limits = self._limits
        return Link(
            websocket,
            channel=authenticated.channel,
            peer_public_key=authenticated.peer_public_key,
            initiator=initiator,
            remote=remote,
            outbox=Outbox(max_frames=limits.outbox_frames, max_bytes=limits.outbox_bytes),
            accounting=self._accounting,
            send_timeout=limits.send_timeout,
            close_timeout=limits.close_timeout,
        )

    async def _run_link(self, link: Link) -> bool:
        """Serve ``link`` until it ends; False when it was refused at once."""
        if self._state != "running":
            refusal: str | None = "the node is shutting down"
        elif link.peer_public_key not in self._identity.admitted:
            # Admitted when its handshake began, and no longer.
            refusal = "not admitted: not a validator of the current set nor an observer here"
        else:
            refusal = self._registry.admit(link)
        if refusal is not None:
            await link.refuse(refusal)
            return False
        try:
            await link.serve(self._on_frame, self._on_not_authentic)
        finally:
            self._registry.forget(link)
        return True

    async def _close_quietly(self, websocket: WebSocket, reason: str) -> None:
        """Close a websocket that never became a link, telling the peer why."""
        try:
            async with asyncio.timeout(self._limits.close_timeout):
                await websocket.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=reason.encode()[:123])
        except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError):
            pass  # the connection is dropped either way

    def _handshake_failed(self, remote: str, error: HandshakeFailed) -> None:
        self._accounting.handshake_failures += 1
        if error.kind == "banned":
            return  # logged by _refuse_if_banned
        # A peer that hangs up or goes quiet may be restarting; one that fails a check is not.
        level = logging.INFO if error.kind in ("closed", "timeout") else logging.WARNING
        if self._state != "running":
            level = logging.DEBUG
        self._log.log(level, ("handshake", error.kind), "handshake with %s failed: %s", remote, error)

    # --- incoming --------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        source, remote = _source_of(request)
        if self._state != "running":
            return _refusal("not accepting peer connections now")
        slot = self._slots.take(source, on_evict=lambda: self._evicted(request, remote))
        if slot is None:
            self._accounting.handshakes_turned_away += 1
            self._log.info(("turned away",), "turned away a peer connection from %s: too many handshakes under way",
                           remote)
            return _refusal("too many handshakes under way; try again later")
        websocket = web.WebSocketResponse(
            heartbeat=self._limits.heartbeat,
            max_msg_size=self._limits.max_frame_size + SEAL_OVERHEAD,
            timeout=self._limits.close_timeout,
            compress=False,
        )
        try:
            authenticated = await self._authenticate_incoming(request, websocket, remote)
        except HandshakeFailed as error:
            slot.release()
            if not slot.evicted:
                self._handshake_failed(remote, error)
                await self._close_quietly(websocket, error.told)
            _forget_heartbeat(websocket)
            return websocket
        except SentBeforeUpgrade as error:
            self._handshake_failed(remote, HandshakeFailed(str(error), kind="oversized"))
            return _refusal("too much sent before the handshake", status=400)
        except ConnectionError as error:  # raised by the upgrade, before any handshake
            log.debug("peer connection from %s dropped during the websocket upgrade: %s", remote, error)
            return web.Response(status=400)  # never written: the connection is gone
        finally:
            slot.release()
        self._slots.learn(authenticated.peer_public_key, source)
        link = self._new_link(websocket, authenticated, initiator=authenticated.peer_public_key, remote=remote)
        self._count_link(authenticated.peer_public_key)
        await self._run_link(link)
        return websocket

    def _evicted(self, request: web.Request, remote: str) -> None:
        """End a pending handshake whose slot a known peer took (see ``mura.p2p.slots``)."""
        self._accounting.handshakes_evicted += 1
        self._log.info(("evicted",), "ended the pending handshake from %s to make room for a known peer", remote)
        if request.transport is not None:
            request.transport.abort()

    async def _authenticate_incoming(
        self, request: web.Request, websocket: web.WebSocketResponse, remote: str
    ) -> Authenticated:
        """Upgrade to a websocket (``ConnectionError`` if the client is gone, ``SentBeforeUpgrade``
        if it sent too much with its request) and run the handshake."""
        gate = await prepare_gated(request, websocket, budget=PRE_AUTHENTICATION_BYTES)
        self._handshaking.add(websocket)
        try:
            return await handshake_as_listener(
                websocket,
                self._identity,
                hello_timeout=self._limits.hello_timeout,
                timeout=self._limits.handshake_timeout,
                on_authenticated=gate.open,
                check_admissible=lambda key: self._refuse_if_banned(key, remote),
            )
        except HandshakeFailed as error:
            raise _oversized(error, gate) from None
        finally:
            self._handshaking.discard(websocket)

    # --- outgoing --------------------------------------------------------------

    async def _dial_forever(self, address: PeerAddress) -> None:
        backoff = Backoff(initial=self._limits.backoff_initial, maximum=self._limits.backoff_max)
        while True:
            await self._registry.wait_until_dialable(address.public_key)
            if not self._wants(address):
                self._unreachable.pop(address.public_key, None)
                return
            try:
                lived = await self._dial_once(address)
            except Exception:
                log.exception("dialing peer %s failed unexpectedly", short_key(address.public_key))
                lived = None
            # A link that worked resets the delay, so a flaky link is back within
            # ``backoff_initial``; one dropped at once keeps it growing.
            if lived is not None and lived >= self._limits.stable_link_seconds:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _dial_once(self, address: PeerAddress) -> float | None:
        """Connect, authenticate and serve one link; how long it lived once
        authenticated, or None when it never was."""
        self._dialing.add(address.public_key)
        try:
            return await self._connect_and_serve(address)
        finally:
            self._dialing.discard(address.public_key)

    async def _connect_and_serve(self, address: PeerAddress) -> float | None:
        try:
            websocket, gate = await self._connect(address)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self._dial_failed(address, error)
            return None
        remote = f"{address.host}:{address.port}"
        try:
            authenticated = await handshake_as_dialer(
                websocket,
                self._identity,
                expected_public_key=address.public_key,
                timeout=self._limits.handshake_timeout,
                on_authenticated=gate.open,
            )
            self._dialing.discard(address.public_key)
            self._learn_address(authenticated.peer_public_key, websocket)
            started = _now()
            link = self._new_link(websocket, authenticated, initiator=self.public_key, remote=remote)
            served = await self._run_link(link)
            return _now() - started if served else 0.0
        except HandshakeFailed as error:
            self._handshake_failed(remote, _oversized(error, gate))
            await self._close_quietly(websocket, error.told)
            return None
        finally:
            if not websocket.closed:  # cancelled by stop() before the link took over
                await self._close_quietly(websocket, "the node is shutting down")

    def _learn_address(self, peer: bytes, websocket: aiohttp.ClientWebSocketResponse) -> None:
        """The address a peer was reached at is a known peer address (see ``mura.p2p.slots``)."""
        peername = websocket.get_extra_info("peername")
        if isinstance(peername, tuple) and peername:
            self._slots.learn(peer, str(peername[0]))

    def _dial_failed(self, address: PeerAddress, error: Exception) -> None:
        """Once calmly per outage (a peer starting is the usual cause), a WARNING once it
        has lasted, and the retries in between at DEBUG."""
        self._accounting.dial_failures += 1
        peer, now = address.public_key, _now()
        reason = _dial_error_text(error, self._limits.connect_timeout)
        outage = self._unreachable.get(peer)
        if outage is None:
            self._unreachable[peer] = Unreachable(since=now)
            # Per peer at most once per log interval, however often a link opens and drops.
            self._log.info(("unreachable", peer), "peer %s at %s:%d not reachable yet (%s); retrying",
                           short_key(peer), address.host, address.port, reason)
            return
        lasted = now - outage.since
        limits = self._limits
        due = outage.warned_at is None or now - outage.warned_at >= limits.unreachable_warning_every
        if lasted >= limits.unreachable_warning_after and due:
            outage.warned_at = now
            log.warning("peer %s at %s:%d unreachable for %.0f s: %s; still trying", short_key(peer), address.host,
                        address.port, lasted, reason)
        else:
            log.debug("cannot reach peer %s at %s:%d: %s", short_key(peer), address.host, address.port, reason)

    def _peer_changed(self, peer: bytes, connected: bool) -> None:
        """A link to ``peer`` opened or closed: an open one ends its outage."""
        outage = self._unreachable.pop(peer, None) if connected else None
        if outage is not None and outage.warned_at is not None:
            log.info("peer %s reachable again after %.0f s", short_key(peer), _now() - outage.since)
        if self._on_peer_change is not None:
            self._on_peer_change(peer, connected)

    async def _connect(self, address: PeerAddress) -> tuple[aiohttp.ClientWebSocketResponse, ReadGate]:
        assert self._session is not None
        url = URL.build(scheme="http", host=address.host, port=address.port, path=PATH)
        async with asyncio.timeout(self._limits.connect_timeout):
            websocket = await self._session.ws_connect(
                url,
                heartbeat=self._limits.heartbeat,
                max_msg_size=self._limits.max_frame_size + SEAL_OVERHEAD,
                timeout=aiohttp.ClientWSTimeout(ws_close=self._limits.close_timeout),
                autoping=True,
            )
            # At once, before anything else can run and feed the parser.
            return websocket, gate_client_reads(websocket, budget=PRE_AUTHENTICATION_BYTES)


def _check_peers(peers: Sequence[PeerAddress], identity: Identity) -> tuple[PeerAddress, ...]:
    """Configured peers must be admitted, distinct and not this node itself."""
    seen: set[bytes] = set()
    for address in peers:
        key = short_key(address.public_key)
        if address.public_key == identity.key.public_key:
            raise ValueError(f"peer {key} at {address.host}:{address.port} is this node's own key")
        if address.public_key not in identity.admitted:
            raise ValueError(f"peer {key} at {address.host}:{address.port} is not admitted")
        if address.public_key in seen:
            raise ValueError(f"peer {key} is configured twice")
        seen.add(address.public_key)
    return tuple(peers)


def _source_of(request: web.Request) -> tuple[str, str]:
    """The source address of a request, and ``address:port`` for log lines."""
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        return str(peername[0]), f"{peername[0]}:{peername[1]}"
    address = request.remote or "unknown"
    return address, address


def _dial_error_text(error: Exception, timeout: float) -> str:
    """Why a dial failed, in a few words: "connection refused", not aiohttp's
    "Cannot connect to host ... [Connect call failed (...)]"."""
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    elif isinstance(error, aiohttp.ClientResponseError):
        return f"it answered HTTP {error.status}"
    if isinstance(error, TimeoutError) and not error.errno:
        return f"no answer within {timeout:g} s"
    if isinstance(error, OSError) and error.errno and error.errno > 0:
        return os.strerror(error.errno).lower()
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def _refusal(reason: str, *, status: int = 503) -> web.Response:
    """An HTTP error (503 by default) for a connection turned away before its upgrade; the
    connection is closed."""
    response = web.Response(status=status, text=reason + "\n")
    response.force_close()
    return response


def _oversized(error: HandshakeFailed, gate: ReadGate) -> HandshakeFailed:
    """Name the real reason when the read gate ended the handshake."""
    if not gate.exceeded or error.kind == "oversized":
        return error
    return HandshakeFailed(f"more than {PRE_AUTHENTICATION_BYTES} bytes before the handshake completed",
                           kind="oversized")


def _now() -> float:
    return asyncio.get_running_loop().time()


def _forget_heartbeat(websocket: web.WebSocketResponse) -> None:
    """aiohttp arms a websocket's heartbeat again whenever data arrives, even once it is
    closed, and that timer keeps the websocket, its request and their buffers alive for a
    heartbeat interval: each refused handshake would hold about 11 KB for 10-15 s, so a
    stream of garbage connections would hold memory in proportion to its rate. The only
    way to drop it is aiohttp's own cancel; if aiohttp renames it, this does nothing
    (``tests/p2p/test_network.py`` notices)."""
    cancel = getattr(websocket, "_cancel_heartbeat", None)
    if callable(cancel):
        cancel()
