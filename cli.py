"""The ``mura`` command: a wallet and an operator's tool that talks to a node over JSON-RPC.

Output is an aligned table for people, or JSON with ``--json`` for scripts.
The global options (``--rpc``, ``--json``) may come before or after the
command: ``mura --json balance ADDR`` and ``mura balance ADDR --json`` are one.
Every error is one line on stderr and a non-zero exit status:

====  ==========================================================================
exit  meaning
====  ==========================================================================
0     done
1     the node said no: transaction refused (with its rule), not found, or
      its nonce taken by another final transaction while ``--wait`` waited
2     the command line or a local file is wrong: usage, bad address, bad
      amount, bad timeout or nonce, missing, unreadable or wrongly encrypted
      key file (nothing was sent)
3     the node could not be reached, or gave no usable answer, before
      anything was submitted (nothing was sent)
4     submitted, outcome unknown: the transaction may still become final
      (``--wait`` timed out, Ctrl-C, node gone or connection reset after
      submission, or the node dropped it from its mempool: expired, replaced,
      ... while another node may hold it); the message prints its hash and how to check
      (``mura tx HASH``)
130   interrupted (Ctrl-C or SIGTERM) before anything was sent
====  ==========================================================================

Every argument of ``send``, ``mint`` and ``burn`` is checked before anything
is signed or sent. ``--wait`` waits as long as ``--timeout`` says, in as many
``tx_wait`` calls as the node's longest wait (``rpc.max_wait_seconds``,
which the node publishes through ``rpc.discover``) requires.

Amounts are whole numbers of the token's smallest unit (``--amount 1250``), or
whole tokens written with the token's symbol (``--amount 12.50NAC``), which
the command converts with the decimals the node reports. A bare ``12.50``
is refused rather than guessed. The network's chain id, address prefix and
token come from the node, so the command works on any Mura network.

Set ``MURA_DEBUG=1`` to see the Python traceback of an internal error.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from mura.chain.address import decode_address, encode_address, validate_prefix
from mura.chain.codec import MAX_INT
from mura.chain.errors import InvalidAddress, InvalidKeyFile
from mura.chain.keys import (
    PASSPHRASE_VARIABLE,
    PUBLIC_KEY_SIZE,
    SigningKey,
    exposed_permissions,
    load_key,
    save_key,
)
from mura.chain.transaction import Body, Burn, Mint, Transaction, Transfer
from mura.rpc.client import (
    DEFAULT_URL,
    TRANSACTION_DROPPED,
    NodeUnreachable,
    RemoteError,
    RpcClient,
    RpcClientError,
)
from mura.rpc.render import render_body
from mura.rpc.wallet import AmountError, format_amount, parse_amount, sign_with_next_nonce, sign_with_nonce

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_OUTCOME_UNKNOWN = 4
EXIT_INTERRUPTED = 130
#: Extra seconds the HTTP request of ``tx_wait`` may take beyond the wait itself.
_WAIT_MARGIN_SECONDS = 10.0
#: The longest single ``tx_wait`` call when the node does not publish its ceiling: every node
#: accepts 1 s (``rpc.max_wait_seconds`` is a positive whole number), so a longer ``--timeout``
#: becomes more calls rather than a refusal after the transaction was submitted.
_FALLBACK_WAIT_STEP_SECONDS = 1.0
_HASH = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")
_PUBLIC_KEY_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
#: Longest text of an argument quoted back in an error message.
_QUOTED_MAX = 40

Rows = list[tuple[str, Any]]

if TYPE_CHECKING:  # click's ParamType is generic only in its newer releases
    _SecondsBase = click.ParamType[float]
    _NonceBase = click.ParamType[int]
else:
    _SecondsBase = _NonceBase = click.ParamType


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


class _Group(click.Group):
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


class _Command(click.Command):
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
        self.url = url
        self.as_json = as_json
        self._client: RpcClient | None = None
        self._status: dict[str, Any] | None = None

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
        """``chain_status``, fetched once: the network's chain id, prefix and token."""
        if self._status is None:
            found = self.call("chain_status")
            if not isinstance(found, dict) or not {"chain_id", "address_prefix", "token"} <= found.keys():
                raise CommandError(f"the node at {self.url} answered chain_status without a network's identity",
                                   EXIT_UNREACHABLE)
            self._status = found
        return self._status

    def check_command(self, *arguments: str) -> str:
        """How to run ``mura ARGUMENTS`` against this node, for messages."""
        rpc = [] if self.url == DEFAULT_URL else ["--rpc", self.url]
        return shlex.join(["mura", *rpc, *arguments])

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
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip() for row in cells
    )


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
    """The key in ``path``, asking for its passphrase if it is encrypted; warns (one line) when
    the file is open to other users."""
    try:
        key = load_key(path, passphrase=lambda: _passphrase(path))
    except InvalidKeyFile as error:
        raise CommandError(error.message, EXIT_USAGE) from None
    exposed = exposed_permissions(path)
    if exposed is not None:
        click.echo(f"mura: warning: key file {path} is {exposed}; fix with: chmod 600 {shlex.quote(path)}", err=True)
    return key


