"""Tests for chain/state.py: the rules of assets (issue, mint, burn, the memo of a transfer).

As in ``test_state``, each rule has ``test_<rule>`` (a valid case is accepted with
the expected effect) and ``test_invalid_<rule>`` (the typed exception is raised,
with its details, and nothing changes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mura.chain.assets import MAX_DECIMALS, MAX_MEMO_BYTES, AssetState, AssetTerms, TransferPolicy
from mura.chain.errors import (
    AssetExists,
    AssetNotReissuable,
    InvalidAssetId,
    InvalidAssetTerms,
    MemoNotPrintable,
    MemoTooLong,
    NotAnIssuer,
    NotAssetIssuer,
    SupplyCapExceeded,
    SupplyOverflow,
    UnknownAsset,
)
from mura.chain.keys import SigningKey
from mura.chain.state import MAX_SUPPLY, GenesisAsset
from mura.chain.transaction import (
    ApproveHolder,
    Body,
    Burn,
    Freeze,
    Mint,
    RevokeHolder,
    Transfer,
    Unfreeze,
)
from mura.tests.chain.factories import ASSET, BLOCK_INTERVAL_MS, Chain, asset_terms, issue_body
from mura.tests.chain.transition import MakeBlock, Sign, accept, refuse_transaction

NEW = "JPYT"


def _issue(chain: Chain, sign: Sign, make_block: MakeBlock, asset: str = NEW, **terms: Any) -> None:
    """Issue ``asset`` from the issuer (its next nonce) and commit the block."""
    body = issue_body(asset, **terms)
    built = make_block(chain, [sign(chain.issuer, body, nonce=chain.nonce(chain.issuer))])
    assert built.refused == [], built.refused
    accept(chain, built)


def _chain_with_bobs_asset(make_chain: Callable[..., Chain], keys: Callable[[str], SigningKey]) -> Chain:
    """The default chain, and ``JPYT`` issued at genesis by bob (who has no issuer role)."""
    bob = keys("bob").public_key
    return make_chain(assets=[GenesisAsset(asset_terms(NEW, bob), ((bob, 100),))])


# --- unknown_asset --------------------------------------------------------------------


def test_known_asset(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _issue(chain, sign, make_block, supply=500)
    accept(chain, make_block(chain, [sign(chain.issuer, Transfer(NEW, chain.bob.public_key, 200), nonce=1)]))
    assert chain.balance(chain.bob, NEW) == 200 and chain.balance(chain.issuer, NEW) == 300
    assert chain.balance(chain.bob, ASSET) == 0 and chain.supply(ASSET) == 1_001_000


def _bodies_naming(asset: str, account: bytes) -> list[Body]:
    return [
        Transfer(asset, account, 1),
        Mint(asset, account, 1),
        Burn(asset, 1),
        ApproveHolder(asset, account),
        RevokeHolder(asset, account),
        Freeze(asset, account),
        Unfreeze(asset, account),
    ]


@pytest.mark.parametrize("kind", range(7))
@pytest.mark.parametrize("asset", [NEW, "NAC-1", "X" * 32])
def test_invalid_unknown_asset(chain: Chain, sign: Sign, make_block: MakeBlock, kind: int, asset: str) -> None:
    """Every kind naming an asset refuses one never issued."""
    body = _bodies_naming(asset, chain.bob.public_key)[kind]
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, body), UnknownAsset)
    assert cause.details == {"asset": asset}


@pytest.mark.parametrize("kind", range(7))
@pytest.mark.parametrize("asset", ["nac", "", "NAC ", "X" * 33, "\U0001f600" * 64, "É" * 32])
def test_invalid_asset_id_named(chain: Chain, sign: Sign, make_block: MakeBlock, kind: int, asset: str) -> None:
    """Every kind naming an asset refuses an id no asset can have, before it reads the state
    (an id too long for a state key, 64 four-byte characters, included)."""
    body = _bodies_naming(asset, chain.bob.public_key)[kind]
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, body), InvalidAssetId)
    assert cause.details == {"asset": asset}


# --- issue_asset: asset_exists, invalid_asset_id, not_an_issuer ------------------------------


def test_new_asset_id(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _issue(chain, sign, make_block, supply=5_000)
    assert chain.state.assets()[NEW] == asset_terms(NEW, chain.issuer.public_key)
    assert chain.asset_state(NEW) == AssetState(supply=5_000, holders=1)
    assert chain.state.balances(NEW) == {chain.issuer.public_key: 5_000}
    assert chain.nonce(chain.issuer) == 1 and chain.supply(ASSET) == 1_001_000


def test_issue_with_nothing_to_start(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """A reissuable asset may start with no supply: no balance, no holder, until minted."""
    _issue(chain, sign, make_block, supply=0)
    assert chain.asset_state(NEW) == AssetState()
    assert chain.state.balances(NEW) == {}
    accept(chain, make_block(chain, [sign(chain.issuer, Mint(NEW, chain.alice.public_key, 7), nonce=1)]))
    assert chain.asset_state(NEW) == AssetState(supply=7, holders=1)


def test_invalid_asset_exists(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, issue_body(ASSET)), AssetExists)
    assert cause.details == {"asset": ASSET}
    # Issued earlier in the same block.
    first = sign(chain.issuer, issue_body(NEW))
    again = sign(chain.issuer, issue_body(NEW, supply=9), nonce=1)
    cause = refuse_transaction(chain, make_block, again, AssetExists, before=[first])
    assert cause.details == {"asset": NEW}


@pytest.mark.parametrize("asset", ["A", "NISHI-2031-01", "A1-B2-C3", "X" * 32, "Z9"])
def test_asset_id(chain: Chain, sign: Sign, make_block: MakeBlock, asset: str) -> None:
    _issue(chain, sign, make_block, asset)
    assert asset in chain.state.assets() and chain.balance(chain.issuer, asset) == 1_000


@pytest.mark.parametrize(
    "asset", ["", "nac", "Nac", "1NAC", "NA C", "NAC-", "-NAC", "NA--C", "NAC_1", "NAC.1", "ÄBC", "X" * 33]
)
def test_invalid_asset_id(chain: Chain, sign: Sign, make_block: MakeBlock, asset: str) -> None:
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, issue_body(asset)), InvalidAssetId)
    assert cause.details == {"asset": asset}


def test_issuer_role(make_chain: Callable[..., Chain], sign: Sign, make_block: MakeBlock) -> None:
    """Any account with the issuer role issues; the asset's issuer is the sender."""
    chain = make_chain()
    _issue(chain, sign, make_block, registrar=chain.bob.public_key)
    assert chain.state.assets()[NEW].issuer == chain.issuer.public_key
    assert chain.state.assets()[NEW].registrar == chain.bob.public_key


