"""The ``mura`` group and its commands for keys, accounts, payments and the chain; the asset
and registrar commands are in ``assets``."""

from __future__ import annotations

import importlib.metadata
import signal
import time
from typing import Any, cast

import click

from mura.chain.address import encode_address
from mura.chain.keys import PASSPHRASE_VARIABLE, SigningKey, save_key
from mura.chain.transaction import Body, Burn, Mint, Transfer
from mura.cli.assets import asset, freeze, holder, unfreeze
from mura.cli.bond_issue import consent, issue, template
from mura.cli.bonds import bond
from mura.cli.demo import demo
from mura.cli.governance import issuer, validator
from mura.cli.inputs import (
    Height,
    PathType,
    Seconds,
    check_prefix,
    new_passphrase,
    read_address,
    read_amount,
    read_asset_id,
    read_block_id,
    read_hash,
    read_key,
    read_memo,
    read_public_key,
    read_time,
)
from mura.cli.offerings import offering
from mura.cli.session import (
    EXIT_USAGE,
    WAIT_POLL_SECONDS,
    CommandError,
    MuraCommand,
    MuraGroup,
    Rows,
    Session,
    format_time,
    poll_until,
    quoted,
    render_columns,
)
from mura.cli.submit import body_asset, show_units, signing_options, submit, transaction_rows
from mura.cli.trades import trade
from mura.rpc.account_methods import DEFAULT_TRANSACTIONS_PAGE, MAX_TRANSACTIONS_PAGE
from mura.rpc.client import DEFAULT_URL
from mura.rpc.params import MAX_HEIGHT, MAX_PAGE

#: Asset ids ``mura status`` lists before it only counts the rest.
_SHOWN_ASSETS = 10
#: Seconds between two looks at the chain while ``mura wait`` waits.


def _version() -> str:
    try:
        return importlib.metadata.version("mura")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


@click.group("mura", cls=MuraGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


cli.command_class = MuraCommand
for group in (asset, holder, freeze, unfreeze, bond, offering, trade, validator, issuer, demo):
    cli.add_command(group)
for bond_command in (template, issue, consent):
    bond.add_command(bond_command)


# --- keys ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--out", default="mura.key", show_default=True, type=PathType(dir_okay=False),
              help="Key file to write.")
@click.option("--prefix", help="Address prefix for the address shown; default: ask the node.")
@click.option("--label", default="", help="A note stored in the key file.")
@click.option("--encrypt", is_flag=True,
              help=f"Encrypt the private key under a passphrase (asked for twice, or read from {PASSPHRASE_VARIABLE}).")
@click.pass_obj
def keygen(session: Session, out: str, prefix: str | None, label: str, encrypt: bool) -> None:
    """Write a new Ed25519 key file (owner-only, never overwritten)."""
    if prefix is not None:
        check_prefix(prefix)
    if not out:
        raise CommandError("--out: give a file name", EXIT_USAGE)
    passphrase = new_passphrase() if encrypt else None
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


def _address_from_node(session: Session, public_key: bytes) -> str | None:
    """The address on the node's network; None (with a note) when the node cannot say."""
    try:
        return encode_address(public_key, session.prefix)
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
    raw = read_key(key_file).public_key if key_file else read_public_key(str(public_key))
    if prefix is not None:
        check_prefix(prefix)
    text = encode_address(raw, prefix or session.prefix)
    session.show({"address": text, "public_key": raw.hex()}, [("address", text), ("public key", raw.hex())])


# --- accounts --------------------------------------------------------------------------------------


def _account_argument(session: Session, account: str | None, key_file: str | None) -> str:
    """The address an account command is about: ADDRESS, or the address of --key."""
    if (account is None) == (key_file is None):
        raise CommandError("give either an ADDRESS or --key FILE", EXIT_USAGE)
    if key_file is not None:
        return encode_address(read_key(key_file).public_key, session.prefix)
    read_address(str(account), session.prefix)
    return str(account)


def _balance_table(session: Session, balances: list[dict[str, Any]]) -> str:
    lines = [(item["asset"], show_units(item["balance"], session.find_asset(item["asset"]), item["asset"]))
             for item in balances]
    return render_columns(("asset", "balance"), lines) if lines else "no balances"