def _passphrase(path: str) -> str:
    """An encrypted key file's passphrase: from ``MURA_KEY_PASSPHRASE``, or asked for."""
    if PASSPHRASE_VARIABLE in os.environ:
        return os.environ[PASSPHRASE_VARIABLE]
    try:
        return str(click.prompt(f"Passphrase for {path}", hide_input=_terminal(), err=True))
    except click.Abort:
        raise CommandError(f"key file {path} is encrypted and no passphrase was given "
                           f"(type it when asked, or set {PASSPHRASE_VARIABLE})", EXIT_USAGE) from None


def _new_passphrase() -> str:
    """The passphrase for a new key file: from ``MURA_KEY_PASSPHRASE``, or asked for twice."""
    if PASSPHRASE_VARIABLE in os.environ:
        text = os.environ[PASSPHRASE_VARIABLE]
        if not text:
            raise CommandError(f"{PASSPHRASE_VARIABLE} is empty; a passphrase needs at least one character", EXIT_USAGE)
        return text
    try:
        return str(
            click.prompt("Passphrase for the new key", hide_input=_terminal(), confirmation_prompt=True, err=True)
        )
    except click.Abort:
        raise CommandError(f"no passphrase given (type it twice when asked, or set {PASSPHRASE_VARIABLE}); "
                           "no key written", EXIT_USAGE) from None


def _terminal() -> bool:
    """Whether input comes from a terminal: there a passphrase is typed unseen; from a pipe it is
    read as a line (nothing echoes it, and getpass would only warn that it cannot hide it)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_address(text: str, prefix: str) -> bytes:
    if _PUBLIC_KEY_HEX.fullmatch(text):
        address = encode_address(bytes.fromhex(text[-64:]), prefix)
        raise CommandError(f"{text[:10]}...: that is a public key, not an address; its address is {address}",
                           EXIT_USAGE)
    try:
        return decode_address(text, prefix)
    except InvalidAddress as error:
        raise CommandError(f"bad address {quoted(text)}: {error.message}", EXIT_USAGE) from None


def read_hash(text: str, what: str) -> str:
    """A 32-byte hash as the node writes it (``0x`` and lower case), from 64 hex digits with or
    without ``0x``, in either case."""
    match = _HASH.fullmatch(text)
    if match is None:
        raise CommandError(f"{quoted(text)} is not a {what} hash (64 hex digits, with or without 0x)", EXIT_USAGE)
    return "0x" + match.group(1).lower()


def read_block_id(text: str) -> int | str | None:
    """A height (digits), a block hash, or None for ``latest``."""
    if text.lower() == "latest":
        return None
    if text.isascii() and text.isdigit():
        if len(text) > 20 or int(text) > MAX_INT:
            raise CommandError(f"height {quoted(text)} is beyond any chain (at most {MAX_INT})", EXIT_USAGE)
        return int(text)
    if _HASH.fullmatch(text):
        return read_hash(text, "block")
    raise CommandError(f"{quoted(text)} is neither a height, a block hash (64 hex digits) nor 'latest'", EXIT_USAGE)


class _Path(click.Path):
    """click's Path, refusing a NUL (which no file name holds) with a usage error instead of crashing."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self.fail(f"{quoted(value)}: a file name cannot hold a NUL character", param, ctx)
        return super().convert(value, param, ctx)


