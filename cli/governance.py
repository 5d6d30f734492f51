"""The commands of governance: the validator set by height and the proposals to change it
(``mura validator list|proposals|propose add|remove|replace|approve``), and proposals to grant
or revoke the issuer role (``mura issuer grant|revoke``). Proposals and approvals are signed
with a validator's key file; a change approved in block h decides heights from h + 2.
"""

from __future__ import annotations

from typing import Any

import click

from mura.chain.governance import (
    AddValidator,
    Change,
    GrantIssuer,
    ProposalStatus,
    RemoveValidator,
    ReplaceKey,
    RevokeIssuer,
    peer_address_problem,
    validator_name_problem,
)
from mura.chain.transaction import Approve, Body, Propose
from mura.cli.inputs import Height, read_address, read_public_key
from mura.cli.session import EXIT_USAGE, CommandError, MuraCommand, MuraGroup, Rows, Session, render_columns
from mura.cli.submit import signing_options, submit, transaction_rows
from mura.rpc.params import DEFAULT_PAGE, MAX_PAGE

_LIMIT = click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=DEFAULT_PAGE,
    show_default=True,
    help=f"Most rows to show (at most {MAX_PAGE}).",
)
_CURSOR = click.option("--cursor", help="Where to go on from: the cursor the previous page ended with.")


def _validator_key(text: str, prefix: str, what: str) -> bytes:
    """A validator's key as 64 hex digits (as ``mura validator list`` shows it) or as its address."""
    if len(text.removeprefix("0x").removeprefix("0X")) == 64 and not text.startswith(prefix):
        return read_public_key(text)
    try:
        return read_address(text, prefix)
    except CommandError as error:
        message = f"{what}: {error.message}; give a public key (64 hex digits) or an address"
        raise CommandError(message, EXIT_USAGE) from None


def _checked(problem: str | None, option: str) -> None:
    if problem is not None:
        raise CommandError(f"{option}: {problem}", EXIT_USAGE)


def _change_rows(transaction: dict[str, Any], session: Session) -> Rows:
    """A governance transaction's rows: the change's fields after the kind."""
    rows = transaction_rows(transaction, session)
    change = transaction.get("body", {}).get("change")
    if isinstance(change, dict):
        position = 3
        for name, value in change.items():
            rows.insert(position, ("change" if name == "kind" else name.replace("_", " "), value))
            position += 1
    return rows


def _propose(
    session: Session, key_file: str, make_change: Any, *, wait: bool, timeout: float, nonce: int | None
) -> None:
    def body(status: dict[str, Any]) -> Body:
        change: Change = make_change(status["address_prefix"])
        return Propose(change)

    submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce, rows=_change_rows)


# --- mura validator ------------------------------------------------------------------------------------


@click.group(cls=MuraGroup)
def validator() -> None:
    """Show the validator set, and propose and approve changes to it (validators only)."""


validator.command_class = MuraCommand


@validator.command("list")
@click.option("--height", type=Height(), help="The set that decides this height (default: the next height).")
@click.pass_obj
def list_validators(session: Session, height: int | None) -> None:
    """The validators in PBFT order: index, name, address, public key and peer address."""
    found = session.call("chain_validators", height)
    lines = [
        (item["index"], item["name"], item["address"], item["public_key"], item["peer_address"] or "-")
        for item in found["validators"]
    ]
    table = render_columns(("index", "name", "address", "public key", "peer address"), lines)
    rows: Rows = [
        ("height", found["height"]),
        ("quorum", found["quorum"]),
        ("fault tolerance", found["fault_tolerance"]),
    ]
    session.show(found, rows, table)


@validator.command("proposals")
@click.option(
    "--status", type=click.Choice([status.value for status in ProposalStatus]), help="Only proposals with this status."
)
@_LIMIT
@_CURSOR
@click.pass_obj
def proposals(session: Session, status: str | None, limit: int, cursor: str | None) -> None:
    """Proposals to change the validator set or the issuer role, by id, with their approvals."""
    found = session.call("governance_getProposals", status, cursor, limit)
    lines = [
        (
            item["id"],
            item["status"],
            _describe(item["change"]),
            f"{len(item['approvals'])}/{item['quorum']}",
            item["proposer_name"] or item["proposer"],
            item["expires_height"],
            item["activation_height"] or "-",
        )
        for item in found["proposals"]
    ]
    columns = ("id", "status", "change", "approvals", "proposer", "expires at", "in force from")
    table = render_columns(columns, lines) if lines else "no proposals"
    more: tuple[str, ...] = ()
    if found["next_cursor"]:
        more = (
            "validator",
            "proposals",
            *(("--status", status) if status else ()),
            "--limit",
            str(limit),
            "--cursor",
            found["next_cursor"],
        )
    session.show(found, [], table, more=more)


