"""The simulated clients: what each of them sends next.

Four clients hold three assets from genesis: ``NAC``, the network's open and
reissuable coin; ``VOUCHER``, open with a fixed supply, which expires in the
middle of the run (from the first block at or past its expiry time the chain
returns every balance of it to its issuer); and ``JPYT``, an open yen coin with
a fixed supply, the settlement asset of the village's bond. Client 0 is the
treasury, issuer of all of them and holder of the issuer role. Once the run
starts it issues the bond ``FOREST-ROAD`` (``bond_workload``: an offering,
coupons and a redemption the chain pays) and ``BOND``, a restricted asset,
approves two clients to hold BOND, opens the bond's offering, and then goes
round a cycle of steps in the order its seed drew: restricted transfers, mints
and burns, a client frozen in NAC and let go again, a holder's approval revoked
and given back, vouchers burned, proceeds of the bond spent; whenever a payment
of the bond was missed it first tops up the paying account. The other clients
approve the bond's holders (the one that is its registrar), subscribe to its
offering, and otherwise send, at each nonce, what the plan names for it: a
trade of the bond against JPYT, or a transfer of an asset, or NAC when the
state does not allow that (not issued yet, expired, not held, not approved,
frozen), to the next client that may receive it.

Every choice reads the committed state, so what a proposer offers depends only
on the state it builds on and on its clock; amounts vary with the time, so
proposals made at different times differ. A transaction can still be refused in
its block (a freeze or the expiry ahead of it in the same block): it is left
out, and its client chooses again on the next state.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.pending import PendingState, StateReader
from mura.chain.state import GenesisAsset
from mura.chain.transaction import (
    ApproveHolder,
    Body,
    Burn,
    Freeze,
    IssueAsset,
    Mint,
    RevokeHolder,
    Transaction,
    Transfer,
    Unfreeze,
)
from mura.sim import bond_workload
from mura.sim.bond_workload import BondPlan, jpyt_allocations
from mura.sim.clients import (
    BOND,
    CHAIN_ID,
    CLIENT_COUNT,
    CLIENT_KEYS,
    JPYT,
    NAC,
    PAYING,
    ROAD,
    TREASURY,
    VOUCHER,
    ClientView,
    TransactionSigner,
    derive_key,
)

__all__ = [
    "BOND",
    "CHAIN_ID",
    "CLIENT_COUNT",
    "CLIENT_KEYS",
    "JPYT",
    "NAC",
    "PAYING",
    "ROAD",
    "TREASURY",
    "VOUCHER",
    "Plan",
    "TransactionSigner",
    "derive_key",
    "genesis_assets",
    "next_transactions",
]

#: Each client's opening balances, in smallest units.
CLIENT_NAC = 10**12
CLIENT_VOUCHERS = 10**6
BOND_SUPPLY = 10**6
BOND_CAP = BOND_SUPPLY + 10**4
#: The window VOUCHER's expiry time is drawn from (virtual ms; genesis is at 0): faults
#: heal from 3.5 s on, so it falls in the fault phase or soon after.
VOUCHER_EXPIRY_MS = (1_000, 6_000)
#: The treasury's first steps, in order.
OPENING = ("issue_road", "issue_bond", "open_offering", "approve_first_holder", "approve_second_holder")
#: The steps it then takes round and round, in an order drawn from the seed.
CYCLE = (
    "bond_transfer",
    "bond_mint",
    "nac_mint",
    "nac_burn",
    "nac_transfer",
    "freeze",
    "unfreeze",
    "revoke_second_holder",
    "approve_second_holder",
    "voucher_burn",
    "spend_proceeds",
)


@dataclass(frozen=True, slots=True)
class Plan:
    """One run's workload, drawn from its seed."""

    #: When VOUCHER expires, in virtual ms.
    voucher_expiry_ms: int
    #: The two clients the treasury approves to hold BOND (the second is revoked and approved again).
    bond_holders: tuple[int, int]
    #: The client the treasury freezes in NAC and lets go again.
    frozen_client: int
    #: The treasury's steps after ``OPENING``, round and round.
    treasury_cycle: tuple[str, ...]
    #: For each client but the treasury, the asset it sends at each nonce (nonce modulo the
    #: length; ROAD: a trade of the bond).
    preferences: tuple[tuple[str, ...], ...]
    #: The village's bond and what the residents do with it.
    road: BondPlan

    @classmethod
    def draw(cls, seed: int) -> Plan:
        # A draw of its own: the scenario's draws stay what they were.
        rng = random.Random(f"workload-{seed}")
        others = [client for client in range(CLIENT_COUNT) if client != TREASURY]
        first, second = rng.sample(others, 2)
        cycle = list(CYCLE)
        rng.shuffle(cycle)
        preferences = []
        for _ in others:
            pattern = [NAC, NAC, VOUCHER, BOND, ROAD]
            rng.shuffle(pattern)
            preferences.append(tuple(pattern))
        return cls(
            voucher_expiry_ms=rng.randrange(*VOUCHER_EXPIRY_MS),
            bond_holders=(first, second),
            frozen_client=rng.choice(others),
            treasury_cycle=tuple(cycle),
            preferences=tuple(preferences),
            road=BondPlan.draw(seed),
        )

    def treasury_step(self, nonce: int) -> str:
        if nonce < len(OPENING):
            return OPENING[nonce]
        return self.treasury_cycle[(nonce - len(OPENING)) % len(self.treasury_cycle)]

    def preference(self, client: int, nonce: int) -> str:
        pattern = self.preferences[client - 1]
        return pattern[nonce % len(pattern)]


