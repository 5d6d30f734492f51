"""The commands of assets and their registrars: issuing assets and reading them
(``mura asset issue|list|info|holders``), approving and revoking the holders of a restricted
asset (``mura holder approve|revoke``), and freezing accounts in an asset (``mura freeze``,
``mura unfreeze``).
"""

from __future__ import annotations

from typing import Any

import click

from mura.chain.assets import MAX_DECIMALS
from mura.chain.transaction import ApproveHolder, Body, Freeze, IssueAsset, RevokeHolder, Unfreeze
from mura.cli.inputs import (
    Height,
    read_address,
    read_asset_id,
    read_asset_name,
    read_future_time,
    read_new_amount,
)
from mura.cli.session import EXIT_USAGE, CommandError, MuraCommand, MuraGroup, Rows, Session, render_columns
from mura.cli.submit import show_units, signing_options, submit
from mura.rpc.params import DEFAULT_PAGE, MAX_PAGE

_LIMIT = click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=DEFAULT_PAGE, show_default=True,
                      help=f"Most rows to show (at most {MAX_PAGE}).")
_CURSOR = click.option("--cursor", help="Where to go on from: the cursor the previous page ended with.")


@click.group(cls=MuraGroup)
def asset() -> None:
    """Issue assets, and list them, show one, or show who holds one."""


asset.command_class = MuraCommand


@asset.command("issue")
@signing_options
@click.argument("asset_id", metavar="ID")
@click.option("--name", required=True, help="Its display name: 1 to 64 characters.")
@click.option("--decimals", required=True, type=click.IntRange(0, MAX_DECIMALS),
              help=f"Digits after the decimal point (0 to {MAX_DECIMALS}): 2 means 100 smallest units make one.")
@click.option("--supply", required=True,
              help="Credited to you at issue: smallest units (100000) or whole units with the id (1000.00ID); "
              "0 to mint later.")
@click.option("--fixed", is_flag=True, help="Fix the supply at issue: nothing can be minted later.")
@click.option("--cap", help="The most the supply may reach by minting (not with --fixed).")
@click.option("--registrar", help="Address of the account that approves holders and freezes accounts "
              "(default: you).")
@click.option("--restricted", is_flag=True, help="Only you and the holders the registrar approves may hold it.")
@click.option("--expires", help="When every balance lapses back to you: an RFC 3339 UTC time "
              "(2031-01-01T00:00:00Z) or a duration from now (90d, 2h, 30s).")
@click.pass_obj
def issue(session: Session, key_file: str, asset_id: str, name: str, decimals: int, supply: str, fixed: bool,
          cap: str | None, registrar: str | None, restricted: bool, expires: str | None, wait: bool,
          timeout: float, nonce: int | None) -> None:
    """Issue a new asset ID with you as its issuer (accounts with the issuer role only)."""
    asset_id, name = read_asset_id(asset_id), read_asset_name(name)
    new = {"id": asset_id, "name": name, "decimals": decimals}
    supply_units = read_new_amount(supply, new, "--supply with --fixed" if fixed else "--supply",
                                   minimum=1 if fixed else 0)
    cap_units = 0
    if cap is not None:
        if fixed:
            raise CommandError("--cap: a fixed supply is its own cap; give --cap only without --fixed", EXIT_USAGE)
        cap_units = read_new_amount(cap, new, "--cap", minimum=1)
        if cap_units < supply_units:
            raise CommandError(f"--cap {cap} is below --supply {supply}", EXIT_USAGE)
    expiry_ms = 0 if expires is None else read_future_time(expires, "--expires")

    def body(status: dict[str, Any]) -> Body:
        registrar_key = b"" if registrar is None else read_address(registrar, status["address_prefix"])
        policy = "restricted" if restricted else "open"
        return IssueAsset(
            asset_id, name, decimals, supply_units, not fixed, cap_units, registrar_key, policy, expiry_ms
        )

    submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


def _standing(summary: dict[str, Any]) -> str:
    supply = "reissuable" if summary["reissuable"] else "fixed"
    return f"{supply}, expired" if summary["expired"] else supply


@asset.command("list")
@_LIMIT
@_CURSOR
@click.pass_obj
def list_assets(session: Session, limit: int, cursor: str | None) -> None:
    """Every asset issued, by id, with its supply and holders."""
    found = session.call("asset_list", cursor, limit)
    lines = [
        (item["id"], item["name"], item["decimals"], show_units(item["supply"], item), item["holders"],
         item["policy"], _standing(item))
        for item in found["assets"]
    ]
    columns = ("id", "name", "decimals", "supply", "holders", "policy", "supply rule")
    table = render_columns(columns, lines) if lines else "no assets"
    more = ("asset", "list", "--limit", str(limit), "--cursor", found["next_cursor"]) if found["next_cursor"] else ()
    session.show(found, [], table, more=more)


