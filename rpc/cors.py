"""Cross-origin requests to the RPC port, for a wallet that runs in a browser.

Off unless ``rpc.cors_origins`` lists origins. A browser sends a page's
cross-origin JSON-RPC call (a POST with ``Content-Type: application/json``)
only after a preflight ``OPTIONS`` request, and lets the page read an answer
only if it carries ``Access-Control-Allow-Origin`` for the page's origin. So
for a listed origin the server answers the preflight (204, the methods and the
one request header JSON-RPC needs) and adds that header to every answer, JSON-RPC
errors and refusals included; for any other origin it adds nothing and refuses
the preflight (403), and the browser keeps the page from reading the node.

``*`` lists every origin: any web page the operator's browser opens could then
call the node, which is for development only. No cookies or credentials are
ever allowed; the RPC has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

ANY_ORIGIN = "*"
#: How long a browser may keep a preflight's answer, in seconds.
PREFLIGHT_MAX_AGE_SECONDS = 600
_ALLOWED_METHODS = "POST, GET, OPTIONS"
_ALLOWED_HEADERS = "Content-Type"


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` is not an origin a browser sends (``scheme://host[:port]`` or ``*``), or None."""
    if origin == ANY_ORIGIN:
        return None
    scheme, separator, rest = origin.partition("://")
    if not separator or scheme.lower() not in ("http", "https") or not rest or any(c in rest for c in "/?#@ "):
        return f"{origin!r} is not an origin such as https://wallet.example or http://localhost:3000 (or *)"
    return None


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which browser origins may call the RPC and read its answers."""

    #: Allowed origins, lower case (browsers send them so); ``*`` allows every origin.
    origins: frozenset[str]

    @classmethod
    def of(cls, origins: Iterable[str]) -> CorsPolicy:
        """A policy for ``origins``; raises ``ValueError`` naming one that is not an origin."""
        listed = list(origins)
        for origin in listed:
            problem = origin_problem(origin)
            if problem:
                raise ValueError(problem)
        return cls(frozenset(origin.lower() for origin in listed))

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allow_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None."""
        if origin is None:
            return None
        if ANY_ORIGIN in self.origins:
            return ANY_ORIGIN
        return origin if origin.lower() in self.origins else None

    def install(self, app: web.Application) -> None:
        """Answer preflights on every path and mark answers to allowed origins; nothing when off."""
        if not self.enabled:
            return
        app.router.add_route(hdrs.METH_OPTIONS, "/{path:.*}", self._preflight)
        app.on_response_prepare.append(self._mark_answer)

    async def _preflight(self, request: web.Request) -> web.Response:
        if self.allow_origin(request.headers.get(hdrs.ORIGIN)) is None:
            return web.Response(status=403, text="origin not allowed (rpc.cors_origins)\n")
        response = web.Response(status=204)
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = _ALLOWED_METHODS
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = _ALLOWED_HEADERS
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(PREFLIGHT_MAX_AGE_SECONDS)
        return response

    async def _mark_answer(self, request: web.Request, response: web.StreamResponse) -> None:
        allowed = self.allow_origin(request.headers.get(hdrs.ORIGIN))
        if ANY_ORIGIN not in self.origins:
            # The answer depends on the Origin header: a shared cache must not give one origin's to another.
            response.headers.add(hdrs.VARY, hdrs.ORIGIN)
        if allowed is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed
