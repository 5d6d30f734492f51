"""What a wallet does over the RPC, for the ``mura`` command and for scripts.

- Amounts: the chain counts integers of each asset's smallest unit; people
  write whole units of an asset. An amount is either ``1250`` (smallest units
  of an asset named elsewhere: ``--asset``, or the network's default asset) or
  ``12.50NAC`` (whole units of the asset the suffix names, converted with the
  decimals the node reports in ``chain_status``'s ``assets``). A bare ``12.50``
  is refused rather than guessed. ``amount_asset`` finds which asset an amount
  is in, ``parse_amount`` converts it, ``format_amount`` writes units back.
- Signing: ``sign_with_next_nonce`` signs for whichever network the node runs
  (its chain id from ``chain_status``), with the nonce the node expects next
  counting what is already pending there; ``sign_with_nonce`` with a nonce
  the caller chose, to replace a pending transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mura.chain.address import encode_address
from mura.chain.codec import MAX_INT
from mura.chain.keys import SigningKey
from mura.chain.transaction import Body, Transaction, sign_transaction
from mura.rpc.client import RpcClient

#: Digits, an optional fraction, and an optional asset id (any case: ids are uppercase, so
#: ``12.5nac`` can only mean NAC).
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)?")
_EXPONENT = re.compile(r"[eE][0-9]*")
#: Longer amount text is refused before any parsing: 2^64 has 20 digits, so with an asset id
#: and decimals an amount fits well within this.
_MAX_AMOUNT_TEXT = 100

#: What an asset is to a wallet: ``{"id", "name", "decimals"}``, as ``chain_status`` lists it.
AssetInfo = Mapping[str, Any]


class AmountError(ValueError):
    """An amount that is not a positive whole number of smallest units of a known asset; the
    message says why."""


def _shape(example: str) -> str:
    return f"amounts are digits, optionally with an asset id, like 1000 or 12.50{example}"


def _split(text: str, example: str) -> tuple[str, str | None, str | None]:
    """The whole part, the fraction and the asset id (upper-cased) of an amount's text."""
    if len(text) > _MAX_AMOUNT_TEXT:
        raise AmountError(f"amount of {len(text)} characters: {_shape(example)}")
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise AmountError(f"{text!r}: {_shape(example)}")
    whole, fraction, asset = match.groups()
    return whole, fraction, None if asset is None else asset.upper()


def amount_asset(
    text: str,
    assets: Sequence[AssetInfo],
    *,
    asset: str | None = None,
    default: str | None = None,
    lookup: Callable[[str], AssetInfo | None] | None = None,
) -> AssetInfo:
    """The asset an amount is in: the one its suffix names (``12.50NAC``), else ``asset`` (a
    ``--asset`` option), else ``default`` (the network's default asset). A suffix and an
    ``asset`` that disagree, an asset neither in ``assets`` nor found by ``lookup`` (for a
    network with more assets than it lists at once), and no asset at all are refused."""
    by_id = {str(info["id"]): info for info in assets}
    example = asset or default or (next(iter(by_id)) if by_id else "NAC")
    _, _, named = _split(text, example)
    if named is not None and named not in by_id and _EXPONENT.fullmatch(named):
        raise AmountError(f"{text}: {_shape(example)} (no exponents)")
    if named is not None and asset is not None and named != asset.upper():
        raise AmountError(f"amount {text!r} is in {named}, but the asset given is {asset}")
    chosen = named or (asset.upper() if asset is not None else default)
    if chosen is None:
        raise AmountError(f"amount {text!r}: name its asset, like {text}{example} or with --asset: this "
                          "network has no default asset")
    if chosen not in by_id and lookup is not None:
        found = lookup(chosen)
        if found is not None:
            return found
    if chosen not in by_id:
        raise AmountError(f"amount {text!r}: no asset {chosen} on this network (known: {_listed(by_id)})")
    return by_id[chosen]


def _listed(by_id: Mapping[str, AssetInfo]) -> str:
    ids = sorted(by_id)
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "") if ids else "none"


def parse_amount(text: str, asset: AssetInfo, *, minimum: int = 1) -> int:
    """Smallest units of ``asset`` from ``1250`` or from whole units written ``12.50NAC``; refuses
    anything else, a suffix naming another asset, anything below ``minimum``, and anything
    above the chain's largest amount (``2^64 - 1`` smallest units)."""
    asset_id, decimals = str(asset["id"]), int(asset["decimals"])
    whole, fraction, named = _split(text, asset_id)
    if named is None:
        if fraction is not None:
            raise AmountError(
                f"amount {text!r}: write {text}{asset_id} for whole {asset_id}, or an integer of smallest units"
            )
        units = int(whole)
    else:
        if named != asset_id:
            raise AmountError(f"amount {text!r} is not in {asset_id}")
        fraction = fraction or ""
        if len(fraction) > decimals:
            raise AmountError(f"amount {text!r}: {asset_id} has {decimals} decimals")
        units = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if units < minimum:
        raise AmountError(f"amount {text!r}: must be at least {minimum} smallest unit{'s' if minimum != 1 else ''}")
    if units > MAX_INT:
        raise AmountError(f"amount {_shorten(text)}: the most an amount can be is {MAX_INT} smallest units")
    return units


def _shorten(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:20] + "..." + text[-8:])


def format_amount(units: int, asset: AssetInfo) -> str:
    """``1250 (12.50 NAC)``: smallest units, then whole units of the asset."""
    decimals = int(asset["decimals"])
    whole, fraction = divmod(units, 10**decimals)
    shown = f"{whole:,}" + (f".{fraction:0{decimals}d}" if decimals else "")
    return f"{units} ({shown} {asset['id']})"


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