class _Seconds(_SecondsBase):
    """A positive, finite number of seconds, written in plain ASCII."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value)
        try:
            if not text.isascii() or len(text) > 32:
                raise ValueError
            seconds = float(text)
        except ValueError:
            self.fail(f"{quoted(text)} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{quoted(text)}: must be a positive number of seconds", param, ctx)
        return seconds


class _Nonce(_NonceBase):
    """A transaction nonce: a whole number from 0 to 2^64 - 1."""

    name = "n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) > MAX_INT:
            self.fail(f"{quoted(text)} is not a nonce (a whole number from 0 to {MAX_INT})", param, ctx)
        return int(text)


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


def _version() -> str:
    try:
        return importlib.metadata.version("mura")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


@click.group("mura", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rpc", default=DEFAULT_URL, show_default=True, envvar="MURA_RPC", help="The node's JSON-RPC URL.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.version_option(_version(), "--version", prog_name="mura", message="%(prog)s %(version)s")
@click.pass_context
def cli(context: click.Context, rpc: str, as_json: bool) -> None:
    """Mura: a wallet and operator's tool for a Mura network.

    --rpc and --json may also follow the command. Exit status: 0 done, 1 the node said no,
    2 the command line or a local file is wrong, 3 the node could not be reached (nothing
    sent), 4 submitted but the outcome is unknown (check with: mura tx HASH).
    """
    context.obj = Session(rpc, as_json=as_json)


cli.command_class = _Command


@cli.command()
@click.option("--out", default="mura.key", show_default=True, type=_Path(dir_okay=False), help="Key file to write.")
@click.option("--prefix", help="Address prefix for the address shown; default: ask the node.")
@click.option("--label", default="", help="A note stored in the key file.")
@click.option("--encrypt", is_flag=True,
              help=f"Encrypt the private key under a passphrase (asked for twice, or read from {PASSPHRASE_VARIABLE}).")
@click.pass_obj
def keygen(session: Session, out: str, prefix: str | None, label: str, encrypt: bool) -> None:
    """Write a new Ed25519 key file (owner-only, never overwritten)."""
    if prefix is not None:
        _check_prefix(prefix)
    if not out:
        raise CommandError("--out: give a file name", EXIT_USAGE)
    passphrase = _new_passphrase() if encrypt else None
    key = SigningKey.generate()
    try:
        save_key(out, key, label=label, passphrase=passphrase)
    except FileExistsError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    except OSError as error:
        raise CommandError(f"cannot write {out}: {error.strerror or error}", EXIT_USAGE) from None
    except ValueError as error:  # a path the system refuses, such as one holding a NUL
        raise CommandError(f"cannot write {quoted(out)}: {error}", EXIT_USAGE) from None
    address = encode_address(key.public_key, prefix) if prefix else _address_from_node(session, key.public_key)
    data = {"key_file": out, "public_key": key.public_key.hex(), "address": address, "encrypted": encrypt}
    rows: Rows = [("key file", out), ("public key", data["public_key"]), ("address", address or "-")]
    if encrypt:
        rows.append(("encrypted", "yes (scrypt, ChaCha20-Poly1305)"))
    session.show(data, rows)


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
    if not _PUBLIC_KEY_HEX.fullmatch(text):
        raise CommandError(f"a public key is {2 * PUBLIC_KEY_SIZE} hex digits, got {quoted(text)}", EXIT_USAGE)
    return bytes.fromhex(text[-2 * PUBLIC_KEY_SIZE :])


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


def _submit(
    session: Session,
    key_file: str,
    make_body: Callable[[dict[str, Any]], Body],
    *,
    wait: bool,
    timeout: float,
    nonce: int | None,
) -> None:
    """Sign a transaction from ``key_file`` (with ``nonce``, or the next one), submit it, and perhaps
    wait for it. Every argument is checked before anything is signed or sent."""
    key = read_key(key_file)
    status = session.status()
    body = make_body(status)
    wait_step = _longest_wait(session) if wait else 0.0
    if nonce is None:
        with node_errors("account_get"):
            transaction = sign_with_next_nonce(session.client, key, body, status)
    else:
        transaction = sign_with_nonce(key, body, status, nonce=nonce)
    transaction_hash = "0x" + transaction.hash.hex()
    shown: dict[str, Any] = {
        "hash": transaction_hash,
        "kind": transaction.kind,
        "sender": encode_address(key.public_key, status["address_prefix"]),
        "nonce": transaction.nonce,
        "body": render_body(body, status["address_prefix"]),
        "status": "submitted",
    }
    with _outcome_unknown_on_failure(session, transaction_hash):
        _send(session, transaction, status)
        if wait:
            shown = _wait_final(session, transaction, timeout=timeout, step=wait_step)
            shown["status"] = "final"
        session.show(shown, transaction_rows(shown, status["token"]))


def _send(session: Session, transaction: Transaction, status: dict[str, Any]) -> None:
    """``tx_submit``; a refusal (nothing admitted) is exit 1, a request that never left is exit 3."""
    try:
        session.client.call("tx_submit", ["0x" + transaction.encoded.hex()])
    except RemoteError as error:
        raise CommandError(_describe_refusal(error, transaction, status["token"]), _exit_code_of(error)) from None
    except NodeUnreachable as error:
        if not error.may_have_arrived:
            raise CommandError(f"{error}; nothing was sent", EXIT_UNREACHABLE) from None
        raise


def _describe_refusal(error: RemoteError, transaction: Transaction, token: dict[str, Any]) -> str:
    """The node's refusal in one line; an overspend names what is pending only when something is."""
    data = error.data if isinstance(error.data, dict) else {}
    balance, total = data.get("balance"), data.get("pending_spend")
    overspend = data.get("rule") == "pending_spend_exceeds_balance"
    if not overspend or not isinstance(balance, int) or not isinstance(total, int):
        return str(error)
    spend = getattr(transaction.body, "amount", 0) if isinstance(transaction.body, (Transfer, Burn)) else 0
    if total <= spend:
        return (f"transaction refused (pending_spend_exceeds_balance): the {transaction.kind} of "
                f"{format_amount(spend, token)} exceeds the final balance of {format_amount(balance, token)}")
    return (f"transaction refused (pending_spend_exceeds_balance): the {transaction.kind} of "
            f"{format_amount(spend, token)} and {format_amount(total - spend, token)} already pending from this "
            f"account exceed the final balance of {format_amount(balance, token)}")


