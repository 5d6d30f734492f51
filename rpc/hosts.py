"""Which host names the RPC port answers to: the defence against DNS rebinding.

A web page from ``http://attacker.example`` may have its name answer first
with the attacker's address and then with ``127.0.0.1`` or a node's LAN
address. To the browser the page and the node are then one origin, so the
page may read the node's answers, CORS and the websocket's Origin check
notwithstanding. What gives it away is the ``Host`` header: the browser
sends the name it looked up, ``attacker.example``. So a request is answered
only if its ``Host`` names

- an IP address (``127.0.0.1:8700``, ``[::1]:8700``, ``192.168.1.20``): a
  rebinding needs a name, and the browser sends an address only when the
  page came from that address itself;
- a name ``rpc.allowed_hosts`` lists (``localhost`` by default), or the
  name in ``rpc.listen``;
- anything, if the list holds ``*`` (a node behind a proxy that checks names
  itself).

A request with no ``Host`` at all (HTTP/1.0 scripts; browsers always send
one) is answered. Any other is refused with HTTP 403 on every path, the
explorer's, ``/ws``, ``/metrics`` and preflights included, and a JSON-RPC
error saying which setting would let it in. Ports are not compared: the
page's port is the node's in a rebinding anyway.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from mura.rpc.connections import RefusalLog
from mura.rpc.errors import INVALID_REQUEST, standard_error
from mura.rpc.jsonrpc import encode_error

ANY_HOST = "*"
#: A DNS name as ``Host`` carries one: labels of letters, digits, ``-`` and ``_``.
_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")
#: How much of a refused ``Host`` is repeated in the answer and the log.
_SHOWN = 80

def host_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be listed in ``rpc.allowed_hosts`` (a bare DNS name, or ``*``), or None."""
    if name == ANY_HOST or _NAME.fullmatch(name.lower().rstrip(".")):
        return None
    return (f"{name!r} is not a host name such as node.village.example or localhost (no scheme, port or path; "
            "IP addresses are always allowed; * allows any name)")


def name_in(host: str) -> str:
    """The name or address in a ``Host`` header's value, without its port, brackets or final dot,
    in lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        return address if bracket and (not rest or (rest[0] == ":" and rest[1:].isdigit())) else host
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def is_address(name: str) -> bool:
    """Whether ``name`` is an IP address (v4 in dotted decimal, or v6) rather than a name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class HostAllowlist:
    """The names besides IP addresses that requests to the RPC port may carry in ``Host``."""

    #: Allowed names, lower case without a final dot; ``*`` allows every name.
    names: frozenset[str]

    @classmethod
    def of(cls, names: Iterable[str], *, listen_host: str = "") -> HostAllowlist:
        """A list of ``names`` and the listen address's name; raises ``ValueError`` naming one that is
        not a host name."""
        listed = list(names)
        for name in listed:
            problem = host_name_problem(name)
            if problem:
                raise ValueError(problem)
        own = [listen_host] if listen_host and not is_address(name_in(listen_host)) else []
        return cls(frozenset(name_in(name) if name != ANY_HOST else name for name in [*listed, *own]))

    def allows(self, host: str | None) -> bool:
        """Whether a request whose ``Host`` header is ``host`` (None: none sent) is answered."""
        if host is None or ANY_HOST in self.names:
            return True
        name = name_in(host)
        return name in self.names or is_address(name)

    def middleware(self, refusals: RefusalLog) -> Middleware:
        """An aiohttp middleware refusing, before anything else, a request for a name not allowed;
        refusals are logged through ``refusals`` at its rate."""

        @web.middleware
        async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
            host = request.headers.get(hdrs.HOST)
            if self.allows(host):
                return await handler(request)
            shown = repr((host or "")[:_SHOWN])
            refusals.note(f"refused a request from {request.remote} for the host name {shown}; if this node is "
                          "meant to be reached by that name, add it to rpc.allowed_hosts")
            error = standard_error(
                INVALID_REQUEST,
                reason=f"this node does not answer to the host name {shown}; reach it by its IP address, "
                       "or have its operator add the name to rpc.allowed_hosts",
                limit="allowed_hosts",
            )
            return web.Response(status=403, text=encode_error(error), content_type="application/json")

        return check_host