@cli.command()
@click.argument("account", metavar="[ADDRESS]", required=False)
@click.option("--key", "key_file", help="Key file whose account to show, instead of an ADDRESS.")
@click.option("--height", type=Height(), help="Balances after the block at this height (default: the head).")
@click.pass_obj
def balance(session: Session, account: str | None, key_file: str | None, height: int | None) -> None:
    """Every final balance of an account, with its nonce and roles (ADDRESS or --key)."""
    address = _account_argument(session, account, key_file)
    if height is None:
        found = session.call("account_get", address)
        rows: Rows = [("address", found["address"]), ("nonce", found["nonce"]),
                      ("roles", ", ".join(found["roles"]) or "-")]
        more = bool(found["more_balances"])
    else:
        found = session.call("account_getBalances", address, height, None, MAX_PAGE)
        rows = [("address", found["address"]), ("height", found["height"])]
        more = found["next_cursor"] is not None
    table = _balance_table(session, found["balances"])
    if more:
        table += "\n(more assets than shown: the JSON-RPC method account_getBalances pages through them all)"
    session.show(found, rows, table)


def _counterparty(transaction: dict[str, Any], address: str) -> str:
    """The other party of a transaction as ``address`` sees it: ``to``/``from`` whom something
    moved, ``on``/``by`` whom a registrar acted; ``-`` when there is none."""
    body = transaction["body"]
    other = body.get("recipient") or body.get("account")
    if other is None:
        return "-"
    moves = "recipient" in body
    if transaction["sender"] == address:
        return f"{'to' if moves else 'on'} {other}"
    return f"{'from' if moves else 'by'} {transaction['sender']}"


@cli.command()
@click.argument("account", metavar="ADDRESS")
@click.option("--limit", type=click.IntRange(1, MAX_TRANSACTIONS_PAGE), default=DEFAULT_TRANSACTIONS_PAGE,
              show_default=True,
              help=f"Transactions to show (at most {MAX_TRANSACTIONS_PAGE}).")
@click.option("--cursor", help="Where to go on from: the cursor the previous page ended with.")
@click.pass_obj
def history(session: Session, account: str, limit: int, cursor: str | None) -> None:
    """The final transactions ADDRESS sent or was named in, newest first."""
    read_address(account, session.prefix)
    found = session.call("account_getTransactions", account, cursor, limit)
    account = found["address"]  # as the node writes it: lower case, whatever case was typed
    lines = []
    for transaction in found["transactions"]:
        body = transaction["body"]
        amount = body.get("amount", body.get("supply"))
        lines.append((f"{transaction['block_height']}:{transaction['index']}", transaction["kind"],
                      show_units(amount, body_asset(body, session), body.get("asset", "")),
                      _counterparty(transaction, account), transaction["hash"]))
    table = render_columns(("at", "kind", "amount", "party", "hash"), lines) if lines else "no transactions"
    more = ("history", account, "--limit", str(limit), "--cursor", found["next_cursor"]) if found["next_cursor"] else ()
    session.show(found, [], table, more=more)


# --- payments ----------------------------------------------------------------------------------------


def _one_of(argument: str | None, option: str | None, what: str, flag: str) -> str:
    """A value given as an argument or as its option, exactly once."""
    if argument is not None and option is not None:
        raise click.UsageError(f"give the {what} once: as an argument or as {flag}", click.get_current_context())
    value = argument if argument is not None else option
    if value is None:
        raise click.UsageError(f"missing the {what}: give it as an argument or as {flag}",
                               click.get_current_context())
    return value


_ASSET_OPTION = click.option(
    "--asset", "asset_id", help="The asset of an AMOUNT in plain digits (default: the network's default asset)."
)


@cli.command()
@signing_options
@click.argument("amount_argument", metavar="[AMOUNT]", required=False)
@click.argument("recipient_argument", metavar="[ADDRESS]", required=False)
@click.option("--to", "recipient", help="The address to pay (or give it after AMOUNT).")
@click.option("--amount", help="Smallest units (1250) or whole units with the asset id (12.50NAC).")
@_ASSET_OPTION
@click.option("--memo", default="", help="Text for the recipient: at most 256 bytes in UTF-8.")
@click.pass_obj
def send(session: Session, key_file: str, amount_argument: str | None, recipient_argument: str | None,
         recipient: str | None, amount: str | None, asset_id: str | None, memo: str, wait: bool, timeout: float,
         nonce: int | None) -> None:
    """Transfer AMOUNT to ADDRESS: mura send 12.50NAC ADDRESS --key FILE."""
    amount_text = _one_of(amount_argument, amount, "amount", "--amount")
    recipient_text = _one_of(recipient_argument, recipient, "recipient", "--to")
    memo = read_memo(memo)

    def body(status: dict[str, Any]) -> Body:
        address = read_address(recipient_text, status["address_prefix"])
        info, units = read_amount(session, amount_text, asset=asset_id)
        return Transfer(str(info["id"]), address, units, memo)

    submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