@pytest.mark.parametrize("who", ["alice", "bob", "validator"])
def test_invalid_not_an_issuer(
    make_chain: Callable[..., Chain],
    keys: Callable[[str], SigningKey],
    sign: Sign,
    make_block: MakeBlock,
    who: str,
) -> None:
    """Holding an asset (alice), being the issuer of one by the genesis terms (bob), or
    validating, is not the issuer role."""
    chain = _chain_with_bobs_asset(make_chain, keys)
    sender = chain.validators[0] if who == "validator" else getattr(chain, who)
    cause = refuse_transaction(chain, make_block, sign(sender, issue_body("YEN")), NotAnIssuer)
    assert cause.details == {}


# --- issue_asset: invalid_asset_terms ------------------------------------------------------


@pytest.mark.parametrize(
    "terms",
    [
        {"name": "N" * 64},
        {"name": "x"},
        {"name": "西粟倉コイン"},
        {"decimals": 0},
        {"decimals": MAX_DECIMALS},
        {"supply": MAX_SUPPLY},
        {"supply": 0},
        {"reissuable": False, "supply": 1},
        {"cap": 1_000},
        {"cap": MAX_SUPPLY},
        {"policy": "restricted"},
        {"registrar": b"\x05" * 32},
        {"expiry_ms": "next block"},
    ],
)
def test_asset_terms(chain: Chain, sign: Sign, make_block: MakeBlock, terms: dict[str, Any]) -> None:
    if terms.get("expiry_ms") == "next block":
        terms = {"expiry_ms": chain.head.timestamp_ms + BLOCK_INTERVAL_MS + 1}
    _issue(chain, sign, make_block, **terms)
    issued = chain.state.assets()[NEW]
    body = issue_body(NEW, **terms)
    assert issued == AssetTerms(
        asset=NEW,
        name=body.name,
        decimals=body.decimals,
        issuer=chain.issuer.public_key,
        reissuable=body.reissuable,
        cap=body.cap,
        registrar=body.registrar or chain.issuer.public_key,
        policy=TransferPolicy(body.policy),
        expiry_ms=body.expiry_ms,
    )
    assert chain.supply(NEW) == body.supply


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "N" * 65}, "name"),
        ({"name": "NAC\ncoin"}, "name"),
        ({"name": "coin\u200b"}, "name"),
        ({"name": "\x00"}, "name"),
        ({"decimals": MAX_DECIMALS + 1}, "decimals"),
        ({"policy": "closed"}, "policy"),
        ({"policy": "OPEN"}, "policy"),
        ({"reissuable": False, "supply": 0}, "supply"),
        ({"reissuable": False, "supply": 10, "cap": 10}, "cap"),
        ({"supply": 1_001, "cap": 1_000}, "cap"),
        ({"expiry_ms": "this block"}, "expiry_ms"),
        ({"expiry_ms": 1}, "expiry_ms"),
    ],
)
def test_invalid_asset_terms(
    chain: Chain, sign: Sign, make_block: MakeBlock, terms: dict[str, Any], field: str
) -> None:
    if terms.get("expiry_ms") == "this block":
        terms = {"expiry_ms": chain.head.timestamp_ms + BLOCK_INTERVAL_MS}
    cause = refuse_transaction(chain, make_block, sign(chain.issuer, issue_body(NEW, **terms)), InvalidAssetTerms)
    assert cause.details == {"field": field}