@contextmanager
def _outcome_unknown_on_failure(session: Session, transaction_hash: str) -> Iterator[None]:
    """From the moment ``tx_submit`` may reach the node, any failure but a refusal or a certain
    non-delivery says that the transaction may still become final, and how to check (exit 4)."""
    check = session.check_command("tx", transaction_hash)

    def unknown(reason: str) -> CommandError:
        return CommandError(f"{reason}; transaction {transaction_hash} may have been submitted and may still "
                            f"become final: check with: {check}", EXIT_OUTCOME_UNKNOWN)

    try:
        yield
    except KeyboardInterrupt:
        raise unknown("interrupted") from None
    except RpcClientError as error:
        raise unknown(str(error)) from None


def _longest_wait(session: Session) -> float:
    """The longest ``tx_wait`` the node accepts (its ``rpc.max_wait_seconds``), from ``rpc.discover``;
    the fallback step when it does not say."""
    try:
        document = session.client.call("rpc.discover")
        tx_wait = next(method for method in document["methods"] if method["name"] == "tx_wait")
        schema = next(param["schema"] for param in tx_wait["params"] if param["name"] == "timeout_seconds")
        maximum = schema["maximum"]
    except RemoteError:
        return _FALLBACK_WAIT_STEP_SECONDS
    except RpcClientError as error:
        raise CommandError(f"{error}; nothing was sent", EXIT_UNREACHABLE) from None
    except (KeyError, TypeError, StopIteration):
        return _FALLBACK_WAIT_STEP_SECONDS
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or not 1 <= maximum <= 86_400:
        return _FALLBACK_WAIT_STEP_SECONDS
    return float(maximum)


def _wait_final(session: Session, transaction: Transaction, *, timeout: float, step: float) -> dict[str, Any]:
    """The transaction once final, waiting at most ``timeout`` seconds in ``tx_wait`` calls of at
    most ``step`` seconds each. A drop ends it (see ``_describe_drop`` for its exit status); a
    timeout propagates as ``NotFinalYet``."""
    transaction_hash = "0x" + transaction.hash.hex()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NotFinalYet(f"not final after {timeout:g} s")
        wait = max(round(min(remaining, step), 3), 0.001)
        try:
            found: dict[str, Any] = session.client.call(
                "tx_wait", [transaction_hash, wait], timeout=wait + _WAIT_MARGIN_SECONDS
            )
            return found
        except RemoteError as error:
            if error.code == TRANSACTION_DROPPED:
                raise CommandError(*_describe_drop(session, error, transaction)) from None
            if error.code != -32030:
                raise