@cli.command()
@signing_options
@click.argument("amount_argument", metavar="[AMOUNT]", required=False)
@click.argument("recipient_argument", metavar="[ADDRESS]", required=False)
@click.option("--to", "recipient", help="The address to credit (or give it after AMOUNT).")
@click.option("--amount", help="Smallest units (1250) or whole units with the asset id (12.50NAC).")
@_ASSET_OPTION
@click.pass_obj
def mint(session: Session, key_file: str, amount_argument: str | None, recipient_argument: str | None,
         recipient: str | None, amount: str | None, asset_id: str | None, wait: bool, timeout: float,
         nonce: int | None) -> None:
    """Create AMOUNT new units of an asset in ADDRESS's account (the asset's issuer only)."""
    amount_text = _one_of(amount_argument, amount, "amount", "--amount")
    recipient_text = _one_of(recipient_argument, recipient, "recipient", "--to")

    def body(status: dict[str, Any]) -> Body:
        address = read_address(recipient_text, status["address_prefix"])
        info, units = read_amount(session, amount_text, asset=asset_id)
        return Mint(str(info["id"]), address, units)

    submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


@cli.command()
@signing_options
@click.argument("amount_argument", metavar="[AMOUNT]", required=False)
@click.option("--amount", help="Smallest units (1250) or whole units with the asset id (12.50NAC).")
@_ASSET_OPTION
@click.pass_obj
def burn(session: Session, key_file: str, amount_argument: str | None, amount: str | None, asset_id: str | None,
         wait: bool, timeout: float, nonce: int | None) -> None:
    """Destroy AMOUNT units of an asset from the issuer's own account (the asset's issuer only)."""
    amount_text = _one_of(amount_argument, amount, "amount", "--amount")

    def body(status: dict[str, Any]) -> Body:
        info, units = read_amount(session, amount_text, asset=asset_id)
        return Burn(str(info["id"]), units)

    submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


