"""Tests for chain/state.py: assets that expire, and the automatic step that returns
their holders' balances to the issuer (``process_expiries``).

As in ``test_state``, the rule ``asset_expired`` has ``test_expiry`` (what an
expired asset may still do) and ``test_invalid_asset_expired``. The lapse is
bounded per block by ``LAPSE_PER_BLOCK``, which tests set small through the
module attribute ``process_expiries`` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

import mura.chain.state as state_module
from mura.chain.assets import AssetState, split_asset_key
from mura.chain.errors import AssetExpired, StateRootMismatch
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.pending import EXPIRY_PREFIX
from mura.chain.state import GenesisAsset, StateChanges, apply_block
from mura.chain.transaction import Freeze, Mint, Transaction, Transfer
from mura.tests.chain.factories import (
    ASSET,
    BLOCK_INTERVAL_MS,
    GENESIS_TIME_MS,
    Chain,
    asset_terms,
    key_named,
)
from mura.tests.chain.transition import MakeBlock, Sign, accept, refuse_block, refuse_transaction, with_header

VOUCHER = "VOUCHER"
#: The voucher expires at the third block after genesis.
EXPIRY_MS = GENESIS_TIME_MS + 3 * BLOCK_INTERVAL_MS
ISSUER_HOLDS = 1_000
HOLDERS = [key_named(f"holder-{index}") for index in range(8)]


def _voucher(
    issuer: bytes,
    holders: Sequence[SigningKey],
    *,
    asset: str = VOUCHER,
    expiry_ms: int = EXPIRY_MS,
    issuer_holds: int = ISSUER_HOLDS,
) -> GenesisAsset:
    """An expiring asset: holder ``i`` holds ``10 * (i + 1)``, the issuer ``issuer_holds``."""
    allocations = [(holder.public_key, 10 * (index + 1)) for index, holder in enumerate(holders)]
    if issuer_holds:
        allocations.append((issuer, issuer_holds))
    return GenesisAsset(asset_terms(asset, issuer, expiry_ms=expiry_ms), tuple(allocations))


@pytest.fixture
def chain(make_chain: Callable[..., Chain], keys: Callable[[str], SigningKey]) -> Chain:
    """The default chain, and ``VOUCHER`` held by eight holders and the issuer, expiring at the third block."""
    return make_chain(assets=[_voucher(keys("issuer").public_key, HOLDERS)])


@pytest.fixture
def lapse_per_block(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``lapse_per_block(n)``: the expiry step returns at most ``n`` balances a block."""

    def set_bound(bound: int) -> None:
        monkeypatch.setattr(state_module, "LAPSE_PER_BLOCK", bound)

    return set_bound


def _next_block(chain: Chain, make_block: MakeBlock, transactions: Sequence[Transaction] = ()) -> StateChanges:
    built = make_block(chain, list(transactions))
    assert built.refused == [], [(error.rule, error.message) for _, error in built.refused]
    return accept(chain, built)


def _returned(changes: StateChanges, asset: str) -> list[bytes]:
    """The accounts whose balance of ``asset`` the block emptied."""
    emptied = [address for (changed, address), balance in changes.balances.items() if changed == asset and not balance]
    return sorted(emptied)


def _assert_consistent(chain: Chain, asset: str) -> None:
    balances = chain.state.balances(asset)
    assert chain.supply(asset) == sum(balances.values())
    assert chain.asset_state(asset).holders == len(balances) == sum(1 for value in balances.values() if value > 0)


def _pending_expiries(chain: Chain) -> tuple[tuple[int, str], ...]:
    """The assets queued to lapse, as the state holds them: ``(expiry_ms, asset)`` soonest first."""
    queued = sorted(key[len(EXPIRY_PREFIX) :] for key in chain.state.entries if key.startswith(EXPIRY_PREFIX))
    return tuple((int.from_bytes(suffix[:8], "big"), split_asset_key(suffix[8:])[0]) for suffix in queued)


# --- asset_expired -------------------------------------------------------------------------


def test_expiry(chain: Chain, sign: Sign, make_block: MakeBlock, lapse_per_block: Callable[[int], None]) -> None:
    """Before its expiry an asset moves freely; after it, a holder whose balance has not
    lapsed yet may still send it back to its issuer."""
    first, last = HOLDERS[0], max(HOLDERS, key=lambda holder: holder.public_key)
    _next_block(chain, make_block, [sign(first, Transfer(VOUCHER, HOLDERS[1].public_key, 1))])
    _next_block(chain, make_block)
    assert not chain.asset_state(VOUCHER).expired
    lapse_per_block(1)
    _next_block(chain, make_block)  # the expiry block returns one balance: not the last holder's
    assert chain.head.timestamp_ms == EXPIRY_MS and chain.asset_state(VOUCHER).expired
    held = chain.balance(last, VOUCHER)
    assert held > 0
    _next_block(chain, make_block, [sign(last, Transfer(VOUCHER, chain.issuer.public_key, held))])
    assert chain.balance(last, VOUCHER) == 0
    _assert_consistent(chain, VOUCHER)


