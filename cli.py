"""The ``mura`` command: a wallet and an operator's tool that talks to a node over JSON-RPC.

Output is an aligned table for people, or JSON with ``--json`` for scripts.
Every error is one line on stderr and a non-zero exit status:

====  ==========================================================================
exit  meaning
====  ==========================================================================
0     done
1     the node said no: transaction refused (with its rule), not found, not
      final before the timeout
2     the command line or a local file is wrong: usage, bad address, bad
      amount, missing or unreadable key file
3     no usable answer from the node: unreachable, timed out, not JSON-RPC
====  ==========================================================================

Amounts are whole numbers of the token's smallest unit (``--amount 1250``), or
whole tokens written with the token's symbol (``--amount 12.50NAC``), which
the command converts with the decimals the node reports. A bare ``12.50``
is refused rather than guessed. The network's chain id, address prefix and
token come from the node, so the command works on any Mura network.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from mura.chain.address import decode_address, encode_address, validate_prefix
from mura.chain.errors import InvalidAddress, InvalidKeyFile
from mura.chain.keys import PUBLIC_KEY_SIZE, SigningKey, load_key, save_key
from mura.chain.transaction import Body, Burn, Mint, Transfer
from mura.rpc.client import DEFAULT_URL, RemoteError, RpcClient, RpcClientError
from mura.rpc.render import render_body
from mura.rpc.wallet import AmountError, format_amount, parse_amount, sign_with_next_nonce

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
#: Extra seconds the HTTP request of ``tx_wait`` may take beyond the wait itself.
_WAIT_MARGIN_SECONDS = 10.0
_BLOCK_HASH = re.compile(r"0x[0-9a-fA-F]{64}")

Rows = list[tuple[str, Any]]


class CommandError(Exception):
    """A failure reported as one line on stderr, with its exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class _Group(click.Group):
    """A group that reports every error, click's usage errors included, as one line."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except CommandError as error:
            click.echo(f"mura: error: {error.message}", err=True)
            sys.exit(error.exit_code)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help() if error.ctx else error.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            where = error.ctx.command_path if isinstance(error, click.UsageError) and error.ctx else "mura"
            hint = f" (see '{where} --help')" if isinstance(error, click.UsageError) else ""
            click.echo(f"{where}: error: {error.format_message()}{hint}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("mura: aborted", err=True)
            sys.exit(EXIT_REFUSED)
        sys.exit(code if isinstance(code, int) else 0)


# --- talking to the node ---------------------------------------------------------------------


def _exit_code_of(error: RemoteError) -> int:
    if error.code == -32602:
        return EXIT_USAGE
    return EXIT_UNREACHABLE if error.code in (-32700, -32600, -32601) else EXIT_REFUSED


@contextmanager
def node_errors(method: str) -> Iterator[None]:
    """Turns a failed call of ``method`` into a ``CommandError``."""
    try:
        yield
    except RemoteError as error:
        raise CommandError(str(error), _exit_code_of(error)) from None
    except RpcClientError as error:
        raise CommandError(str(error), EXIT_UNREACHABLE) from None


class Session:
    """One invocation's connection to the node and output mode."""

    def __init__(self, url: str, *, as_json: bool) -> None:
        try:
            self.client = RpcClient(url)
        except ValueError as error:
            raise CommandError(f"--rpc: {error}", EXIT_USAGE) from None
        self.as_json = as_json
        self._status: dict[str, Any] | None = None

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """The result of ``method``; any failure becomes a ``CommandError``."""
        with node_errors(method):
            return self.client.call(method, params, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """``chain_status``, fetched once: the network's chain id, prefix and token."""
        if self._status is None:
            self._status = self.call("chain_status")
        return self._status

    def show(self, data: Any, rows: Rows, table: str = "") -> None:
        """``data`` as JSON, or ``rows`` (and a further table) for people."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2))
            return
        click.echo(render_rows(rows))
        if table:
            click.echo("\n" + table)


# --- formatting and parsing ------------------------------------------------------------------------


def render_rows(rows: Rows) -> str:
    """Label and value pairs, the values aligned."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def render_columns(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table with a header line, every column aligned."""
    cells = [list(headers), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def format_time(timestamp_ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-23 09:30:01.250 UTC``."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{timestamp_ms % 1000:03d} UTC"


def read_amount(text: str, token: dict[str, Any]) -> int:
    try:
        return parse_amount(text, token)
    except AmountError as error:
        raise CommandError(str(error), EXIT_USAGE) from None


def read_key(path: str) -> SigningKey:
    try:
        return load_key(path)
    except InvalidKeyFile as error:
        raise CommandError(error.message, EXIT_USAGE) from None


def read_address(text: str, prefix: str) -> bytes:
    try:
        return decode_address(text, prefix)
    except InvalidAddress as error:
        raise CommandError(f"bad address {text!r}: {error.message}", EXIT_USAGE) from None


def read_block_id(text: str) -> int | str:
    """A height (digits) or a block hash (``0x`` and 64 hex digits)."""
    if text.isascii() and text.isdigit():
        return int(text)
    if _BLOCK_HASH.fullmatch(text):
        return text.lower()
    raise CommandError(f"{text!r} is neither a height nor a block hash (0x and 64 hex digits)", EXIT_USAGE)


def transaction_rows(transaction: dict[str, Any], token: dict[str, Any]) -> Rows:
    """A transaction's fields for people, its amount in both units."""
    body = transaction.get("body", {})
    rows: Rows = [("transaction", transaction["hash"]), ("kind", transaction["kind"]), ("from", transaction["sender"])]
    if "recipient" in body:
        rows.append(("to", body["recipient"]))
    if "amount" in body:
        rows.append(("amount", format_amount(body["amount"], token)))
    rows.append(("nonce", transaction["nonce"]))
    if "block_height" in transaction:
        rows.append(("status", f"final in block {transaction['block_height']} at index {transaction['index']}"))
    else:
        rows.append(("status", transaction.get("status", "submitted")))
    return rows


# --- the commands ------------------------------------------------------------------------------------


@click.group("mura", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rpc", default=DEFAULT_URL, show_default=True, envvar="MURA_RPC", help="The node's JSON-RPC URL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.pass_context
def cli(context: click.Context, rpc: str, as_json: bool) -> None:
    """Mura: a wallet and operator's tool for a Mura network."""
    context.obj = Session(rpc, as_json=as_json)


@cli.command()
@click.option("--out", default="mura.key", show_default=True, type=click.Path(dir_okay=False), help="Key file to write.")
@click.option("--prefix", help="Address prefix for the address shown; default: ask the node.")
@click.option("--label", default="", help="A note stored in the key file.")
@click.pass_obj
def keygen(session: Session, out: str, prefix: str | None, label: str) -> None:
    """Write a new Ed25519 key file (owner-only, never overwritten)."""
    key = SigningKey.generate()
    if prefix is not None:
        _check_prefix(prefix)
    try:
        save_key(out, key, label=label)
    except OSError as error:
        raise CommandError(str(error) if isinstance(error, FileExistsError) else f"cannot write {out}: {error}", EXIT_USAGE)
    address = encode_address(key.public_key, prefix) if prefix else _address_from_node(session, key.public_key)
    data = {"key_file": out, "public_key": key.public_key.hex(), "address": address}
    session.show(data, [("key file", out), ("public key", data["public_key"]), ("address", address or "-")])


def _check_prefix(prefix: str) -> None:
    try:
        validate_prefix(prefix)
    except InvalidAddress as error:
        raise CommandError(error.message, EXIT_USAGE) from None


def _address_from_node(session: Session, public_key: bytes) -> str | None:
    """The address on the node's network; None (with a note) when the node cannot say."""
    try:
        return encode_address(public_key, session.status()["address_prefix"])
    except CommandError as error:
        click.echo(f"mura keygen: note: key written, address not shown ({error.message}); use --prefix", err=True)
        return None


@cli.command()
@click.argument("public_key", required=False)
@click.option("--key", "key_file", help="Key file whose address to show.")
@click.option("--prefix", help="Address prefix; default: ask the node.")
@click.pass_obj
def address(session: Session, public_key: str | None, key_file: str | None, prefix: str | None) -> None:
    """The address of a key file (--key) or of a public key in hex."""
    if (public_key is None) == (key_file is None):
        raise CommandError("give either --key FILE or a public key in hex", EXIT_USAGE)
    raw = read_key(key_file).public_key if key_file else _read_public_key(str(public_key))
    if prefix is not None:
        _check_prefix(prefix)
    text = encode_address(raw, prefix or session.status()["address_prefix"])
    session.show({"address": text, "public_key": raw.hex()}, [("address", text), ("public key", raw.hex())])


def _read_public_key(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != PUBLIC_KEY_SIZE:
        raise CommandError(f"a public key is {2 * PUBLIC_KEY_SIZE} hex digits, got {text!r}", EXIT_USAGE)
    return raw


@cli.command()
@click.argument("account")
@click.pass_obj
def balance(session: Session, account: str) -> None:
    """The final balance of ACCOUNT (an address)."""
    status = session.status()
    read_address(account, status["address_prefix"])
    found = session.call("account_get", account)
    rows: Rows = [
        ("address", found["address"]),
        ("balance", format_amount(found["balance"], status["token"])),
        ("nonce", found["nonce"]),
        ("roles", ", ".join(found["roles"]) or "-"),
    ]
    session.show(found, rows)


def _submit(session: Session, key_file: str, make_body: Callable[[dict[str, Any]], Body], *, wait: bool, timeout: float) -> None:
    """Sign a transaction from ``key_file`` with the next nonce, submit it, and perhaps wait for it."""
    key = read_key(key_file)
    status = session.status()
    body = make_body(status)
    with node_errors("account_get"):
        transaction = sign_with_next_nonce(session.client, key, body, status)
    transaction_hash = session.call("tx_submit", "0x" + transaction.encoded.hex())
    shown: dict[str, Any] = {
        "hash": transaction_hash,
        "kind": transaction.kind,
        "sender": encode_address(key.public_key, status["address_prefix"]),
        "nonce": transaction.nonce,
        "body": render_body(body, status["address_prefix"]),
        "status": "submitted",
    }
    if wait:
        try:
            shown = session.call("tx_wait", transaction_hash, timeout, timeout=timeout + _WAIT_MARGIN_SECONDS)
        except CommandError as error:
            raise CommandError(f"submitted {transaction_hash}, but waiting failed: {error.message}", error.exit_code)
        shown["status"] = "final"
    session.show(shown, transaction_rows(shown, status["token"]))


def _transaction_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--key, --amount, --wait and --timeout, which every signing command takes."""
    for option in (
        click.option("--timeout", default=30.0, show_default=True, help="Seconds --wait waits at most."),
        click.option("--wait", is_flag=True, help="Wait until the transaction is final."),
        click.option("--amount", required=True, help="Smallest units (1250) or whole tokens (12.50NAC)."),
        click.option("--key", "key_file", required=True, help="Key file of the signing account."),
    ):
        command = option(command)
    return command


@cli.command()
@_transaction_options
@click.option("--to", "recipient", required=True, help="Address to pay.")
@click.pass_obj
def send(session: Session, key_file: str, recipient: str, amount: str, wait: bool, timeout: float) -> None:
    """Transfer AMOUNT to an address."""

    def body(status: dict[str, Any]) -> Body:
        return Transfer(read_address(recipient, status["address_prefix"]), read_amount(amount, status["token"]))

    _submit(session, key_file, body, wait=wait, timeout=timeout)


@cli.command()
@_transaction_options
@click.option("--to", "recipient", required=True, help="Address to credit.")
@click.pass_obj
def mint(session: Session, key_file: str, recipient: str, amount: str, wait: bool, timeout: float) -> None:
    """Create AMOUNT new units in an account (issuers only)."""

    def body(status: dict[str, Any]) -> Body:
        return Mint(read_address(recipient, status["address_prefix"]), read_amount(amount, status["token"]))

    _submit(session, key_file, body, wait=wait, timeout=timeout)


@cli.command()
@_transaction_options
@click.pass_obj
def burn(session: Session, key_file: str, amount: str, wait: bool, timeout: float) -> None:
    """Destroy AMOUNT units from the issuer's own account (issuers only)."""
    _submit(session, key_file, lambda status: Burn(read_amount(amount, status["token"])), wait=wait, timeout=timeout)


@cli.command()
@click.pass_obj
def status(session: Session) -> None:
    """The network and the node: chain, height, view, peers, sync."""
    found = session.status()
    token = found["token"]
    rows: Rows = [
        ("chain id", found["chain_id"]),
        ("token", f"{token['name']} ({token['symbol']}, {token['decimals']} decimals)"),
        ("address prefix", found["address_prefix"]),
        ("height", found["height"]),
        ("head hash", found["head_hash"]),
        ("view", found["view"]),
        ("validators", len(found["validators"])),
        ("peers", found["peers"]),
        ("syncing", "yes" if found["syncing"] else "no"),
    ]
    session.show(found, rows)


@cli.command()
@click.argument("block")
@click.pass_obj
def block(session: Session, block: str) -> None:
    """A final block by HEIGHT or HASH, with its transactions."""
    found = session.call("chain_getBlock", read_block_id(block), True)
    token = session.status()["token"]
    rows: Rows = [
        ("height", found["height"]),
        ("hash", found["hash"]),
        ("parent", found["parent_hash"]),
        ("time", format_time(found["timestamp_ms"])),
        ("proposer", found["proposer"] or "-"),
        ("state root", found["state_root"]),
        ("transactions", found["transaction_count"]),
    ]
    lines = [
        (tx["index"], tx["hash"], tx["kind"], tx["sender"], _body_amount(tx["body"], token))
        for tx in found["transactions"]
    ]
    table = render_columns(("index", "hash", "kind", "from", "amount"), lines) if lines else ""
    session.show(found, rows, table)


def _body_amount(body: dict[str, Any], token: dict[str, Any]) -> str:
    return format_amount(body["amount"], token) if "amount" in body else "-"


@cli.command()
@click.argument("transaction_hash", metavar="HASH")
@click.pass_obj
def tx(session: Session, transaction_hash: str) -> None:
    """A final transaction by HASH, with its block and index."""
    if not _BLOCK_HASH.fullmatch(transaction_hash):
        raise CommandError(f"{transaction_hash!r} is not a transaction hash (0x and 64 hex digits)", EXIT_USAGE)
    found = session.call("chain_getTransaction", transaction_hash.lower())
    session.show(found, transaction_rows(found, session.status()["token"]))


@cli.group()
def node() -> None:
    """Run a validator node."""


@node.command(
    "run", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def node_run(context: click.Context, arguments: tuple[str, ...]) -> None:
    """Run a validator until Ctrl-C: --config FILE, then any setting as a flag (--help lists them with defaults)."""
    from mura.node import main as run_node  # the node's dependencies load only for this command

    context.exit(run_node(list(arguments), prog="mura node run", require_config=True))


@cli.command()
@click.option("--dir", "directory", default="testnet", show_default=True, type=click.Path(file_okay=False))
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--rpc-port", type=click.IntRange(1, 65535), help="First validator's JSON-RPC port (i: +i) [default: 8700].")
@click.option("--p2p-port", type=click.IntRange(1, 65535), help="First validator's peer port (i: +i) [default: 9700].")
@click.option("--run/--no-run", default=True, show_default=True, help="Run every node in the foreground.")
@click.option("--reset", is_flag=True, help="Delete the testnet instead; refused while any of its nodes runs.")
@click.pass_context
def testnet(
    context: click.Context,
    directory: str,
    validators: int,
    rpc_port: int | None,
    p2p_port: int | None,
    run: bool,
    reset: bool,
) -> None:
    """Generate (once) a local testnet's keys, genesis and configs, then run its nodes."""
    from mura.genesis.testnet import main as run_testnet

    if reset:
        context.exit(run_testnet(["--out", directory, "--reset"]))
    arguments = ["--out", directory, "--validators", str(validators), "--if-missing"]
    for flag, port in (("--rpc-port", rpc_port), ("--p2p-port", p2p_port)):
        if port is not None:
            arguments += [flag, str(port)]
    context.exit(run_testnet([*arguments, "--run"] if run else arguments))


def main() -> None:
    """The console script's entry point."""
    cli()


if __name__ == "__main__":
    main()