def _describe(change: dict[str, Any]) -> str:
    kind = change["kind"]
    if kind == "add_validator":
        return f"add {change['name']} {change['public_key'][:18]}... at {change['address']}"
    if kind == "remove_validator":
        return f"remove {change['public_key'][:18]}..."
    if kind == "replace_key":
        return f"replace {change['old_key'][:18]}... by {change['new_key'][:18]}..."
    return f"{kind.replace('_', ' ')} {change['account']}"


@validator.group("propose", cls=MuraGroup)
def propose() -> None:
    """Propose a change of the validator set, signed with your validator key (your approval counts)."""


propose.command_class = MuraCommand


@propose.command("add")
@signing_options
@click.argument("public_key", metavar="PUBLIC_KEY")
@click.option("--name", required=True, help="The new validator's name: 1 to 64 lowercase letters, digits or '-'.")
@click.option("--peer-address", required=True, help="host:port where its peers reach it.")
@click.pass_obj
def propose_add(
    session: Session,
    key_file: str,
    public_key: str,
    name: str,
    peer_address: str,
    wait: bool,
    timeout: float,
    nonce: int | None,
) -> None:
    """Add the validator with PUBLIC_KEY (64 hex digits, or its address) at the end of the set."""
    _checked(validator_name_problem(name), "--name")
    _checked(peer_address_problem(peer_address), "--peer-address")
    _propose(
        session,
        key_file,
        lambda prefix: AddValidator(_validator_key(public_key, prefix, "PUBLIC_KEY"), name, peer_address),
        wait=wait,
        timeout=timeout,
        nonce=nonce,
    )


@propose.command("remove")
@signing_options
@click.argument("public_key", metavar="PUBLIC_KEY")
@click.pass_obj
def propose_remove(
    session: Session, key_file: str, public_key: str, wait: bool, timeout: float, nonce: int | None
) -> None:
    """Remove the validator with PUBLIC_KEY (64 hex digits, or its address); those after it move up."""
    _propose(
        session,
        key_file,
        lambda prefix: RemoveValidator(_validator_key(public_key, prefix, "PUBLIC_KEY")),
        wait=wait,
        timeout=timeout,
        nonce=nonce,
    )


@propose.command("replace")
@signing_options
@click.argument("old_key", metavar="OLD_KEY")
@click.argument("new_key", metavar="NEW_KEY")
@click.option("--peer-address", default="", help="A new host:port for it (default: unchanged).")
@click.pass_obj
def propose_replace(
    session: Session,
    key_file: str,
    old_key: str,
    new_key: str,
    peer_address: str,
    wait: bool,
    timeout: float,
    nonce: int | None,
) -> None:
    """Rotate a validator's key from OLD_KEY to NEW_KEY: same place and name in the set."""
    if peer_address:
        _checked(peer_address_problem(peer_address), "--peer-address")

    def change(prefix: str) -> Change:
        old, new = _validator_key(old_key, prefix, "OLD_KEY"), _validator_key(new_key, prefix, "NEW_KEY")
        if old == new:
            raise CommandError("OLD_KEY and NEW_KEY are the same key", EXIT_USAGE)
        return ReplaceKey(old, new, peer_address)

    _propose(session, key_file, change, wait=wait, timeout=timeout, nonce=nonce)


@validator.command("approve")
@signing_options
@click.argument("proposal", metavar="ID", type=click.IntRange(1))
@click.pass_obj
def approve(session: Session, key_file: str, proposal: int, wait: bool, timeout: float, nonce: int | None) -> None:
    """Approve proposal ID (see mura validator proposals) with your validator key."""
    submit(session, key_file, lambda status: Approve(proposal), wait=wait, timeout=timeout, nonce=nonce)


# --- mura issuer ----------------------------------------------------------------------------------------


@click.group(cls=MuraGroup)
def issuer() -> None:
    """Propose to grant or revoke the issuer role (signed with a validator's key; a quorum approves)."""


issuer.command_class = MuraCommand


@issuer.command("grant")
@signing_options
@click.argument("account", metavar="ADDRESS")
@click.pass_obj
def grant(session: Session, key_file: str, account: str, wait: bool, timeout: float, nonce: int | None) -> None:
    """Propose that ADDRESS may issue assets."""
    _propose(
        session,
        key_file,
        lambda prefix: GrantIssuer(read_address(account, prefix)),
        wait=wait,
        timeout=timeout,
        nonce=nonce,
    )


@issuer.command("revoke")
@signing_options
@click.argument("account", metavar="ADDRESS")
@click.pass_obj
def revoke(session: Session, key_file: str, account: str, wait: bool, timeout: float, nonce: int | None) -> None:
    """Propose that ADDRESS may issue assets no more (its assets stay its own; never the last issuer)."""
    _propose(
        session,
        key_file,
        lambda prefix: RevokeIssuer(read_address(account, prefix)),
        wait=wait,
        timeout=timeout,
        nonce=nonce,
    )
