"""What a wallet does over the RPC, for the ``mura`` command and for scripts.

- Amounts: the chain counts integers of the token's smallest unit; people
  write whole tokens. ``parse_amount`` takes either ``1250`` (smallest units)
  or ``12.50NAC`` (whole tokens, converted with the decimals the node reports)
  and refuses a bare ``12.50`` rather than guess which was meant.
- Signing: ``sign_with_next_nonce`` signs for whichever network the node runs
  (its chain id from ``chain_status``), with the nonce the node expects next
  counting what is already pending there; ``sign_with_nonce`` with a nonce
  the caller chose, to replace a pending transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mura.chain.address import encode_address
from mura.chain.codec import MAX_INT
from mura.chain.keys import SigningKey
from mura.chain.transaction import Body, Transaction, sign_transaction
from mura.rpc.client import RpcClient

_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z][A-Za-z0-9]*)?")
#: Longer amount text is refused before any parsing: 2^64 has 20 digits, so with a
#: symbol and decimals an amount fits well within this.
_MAX_AMOUNT_TEXT = 100


class AmountError(ValueError):
    """An amount that is not a positive whole number of smallest units; the message says why."""


def parse_amount(text: str, token: Mapping[str, Any]) -> int:
    """Smallest units from ``1250`` or from whole tokens written ``12.50NAC``; refuses anything else,
    and anything above the chain's largest amount (``2^64 - 1`` smallest units)."""
    symbol, decimals = str(token["symbol"]), int(token["decimals"])
    shape = f"amounts are digits, optionally with the token symbol, like 1000 or 12.50{symbol}"
    if len(text) > _MAX_AMOUNT_TEXT:
        raise AmountError(f"amount of {len(text)} characters: {shape}")
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise AmountError(f"{text!r}: {shape}")
    whole, fraction, given_symbol = match.groups()
    if given_symbol is None:
        if fraction is not None:
            raise AmountError(
                f"amount {text!r}: write {text}{symbol} for whole {symbol}, or an integer of smallest units"
            )
        units = int(whole)
    else:
        if given_symbol.upper() != symbol.upper():
            if re.fullmatch(r"[eE][0-9]*", given_symbol):
                raise AmountError(f"{text}: {shape} (no exponents)")
            raise AmountError(f"amount {text!r}: this network's token is {symbol}")
        fraction = fraction or ""
        if len(fraction) > decimals:
            raise AmountError(f"amount {text!r}: {symbol} has {decimals} decimals")
        units = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if units < 1:
        raise AmountError(f"amount {text!r}: must be at least 1 smallest unit")
    if units > MAX_INT:
        raise AmountError(f"amount {_shorten(text)}: the most an amount can be is {MAX_INT} smallest units")
    return units


def _shorten(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:20] + "..." + text[-8:])


def format_amount(units: int, token: Mapping[str, Any]) -> str:
    """``1250 (12.50 NAC)``: smallest units, then whole tokens."""
    decimals = int(token["decimals"])
    whole, fraction = divmod(units, 10**decimals)
    tokens = f"{whole:,}" + (f".{fraction:0{decimals}d}" if decimals else "")
    return f"{units} ({tokens} {token['symbol']})"


def sign_with_next_nonce(client: RpcClient, key: SigningKey, body: Body, status: Mapping[str, Any]) -> Transaction:
    """``body`` signed by ``key`` for the network ``status`` (``chain_status``) describes,
    with the nonce the node expects next (``account_get``'s ``next_nonce``)."""
    sender = encode_address(key.public_key, str(status["address_prefix"]))
    nonce = client.call("account_get", [sender])["next_nonce"]
    return sign_with_nonce(key, body, status, nonce=int(nonce))


def sign_with_nonce(key: SigningKey, body: Body, status: Mapping[str, Any], *, nonce: int) -> Transaction:
    """``body`` signed by ``key`` with ``nonce``: to replace a pending transaction, sign another
    with its nonce."""
    return sign_transaction(key, chain_id=str(status["chain_id"]), nonce=nonce, body=body)
