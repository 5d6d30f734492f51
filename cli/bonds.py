"""The commands of municipal bonds: reading them (``mura bond list|info|payments|proceeds|wait``)
and spending their proceeds (``mura bond spend``). Issuing one (``mura bond template|issue|
consent``) is in ``bond_issue``, its public offering in ``offerings``, trades between holders in
``trades``, the terms file in ``bond_terms``.

Amounts of a bond's settlement asset are read as everywhere else (``10000JPYT``, or smallest
units) and shown in both units; bond units are whole numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from mura.chain.bonds import MAX_PURPOSE_LENGTH, label_problem
from mura.chain.codec import MAX_INT
from mura.chain.transaction import SpendProceeds
from mura.cli.inputs import Seconds, read_address, read_amount, read_asset_id
from mura.cli.session import (
    EXIT_USAGE,
    CommandError,
    MuraCommand,
    MuraGroup,
    Rows,
    Session,
    format_time,
    node_errors,
    poll_until,
    render_columns,
)
from mura.cli.submit import signing_options, submit, transaction_rows
from mura.rpc.client import RemoteError
from mura.rpc.errors import NO_OFFERING, NOT_A_BOND
from mura.rpc.params import DEFAULT_PAGE, MAX_PAGE
from mura.rpc.wallet import AssetInfo, format_amount

#: Whole units of a bond, as an option or argument takes them: 1 to the largest amount.
UNITS = click.IntRange(1, MAX_INT)
#: Seconds between two looks at the chain while ``mura bond wait`` waits.

LIMIT_OPTION = click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=DEFAULT_PAGE, show_default=True,
                      help=f"Most rows to show (at most {MAX_PAGE}).")
CURSOR_OPTION = click.option("--cursor", help="Where to go on from: the cursor the previous page ended with.")

# --- reading bonds from the node ----------------------------------------------------------------------


def call_bond(session: Session, method: str, *params: Any) -> Any:
    """A bond method's result; an asset that is no bond, or a bond without an offering, is
    told in a line that says what to do."""
    client = session.client
    with node_errors(method):
        try:
            return client.call(method, params)
        except RemoteError as error:
            data = error.data if isinstance(error.data, dict) else {}
            if error.code == NOT_A_BOND.code:
                raise CommandError(f"{data.get('asset', params[0])} is an asset, not a bond "
                                   "(mura bond list shows the bonds)") from None
            if error.code == NO_OFFERING.code:
                raise CommandError(f"{data.get('bond', params[0])} has no offering: its issuer opens one with "
                                   "mura offering open") from None
            raise


def find_bond(session: Session, bond: str) -> dict[str, Any]:
    """``bond_get`` of a bond id typed on the command line."""
    found: dict[str, Any] = call_bond(session, "bond_get", read_asset_id(bond))
    return found


def settlement_asset(found: dict[str, Any]) -> AssetInfo:
    """The settlement asset of a ``bond_get`` (or ``offering_get``) answer."""
    return {"id": found["settlement"], "name": found["settlement"], "decimals": found["settlement_decimals"]}


def units_text(units: int) -> str:
    return f"{units} unit{'' if units == 1 else 's'}"


def bond_rows(settlement: AssetInfo | None) -> Callable[[dict[str, Any], Session], Rows]:
    """The rows of a submitted bond transaction: the generic ones, then its bond fields, amounts
    in the settlement asset."""

    def rows(transaction: dict[str, Any], session: Session) -> Rows:
        generic = transaction_rows(transaction, session)
        body = transaction.get("body", {})
        shown: Rows = []
        for field, label in (("bond", "bond"), ("seller", "seller"), ("buyer", "buyer"), ("recipient", "to")):
            if body.get(field):
                shown.append((label, body[field]))
        if "units" in body:
            shown.append(("units", body["units"]))
        for field in ("price", "amount"):
            if field in body:
                shown.append((field, format_amount(body[field], settlement) if settlement else body[field]))
        for field, label in (("start_ms", "opens"), ("end_ms", "closes"), ("deadline_ms", "deadline")):
            if field in body:
                shown.append((label, format_time(body[field])))
        if body.get("purpose"):
            shown.append(("purpose", body["purpose"]))
        kept = [row for row in generic if row[0] in ("transaction", "kind", "from")]
        return kept + shown + [row for row in generic if row[0] in ("nonce", "status")]

    return rows


# --- mura bond -------------------------------------------------------------------------------------------


@click.group(cls=MuraGroup)
def bond() -> None:
    """Issue bonds from a terms file, show their terms and payments, wait for them, spend their proceeds."""


bond.command_class = MuraCommand


@bond.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=100, show_default=True, help="Most bonds to show.")
@CURSOR_OPTION
@click.pass_obj
def list_bonds(session: Session, limit: int, cursor: str | None) -> None:
    """Every bond issued, with its settlement asset, face, rate and maturity."""
    found = call_bond(session, "bond_list", cursor, limit)
    lines = [
        (item["id"], item["name"], format_amount(item["face"], settlement_asset(item)), item["rate_percent"],
         format_time(item["maturity_ms"]), item["supply"], "redeemed" if item["redeemed"] else "outstanding")
        for item in found["bonds"]
    ]
    columns = ("bond", "name", "face", "rate", "maturity", "units", "state")
    table = render_columns(columns, lines) if lines else "no bonds"
    more = ("bond", "list", "--limit", str(limit), "--cursor", found["next_cursor"]) if found["next_cursor"] else ()
    session.show(found, [], table, more=more)


def payment_cell(payment: dict[str, Any], settlement: AssetInfo) -> str:
    """What a payment of the schedule paid, or what it needs; ``-`` for neither."""
    record = payment.get("record")
    if record is not None:
        holders = f"{record['holders']} holder{'' if record['holders'] == 1 else 's'}"
        return (f"{format_amount(record['amount'], settlement)} to {holders} in block {record['height']}, "
                f"{format_amount(record['retained'], settlement)} retained")
    return "-"


@bond.command("info")
@click.argument("bond_id", metavar="BOND")
@click.pass_obj
def info(session: Session, bond_id: str) -> None:
    """A bond's terms, and its schedule with each payment's status (scheduled, due, paying,
    paid, paid_late, missed)."""
    found = find_bond(session, bond_id)
    settlement = settlement_asset(found)
    first = "regular" if found["first_period_days"] == 0 else f"{found['first_period_days']} days (odd)"
    coupons = len(found["payments"]) - 1
    rows: Rows = [
        ("bond", found["id"]),
        ("name", found["name"]),
        ("issuer", found["issuer"]),
        ("registrar", found["registrar"]),
        ("policy", found["policy"]),
        ("settlement", found["settlement"]),
        ("face", f"{format_amount(found['face'], settlement)} a unit"),
        ("rate", f"{found['rate_percent']} a year, {found['frequency']} coupon{'s' if found['frequency'] > 1 else ''}"
                 " a year"),
        ("first period", first if coupons else "-"),
        ("issued", format_time(found["issue_ms"])),
        ("maturity", format_time(found["maturity_ms"])),
        ("units", f"{found['supply']} in {found['holders']} accounts"),
        ("paying", f"{found['paying']} holds {format_amount(found['paying_balance'], settlement)}"),
        ("proceeds", found["proceeds"]),
        ("raised", f"{format_amount(found['raised'], settlement)}, spent {format_amount(found['spent'], settlement)}"),
        ("use of proceeds", (found["use_of_proceeds"] or "-") + (" (green bond)" if found["green"] else "")),
        ("offering", _offering_summary(found["offering"], settlement)),
        ("state", _bond_state(found)),
    ]
    lines = [
        (payment["index"], payment["kind"], format_time(payment["time_ms"]),
         format_amount(payment["amount_per_unit"], settlement), payment["status"], payment_cell(payment, settlement))
        for payment in found["payments"]
    ]
    table = render_columns(("payment", "kind", "time", "per unit", "status", "paid"), lines)
    session.show(found, rows, table)


def _offering_summary(offering: dict[str, Any] | None, settlement: AssetInfo) -> str:
    if offering is None:
        return "none"
    price = format_amount(offering["price"], settlement)
    if offering["status"] == "settled":
        return f"settled: {offering['allotted']} of {offering['units']} units sold at {price}"
    if offering["status"] == "cancelled":
        return f"cancelled: {offering['subscribed']} units asked, fewer than the {offering['min_total']} needed"
    return f"{offering['phase']}: {offering['units']} units at {price}, {offering['subscribed']} asked"


def _bond_state(found: dict[str, Any]) -> str:
    if found["redeemed"]:
        return "redeemed"
    progress = found.get("in_progress")
    if progress is not None:
        return f"paying payment {progress['index']}: {progress['holders_paid']} holders paid so far, units locked"
    if found["missed_time"]:
        return f"outstanding; in default since {format_time(found['missed_ms'])} (a payment missed)"
    return "outstanding"


@bond.command("payments")
@click.argument("bond_id", metavar="BOND")
@click.option("--holder", help="An address: its shares of each payment.")
@click.option("--index", "payment", type=click.IntRange(0, 1000), help="A payment (0 the first coupon): "
              "each holder's share of it.")
@LIMIT_OPTION
@CURSOR_OPTION
@click.pass_obj
def payments(session: Session, bond_id: str, holder: str | None, payment: int | None, limit: int,
             cursor: str | None) -> None:
    """The payments the chain made of a bond; with --index, each holder's share of one; with
    --holder, one holder's shares."""
    found = find_bond(session, bond_id)
    settlement = settlement_asset(found)
    if holder is not None:
        read_address(holder, session.prefix)
    page = call_bond(session, "bond_getPayments", found["id"], holder, payment, cursor, limit)
    lines: list[tuple[Any, ...]]
    if holder is not None or payment is not None:
        lines = [(share["index"], share["kind"], share["holder"], share["units"],
                  format_amount(share["amount"], settlement), share["height"]) for share in page["shares"]]
        table = render_columns(("payment", "kind", "holder", "units", "amount", "block"), lines) if lines else (
            "no shares")
    else:
        lines = [(item["index"], item["kind"], format_time(item["time_ms"]), item["status"],
                  payment_cell(item, settlement)) for item in page["payments"]]
        table = render_columns(("payment", "kind", "time", "status", "paid"), lines) if lines else (
            "no payment made yet")
    more: tuple[str, ...] = ()
    if page["next_cursor"]:
        options = (("--holder", holder) if holder else ()) + (("--index", str(payment)) if payment is not None
                                                                 else ())
        more = ("bond", "payments", found["id"], *options, "--limit", str(limit), "--cursor", page["next_cursor"])
    session.show(page, [], table, more=more)