def test_invalid_asset_expired(
    chain: Chain, sign: Sign, make_block: MakeBlock, lapse_per_block: Callable[[int], None]
) -> None:
    lapse_per_block(1)
    for _ in range(3):
        _next_block(chain, make_block)
    last = max(HOLDERS, key=lambda holder: holder.public_key)
    assert chain.balance(last, VOUCHER) > 0 and chain.asset_state(VOUCHER).expired
    for recipient in (HOLDERS[0], chain.alice, last):
        transfer = sign(last, Transfer(VOUCHER, recipient.public_key, 1))
        cause = refuse_transaction(chain, make_block, transfer, AssetExpired)
        assert cause.details == {"asset": VOUCHER}
    for recipient in (chain.issuer, chain.alice):
        mint = sign(chain.issuer, Mint(VOUCHER, recipient.public_key, 1))
        cause = refuse_transaction(chain, make_block, mint, AssetExpired)
        assert cause.details == {"asset": VOUCHER}
    # Other assets are not touched.
    _next_block(chain, make_block, [sign(chain.alice, Transfer(ASSET, last.public_key, 5))])
    assert chain.balance(last) == 5


def test_invalid_asset_expired_in_the_expiry_block(chain: Chain, sign: Sign, make_block: MakeBlock) -> None:
    """The lapse comes before the expiry block's transactions: they see the asset expired."""
    _next_block(chain, make_block)
    _next_block(chain, make_block)
    tx = sign(chain.issuer, Transfer(VOUCHER, chain.alice.public_key, 1))
    cause = refuse_transaction(chain, make_block, tx, AssetExpired, timestamp_ms=EXPIRY_MS)
    assert cause.details == {"asset": VOUCHER}


# --- the lapse ----------------------------------------------------------------------------


def test_nothing_lapses_before_the_expiry(chain: Chain, make_block: MakeBlock) -> None:
    before = chain.state.balances(VOUCHER)
    changes = accept(chain, make_block(chain, [], timestamp_ms=EXPIRY_MS - 1))
    assert changes.entries == {} and chain.state.balances(VOUCHER) == before
    assert chain.asset_state(VOUCHER) == AssetState(supply=sum(before.values()), holders=9)
    assert _pending_expiries(chain) == ((EXPIRY_MS, VOUCHER),)


def test_lapse_over_several_blocks(
    chain: Chain, sign: Sign, make_block: MakeBlock, lapse_per_block: Callable[[int], None]
) -> None:
    """Nine holders (the issuer among them), three balances a block: the lapse takes three
    blocks and a fourth finds none left. Every block keeps the supply; the issuer's own
    balance is never counted as lapsed; a frozen balance lapses like the rest."""
    lapse_per_block(3)
    _next_block(chain, make_block, [sign(chain.issuer, Freeze(VOUCHER, HOLDERS[3].public_key))])
    supply = chain.supply(VOUCHER)
    holders_before = chain.state.balances(VOUCHER)
    _next_block(chain, make_block)
    returned_so_far: list[bytes] = []
    lapsed = 0
    states = []
    for _ in range(4):
        changes = _next_block(chain, make_block)
        returned = _returned(changes, VOUCHER)
        assert len(returned) <= 3
        assert chain.issuer.public_key not in returned
        # In account order: each block's after the last block's.
        assert all(address > previous for address in returned for previous in returned_so_far)
        returned_so_far += returned
        lapsed += sum(holders_before[address] for address in returned)
        state = chain.asset_state(VOUCHER)
        states.append(state)
        assert state.supply == supply and state.expired
        assert state.lapsed == lapsed
        assert chain.balance(chain.issuer, VOUCHER) == ISSUER_HOLDS + lapsed
        _assert_consistent(chain, VOUCHER)
    assert sorted(returned_so_far) == sorted(holder.public_key for holder in HOLDERS)
    assert [state.lapse_complete for state in states] == [False, False, False, True]
    lapsed_in_all = supply - ISSUER_HOLDS
    assert states[-1] == AssetState(
        supply=supply, holders=1, expired=True, lapsed=lapsed_in_all, lapse_complete=True, frozen=1
    )
    assert _pending_expiries(chain) == ()
    # Done: later blocks leave it alone.
    assert _next_block(chain, make_block).entries == {}