@asset.command("info")
@click.argument("asset_id", metavar="ID")
@click.pass_obj
def info(session: Session, asset_id: str) -> None:
    """An asset's terms and state: issuer, registrar, supply, cap, policy, expiry."""
    found = session.call("asset_get", read_asset_id(asset_id))
    expiry = found["expiry_time"] or (f"{found['expiry_ms']} ms after 1970" if found["expiry_ms"] else "never")
    rows: Rows = [
        ("asset", found["id"]),
        ("name", found["name"]),
        ("decimals", found["decimals"]),
        ("issuer", found["issuer"]),
        ("registrar", found["registrar"]),
        ("policy", found["policy"]),
        ("supply", show_units(found["supply"], found)),
        ("supply rule", "reissuable" if found["reissuable"] else "fixed"),
        ("cap", show_units(found["cap"], found) if found["cap"] is not None else "none"),
        ("holders", found["holders"]),
        ("expires", expiry),
        ("expired", "yes" if found["expired"] else "no"),
    ]
    if found["expired"]:
        rows.append(("lapsed", show_units(found["lapsed"], found)))
        rows.append(("lapse complete", "yes" if found["lapse_complete"] else "no"))
    session.show(found, rows)


@asset.command("holders")
@click.argument("asset_id", metavar="ID")
@click.option("--height", type=Height(), help="Holders after the block at this height (default: the head).")
@_LIMIT
@_CURSOR
@click.pass_obj
def holders(session: Session, asset_id: str, height: int | None, limit: int, cursor: str | None) -> None:
    """The accounts holding asset ID and their balances, in account order."""
    asset_id = read_asset_id(asset_id)
    found = session.call("asset_getHolders", asset_id, height, cursor, limit)
    known = session.find_asset(asset_id)
    lines = [(item["address"], show_units(item["balance"], known, asset_id)) for item in found["holders"]]
    table = render_columns(("address", "balance"), lines) if lines else "no holders"
    # The next page reads at the same height, whatever the chain has done since.
    more = ("asset", "holders", asset_id, "--height", str(found["height"]), "--limit", str(limit), "--cursor",
            found["next_cursor"]) if found["next_cursor"] else ()
    session.show(found, [("asset", asset_id), ("height", found["height"])], table, more=more)


# --- the registrar -------------------------------------------------------------------------------------


def _act_on_account(session: Session, kind: type[Any], asset_id: str, account: str, key_file: str, *, wait: bool,
                    timeout: float, nonce: int | None) -> None:
    """Sign and submit a registrar's action on ``account`` in an asset the network knows."""
    asset_id = read_asset_id(asset_id)

    def body(status: dict[str, Any]) -> Body:
        session.asset(asset_id)
        action: Body = kind(asset_id, read_address(account, status["address_prefix"]))
        return action

    submit(session, key_file, body, wait=wait, timeout=timeout, nonce=nonce)


@click.group(cls=MuraGroup)
def holder() -> None:
    """Approve or revoke the holders of a restricted asset (its registrar only)."""


holder.command_class = MuraCommand


@holder.command("approve")
@signing_options
@click.argument("asset_id", metavar="ASSET")
@click.argument("account", metavar="ADDRESS")
@click.pass_obj
def approve(session: Session, key_file: str, asset_id: str, account: str, wait: bool, timeout: float,
            nonce: int | None) -> None:
    """Approve ADDRESS to hold, receive and send the restricted ASSET."""
    _act_on_account(session, ApproveHolder, asset_id, account, key_file, wait=wait, timeout=timeout, nonce=nonce)


@holder.command("revoke")
@signing_options
@click.argument("asset_id", metavar="ASSET")
@click.argument("account", metavar="ADDRESS")
@click.pass_obj
def revoke(session: Session, key_file: str, asset_id: str, account: str, wait: bool, timeout: float,
           nonce: int | None) -> None:
    """Withdraw ADDRESS's approval: it keeps its balance of ASSET but can neither send nor receive it."""
    _act_on_account(session, RevokeHolder, asset_id, account, key_file, wait=wait, timeout=timeout, nonce=nonce)


@click.command(cls=MuraCommand)
@signing_options
@click.argument("asset_id", metavar="ASSET")
@click.argument("account", metavar="ADDRESS")
@click.pass_obj
def freeze(session: Session, key_file: str, asset_id: str, account: str, wait: bool, timeout: float,
           nonce: int | None) -> None:
    """Freeze ADDRESS in ASSET: it can neither send nor receive it (the asset's registrar only)."""
    _act_on_account(session, Freeze, asset_id, account, key_file, wait=wait, timeout=timeout, nonce=nonce)


@click.command(cls=MuraCommand)
@signing_options
@click.argument("asset_id", metavar="ASSET")
@click.argument("account", metavar="ADDRESS")
@click.pass_obj
def unfreeze(session: Session, key_file: str, asset_id: str, account: str, wait: bool, timeout: float,
             nonce: int | None) -> None:
    """Lift a freeze of ADDRESS in ASSET (the asset's registrar only)."""
    _act_on_account(session, Unfreeze, asset_id, account, key_file, wait=wait, timeout=timeout, nonce=nonce)