@bond.command("spend")
@signing_options
@click.argument("bond_id", metavar="BOND")
@click.option("--to", "recipient", required=True, help="The address to pay.")
@click.option("--amount", required=True, help="In the settlement asset: 30000JPYT, or smallest units.")
@click.option("--purpose", required=True, help=f"What it pays for: 1 to {MAX_PURPOSE_LENGTH} printable characters "
              "(summed by purpose for everyone to see).")
@click.pass_obj
def spend(session: Session, key_file: str, bond_id: str, recipient: str, amount: str, purpose: str, wait: bool,
          timeout: float, nonce: int | None) -> None:
    """Pay out of what the bond's offering raised, for a stated purpose (its proceeds account only)."""
    problem = label_problem(purpose, "--purpose", MAX_PURPOSE_LENGTH, required=True)
    if problem is not None:
        raise CommandError(problem, EXIT_USAGE)
    found = find_bond(session, bond_id)
    settlement = settlement_asset(found)
    _, units = read_amount(session, amount, asset=found["settlement"])
    address = read_address(recipient, session.prefix)
    submit(session, key_file, lambda status: SpendProceeds(found["id"], address, units, purpose), wait=wait,
           timeout=timeout, nonce=nonce, rows=bond_rows(settlement))


@bond.command("proceeds")
@click.argument("bond_id", metavar="BOND")
@click.pass_obj
def proceeds(session: Session, bond_id: str) -> None:
    """What the bond's offering raised, what has been spent, and the sum spent for each purpose."""
    found = call_bond(session, "bond_getUseOfProceeds", read_asset_id(bond_id), None, MAX_PAGE)
    settlement = settlement_asset(found)
    rows: Rows = [
        ("bond", found["bond"]),
        ("use of proceeds", found["use_of_proceeds"] or "-"),
        ("proceeds account", found["proceeds"]),
        ("raised", format_amount(found["raised"], settlement)),
        ("spent", format_amount(found["spent"], settlement)),
        ("left", format_amount(found["left"], settlement)),
    ]
    lines = [(item["purpose"], format_amount(item["spent"], settlement)) for item in found["purposes"]]
    table = render_columns(("purpose", "spent"), lines) if lines else "nothing spent yet"
    session.show(found, rows, table)