# --- mint and burn: not_asset_issuer, asset_not_reissuable -----------------------------------


def test_asset_issuer(
    make_chain: Callable[..., Chain], keys: Callable[[str], SigningKey], sign: Sign, make_block: MakeBlock
) -> None:
    """An asset's issuer mints and burns it, role or not."""
    chain = _chain_with_bobs_asset(make_chain, keys)
    txs = [
        sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 500)),
        sign(chain.issuer, Burn(ASSET, 400), nonce=1),
        sign(chain.bob, Mint(NEW, chain.alice.public_key, 50)),
        sign(chain.bob, Burn(NEW, 30), nonce=1),
    ]
    accept(chain, make_block(chain, txs))
    assert chain.balance(chain.bob) == 500 and chain.balance(chain.issuer) == 999_600
    assert chain.supply() == 1_001_100 and chain.asset_state().holders == 3
    assert chain.balance(chain.alice, NEW) == 50 and chain.balance(chain.bob, NEW) == 70
    assert chain.supply(NEW) == 120


@pytest.mark.parametrize("kind", ["mint", "burn"])
def test_invalid_not_asset_issuer(
    make_chain: Callable[..., Chain],
    keys: Callable[[str], SigningKey],
    sign: Sign,
    make_block: MakeBlock,
    kind: str,
) -> None:
    chain = _chain_with_bobs_asset(make_chain, keys)

    def body(asset: str) -> Body:
        return Mint(asset, chain.alice.public_key, 5) if kind == "mint" else Burn(asset, 5)

    # A holder is not the issuer; nor is an account with the issuer role, of another's asset.
    for sender, asset in [(chain.alice, ASSET), (chain.bob, ASSET), (chain.issuer, NEW)]:
        cause = refuse_transaction(chain, make_block, sign(sender, body(asset)), NotAssetIssuer)
        assert cause.details == {"asset": asset}
    assert chain.balance(chain.alice) == 1_000


def test_reissuable(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """A fixed supply is burned, never minted; a reissuable one is minted too."""
    _issue(chain, sign, make_block, reissuable=False, supply=100)
    accept(chain, make_block(chain, [sign(chain.issuer, Burn(NEW, 40), nonce=1)]))
    assert chain.supply(NEW) == 60
    accept(chain, make_block(chain, [sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 40), nonce=2)]))
    assert chain.supply(ASSET) == 1_001_040


