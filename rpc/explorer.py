"""The block explorer's files, served at ``/explorer/`` on the RPC port.

The explorer is a page that reads this node's own JSON-RPC from the browser:
three static files shipped in the ``mura.explorer`` package, with no build
step and nothing fetched from elsewhere. They are read once, when the server
starts, and served from memory; any other path under ``/explorer/`` is 404.

Every answer carries a Content-Security-Policy that allows scripts, styles,
images and connections from the node's own origin only (``connect-src
'self'`` covers the page's websocket to the same host and port), no inline
script, and no framing by other sites, so text a transaction carries (a memo,
an asset's name) can never run as code even if a rendering bug let it into
the page as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from aiohttp import hdrs, web

#: Where the explorer's page lives on the RPC port.
EXPLORER_PATH = "/explorer/"

_CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Until a node is upgraded its files do not change, but a browser must not keep an old page's script
    # beside a new node's answers: revalidate at every load (the files are small).
    hdrs.CACHE_CONTROL: "no-cache",
}


@dataclass(frozen=True, slots=True)
class ExplorerFiles:
    """The explorer's files, by name, with their content types."""

    files: dict[str, tuple[bytes, str]]

    @classmethod
    def packaged(cls) -> ExplorerFiles:
        """The files shipped in ``mura.explorer``; raises ``FileNotFoundError`` naming one that is missing."""
        folder = resources.files("mura.explorer")
        files = {}
        for name, content_type in _CONTENT_TYPES.items():
            entry = folder.joinpath(name)
            if not entry.is_file():
                raise FileNotFoundError(f"the explorer's file {name} is missing from the installed mura package")
            files[name] = (entry.read_bytes(), content_type)
        return cls(files)

    def install(self, app: web.Application) -> None:
        """Serve ``/explorer`` (a redirect), ``/explorer/`` and each file under it."""
        app.router.add_get("/explorer", self._redirect)
        app.router.add_get(EXPLORER_PATH, self._index)
        app.router.add_get(EXPLORER_PATH + "{name}", self._file)

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(EXPLORER_PATH)

    async def _index(self, request: web.Request) -> web.Response:
        return self._answer("index.html")

    async def _file(self, request: web.Request) -> web.Response:
        return self._answer(request.match_info["name"])

    def _answer(self, name: str) -> web.Response:
        found = self.files.get(name)
        if found is None:
            return web.Response(status=404, text="no such file in the explorer\n", headers=_SECURITY_HEADERS)
        body, content_type = found
        response = web.Response(status=200, body=body, headers=_SECURITY_HEADERS)
        response.headers[hdrs.CONTENT_TYPE] = content_type
        return response
