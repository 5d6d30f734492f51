"""Trades of bond units between two holders, delivery versus payment: ``mura trade offer`` and
``mura trade accept``.

The party that offers signs the trade's terms (``chain.transaction.trade_payload``: the
bond, seller, buyer, units, the amount of the settlement asset, a deadline and a random
reference) and writes them with its signature to a JSON file, the *offer file*, which it
hands to the other party by any means. That party reviews the terms (``mura trade accept``
shows them and asks), then sends the ``settle_trade`` transaction itself: its own
signature on the transaction, the offering party's as ``counterparty_signature``. Both legs
settle in one block or neither does, and a trade settles once.

The offer file comes from someone else: ``read_offer`` checks every field of it (exact keys,
types, the network, the addresses, the signature over the terms) before showing anything.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from mura.chain.address import decode_address, encode_address
from mura.chain.bonds import MAX_TRADE_WINDOW_MS
from mura.chain.codec import MAX_INT
from mura.chain.errors import InvalidAddress
from mura.chain.keys import SIGNATURE_SIZE, verify_signature
from mura.chain.transaction import SettleTrade, trade_payload
from mura.cli.bond_dates import format_moment
from mura.cli.bond_terms import key_file_public_key, read_text_file, unique_keys
from mura.cli.bonds import UNITS, bond_rows, find_bond, settlement_asset
from mura.cli.inputs import LAST_TIME_MS, PathType, read_address, read_amount, read_future_time, read_key
from mura.cli.session import (
    EXIT_USAGE,
    CommandError,
    MuraCommand,
    MuraGroup,
    Rows,
    Session,
    format_time,
    quoted,
    render_rows,
)
from mura.cli.submit import signing_options, submit
from mura.rpc.wallet import AssetInfo, format_amount

#: What the first key of an offer file says, and the only version there is.
OFFER_FORMAT = "mura-trade-offer"
OFFER_VERSION = 1
#: Every key of an offer file.
OFFER_KEYS = (
    "format", "version", "chain_id", "bond", "settlement", "seller", "buyer", "units", "amount", "deadline_ms",
    "deadline", "reference", "signed_by", "signature",
)  # fmt: skip
#: Bytes of the random reference of a new offer (the chain takes up to 32).
REFERENCE_BYTES = 16
_MIN_REFERENCE_BYTES = 8
_MAX_REFERENCE_BYTES = 32
#: Largest offer file read: an offer is well under a kilobyte.
MAX_OFFER_FILE_BYTES = 16 * 1024
_HEX = re.compile(r"0x((?:[0-9a-f]{2})*)")


@dataclass(frozen=True, slots=True)
class TradeOffer:
    """One party's signed trade terms, as an offer file carries them."""

    chain_id: str
    #: The trade, its counterparty signature being the offering party's.
    trade: SettleTrade
    #: The settlement asset's id the offering party saw (checked against the bond's).
    settlement: str
    #: ``seller`` or ``buyer``: which party signed.
    signed_by: str

    @property
    def signer(self) -> bytes:
        return self.trade.seller if self.signed_by == "seller" else self.trade.buyer

    @property
    def acceptor(self) -> bytes:
        return self.trade.buyer if self.signed_by == "seller" else self.trade.seller


def encode_offer(offer: TradeOffer, prefix: str) -> dict[str, Any]:
    """The JSON document of an offer file."""
    trade = offer.trade
    return {
        "format": OFFER_FORMAT,
        "version": OFFER_VERSION,
        "chain_id": offer.chain_id,
        "bond": trade.bond,
        "settlement": offer.settlement,
        "seller": encode_address(trade.seller, prefix),
        "buyer": encode_address(trade.buyer, prefix),
        "units": trade.units,
        "amount": trade.amount,
        "deadline_ms": trade.deadline_ms,
        "deadline": format_moment(trade.deadline_ms),
        "reference": "0x" + trade.reference.hex(),
        "signed_by": offer.signed_by,
        "signature": "0x" + trade.counterparty_signature.hex(),
    }