# --- waiting for what the chain does by itself -----------------------------------------------------------


@bond.command("wait")
@click.argument("bond_id", metavar="BOND")
@click.option("--allotted", is_flag=True, help="Until its offering has been allotted (or cancelled).")
@click.option("--paid", "payment", type=click.IntRange(0, 1000), help="Until payment N has been made in full "
              "(0 the first coupon).")
@click.option("--redeemed", is_flag=True, help="Until the redemption has been made.")
@click.option("--timeout", type=Seconds(), default=300.0, show_default=True, help="Seconds to wait at most.")
@click.pass_obj
def wait(session: Session, bond_id: str, allotted: bool, payment: int | None, redeemed: bool,
         timeout: float) -> None:
    """Wait until the chain has allotted a bond's offering, made one of its payments, or
    redeemed it; then show what it did."""
    if allotted + (payment is not None) + redeemed != 1:
        raise CommandError("give one of --allotted, --paid N and --redeemed", EXIT_USAGE)
    deadline = time.monotonic() + timeout
    found = find_bond(session, bond_id)
    if allotted:
        _wait_allotted(session, found["id"], deadline, timeout)
        return
    index = len(found["payments"]) - 1 if redeemed else int(payment or 0)
    if index >= len(found["payments"]):
        raise CommandError(f"{found['id']} has payments 0 to {len(found['payments']) - 1}", EXIT_USAGE)
    latest = found

    def payment_made() -> dict[str, Any] | None:
        nonlocal latest
        latest = find_bond(session, latest["id"])
        return latest if latest["payments"][index]["record"] is not None else None

    found = poll_until(
        payment_made,
        deadline=deadline,
        timed_out=lambda: f"payment {index} of {latest['id']} not made within {timeout:g} s: it is "
        f"{latest['payments'][index]['status']}",
    )
    made = found["payments"][index]
    settlement = settlement_asset(found)
    record = made["record"]
    rows: Rows = [
        ("bond", found["id"]),
        ("payment", f"{index} ({made['kind']})"),
        ("status", made["status"]),
        ("paid", f"{format_amount(record['amount'], settlement)} to {record['holders']} holders on "
                 f"{units_text(record['units'])}"),
        ("retained", format_amount(record["retained"], settlement)),
        ("block", record["height"]),
        ("time", format_time(record["time_ms"])),
    ]
    session.show(made, rows)


def _wait_allotted(session: Session, bond_id: str, deadline: float, timeout: float) -> None:
    latest: dict[str, Any] = {}

    def allotted() -> dict[str, Any] | None:
        latest.update(call_bond(session, "offering_get", bond_id, None, None, 1))
        return latest if latest["offering"]["status"] != "open" else None

    found = poll_until(
        allotted,
        deadline=deadline,
        timed_out=lambda: f"the offering of {bond_id} was not allotted within {timeout:g} s; it closes at "
        f"{format_time(latest['offering']['end_ms'])}",
    )
    offering = found["offering"]
    settlement = settlement_asset(found)
    rows: Rows = [("bond", bond_id), ("offering", offering["status"]), ("block", offering["settled_height"])]
    if offering["status"] == "settled":
        rows += [
            ("allotted", f"{units_text(offering['allotted'])} of {offering['units']}"),
            ("unsold", units_text(offering["unsold"])),
            ("proceeds", format_amount(offering["proceeds"], settlement)),
        ]
    rows.append(("refunded", format_amount(offering["refunded"], settlement)))
    session.show(found, rows)
