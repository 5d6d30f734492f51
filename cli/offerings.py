"""A bond's public offering: ``mura offering open|subscribe|cancel|status``.

The issuer puts units on sale at a price for a window; subscribers pay into an escrow the
chain holds; at the first block at or after the window's end the chain allots the units
(pro rata when more are asked for than offered), refunds the rest and pays the proceeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mura.chain.transaction import Body, CancelSubscription, OpenOffering, Subscribe
from mura.cli.bonds import (
    CURSOR_OPTION,
    LIMIT_OPTION,
    UNITS,
    bond_rows,
    call_bond,
    find_bond,
    settlement_asset,
    units_text,
)
from mura.cli.inputs import read_address, read_amount, read_asset_id, read_future_time, read_time
from mura.cli.session import (
    EXIT_USAGE,
    CommandError,
    MuraCommand,
    MuraGroup,
    Rows,
    Session,
    format_time,
    render_columns,
)
from mura.cli.submit import signing_options, submit
from mura.rpc.wallet import AssetInfo, format_amount


@click.group(cls=MuraGroup)
def offering() -> None:
    """A bond's public offering: open it, subscribe or cancel, and see its subscriptions and allotment."""


offering.command_class = MuraCommand


@offering.command("open")
@signing_options
@click.argument("bond_id", metavar="BOND")
@click.option("--units", type=UNITS, required=True, help="Units of yours to put on sale.")
@click.option("--price", required=True, help="The price of one unit in the settlement asset: 10000JPYT, or "
              "smallest units.")
@click.option("--start", default="0s", show_default=True, help="When subscriptions open: RFC 3339 UTC or a "
              "duration from now.")
@click.option("--end", required=True, help="When they close and the units are allotted: RFC 3339 UTC or a "
              "duration from now (no later than the bond's next payment).")
@click.option("--min-units", type=UNITS, default=1, show_default=True,
              help="The fewest units one subscription may ask for.")
@click.option("--max-units", type=UNITS, help="The most units one subscription may ask for "
              "(default: every unit on sale).")
@click.option("--min-total", type=UNITS, help="Below this many units subscribed in all the offering "
              "is cancelled and everyone refunded (default: no minimum).")
@click.pass_obj
def open_offering(session: Session, key_file: str, bond_id: str, units: int, price: str, start: str, end: str,
                  min_units: int, max_units: int | None, min_total: int | None, wait: bool, timeout: float,
                  nonce: int | None) -> None:
    """Put units of your bond on sale (its issuer only); at the first block at or after --end the
    chain allots them, pro rata when more are asked for than offered."""
    start_ms = read_time(start, "--start")
    end_ms = read_future_time(end, "--end")
    if end_ms <= start_ms:
        raise CommandError("--end must come after --start", EXIT_USAGE)
    if min_units > units:
        raise CommandError(f"--min-units {min_units} is more than the {units} units on sale", EXIT_USAGE)
    if max_units is not None and not min_units <= max_units <= units:
        raise CommandError(f"--max-units must be from --min-units ({min_units}) to --units ({units})", EXIT_USAGE)
    if min_total is not None and min_total > units:
        raise CommandError(f"--min-total {min_total} is more than the {units} units on sale", EXIT_USAGE)
    found = find_bond(session, bond_id)
    _, price_units = read_amount(session, price, asset=found["settlement"])
    body = OpenOffering(found["id"], units, price_units, start_ms, end_ms, min_units, max_units or 0, min_total or 0)
    submit(session, key_file, lambda status: body, wait=wait, timeout=timeout, nonce=nonce,
           rows=bond_rows(settlement_asset(found)))


