"""What every command of ``mura`` shares: its errors and exit statuses, the group and command
classes that report every failure as one line, the ``Session`` (the node's URL, its answers
fetched once, the output mode) and the tables people read.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click

from mura.rpc.client import DEFAULT_URL, RemoteError, RpcClient, RpcClientError
from mura.rpc.errors import UNKNOWN_ASSET
from mura.rpc.wallet import AssetInfo

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_OUTCOME_UNKNOWN = 4
EXIT_INTERRUPTED = 130
#: Longest text of an argument quoted back in an error message.
_QUOTED_MAX = 40

Rows = list[tuple[str, Any]]


class CommandError(Exception):
    """A failure reported as one line on stderr, with its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def quoted(text: str) -> str:
    """``text`` quoted for an error message, shortened if long."""
    if len(text) > _QUOTED_MAX:
        text = text[: _QUOTED_MAX - 12] + "..." + text[-8:]
    return repr(text)


class MuraGroup(click.Group):
    """A group that reports every error, click's usage errors included, as one line."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except CommandError as error:
            _fail(f"mura: error: {error.message}", error.exit_code)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help() if error.ctx else error.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            where = error.ctx.command_path if isinstance(error, click.UsageError) and error.ctx else "mura"
            hint = f" (see '{where} --help')" if isinstance(error, click.UsageError) else ""
            _fail(f"{where}: error: {_one_line(error.format_message())}{hint}", error.exit_code)
        except click.Abort:
            _fail("mura: interrupted; nothing was sent", EXIT_INTERRUPTED)
        except Exception as error:  # the last resort: every known failure is a CommandError above
            if os.environ.get("MURA_DEBUG") == "1":
                traceback.print_exc()
            _fail(f"mura: internal error: {type(error).__name__}: {_one_line(str(error))} "
                  "(set MURA_DEBUG=1 for the traceback)", EXIT_REFUSED)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Commands that submit catch this themselves once a transaction may be on its way.
            raise CommandError("interrupted; nothing was sent", EXIT_INTERRUPTED) from None


def _fail(line: str, exit_code: int) -> NoReturn:
    # Whatever a message quotes (a path, an argument), it stays one printable line.
    click.echo("".join(c if c.isprintable() else repr(c)[1:-1] for c in line), err=True)
    sys.exit(exit_code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class MuraCommand(click.Command):
    """A command that also takes the global options after its arguments (``mura balance ADDR --json``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--rpc", "global_rpc"], metavar="URL", help="The node's JSON-RPC URL "
                                        "(as before the command)."))
        self.params.append(click.Option(["--json", "global_json"], is_flag=True, help="Print JSON for scripts "
                                        "(as before the command)."))

    def invoke(self, ctx: click.Context) -> Any:
        rpc, as_json = ctx.params.pop("global_rpc", None), ctx.params.pop("global_json", False)
        session = ctx.find_object(Session)
        if session is not None:
            session.override(rpc=rpc, as_json=as_json)
        return super().invoke(ctx)


# --- talking to the node ---------------------------------------------------------------------


def exit_code_of(error: RemoteError) -> int:
    if error.code == -32602:
        return EXIT_USAGE
    return EXIT_UNREACHABLE if error.code in (-32700, -32600, -32601) else EXIT_REFUSED


@contextmanager
def node_errors(method: str) -> Iterator[None]:
    """Turns a failed call of ``method`` into a ``CommandError``."""
    try:
        yield
    except RemoteError as error:
        raise CommandError(str(error), exit_code_of(error)) from None
    except RpcClientError as error:
        raise CommandError(str(error), EXIT_UNREACHABLE) from None


