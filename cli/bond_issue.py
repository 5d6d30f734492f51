"""Issuing a bond: ``mura bond template`` (an example terms file), ``mura bond issue --terms
FILE`` and ``mura bond consent`` (a paying account other than the issuer agreeing to pay).

A paying account other than the issuer signs its consent to the bond's terms
(``chain.transaction.paying_consent_payload``): ``mura bond issue`` signs it itself when the
terms name the paying account's key file, and otherwise takes the signature the terms give
as ``paying_consent``, which the paying account makes with ``mura bond consent`` over the
same terms with fixed times.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from mura.chain.address import encode_address
from mura.chain.bonds import coupon_amount
from mura.chain.keys import verify_signature
from mura.chain.transaction import IssueBond, paying_consent_payload
from mura.cli.bond_terms import (
    TermsContext,
    key_file_public_key,
    load_terms_document,
    moving_times,
    paying_key_file,
    read_terms,
)
from mura.cli.inputs import PathType, read_address, read_key
from mura.cli.session import EXIT_USAGE, CommandError, MuraCommand, Rows, Session, format_time, render_columns
from mura.cli.submit import signing_options, submit, transaction_rows
from mura.rpc.bond_render import rate_percent
from mura.rpc.render import render_body
from mura.rpc.wallet import AssetInfo, format_amount

TEMPLATE = """\
# A municipal bond's terms: mura bond issue --terms FILE --key ISSUER.key
# Times are RFC 3339 (2027-03-20T00:00:00+09:00) or durations from now (90s, 10m, 2h, 30d):
# these few seconds suit a testnet walkthrough; a real bond's payments are months apart.
id = "FOREST-ROAD"
name = "Nishiawakura forest road bond"
units = 10
settlement = "JPYT"
face = "10000"              # one unit's face value, in whole JPYT
rate = "1.25%"              # a year, at most 4 decimals
frequency = "semiannual"    # annual, semiannual, quarterly or monthly
first_period = 45           # days of an odd first period, or "regular"; left out: computed
coupons = ["45s", "60s"]
maturity = "75s"
use_of_proceeds = "forest road repair"
green = true
# issue = "2027-04-01T00:00:00+09:00"    the date interest accrues from (default: now)
# paying = "treasury.key"                 who pays coupons and the redemption (default: the issuer)
# proceeds = "tnac1..."                   who receives the offering's proceeds (default: the issuer)
# registrar = "tnac1..."                  who approves holders (default: the issuer)
# policy = "restricted"                   or "open": anyone may hold it
"""


@click.command("template", cls=MuraCommand)
@click.option("--out", type=PathType(dir_okay=False), help="Write it to this file (never overwritten) "
              "instead of printing it.")
@click.pass_obj
def template(session: Session, out: str | None) -> None:
    """An example terms file to start from (TOML; see mura bond issue --help)."""
    if out is None:
        click.echo(TEMPLATE, nl=False)
        return
    try:
        with open(out, "x", encoding="utf-8") as file:
            file.write(TEMPLATE)
    except FileExistsError:
        raise CommandError(f"{out} exists; it is never overwritten", EXIT_USAGE) from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CommandError(f"cannot write {out}: {reason}", EXIT_USAGE) from None
    session.show({"terms_file": out}, [("wrote", out)])


@click.command("issue", cls=MuraCommand)
@signing_options
@click.option("--terms", "terms_file", required=True, type=PathType(dir_okay=False),
              help="The bond's terms: a .toml or .json file (mura bond template writes an example).")
@click.option("--check", is_flag=True, help="Read and show the terms and their schedule; sign and send nothing.")
@click.pass_obj
def issue(session: Session, key_file: str, terms_file: str, check: bool, wait: bool, timeout: float,
          nonce: int | None) -> None:
    """Issue a bond with you as its issuer (accounts with the issuer role only).

    The terms file's fields: id, name, units, settlement, face (whole units of the
    settlement asset, as text: "10000"), rate (a percentage as text: "0.455%"), frequency
    (1, 2, 4, 12 or annual, semiannual, quarterly, monthly), coupons (a list of times),
    maturity; optional: issue (default now), first_period ("regular" or days; default
    computed in Japan time), paying, proceeds, registrar (addresses or key files; default
    you; a paying account other than you consents: name its key file, or give its
    signature as paying_consent, from mura bond consent), policy (restricted or open),
    use_of_proceeds, green. Times are RFC 3339
    (2027-03-20T00:00:00+09:00) or durations from now (90s, 10m, 30d). Every problem in the
    file is reported at once, before anything is signed.
    """
    document = load_terms_document(terms_file)
    body = read_terms(document, terms_context(session, terms_file), source=terms_file)
    settlement = session.asset(body.settlement)
    issuer = key_file_public_key(key_file)
    body = _with_paying_consent(session, body, issuer, document, terms_file, sign=not check)
    if check:
        _show_terms(session, body, settlement)
        return
    submit(session, key_file, lambda status: body, wait=wait, timeout=timeout, nonce=nonce,
           rows=_issue_rows(body, settlement))


def terms_context(session: Session, terms_file: str) -> TermsContext:
    """What reading a terms file needs from the node: its address prefix and its assets."""

    def find_asset(asset_id: str) -> dict[str, Any] | None:
        if session.find_asset(asset_id) is None:
            return None
        found: dict[str, Any] = session.call("asset_get", asset_id)
        return found

    return TermsContext(session.prefix, int(time.time() * 1000), find_asset, Path(terms_file).parent)


def _with_paying_consent(session: Session, body: IssueBond, issuer: bytes, document: Mapping[str, Any],
                         terms_file: str, *, sign: bool) -> IssueBond:
    """The bond with its paying account's consent: none when the issuer pays; the one the terms
    give, checked; or signed here with the paying account's key file the terms name."""
    if not body.paying or body.paying == issuer:
        if body.paying_consent:
            raise CommandError(f"{terms_file}: paying_consent: you pay this bond yourself; leave it out", EXIT_USAGE)
        return body
    payload = paying_consent_payload(session.status()["chain_id"], issuer, body)
    if body.paying_consent:
        if not verify_signature(body.paying, body.paying_consent, payload):
            moving = moving_times(document)
            hint = f" ({', '.join(moving)} changed since: write them as RFC 3339 times)" if moving else ""
            raise CommandError(f"{terms_file}: paying_consent: not the paying account's signature of these terms "
                               f"issued by you{hint}", EXIT_USAGE)
        return body
    key_file = paying_key_file(document, Path(terms_file).parent)
    if key_file is None:
        raise CommandError(
            f"{terms_file}: paying: {encode_address(body.paying, session.prefix)} is not you, so it must agree to pay: "
            f"give its key file as paying, or its signature as paying_consent (made with: mura bond consent --terms "
            f"FILE --issuer {encode_address(issuer, session.prefix)} --key ITS-KEY-FILE)", EXIT_USAGE)
    if not sign:
        return body
    return dataclasses.replace(body, paying_consent=read_key(str(key_file)).sign(payload))


