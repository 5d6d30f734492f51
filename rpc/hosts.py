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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from mura.rpc.connections import RefusalLog
from mura.rpc.errors import INVALID_REQUEST, standard_error
from mura.rpc.jsonrpc import encode_error

ANY_HOST = "*"
#: A DNS name as ``Host`` carries one: labels of letters, digits, ``-`` and ``_``.
_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")
#: A port after a host: ASCII digits only.
_PORT = re.compile(r":[0-9]{1,5}")
#: How many ``Host`` values' answers are remembered.
_REMEMBERED = 64
#: How much of a refused ``Host`` is repeated in the answer and the log.
_SHOWN = 80


def host_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be listed in ``rpc.allowed_hosts`` (a bare DNS name, or ``*``), or None."""
    if name == ANY_HOST or _NAME.fullmatch(_without_final_dot(name.lower())):
        return None
    return (f"{name!r} is not a host name such as node.village.example or localhost (no scheme, port or path; "
            "a name in other scripts in its xn-- form, as browsers send it; IP addresses are always allowed; "
            "* allows any name)")


def name_in(host: str) -> str:
    """The name or address in a ``Host`` header's value, in lower case, without its port, the brackets
    of an IPv6 address or a final dot; a value of another form, whole (no name is allowed to match it)."""
    host = host.lower()
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        return address if bracket and ":" in address and (not rest or _PORT.fullmatch(rest)) else host
    name, colon, port = host.rpartition(":")
    if colon and ":" not in name and _PORT.fullmatch(colon + port):
        host = name
    return _without_final_dot(host)


def is_address(name: str) -> bool:
    """Whether ``name`` is an IP address (v4 in dotted decimal, or v6 without a zone) rather than a name."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.scope_id)


def _without_final_dot(name: str) -> str:
    return name[:-1] if name.endswith(".") else name


@dataclass(frozen=True, slots=True)
class HostAllowlist:
    """The names besides IP addresses that requests to the RPC port may carry in ``Host``."""

    #: Allowed names, lower case without a final dot; ``*`` allows every name.
    names: frozenset[str]
    #: Answers for the ``Host`` values seen last (a node sees few, and parsing an address on every
    #: request costs more than the lookup); emptied when full, so sending many costs only the sender.
    _seen: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

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
        allowed = self._seen.get(host)
        if allowed is None:
            if len(self._seen) >= _REMEMBERED:
                self._seen.clear()
            name = name_in(host)
            allowed = self._seen[host] = name in self.names or is_address(name)
        return allowed

    def middleware(self, refusals: RefusalLog, *, count: Callable[[], object]) -> Middleware:
        """An aiohttp middleware refusing, before anything else, a request for a name not allowed;
        each refusal is counted by calling ``count`` and logged through ``refusals`` at its rate."""

        @web.middleware
        async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
            host = request.headers.get(hdrs.HOST)
            if self.allows(host):
                return await handler(request)
            count()
            shown = repr((host or "")[:_SHOWN])
            refusals.note(f"refused a request from {request.remote} for the host name {shown} (rpc.allowed_hosts): "
                          "a web page trying DNS rebinding, or a client using a name this node is not published "
                          "under")
            error = standard_error(
                INVALID_REQUEST,
                reason=f"this node does not answer to the host name {shown}; reach it by its IP address, "
                       "or have its operator add the name to rpc.allowed_hosts",
                limit="allowed_hosts",
            )
            response = web.Response(status=403, text=encode_error(error), content_type="application/json")
            response.force_close()  # what the client sends next is not read
            return response

        return check_host
