"""Assets: what an issuer declares when it issues one, and what the chain keeps of it.

An asset is named by an id its issuer chooses (``NAC``, ``JPYT``, ``NISHI-2031-01``).
Its ``AssetTerms`` are fixed at issue; its ``AssetState`` (supply, holders, what
lapsed at expiry) changes with every transaction and automatic step that touches
it. Both are state entries, keyed by the asset id (see ``asset_key``), and so are
the balances, approvals and freezes of each (asset, account) pair.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from mura.chain import codec
from mura.chain.errors import DecodeError
from mura.chain.keys import PUBLIC_KEY_SIZE

#: Longest asset id.
MAX_ASSET_ID_LENGTH = 32
#: Longest asset name, in characters.
MAX_ASSET_NAME_LENGTH = 64
#: Most digits after the decimal point.
MAX_DECIMALS = 18
#: Longest memo on a transfer, in UTF-8 bytes.
MAX_MEMO_BYTES = 256
#: Uppercase letters and digits in groups joined by single hyphens, starting with a letter:
#: ``NAC``, ``JPYT``, ``NISHI-2031-01``. A letter first keeps ``12.50NAC`` unambiguous.
ASSET_ID_PATTERN = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")


class TransferPolicy(enum.Enum):
    """Who may hold and move an asset."""

    #: Anyone.
    OPEN = "open"
    #: Sender and recipient must each be the issuer or a holder the registrar approved.
    RESTRICTED = "restricted"


@functools.lru_cache(maxsize=4096)
def asset_id_problem(asset: str) -> str | None:
    """Why ``asset`` is not a valid asset id, or None."""
    if not asset:
        return "an asset id is 1 to 32 characters, got none"
    if len(asset) > MAX_ASSET_ID_LENGTH:
        return f"an asset id is at most {MAX_ASSET_ID_LENGTH} characters, got {len(asset)}"
    if ASSET_ID_PATTERN.fullmatch(asset) is None:
        return (
            f"asset id {asset!r} is not uppercase letters and digits in groups joined by single hyphens, "
            "starting with a letter (e.g. NAC, NISHI-2031-01)"
        )
    return None


def asset_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid asset name, or None: 1 to 64 printable characters (no
    control or invisible formatting characters), not only spaces."""
    if 0 < len(name) <= MAX_ASSET_NAME_LENGTH and name.strip() and name.isprintable():
        return None
    return (
        f"a name is 1 to {MAX_ASSET_NAME_LENGTH} printable characters (no control or invisible formatting "
        "characters), not only spaces"
    )


def asset_key(asset: str) -> bytes:
    """The asset's part of a state key: its id's length, then the id. The length keeps one
    id's entries apart from those of any id it is the start of (``NAC`` and ``NACX``)."""
    encoded = asset.encode()
    if not 0 < len(encoded) <= MAX_ASSET_ID_LENGTH:
        # Rules check ids before any key is made: a longer one here is a bug, not input.
        raise ValueError(f"asset id of {len(encoded)} bytes in a state key")
    return bytes([len(encoded)]) + encoded


def split_asset_key(data: bytes) -> tuple[str, bytes]:
    """The asset id at the start of ``data`` (as ``asset_key`` wrote it) and what follows."""
    length = data[0]
    return data[1 : 1 + length].decode(), data[1 + length :]


@dataclass(frozen=True, slots=True)
class AssetTerms:
    """What an issuer declares at issue; fixed for the asset's life."""

    #: The asset's id (see ``ASSET_ID_PATTERN``).
    asset: str
    #: Display name, e.g. ``Nishiawakura Coin``.
    name: str
    #: Digits after the decimal point: 2 means 100 smallest units make one.
    decimals: int
    #: Public key of the issuer: mints, burns, receives what lapses.
    issuer: bytes
    #: Whether the issuer may mint after issue.
    reissuable: bool
    #: Largest supply the issuer may mint up to (0: none but ``MAX_SUPPLY``); reissuable only.
    cap: int
    #: Public key of the account that approves holders and freezes accounts.
    registrar: bytes
    #: Who may hold and move it.
    policy: TransferPolicy
    #: Milliseconds since the Unix epoch from which it lapses (0: never).
    expiry_ms: int

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.asset,
                self.name,
                self.decimals,
                self.issuer,
                self.reissuable,
                self.cap,
                self.registrar,
                self.policy.value,
                self.expiry_ms,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> AssetTerms:
        asset, name, decimals, issuer, reissuable, cap, registrar, policy, expiry = codec.read_fields(
            codec.decode(data), "asset", 9
        )
        return cls(
            codec.read_str(asset, "asset.asset", max_length=MAX_ASSET_ID_LENGTH),
            codec.read_str(name, "asset.name", max_length=MAX_ASSET_NAME_LENGTH),
            codec.read_int(decimals, "asset.decimals", maximum=MAX_DECIMALS),
            codec.read_bytes(issuer, "asset.issuer", length=PUBLIC_KEY_SIZE),
            codec.read_bool(reissuable, "asset.reissuable"),
            codec.read_int(cap, "asset.cap"),
            codec.read_bytes(registrar, "asset.registrar", length=PUBLIC_KEY_SIZE),
            read_policy(policy, "asset.policy"),
            codec.read_int(expiry, "asset.expiry_ms"),
        )

    @property
    def restricted(self) -> bool:
        return self.policy is TransferPolicy.RESTRICTED


@dataclass(frozen=True, slots=True)
class AssetState:
    """What changes of an asset: its supply and holders, and its lapse at expiry."""

    #: Smallest units in existence: every balance of it summed.
    supply: int = 0
    #: Accounts holding a positive balance of it.
    holders: int = 0
    #: Set by the first block whose timestamp reaches the expiry time.
    expired: bool = False
    #: Smallest units returned to the issuer at expiry so far.
    lapsed: int = 0
    #: Every balance has been returned (set with ``expired`` when nothing else was held).
    lapse_complete: bool = False
    #: While lapsing: the last account whose balance was returned (the next starts after it).
    lapse_cursor: bytes = b""
    #: Accounts frozen in it: while none is, no transfer of it looks for a freeze.
    frozen: int = 0
    #: A bond's coupon or redemption is being paid over several blocks: its units do not move.
    locked: bool = False
    #: A bond's next payment time while it is not in default (0: none, or a plain asset): from
    #: the first block that reaches it until the payment is made, the units do not move.
    due_ms: int = 0

    def encode(self) -> bytes:
        return codec.encode(
            [
                self.supply,
                self.holders,
                self.expired,
                self.lapsed,
                self.lapse_complete,
                self.lapse_cursor,
                self.frozen,
                self.locked,
                self.due_ms,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> AssetState:
        supply, holders, expired, lapsed, complete, cursor, frozen, locked, due = codec.read_fields(
            codec.decode(data), "asset_state", 9
        )
        return cls(
            codec.read_int(supply, "asset_state.supply"),
            codec.read_int(holders, "asset_state.holders"),
            codec.read_bool(expired, "asset_state.expired"),
            codec.read_int(lapsed, "asset_state.lapsed"),
            codec.read_bool(complete, "asset_state.lapse_complete"),
            codec.read_bytes(cursor, "asset_state.lapse_cursor", max_length=PUBLIC_KEY_SIZE),
            codec.read_int(frozen, "asset_state.frozen"),
            codec.read_bool(locked, "asset_state.locked"),
            codec.read_int(due, "asset_state.due_ms"),
        )


def read_policy(value: object, what: str) -> TransferPolicy:
    text = codec.read_str(value, what, max_length=16)
    try:
        return TransferPolicy(text)
    except ValueError:
        raise DecodeError(f"{what}: {text!r} is not a transfer policy (open or restricted)") from None