@click.command("consent", cls=MuraCommand)
@click.option("--terms", "terms_file", required=True, type=PathType(dir_okay=False),
              help="The bond's terms, naming your account as paying, with fixed times (RFC 3339, issue given).")
@click.option("--issuer", required=True, help="The address of the account that will issue the bond.")
@click.option("--key", "key_file", required=True, help="The paying account's key file.")
@click.pass_obj
def consent(session: Session, terms_file: str, issuer: str, key_file: str) -> None:
    """Agree to pay a bond issued by another account: sign its terms as its paying account,
    for the issuer to give as paying_consent in its terms file. Nothing is sent."""
    document = load_terms_document(terms_file)
    moving = moving_times(document)
    if moving:
        raise CommandError(f"{terms_file}: the paying account agrees to fixed terms: write {', '.join(moving)} as "
                           "RFC 3339 times (a duration, or an issue date left to default to now, changes each time "
                           "the file is read)", EXIT_USAGE)
    body = read_terms(document, terms_context(session, terms_file), source=terms_file)
    issuer_key = read_address(issuer, session.prefix)
    key = read_key(key_file)
    if body.paying != key.public_key:
        named = encode_address(body.paying, session.prefix) if body.paying else "the issuer (none given)"
        raise CommandError(f"{terms_file}: paying is {named}, not this key's account "
                           f"{encode_address(key.public_key, session.prefix)}", EXIT_USAGE)
    signature = "0x" + key.sign(paying_consent_payload(session.status()["chain_id"], issuer_key, body)).hex()
    rows: Rows = [
        ("bond", body.asset),
        ("issuer", issuer),
        ("paying", encode_address(key.public_key, session.prefix)),
        ("paying_consent", signature),
        ("next", f'the issuer adds to {terms_file}: paying_consent = "{signature}"'),
    ]
    session.show({"bond": body.asset, "issuer": issuer, "paying_consent": signature}, rows)


def _terms_rows(body: IssueBond, settlement: AssetInfo) -> Rows:
    first = "regular" if body.first_period_days == 0 else f"{body.first_period_days} days (odd)"
    return [
        ("bond", body.asset),
        ("name", body.name),
        ("units", body.units),
        ("settlement", body.settlement),
        ("face", f"{format_amount(body.face, settlement)} a unit"),
        ("rate", f"{rate_percent(body.rate)} a year, {body.frequency} coupon{'s' if body.frequency > 1 else ''} "
                 "a year"),
        ("first period", first if body.coupon_times else "-"),
        ("issued", format_time(body.issue_ms)),
        ("maturity", format_time(body.maturity_ms)),
        ("policy", body.policy),
        ("use of proceeds", body.use_of_proceeds or "-"),
        ("green", "yes" if body.green else "no"),
    ]


def _show_terms(session: Session, body: IssueBond, settlement: AssetInfo) -> None:
    rows = _terms_rows(body, settlement)
    lines = []
    for index in range(len(body.coupon_times) + 1):
        kind = "coupon" if index < len(body.coupon_times) else "redemption"
        moment = body.coupon_times[index] if index < len(body.coupon_times) else body.maturity_ms
        lines.append((index, kind, format_time(moment), format_amount(_per_unit(body, index), settlement)))
    table = render_columns(("payment", "kind", "time", "per unit"), lines)
    session.show(render_body(body, session.prefix), rows, table)


def _per_unit(body: IssueBond, index: int) -> int:
    if index >= len(body.coupon_times):
        return int(body.face)
    days = body.first_period_days if index == 0 else 0
    return coupon_amount(body.face, 1, body.rate, body.frequency, days)


def _issue_rows(body: IssueBond, settlement: AssetInfo) -> Callable[[dict[str, Any], Session], Rows]:
    def rows(transaction: dict[str, Any], session: Session) -> Rows:
        generic = transaction_rows(transaction, session)
        head = [row for row in generic if row[0] in ("transaction", "kind", "from")]
        tail = [row for row in generic if row[0] in ("nonce", "status")]
        return head + _terms_rows(body, settlement) + [("payments", len(body.coupon_times) + 1)] + tail

    return rows