class NotFinalYet(RpcClientError):
    """``--wait`` reached its timeout before the transaction was final."""


def _describe_drop(session: Session, error: RemoteError, transaction: Transaction) -> tuple[str, int]:
    """The drop in one line, and the exit status: a drop is this node's view, so unless another
    transaction took the nonce for good (``nonce_used``), this one may still become final through
    another node (exit 4, outcome unknown); only a retry with the same nonce is safe."""
    data = error.data if isinstance(error.data, dict) else {}
    rule, why = data.get("rule", "unknown"), data.get("message", "")
    head = f"transaction 0x{transaction.hash.hex()} was dropped by this node ({rule}): {why}".rstrip(": ")
    if rule == "nonce_used":
        return f"{head}; it will not become final", EXIT_REFUSED
    if rule == "replaced" and data.get("replaced_by"):
        replacement = str(data["replaced_by"])
        return (f"{head}; it may still become final if a validator proposed it before the replacement; at most one "
                f"of them can: check with: {session.check_command('tx', replacement)}"), EXIT_OUTCOME_UNKNOWN
    return (f"{head}; it may still become final through another node (check with: "
            f"{session.check_command('tx', '0x' + transaction.hash.hex())}). Retry only with --nonce "
            f"{transaction.nonce} (the same nonce): at most one of them can become final"), EXIT_OUTCOME_UNKNOWN


def _transaction_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--key, --amount, --wait, --timeout and --nonce, which every signing command takes."""
    for option in (
        click.option("--nonce", type=_Nonce(), default=None,
                     help="Sign with nonce N instead of the next one: to replace a pending transaction, "
                     "give its nonce."),
        click.option("--timeout", type=_Seconds(), default=30.0, show_default=True,
                     help="Seconds --wait waits at most (any positive number; long waits take several calls)."),
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
def send(session: Session, key_file: str, recipient: str, amount: str, wait: bool, timeout: float,
         nonce: int | None) -> None:
    """Transfer AMOUNT to an address."""

    def body(status: dict[str, Any]) -> Body:
        return Transfer(read_address(recipient, status["address_prefix"]), read_amount(amount, status["token"]))

    _submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


@cli.command()
@_transaction_options
@click.option("--to", "recipient", required=True, help="Address to credit.")
@click.pass_obj
def mint(session: Session, key_file: str, recipient: str, amount: str, wait: bool, timeout: float,
         nonce: int | None) -> None:
    """Create AMOUNT new units in an account (issuers only)."""

    def body(status: dict[str, Any]) -> Body:
        return Mint(read_address(recipient, status["address_prefix"]), read_amount(amount, status["token"]))

    _submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


@cli.command()
@_transaction_options
@click.pass_obj
def burn(session: Session, key_file: str, amount: str, wait: bool, timeout: float, nonce: int | None) -> None:
    """Destroy AMOUNT units from the issuer's own account (issuers only)."""
    _submit(session, key_file, lambda status: Burn(read_amount(amount, status["token"])), wait=wait,
            timeout=timeout, nonce=nonce)


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
    """A final block by HEIGHT, HASH (with or without 0x) or 'latest', with its transactions."""
    wanted = read_block_id(block)
    token = session.status()["token"]
    found = session.call("chain_getBlock", session.status()["height"] if wanted is None else wanted, True)
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
    """A final transaction by HASH (with or without 0x), with its block and index."""
    found = session.call("chain_getTransaction", read_hash(transaction_hash, "transaction"))
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


@cli.command(cls=click.Command)
@click.option("--dir", "directory", default="testnet", show_default=True, type=_Path(file_okay=False))
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--rpc-port", type=click.IntRange(1, 65535),
              help="First validator's JSON-RPC port (i: +i) [default: 8700].")
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
    """The console script's entry point. SIGTERM (``timeout``, a service manager) is handled as
    Ctrl-C, so that a transaction already submitted is still reported with its hash (exit 4)."""
    signal.signal(signal.SIGTERM, _interrupt)
    cli()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