# --- the chain ---------------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
def status(session: Session) -> None:
    """The network and the node: chain, assets, height, view, peers, sync."""
    found = session.status()
    ids = [str(info["id"]) for info in found["assets"]][:_SHOWN_ASSETS]
    count = int(found.get("asset_count", len(found["assets"])))
    shown = ", ".join(ids) + (f" and {count - len(ids)} more" if count > len(ids) else "")
    rows: Rows = [
        ("chain id", found["chain_id"]),
        ("default asset", found.get("default_asset") or "-"),
        ("assets", shown or "-"),
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
    lines = []
    for transaction in found["transactions"]:
        body = transaction["body"]
        amount = body.get("amount", body.get("supply"))
        lines.append((transaction["index"], transaction["hash"], transaction["kind"], transaction["sender"],
                      show_units(amount, body_asset(body, session), body.get("asset", ""))))
    table = render_columns(("index", "hash", "kind", "from", "amount"), lines) if lines else ""
    session.show(found, rows, table)


@cli.command()
@click.option("--height", type=click.IntRange(0, MAX_HEIGHT), help="Until a block at this height or above is final.")
@click.option("--time", "until", metavar="TIME",
              help="Until a final block's time reaches TIME: RFC 3339 UTC, or a duration from now (30s, 5m).")
@click.option("--lapsed", "lapsed_asset", metavar="ASSET",
              help="Until ASSET has expired and every balance of it has returned to its issuer.")
@click.option("--timeout", type=Seconds(), default=120.0, show_default=True,
              help="Seconds to wait at most.")
@click.pass_obj
def wait(session: Session, height: int | None, until: str | None, lapsed_asset: str | None, timeout: float) -> None:
    """Wait until the chain reaches a height or a time (by its final blocks' timestamps, the
    clock expiries and other timed rules follow), then show the first final block that did;
    or until an asset has lapsed, then show the asset."""
    if sum(option is not None for option in (height, until, lapsed_asset)) != 1:
        raise CommandError("give one of --height, --time and --lapsed", EXIT_USAGE)
    deadline = time.monotonic() + timeout
    if lapsed_asset is not None:
        _wait_lapsed(session, read_asset_id(lapsed_asset), deadline, timeout)
        return
    target_ms = None if until is None else read_time(until, "--time")
    seen = -1
    while True:
        head = session.call("chain_status")["height"]
        if head != seen:
            found = _first_reaching(session, seen + 1, head, height, target_ms)
            if found is not None:
                rows: Rows = [
                    ("height", found["height"]),
                    ("hash", found["hash"]),
                    ("time", format_time(found["timestamp_ms"])),
                ]
                session.show(found, rows)
                return
            seen = head
        if time.monotonic() >= deadline:
            wanted = f"height {height}" if height is not None else f"time {format_time(cast(int, target_ms))}"
            raise CommandError(f"the chain did not reach {wanted} within {timeout:g} s; its final height is {head}")
        time.sleep(WAIT_POLL_SECONDS)


def _wait_lapsed(session: Session, asset_id: str, deadline: float, timeout: float) -> None:
    def lapsed() -> dict[str, Any] | None:
        found: dict[str, Any] = session.call("asset_get", asset_id)
        if not found["lapse_complete"] and not found["expiry_ms"]:
            raise CommandError(f"{asset_id} has no expiry time: it never lapses")
        return found if found["lapse_complete"] else None

    found = poll_until(lapsed, deadline=deadline, timed_out=lambda: f"{asset_id} has not lapsed within {timeout:g} s")
    rows: Rows = [("asset", found["id"]), ("expired", "yes"), ("lapsed", show_units(found["lapsed"],
                  session.asset(asset_id), asset_id))]
    session.show(found, rows)


def _first_reaching(
    session: Session, low: int, head: int, height: int | None, target_ms: int | None
) -> dict[str, Any] | None:
    """The first final block from ``low`` to ``head`` at ``height`` or above, or whose time
    reaches ``target_ms``; None if none yet. Only the head is read before it reaches either."""
    if height is not None:
        return None if head < height else session.call("chain_getBlock", max(height, low), False)
    latest = session.call("chain_getBlock", head, False)
    if latest["timestamp_ms"] < cast(int, target_ms):
        return None
    # Timestamps never go back: the first block that reached the time lies between low and head.
    first, last = max(low, 0), head
    while first < last:
        middle = (first + last) // 2
        if session.call("chain_getBlock", middle, False)["timestamp_ms"] >= cast(int, target_ms):
            last = middle
        else:
            first = middle + 1
    found: dict[str, Any] = latest if first == head else session.call("chain_getBlock", first, False)
    return found


@cli.command()
@click.argument("transaction_hash", metavar="HASH")
@click.pass_obj
def tx(session: Session, transaction_hash: str) -> None:
    """A final transaction by HASH (with or without 0x), with its block and index."""
    found = session.call("chain_getTransaction", read_hash(transaction_hash, "transaction"))
    session.show(found, transaction_rows(found, session))


# --- running nodes ------------------------------------------------------------------------------------


@cli.group()
def node() -> None:
    """Run a node: a validator, or an observer that follows the chain without a vote."""


@node.command(
    "run", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def node_run(context: click.Context, arguments: tuple[str, ...]) -> None:
    """Run a node until Ctrl-C: --config FILE, then any setting as a flag (--help lists them with defaults)."""
    from mura.node import main as run_node  # the node's dependencies load only for this command

    context.exit(run_node(list(arguments), prog="mura node run", require_config=True))


@cli.command(cls=click.Command)
@click.option("--dir", "directory", default="testnet", show_default=True, type=PathType(file_okay=False))
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--observers", default=0, show_default=True, type=click.IntRange(0, 8),
              help="Observer nodes to add and run: they follow the chain and never vote (the first serves JSON-RPC "
              "10 ports above the first validator's: 8710).")
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
    observers: int,
    rpc_port: int | None,
    p2p_port: int | None,
    run: bool,
    reset: bool,
) -> None:
    """Generate (once) a local testnet's keys, genesis and configs, then run its nodes."""
    from mura.genesis.testnet import main as run_testnet

    if reset:
        context.exit(run_testnet(["--out", directory, "--reset"]))
    arguments = ["--out", directory, "--validators", str(validators), "--observers", str(observers), "--if-missing"]
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