class OfferError(CommandError):
    """An offer file that is not one, or whose terms or signature do not hold."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"offer file {source}: {problem}; nothing was signed", EXIT_USAGE)


def read_offer(document: Any, *, prefix: str, chain_id: str, source: str) -> TradeOffer:
    """The offer an offer file's JSON holds, every field checked, the signature verified."""

    def fail(problem: str) -> OfferError:
        return OfferError(source, problem)

    if not isinstance(document, dict):
        raise fail("not an offer: expected a JSON object")
    if document.get("format") != OFFER_FORMAT:
        raise fail(f"not an offer: its format is not {OFFER_FORMAT!r}")
    if document.get("version") != OFFER_VERSION or isinstance(document.get("version"), bool):
        raise fail(f"version {document.get('version')!r}; this version of mura reads version {OFFER_VERSION}")
    keys = set(document)
    if keys != set(OFFER_KEYS):
        missing, extra = sorted(set(OFFER_KEYS) - keys), sorted(keys - set(OFFER_KEYS))
        raise fail(", ".join(([f"missing {', '.join(missing)}"] if missing else [])
                             + ([f"unexpected {', '.join(map(str, extra))}"] if extra else [])))
    text = {key: document[key] for key in ("chain_id", "bond", "settlement", "deadline", "signed_by")}
    for key, value in text.items():
        if not isinstance(value, str) or not value.isprintable() or len(value) > 64:
            raise fail(f"{key}: expected short text")
    if text["chain_id"] != chain_id:
        raise fail(f"it is for the network {quoted(text['chain_id'])}, this node runs {quoted(chain_id)}")
    if text["signed_by"] not in ("seller", "buyer"):
        raise fail("signed_by: expected seller or buyer")
    numbers = {}
    for key in ("units", "amount", "deadline_ms"):
        value = document[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_INT:
            raise fail(f"{key}: expected a whole number from 1 to {MAX_INT}")
        numbers[key] = value
    if numbers["deadline_ms"] > LAST_TIME_MS:
        raise fail("deadline_ms: past the year 9999")
    if format_moment(numbers["deadline_ms"]) != text["deadline"]:
        raise fail("deadline and deadline_ms disagree")
    seller, buyer = _account(document, "seller", prefix, fail), _account(document, "buyer", prefix, fail)
    if seller == buyer:
        raise fail("the seller and the buyer are one account")
    reference = _hex(document, "reference", fail)
    if not _MIN_REFERENCE_BYTES <= len(reference) <= _MAX_REFERENCE_BYTES:
        raise fail(f"reference: expected {_MIN_REFERENCE_BYTES} to {_MAX_REFERENCE_BYTES} bytes")
    signature = _hex(document, "signature", fail)
    if len(signature) != SIGNATURE_SIZE:
        raise fail(f"signature: expected {SIGNATURE_SIZE} bytes")
    trade = SettleTrade(text["bond"], seller, buyer, numbers["units"], numbers["amount"], numbers["deadline_ms"],
                        reference, signature)
    offer = TradeOffer(chain_id, trade, text["settlement"], text["signed_by"])
    if not verify_signature(offer.signer, signature, trade_payload(chain_id, trade)):
        raise fail(f"the {offer.signed_by}'s signature does not match these terms: the file was altered or signed "
                   "by another key")
    return offer


def _account(document: dict[str, Any], key: str, prefix: str, fail: Callable[[str], OfferError]) -> bytes:
    value = document[key]
    if not isinstance(value, str):
        raise fail(f"{key}: expected an address")
    try:
        return decode_address(value, prefix)
    except InvalidAddress as error:
        raise fail(f"{key}: {error.message}") from None


def _hex(document: dict[str, Any], key: str, fail: Callable[[str], OfferError]) -> bytes:
    value = document[key]
    match = _HEX.fullmatch(value) if isinstance(value, str) and len(value) <= 200 else None
    if match is None:
        raise fail(f"{key}: expected 0x and lower-case hex")
    return bytes.fromhex(match.group(1))


def load_offer(path: str, *, prefix: str, chain_id: str) -> TradeOffer:
    text = read_text_file(path, "offer file", MAX_OFFER_FILE_BYTES)
    try:
        document = json.loads(text, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as error:
        raise OfferError(path, f"not JSON: {str(error)[:200]}") from None
    return read_offer(document, prefix=prefix, chain_id=chain_id, source=path)


def offer_rows(offer: TradeOffer, settlement: AssetInfo, prefix: str) -> Rows:
    """An offer's terms for people, the price per unit beside the total."""
    trade = offer.trade
    per_unit, rest = divmod(trade.amount, trade.units)
    price = format_amount(trade.amount, settlement)
    if trade.units > 1:
        price += f", {format_amount(per_unit, settlement)} a unit" + (" and some" if rest else "")
    return [
        ("bond", trade.bond),
        ("seller", encode_address(trade.seller, prefix)),
        ("buyer", encode_address(trade.buyer, prefix)),
        ("units", trade.units),
        ("price", price),
        ("deadline", format_time(trade.deadline_ms)),
        ("reference", "0x" + trade.reference.hex()),
        ("signed by", offer.signed_by),
    ]


def _your_side(offer: TradeOffer, settlement: AssetInfo) -> str:
    """What the accepting party gives and gets, in words."""
    trade = offer.trade
    units = f"{trade.units} {trade.bond}"
    payment = format_amount(trade.amount, settlement)
    if offer.signed_by == "buyer":
        return f"sell {units} and receive {payment}"
    return f"buy {units} and pay {payment}"


@click.group(cls=MuraGroup)
def trade() -> None:
    """Trade bond units for the settlement asset, both legs at once: one party offers, the other accepts."""


trade.command_class = MuraCommand


@trade.command("offer")
@click.option("--bond", "bond_id", required=True, help="The bond traded.")
@click.option("--units", type=UNITS, required=True, help="Units of the bond the seller delivers.")
@click.option("--price-total", required=True, help="What the buyer pays for them all, in the settlement asset: "
              "10100JPYT, or smallest units.")
@click.option("--seller", help="The seller's address: you buy (give --seller or --buyer).")
@click.option("--buyer", help="The buyer's address: you sell.")
@click.option("--deadline", default="1h", show_default=True, help="The last moment the trade may settle: RFC 3339 "
              "UTC or a duration from now (at most 30 days).")
@click.option("--out", required=True, type=PathType(dir_okay=False), help="The offer file to write (never "
              "overwritten), for the other party.")
@click.option("--key", "key_file", required=True, help="Your key file: you sign the terms.")
@click.pass_obj
def offer(session: Session, bond_id: str, units: int, price_total: str, seller: str | None, buyer: str | None,
          deadline: str, out: str, key_file: str) -> None:
    """Sign a trade's terms and write them to an offer file; the other party accepts it with
    mura trade accept FILE. Nothing is sent to the chain."""
    if (seller is None) == (buyer is None):
        raise CommandError("give the other party: --buyer ADDRESS if you sell, --seller ADDRESS if you buy",
                           EXIT_USAGE)
    deadline_ms = read_future_time(deadline, "--deadline")
    if deadline_ms > time.time() * 1000 + MAX_TRADE_WINDOW_MS:
        raise CommandError("--deadline: at most 30 days from now", EXIT_USAGE)
    if os.path.lexists(out):
        raise CommandError(f"{out} exists; it is never overwritten", EXIT_USAGE)
    status = session.status()
    prefix = status["address_prefix"]
    other = read_address(str(seller if seller is not None else buyer), prefix)
    key = read_key(key_file)
    if other == key.public_key:
        raise CommandError("the other party is your own account", EXIT_USAGE)
    found = find_bond(session, bond_id)
    _, amount = read_amount(session, price_total, asset=found["settlement"])
    signed_by = "buyer" if seller is not None else "seller"
    parties = (other, key.public_key) if signed_by == "buyer" else (key.public_key, other)
    unsigned = SettleTrade(found["id"], *parties, units, amount, deadline_ms, secrets.token_bytes(REFERENCE_BYTES),
                           b"")
    signature = key.sign(trade_payload(status["chain_id"], unsigned))
    signed = TradeOffer(status["chain_id"], _with_signature(unsigned, signature), found["settlement"], signed_by)
    document = encode_offer(signed, prefix)
    _write_new(out, json.dumps(document, indent=2) + "\n")
    settlement = settlement_asset(found)
    counterparty = "buyer" if signed_by == "seller" else "seller"
    rows = [*offer_rows(signed, settlement, prefix), ("offer file", out),
            ("next", f"the {counterparty} accepts it with: mura trade accept {out} --key FILE")]
    session.show(document, rows)


def _with_signature(trade: SettleTrade, signature: bytes) -> SettleTrade:
    return SettleTrade(trade.bond, trade.seller, trade.buyer, trade.units, trade.amount, trade.deadline_ms,
                       trade.reference, signature)


def _write_new(path: str, text: str) -> None:
    try:
        with open(path, "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise CommandError(f"{path} exists; it is never overwritten", EXIT_USAGE) from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CommandError(f"cannot write {path}: {reason}", EXIT_USAGE) from None


@trade.command("accept")
@signing_options
@click.argument("offer_file", metavar="FILE", type=PathType(dir_okay=False))
@click.option("--yes", is_flag=True, help="Accept the terms without being asked (they are still shown).")
@click.pass_obj
def accept(session: Session, key_file: str, offer_file: str, yes: bool, wait: bool, timeout: float,
           nonce: int | None) -> None:
    """Check an offer file, show its terms, and once you agree sign and send the trade: the
    bond units and the payment change hands in one block, or neither does."""
    status = session.status()
    prefix = status["address_prefix"]
    offer = load_offer(offer_file, prefix=prefix, chain_id=status["chain_id"])
    public_key = key_file_public_key(key_file)  # the key itself is opened once, to sign
    if public_key != offer.acceptor:
        role = "buyer" if offer.signed_by == "seller" else "seller"
        raise CommandError(f"this offer is for its {role}, {encode_address(offer.acceptor, prefix)}; your key is "
                           f"{encode_address(public_key, prefix)}", EXIT_USAGE)
    if offer.trade.deadline_ms <= time.time() * 1000:
        raise CommandError(f"the offer's deadline, {format_time(offer.trade.deadline_ms)}, has passed", EXIT_USAGE)
    if offer.trade.deadline_ms > time.time() * 1000 + MAX_TRADE_WINDOW_MS:
        raise CommandError(f"the offer's deadline, {format_time(offer.trade.deadline_ms)}, is more than 30 days "
                           "from now: the chain refuses such a trade; nothing was signed", EXIT_USAGE)
    found = find_bond(session, offer.trade.bond)
    if found["settlement"] != offer.settlement:
        raise CommandError(f"the offer names {offer.settlement} as payment, but {found['id']} is paid in "
                           f"{found['settlement']}", EXIT_USAGE)
    settlement = settlement_asset(found)
    terms = [*offer_rows(offer, settlement, prefix), ("you", _your_side(offer, settlement))]
    _confirm(session, terms, yes=yes)
    submit(session, key_file, lambda status: offer.trade, wait=wait, timeout=timeout, nonce=nonce,
           rows=bond_rows(settlement))


def _confirm(session: Session, terms: Rows, *, yes: bool) -> None:
    """Show the terms and have them agreed to: ``--yes``, or an answer at a terminal."""
    if not session.as_json:
        click.echo(render_rows(terms) + "\n")
    if yes:
        return
    if not sys.stdin.isatty():
        raise CommandError("not accepted: give --yes to accept these terms without being asked; nothing was sent",
                           EXIT_USAGE)
    if not click.confirm("Accept and send this trade?", default=False, err=True):
        raise CommandError("not accepted; nothing was sent", EXIT_USAGE)