class Session:
    """One invocation's connection to the node and output mode."""

    def __init__(self, url: str, *, as_json: bool) -> None:
        self.url = url
        self.as_json = as_json
        self._client: RpcClient | None = None
        self._status: dict[str, Any] | None = None
        # Assets beyond those chain_status lists, asked for one by one.
        self._more_assets: dict[str, AssetInfo] = {}
        self._unknown_assets: set[str] = set()

    def override(self, *, rpc: str | None, as_json: bool) -> None:
        """The global options given after the command's name."""
        if rpc is not None:
            self.url, self._client, self._status = rpc, None, None
        self.as_json = self.as_json or as_json

    @property
    def client(self) -> RpcClient:
        if self._client is None:
            try:
                self._client = RpcClient(self.url)
            except ValueError as error:
                raise CommandError(f"--rpc: {error}", EXIT_USAGE) from None
        return self._client

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """The result of ``method``; any failure becomes a ``CommandError``."""
        client = self.client
        with node_errors(method):
            return client.call(method, params, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """``chain_status``, fetched once: the network's chain id, prefix and assets."""
        if self._status is None:
            found = self.call("chain_status")
            if not isinstance(found, dict) or not {"chain_id", "address_prefix", "assets"} <= found.keys():
                raise CommandError(f"the node at {self.url} answered chain_status without a network's identity",
                                   EXIT_UNREACHABLE)
            self._status = found
        return self._status

    @property
    def prefix(self) -> str:
        """The network's address prefix."""
        return str(self.status()["address_prefix"])

    @property
    def assets(self) -> list[AssetInfo]:
        """Every asset of the network, ``{id, name, decimals}``, from ``chain_status``."""
        return list(self.status()["assets"])

    def asset(self, asset_id: str) -> AssetInfo:
        """The asset with this id; a usage error if the network has none."""
        info = self.find_asset(asset_id)
        if info is None:
            raise CommandError(f"no asset {asset_id} on this network (see mura asset list)", EXIT_USAGE)
        return info

    def find_asset(self, asset_id: str) -> AssetInfo | None:
        """The asset with this id, or None (an amount of it is shown in smallest units alone):
        from ``chain_status``'s list, else asked for (a network may have more assets than it lists)."""
        found = next((info for info in self.assets if info["id"] == asset_id), None)
        if found is not None or asset_id in self._unknown_assets:
            return found
        if asset_id not in self._more_assets:
            with node_errors("asset_get"):
                try:
                    terms = self.client.call("asset_get", [asset_id])
                except RemoteError as error:
                    if error.code != UNKNOWN_ASSET.code:
                        raise
                    self._unknown_assets.add(asset_id)
                    return None
            self._more_assets[asset_id] = {"id": terms["id"], "name": terms["name"], "decimals": terms["decimals"]}
        return self._more_assets[asset_id]

    def check_command(self, *arguments: str) -> str:
        """How to run ``mura ARGUMENTS`` against this node, for messages: ``--rpc`` only where
        the command would otherwise reach another node (not the default, not ``$MURA_RPC``)."""
        implied = (DEFAULT_URL, os.environ.get("MURA_RPC"))
        rpc = [] if self.url in implied else ["--rpc", self.url]
        return shlex.join(["mura", *rpc, *arguments])

    def show(self, data: Any, rows: Rows, table: str = "", *, more: Sequence[str] = ()) -> None:
        """``data`` as JSON, or ``rows`` (and a further table) for people; ``more``: the command
        that shows the next page, if there is one."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2))
            return
        if rows:
            click.echo(render_rows(rows))
        if table:
            click.echo(("\n" if rows else "") + table)
        if more:
            click.echo(f"\nnext page: {self.check_command(*more)}")


# --- formatting and parsing ------------------------------------------------------------------------


def render_rows(rows: Rows) -> str:
    """Label and value pairs, the values aligned; a value's unprintable characters are shown
    escaped, so that text from the chain can never redraw the table."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {printable(str(value))}" for label, value in rows)


def printable(text: str) -> str:
    """``text`` with each unprintable character escaped (``\\n``, ``\\x1b``)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def render_columns(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table with a header line, every column aligned."""
    cells = [list(headers), *[[printable(str(cell)) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip() for row in cells
    )


def format_time(timestamp_ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-23 09:30:01.250 UTC`` (past the year 9999, the
    milliseconds alone)."""
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return f"{timestamp_ms} ms since 1970"
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{timestamp_ms % 1000:03d} UTC"


#: How often a command that waits asks the node again.
WAIT_POLL_SECONDS = 0.5
_Found = TypeVar("_Found")


def poll_until(ask: Callable[[], _Found | None], *, deadline: float, timed_out: Callable[[], str]) -> _Found:
    """Ask the node until ``ask`` finds what is waited for (not None), every
    ``WAIT_POLL_SECONDS``; past ``deadline`` (``time.monotonic()``), refuse with ``timed_out()``."""
    while True:
        found = ask()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise CommandError(timed_out())
        time.sleep(WAIT_POLL_SECONDS)
