"""The explorer's files on the RPC port (rpc/explorer.py), over real HTTP: the packaged page and its
scripts with their content types and a policy that lets nothing but the node's own origin in; nothing
else under /explorer/; nothing at all when the node is configured without it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from mura.config import ConfigError, load_config
from mura.rpc.explorer import ExplorerFiles
from mura.rpc.server import RpcServer


@asynccontextmanager
async def serving(explorer: ExplorerFiles | None) -> AsyncIterator[str]:
    async with RpcServer(host="127.0.0.1", port=0, methods=[], explorer=explorer) as server:
        yield server.url.rstrip("/")


async def test_the_page_and_its_files_are_served_with_their_types(http: aiohttp.ClientSession) -> None:
    async with serving(ExplorerFiles.packaged()) as url:
        async with http.get(url + "/explorer", allow_redirects=False) as response:
            assert response.status == 301 and response.headers["Location"] == "/explorer/"
        async with http.get(url + "/explorer/") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            page = await response.text()
        # The page loads only its own files, by relative address: nothing from another host.
        assert 'src="explorer.js"' in page and 'href="explorer.css"' in page
        assert "http://" not in page and "https://" not in page
        for name, content_type in (("explorer.js", "text/javascript"), ("explorer.css", "text/css"),
                                   ("icon.svg", "image/svg+xml")):
            async with http.get(f"{url}/explorer/{name}") as response:
                assert response.status == 200, name
                assert response.headers["Content-Type"].startswith(content_type)
                assert len(await response.read()) > 100


async def test_every_answer_keeps_other_origins_out(http: aiohttp.ClientSession) -> None:
    async with serving(ExplorerFiles.packaged()) as url:
        for path in ("/explorer/", "/explorer/explorer.js", "/explorer/missing.js"):
            async with http.get(url + path) as response:
                policy = response.headers["Content-Security-Policy"]
                assert "script-src 'self'" in policy and "connect-src 'self'" in policy
                assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
                assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
                assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/explorer/missing.js", "/explorer/..%2Fnode.py", "/explorer/__init__.py",
                                  "/explorer/%00", "/explorer/a/b"])
async def test_nothing_but_the_listed_files(http: aiohttp.ClientSession, path: str) -> None:
    async with serving(ExplorerFiles.packaged()) as url:
        async with http.get(url + path) as response:
            assert response.status == 404
            assert "def " not in await response.text()


async def test_off_when_not_given(http: aiohttp.ClientSession) -> None:
    async with serving(None) as url:
        async with http.get(url + "/explorer/") as response:
            assert response.status in (404, 405)


def test_the_setting_is_on_by_default_and_a_boolean(tmp_path: Path) -> None:
    assert load_config(None)["rpc.explorer"] is True
    path = tmp_path / "node.toml"
    path.write_text('[rpc]\nexplorer = false\n')
    assert load_config(path)["rpc.explorer"] is False
    path.write_text('[rpc]\nexplorer = "yes"\n')
    with pytest.raises(ConfigError, match=r"rpc\.explorer"):
        load_config(path)