def genesis_assets(plan: Plan) -> list[GenesisAsset]:
    """NAC, VOUCHER and JPYT, issued by the treasury, each client holding some of each (and
    the bond's paying account some JPYT)."""
    treasury = CLIENT_KEYS[TREASURY].public_key

    def terms(asset: str, name: str, decimals: int, *, reissuable: bool, expiry_ms: int) -> AssetTerms:
        return AssetTerms(asset, name, decimals, treasury, reissuable, 0, treasury, TransferPolicy.OPEN, expiry_ms)

    return [
        GenesisAsset(
            terms(NAC, "Nishiawakura Coin", 2, reissuable=True, expiry_ms=0),
            tuple((key.public_key, CLIENT_NAC) for key in CLIENT_KEYS),
        ),
        GenesisAsset(
            terms(VOUCHER, "Forest Festival Voucher", 2, reissuable=False, expiry_ms=plan.voucher_expiry_ms),
            tuple((key.public_key, CLIENT_VOUCHERS) for key in CLIENT_KEYS),
        ),
        GenesisAsset(terms(JPYT, "Digital Yen", 0, reissuable=False, expiry_ms=0), jpyt_allocations(plan.road)),
    ]


def next_transactions(
    state: StateReader, *, plan: Plan, signer: TransactionSigner, timestamp_ms: int
) -> list[Transaction]:
    """Each client's transaction at its next nonce over ``state`` (treasury first), for a
    block dated ``timestamp_ms``; a client with nothing it may send offers nothing."""
    view = ClientView(PendingState(state))
    transactions = []
    for client, key in enumerate(CLIENT_KEYS):
        nonce = view.pending.account(key.public_key).nonce
        amount = 1 + (timestamp_ms + client) % 97
        if client == TREASURY:
            body = _treasury_body(view, plan, signer, nonce, amount, timestamp_ms)
        else:
            body = _resident_body(view, plan, signer, client, nonce, amount, timestamp_ms)
        if body is not None:
            transactions.append(signer.sign(client, nonce, body))
    return transactions


def _resident_body(
    view: ClientView, plan: Plan, signer: TransactionSigner, client: int, nonce: int, amount: int, timestamp_ms: int
) -> Body | None:
    """The bond's steps first (approvals, subscriptions), then what the plan names for ``nonce``."""
    body = bond_workload.resident_body(view, plan.road, client, timestamp_ms)
    if body is not None:
        return body
    asset = plan.preference(client, nonce)
    if asset == ROAD:
        body = bond_workload.trade(view, signer, client, nonce)
        asset = NAC
    return body if body is not None else view.transfer(client, asset, amount, memo=f"invoice {nonce}")


def _treasury_body(
    view: ClientView, plan: Plan, signer: TransactionSigner, nonce: int, amount: int, timestamp_ms: int
) -> Body | None:
    """The treasury's step at ``nonce`` (after the opening, topping up the bond's paying account
    first when a payment was missed), or a NAC transfer when the state does not allow it now."""
    body = bond_workload.fund_missed_payment(view) if nonce >= len(OPENING) else None
    if body is None:
        body = _TREASURY_STEPS[plan.treasury_step(nonce)](Turn(view, plan, signer, amount, timestamp_ms))
    return body if body is not None else view.transfer(TREASURY, NAC, amount)


