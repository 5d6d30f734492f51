"""What a wallet does over the RPC, for the ``mura`` command and for scripts.

- Amounts: the chain counts integers of the token's smallest unit; people
  write whole tokens. ``parse_amount`` takes either ``1250`` (smallest units)
  or ``12.50NAC`` (whole tokens, converted with the decimals the node reports)
  and refuses a bare ``12.50`` rather than guess which was meant.
- Signing: ``sign_with_next_nonce`` signs for whichever network the node runs
  (its chain id from ``chain_status``), with the nonce the node expects next
  counting what is already pending there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mura.chain.address import encode_address
from mura.chain.keys import SigningKey
from mura.chain.transaction import Body, Transaction, sign_transaction
from mura.rpc.client import RpcClient

_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z][A-Za-z0-9]*)?")


class AmountError(ValueError):
    """An amount that is not a positive whole number of smallest units; the message says why."""


def parse_amount(text: str, token: Mapping[str, Any]) -> int:
    """Smallest units from ``1250`` or from whole tokens written ``12.50NAC``; refuses anything else."""
    symbol, decimals = str(token["symbol"]), int(token["decimals"])
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise AmountError(f"amount {text!r} is not a whole number of smallest units nor like 12.50{symbol}")
    whole, fraction, given_symbol = match.groups()
    if given_symbol is None:
        if fraction is not None:
            raise AmountError(f"amount {text!r}: write {text}{symbol} for whole {symbol}, or an integer of smallest units")
        units = int(whole)
    else:
        if given_symbol.upper() != symbol.upper():
            raise AmountError(f"amount {text!r}: this network's token is {symbol}")
        fraction = fraction or ""
        if len(fraction) > decimals:
            raise AmountError(f"amount {text!r}: {symbol} has {decimals} decimals")
        units = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if units < 1:
        raise AmountError(f"amount {text!r}: must be at least 1 smallest unit")
    return units


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
    return sign_transaction(key, chain_id=str(status["chain_id"]), nonce=int(nonce), body=body)