def test_invalid_asset_not_reissuable(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _issue(chain, sign, make_block, reissuable=False, supply=100)
    tx = sign(chain.issuer, Mint(NEW, chain.bob.public_key, 1), nonce=1)
    cause = refuse_transaction(chain, make_block, tx, AssetNotReissuable)
    assert cause.details == {"asset": NEW}
    assert chain.supply(NEW) == 100


# --- mint: supply_cap_exceeded and supply_overflow ------------------------------------------


def test_supply_cap(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """Minting reaches the cap exactly; a burn makes room again."""
    _issue(chain, sign, make_block, supply=100, cap=1_000)
    accept(chain, make_block(chain, [sign(chain.issuer, Mint(NEW, chain.bob.public_key, 900), nonce=1)]))
    assert chain.supply(NEW) == 1_000
    txs = [
        sign(chain.issuer, Burn(NEW, 50), nonce=2),
        sign(chain.issuer, Mint(NEW, chain.alice.public_key, 50), nonce=3),
    ]
    accept(chain, make_block(chain, txs))
    assert chain.supply(NEW) == 1_000 and chain.balance(chain.alice, NEW) == 50


def test_invalid_supply_cap_exceeded(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    _issue(chain, sign, make_block, supply=100, cap=1_000)
    tx = sign(chain.issuer, Mint(NEW, chain.bob.public_key, 901), nonce=1)
    cause = refuse_transaction(chain, make_block, tx, SupplyCapExceeded)
    assert cause.details == {"asset": NEW, "amount": 901, "supply": 100, "cap": 1_000}
    # Two mints that fit alone, not together.
    first = sign(chain.issuer, Mint(NEW, chain.bob.public_key, 600), nonce=1)
    second = sign(chain.issuer, Mint(NEW, chain.alice.public_key, 301), nonce=2)
    cause = refuse_transaction(chain, make_block, second, SupplyCapExceeded, before=[first])
    assert cause.details == {"asset": NEW, "amount": 301, "supply": 700, "cap": 1_000}


def test_invalid_supply_overflow_in_one_block(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """Without a cap of its own, an asset's supply stops at ``MAX_SUPPLY``; each asset counts alone."""
    _issue(chain, sign, make_block, supply=MAX_SUPPLY - 10)
    first = sign(chain.issuer, Mint(NEW, chain.bob.public_key, 6), nonce=1)
    other_asset = sign(chain.issuer, Mint(ASSET, chain.bob.public_key, 6), nonce=2)
    second = sign(chain.issuer, Mint(NEW, chain.bob.public_key, 5), nonce=3)
    cause = refuse_transaction(chain, make_block, second, SupplyOverflow, before=[first, other_asset])
    assert cause.details == {"asset": NEW, "amount": 5, "supply": MAX_SUPPLY - 4}


# --- transfer: memo_too_long -------------------------------------------------------------------


@pytest.mark.parametrize(
    "memo",
    ["", "invoice 2031-07", "森林組合 2031年度 会費", "x" * MAX_MEMO_BYTES, "é" * 128, "€" * 85, "\U0001f33e" * 64],
)
def test_memo(chain: Chain, sign: Sign, make_block: MakeBlock, memo: str) -> None:
    """A memo of up to 256 bytes in UTF-8 is carried, whatever its length in characters."""
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10, memo))
    built = make_block(chain, [tx])
    accept(chain, built)
    assert built.block.transactions[0].body == Transfer(ASSET, chain.bob.public_key, 10, memo)
    assert chain.balance(chain.bob) == 10


@pytest.mark.parametrize(
    ("memo", "size"),
    [("x" * (MAX_MEMO_BYTES + 1), 257), ("é" * 129, 258), ("€" * 86, 258), ("\U0001f33e" * 64 + "x", 257)],
)
def test_invalid_memo_too_long(chain: Chain, sign: Sign, make_block: MakeBlock, memo: str, size: int) -> None:
    assert len(memo) <= MAX_MEMO_BYTES + 1 and len(memo.encode()) == size
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10, memo))
    cause = refuse_transaction(chain, make_block, tx, MemoTooLong)
    assert cause.details == {"bytes": size, "limit": MAX_MEMO_BYTES}


# --- transfer: memo_not_printable -------------------------------------------------------------


@pytest.mark.parametrize(
    ("memo", "position"),
    [("line one\nline two", 8), ("\x1b[2Kamount 1000000", 0), ("tab\there", 3), ("pay \u202egnp.exe", 4)],
)
def test_invalid_memo_not_printable(
    chain: Chain, sign: Sign, make_block: MakeBlock, memo: str, position: int
) -> None:
    """A line break, a terminal escape, a tab or a bidirectional override could make what a
    wallet shows of the transfer lie: refused, whatever the memo's length."""
    tx = sign(chain.alice, Transfer(ASSET, chain.bob.public_key, 10, memo))
    cause = refuse_transaction(chain, make_block, tx, MemoNotPrintable)
    assert cause.details == {"position": position}