@dataclass(frozen=True, slots=True)
class Turn:
    """What the treasury's step reads: the committed state, the plan, the run's signer, the
    amount for this block and the block's timestamp."""

    view: ClientView
    plan: Plan
    signer: TransactionSigner
    amount: int
    timestamp_ms: int


_Step = Callable[[Turn], Body | None]


def _issue_road(turn: Turn) -> Body | None:
    return bond_workload.issue_road(turn.view, turn.plan.road, turn.signer, turn.timestamp_ms)


def _open_offering(turn: Turn) -> Body | None:
    return bond_workload.open_road_offering(turn.view, turn.plan.road, turn.timestamp_ms)


def _spend_proceeds(turn: Turn) -> Body | None:
    return bond_workload.spend_proceeds(turn.view, turn.plan.road, turn.amount)


def _issue_bond(turn: Turn) -> Body | None:
    if turn.view.pending.asset(BOND) is not None:
        return None
    return IssueAsset(BOND, "Village Forest Bond", 0, BOND_SUPPLY, True, BOND_CAP, b"", "restricted", 0)


def _approve(holder: int) -> _Step:
    def step(turn: Turn) -> Body | None:
        if turn.view.pending.asset(BOND) is None:
            return None
        return ApproveHolder(BOND, CLIENT_KEYS[turn.plan.bond_holders[holder]].public_key)

    return step


def _revoke_second_holder(turn: Turn) -> Body | None:
    if turn.view.pending.asset(BOND) is None:
        return None
    return RevokeHolder(BOND, CLIENT_KEYS[turn.plan.bond_holders[1]].public_key)


def _bond_holder(turn: Turn) -> tuple[AssetTerms, bytes] | None:
    """BOND's terms and the first approved holder that may receive it now."""
    terms = turn.view.live(BOND)
    if terms is None:
        return None
    for holder in turn.plan.bond_holders:
        if turn.view.may_move(terms, holder):
            return terms, CLIENT_KEYS[holder].public_key
    return None


def _bond_transfer(turn: Turn) -> Body | None:
    found = _bond_holder(turn)
    return None if found is None else Transfer(BOND, found[1], turn.amount, "coupon")


def _bond_mint(turn: Turn) -> Body | None:
    found = _bond_holder(turn)
    if found is None or turn.view.pending.asset_state(BOND).supply + turn.amount > BOND_CAP:
        return None
    return Mint(BOND, found[1], turn.amount)


def _nac_mint(turn: Turn) -> Body | None:
    terms = turn.view.live(NAC)
    recipient = None if terms is None else turn.view.recipient(terms, TREASURY)
    return None if recipient is None else Mint(NAC, CLIENT_KEYS[recipient].public_key, turn.amount)


def _nac_burn(turn: Turn) -> Body | None:
    return Burn(NAC, turn.amount) if turn.view.balance(TREASURY, NAC) >= turn.amount else None


def _nac_transfer(turn: Turn) -> Body | None:
    return turn.view.transfer(TREASURY, NAC, turn.amount, memo="allowance")


def _freeze(turn: Turn) -> Body | None:
    return Freeze(NAC, CLIENT_KEYS[turn.plan.frozen_client].public_key)


def _unfreeze(turn: Turn) -> Body | None:
    return Unfreeze(NAC, CLIENT_KEYS[turn.plan.frozen_client].public_key)


def _voucher_burn(turn: Turn) -> Body | None:
    """Burn vouchers the treasury holds (after the expiry, those that lapsed back to it)."""
    return Burn(VOUCHER, turn.amount) if turn.view.balance(TREASURY, VOUCHER) >= turn.amount else None


_TREASURY_STEPS: dict[str, _Step] = {
    "issue_road": _issue_road,
    "issue_bond": _issue_bond,
    "open_offering": _open_offering,
    "approve_first_holder": _approve(0),
    "approve_second_holder": _approve(1),
    "revoke_second_holder": _revoke_second_holder,
    "bond_transfer": _bond_transfer,
    "bond_mint": _bond_mint,
    "nac_mint": _nac_mint,
    "nac_burn": _nac_burn,
    "nac_transfer": _nac_transfer,
    "freeze": _freeze,
    "unfreeze": _unfreeze,
    "voucher_burn": _voucher_burn,
    "spend_proceeds": _spend_proceeds,
}