def test_lapse_of_holders_within_the_bound_completes_in_the_expiry_block(
    chain: Chain, make_block: MakeBlock, lapse_per_block: Callable[[int], None]
) -> None:
    lapse_per_block(10)
    changes = accept(chain, make_block(chain, [], timestamp_ms=EXPIRY_MS + 60_000))
    assert len(_returned(changes, VOUCHER)) == 8
    assert chain.asset_state(VOUCHER).lapse_complete and _pending_expiries(chain) == ()
    assert chain.state.balances(VOUCHER) == {chain.issuer.public_key: chain.supply(VOUCHER)}


def test_lapse_shares_the_budget_in_expiry_then_id_order(
    make_chain: Callable[..., Chain],
    keys: Callable[[str], SigningKey],
    sign: Sign,
    make_block: MakeBlock,
    lapse_per_block: Callable[[int], None],
) -> None:
    """ZULU expires first, ALPHA and BRAVO together later, all before one block: three
    balances a block go to ZULU's two holders, then one of ALPHA's; later blocks finish
    ALPHA before they start BRAVO. (The issuer, holding what lapsed, is a balance the
    step reads too, and counts in the bound.) BRAVO is expired from the first block, its
    lapse begun or not: it moves only back to its issuer."""
    issuer = keys("issuer").public_key
    expiry = GENESIS_TIME_MS + BLOCK_INTERVAL_MS
    holders = HOLDERS[:2]
    names = ("ZULU", "ALPHA", "BRAVO")
    assets = [
        _voucher(issuer, holders, asset="BRAVO", expiry_ms=expiry, issuer_holds=0),
        _voucher(issuer, holders, asset="ZULU", expiry_ms=expiry - 500, issuer_holds=0),
        _voucher(issuer, holders, asset="ALPHA", expiry_ms=expiry, issuer_holds=0),
    ]
    chain = make_chain(assets=assets)
    assert _pending_expiries(chain) == ((expiry - 500, "ZULU"), (expiry, "ALPHA"), (expiry, "BRAVO"))
    lapse_per_block(3)
    bravo_moves = sign(holders[0], Transfer("BRAVO", holders[1].public_key, 1))
    cause = refuse_transaction(chain, make_block, bravo_moves, AssetExpired, timestamp_ms=expiry)
    assert cause.details == {"asset": "BRAVO"}
    returned: list[tuple[str, bytes]] = []
    per_block: list[dict[str, int]] = []
    while not all(chain.asset_state(asset).lapse_complete for asset in names):
        assert len(per_block) < 5
        changes = _next_block(chain, make_block)
        block_returned = [(asset, address) for asset in names for address in _returned(changes, asset)]
        assert len(block_returned) <= 3
        returned += block_returned
        per_block.append({asset: sum(1 for name, _ in block_returned if name == asset) for asset in names})
        for asset in names:
            _assert_consistent(chain, asset)
            state = chain.asset_state(asset)
            assert state.supply == 30
            assert state.lapsed == 30 - sum(
                balance for address, balance in chain.state.balances(asset).items() if address != issuer
            )
    assert per_block[0] == {"ZULU": 2, "ALPHA": 1, "BRAVO": 0}
    assert all(chain.asset_state(asset).expired for asset in names)
    assert [asset for asset, _ in returned] == ["ZULU", "ZULU", "ALPHA", "ALPHA", "BRAVO", "BRAVO"]
    assert _pending_expiries(chain) == ()


def test_lapse_block_applied_agrees_with_the_built_one(
    chain: Chain, make_block: MakeBlock, lapse_per_block: Callable[[int], None]
) -> None:
    """A validator applying the proposer's expiry blocks computes the same state roots; a
    block that leaves the lapse out is refused."""
    lapse_per_block(3)
    for timestamp in (EXPIRY_MS, EXPIRY_MS + 1, EXPIRY_MS + 2):
        built = make_block(chain, [], timestamp_ms=timestamp)
        applied = apply_block(chain.state, chain.head, built.block, rules=chain.rules, signatures=SignatureCache())
        assert applied == built.changes and applied.state_root == built.block.header.state_root
        assert built.changes.entries  # each of these blocks returns balances
        skipped = with_header(built.block, state_root=chain.head.state_root)
        refuse_block(chain, skipped, StateRootMismatch)
        chain.commit(built)
    assert chain.asset_state(VOUCHER).lapsed == sum(10 * (index + 1) for index in range(8))