@offering.command("subscribe")
@signing_options
@click.argument("bond_id", metavar="BOND")
@click.argument("units_argument", metavar="[UNITS]", type=UNITS, required=False)
@click.option("--units", type=UNITS, help="Units to ask for (or give them after BOND).")
@click.pass_obj
def subscribe(session: Session, key_file: str, bond_id: str, units_argument: int | None, units: int | None,
              wait: bool, timeout: float, nonce: int | None) -> None:
    """Ask for UNITS of a bond in its open offering; their price goes into escrow until the
    allotment, which refunds whatever is not used for units allotted."""
    if (units_argument is None) == (units is None):
        raise CommandError("give the units once: after BOND or as --units", EXIT_USAGE)
    units = int(units_argument or units or 0)
    found = call_bond(session, "offering_get", read_asset_id(bond_id), None, None, 1)
    settlement = settlement_asset(found)
    body: Body = Subscribe(found["bond"], units)
    submit(session, key_file, lambda status: body, wait=wait, timeout=timeout, nonce=nonce,
           rows=_subscription_rows(settlement, units * found["offering"]["price"]))


def _subscription_rows(settlement: AssetInfo, paid: int) -> Callable[[dict[str, Any], Session], Rows]:
    base = bond_rows(settlement)

    def rows(transaction: dict[str, Any], session: Session) -> Rows:
        shown = base(transaction, session)
        at = next(index for index, row in enumerate(shown) if row[0] in ("nonce", "status"))
        return [*shown[:at], ("escrowed", format_amount(paid, settlement)), *shown[at:]]

    return rows


@offering.command("cancel")
@signing_options
@click.argument("bond_id", metavar="BOND")
@click.pass_obj
def cancel(session: Session, key_file: str, bond_id: str, wait: bool, timeout: float, nonce: int | None) -> None:
    """Withdraw your subscription before the offering closes, and take its payment back."""
    bond_id = read_asset_id(bond_id)
    submit(session, key_file, lambda status: CancelSubscription(bond_id), wait=wait, timeout=timeout, nonce=nonce,
           rows=bond_rows(None))


@offering.command("status")
@click.argument("bond_id", metavar="BOND")
@click.option("--subscriber", help="An address: its subscription alone.")
@LIMIT_OPTION
@CURSOR_OPTION
@click.pass_obj
def offering_status(session: Session, bond_id: str, subscriber: str | None, limit: int, cursor: str | None) -> None:
    """A bond's offering: its terms, where it stands, its subscriptions and, once allotted,
    what each was allotted and refunded."""
    if subscriber is not None:
        read_address(subscriber, session.prefix)
    found = call_bond(session, "offering_get", read_asset_id(bond_id), subscriber, cursor, limit)
    settlement = settlement_asset(found)
    offer = found["offering"]
    per_subscriber = f"{offer['min_units']} to {offer['max_units']} units"
    rows: Rows = [
        ("bond", found["bond"]),
        ("status", offer["phase"]),
        ("on sale", f"{units_text(offer['units'])} at {format_amount(offer['price'], settlement)}"),
        ("window", f"{format_time(offer['start_ms'])} to {format_time(offer['end_ms'])}"),
        ("per subscriber", per_subscriber),
        ("minimum total", units_text(offer["min_total"]) if offer["min_total"] else "none"),
        ("subscribed", f"{units_text(offer['subscribed'])} by {offer['subscribers']} subscribers"),
    ]
    if offer["status"] == "open":
        rows.append(("escrowed", format_amount(offer["escrowed"], settlement)))
    else:
        rows += [
            ("allotted", f"{units_text(offer['allotted'])} ({offer['unsold']} unsold)"),
            ("refunded", format_amount(offer["refunded"], settlement)),
            ("proceeds", format_amount(offer["proceeds"], settlement)),
            ("settled in", f"block {offer['settled_height']}"),
        ]
    lines = [
        (item["sequence"], item["subscriber"], item["units"], format_amount(item["paid"], settlement),
         "-" if item["allotted"] is None else item["allotted"],
         "-" if item["refunded"] is None else format_amount(item["refunded"], settlement))
        for item in found["subscriptions"]
    ]
    columns = ("#", "subscriber", "asked", "paid", "allotted", "refunded")
    table = render_columns(columns, lines) if lines else "no subscriptions"
    more = ("offering", "status", found["bond"], "--limit", str(limit), "--cursor", found["next_cursor"]) if (
        found["next_cursor"]) else ()
    session.show(found, rows, table, more=more)
