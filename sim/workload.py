"""The simulated clients: what each of them sends next.

Four clients hold two assets from genesis: ``NAC``, the network's open and
reissuable coin, and ``VOUCHER``, open with a fixed supply, which expires in the
middle of the run: from the first block at or past its expiry time the chain
returns every balance of it to its issuer. Client 0 is the treasury, issuer of
both and holder of the issuer role. Once the run starts it issues ``BOND``, a
restricted asset, approves two clients to hold it, and then goes round a cycle
of steps in the order its seed drew: restricted transfers, mints and burns, a
client frozen in NAC and let go again, a holder's approval revoked and given
back, vouchers burned. The other clients send, at each nonce, the asset the
plan names for it, or NAC when the state does not allow that (not issued yet,
expired, not held, not approved, frozen), to the next client that may receive it.

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
from mura.chain.keys import SigningKey, sha256
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
    sign_transaction,
)

CHAIN_ID = "mura-sim"
CLIENT_COUNT = 4
#: The client that issues every asset.
TREASURY = 0
NAC = "NAC"
VOUCHER = "VOUCHER"
BOND = "BOND"
#: Each client's opening balances, in smallest units.
CLIENT_NAC = 10**12
CLIENT_VOUCHERS = 10**6
BOND_SUPPLY = 10**6
BOND_CAP = BOND_SUPPLY + 10**4
#: The window VOUCHER's expiry time is drawn from (virtual ms; genesis is at 0): faults
#: heal from 3.5 s on, so it falls in the fault phase or soon after.
VOUCHER_EXPIRY_MS = (1_000, 6_000)
#: The treasury's first steps, in order.
OPENING = ("issue_bond", "approve_first_holder", "approve_second_holder")
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
)


def derive_key(label: str) -> SigningKey:
    """A fixed key per label, so runs are reproducible and signatures cacheable."""
    return SigningKey.from_private_bytes(sha256(label.encode()))


CLIENT_KEYS = tuple(derive_key(f"sim-client-{index}") for index in range(CLIENT_COUNT))


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
    #: For each client but the treasury, the asset it sends at each nonce (nonce modulo the length).
    preferences: tuple[tuple[str, ...], ...]

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
            pattern = [NAC, NAC, VOUCHER, BOND]
            rng.shuffle(pattern)
            preferences.append(tuple(pattern))
        return cls(
            voucher_expiry_ms=rng.randrange(*VOUCHER_EXPIRY_MS),
            bond_holders=(first, second),
            frozen_client=rng.choice(others),
            treasury_cycle=tuple(cycle),
            preferences=tuple(preferences),
        )

    def treasury_step(self, nonce: int) -> str:
        if nonce < len(OPENING):
            return OPENING[nonce]
        return self.treasury_cycle[(nonce - len(OPENING)) % len(self.treasury_cycle)]

    def preference(self, client: int, nonce: int) -> str:
        pattern = self.preferences[client - 1]
        return pattern[nonce % len(pattern)]


def genesis_assets(plan: Plan) -> list[GenesisAsset]:
    """NAC and VOUCHER, issued by the treasury, each client holding some of both."""
    treasury = CLIENT_KEYS[TREASURY].public_key

    def terms(asset: str, name: str, *, reissuable: bool, expiry_ms: int) -> AssetTerms:
        return AssetTerms(asset, name, 2, treasury, reissuable, 0, treasury, TransferPolicy.OPEN, expiry_ms)

    return [
        GenesisAsset(
            terms(NAC, "Nishiawakura Coin", reissuable=True, expiry_ms=0),
            tuple((key.public_key, CLIENT_NAC) for key in CLIENT_KEYS),
        ),
        GenesisAsset(
            terms(VOUCHER, "Forest Festival Voucher", reissuable=False, expiry_ms=plan.voucher_expiry_ms),
            tuple((key.public_key, CLIENT_VOUCHERS) for key in CLIENT_KEYS),
        ),
    ]


class TransactionSigner:
    """Signs client transactions once per run: Ed25519 is deterministic, so a repeated
    transaction is the same one and needs no second signature."""

    def __init__(self) -> None:
        self._signed: dict[tuple[int, int, Body], Transaction] = {}

    def sign(self, client: int, nonce: int, body: Body) -> Transaction:
        key = (client, nonce, body)
        if key not in self._signed:
            self._signed[key] = sign_transaction(CLIENT_KEYS[client], chain_id=CHAIN_ID, nonce=nonce, body=body)
        return self._signed[key]


def next_transactions(
    state: StateReader, *, plan: Plan, signer: TransactionSigner, timestamp_ms: int
) -> list[Transaction]:
    """Each client's transaction at its next nonce over ``state`` (treasury first), for a
    block dated ``timestamp_ms``; a client with nothing it may send offers nothing."""
    view = _View(PendingState(state))
    transactions = []
    for client, key in enumerate(CLIENT_KEYS):
        nonce = view.pending.account(key.public_key).nonce
        amount = 1 + (timestamp_ms + client) % 97
        if client == TREASURY:
            body = _treasury_body(view, plan, plan.treasury_step(nonce), amount)
        else:
            body = view.transfer(client, plan.preference(client, nonce), amount, memo=f"invoice {nonce}")
        if body is not None:
            transactions.append(signer.sign(client, nonce, body))
    return transactions


class _View:
    """What the committed state allows a client to send."""

    def __init__(self, pending: PendingState) -> None:
        self.pending = pending

    def live(self, asset: str) -> AssetTerms | None:
        """``asset``'s terms if it is issued and not expired."""
        terms = self.pending.asset(asset)
        if terms is None or self.pending.asset_state(asset).expired:
            return None
        return terms

    def may_move(self, terms: AssetTerms, client: int) -> bool:
        """Whether ``client`` may send or receive ``terms``' asset: not frozen in it, and
        approved if it is restricted."""
        address = CLIENT_KEYS[client].public_key
        if self.pending.frozen(terms.asset, address):
            return False
        return not terms.restricted or self.pending.approved(terms, address)

    def recipient(self, terms: AssetTerms, sender: int) -> int | None:
        """The next client after ``sender`` that may receive ``terms``' asset."""
        for step in range(1, CLIENT_COUNT):
            client = (sender + step) % CLIENT_COUNT
            if self.may_move(terms, client):
                return client
        return None

    def transfer(self, sender: int, asset: str, amount: int, *, memo: str = "") -> Transfer | None:
        """A transfer of ``asset`` if ``sender`` may send it, otherwise of NAC; None if neither."""
        for choice in dict.fromkeys((asset, NAC)):
            terms = self.live(choice)
            if terms is None or not self.may_move(terms, sender):
                continue
            if self.pending.balance(CLIENT_KEYS[sender].public_key, choice) < amount:
                continue
            recipient = self.recipient(terms, sender)
            if recipient is not None:
                return Transfer(choice, CLIENT_KEYS[recipient].public_key, amount, memo)
        return None

    def balance(self, client: int, asset: str) -> int:
        return self.pending.balance(CLIENT_KEYS[client].public_key, asset)


def _treasury_body(view: _View, plan: Plan, step: str, amount: int) -> Body | None:
    """The treasury's ``step``, or a NAC transfer when the state does not allow it now."""
    body = _TREASURY_STEPS[step](view, plan, amount)
    return body if body is not None else view.transfer(TREASURY, NAC, amount)


def _issue_bond(view: _View, plan: Plan, amount: int) -> Body | None:
    if view.pending.asset(BOND) is not None:
        return None
    return IssueAsset(BOND, "Village Forest Bond", 0, BOND_SUPPLY, True, BOND_CAP, b"", "restricted", 0)


def _approve(holder: int) -> Callable[[_View, Plan, int], Body | None]:
    def step(view: _View, plan: Plan, amount: int) -> Body | None:
        if view.pending.asset(BOND) is None:
            return None
        return ApproveHolder(BOND, CLIENT_KEYS[plan.bond_holders[holder]].public_key)

    return step


def _revoke_second_holder(view: _View, plan: Plan, amount: int) -> Body | None:
    if view.pending.asset(BOND) is None:
        return None
    return RevokeHolder(BOND, CLIENT_KEYS[plan.bond_holders[1]].public_key)


def _bond_holder(view: _View, plan: Plan) -> tuple[AssetTerms, bytes] | None:
    """BOND's terms and the first approved holder that may receive it now."""
    terms = view.live(BOND)
    if terms is None:
        return None
    for holder in plan.bond_holders:
        if view.may_move(terms, holder):
            return terms, CLIENT_KEYS[holder].public_key
    return None


def _bond_transfer(view: _View, plan: Plan, amount: int) -> Body | None:
    found = _bond_holder(view, plan)
    return None if found is None else Transfer(BOND, found[1], amount, "coupon")


def _bond_mint(view: _View, plan: Plan, amount: int) -> Body | None:
    found = _bond_holder(view, plan)
    if found is None or view.pending.asset_state(BOND).supply + amount > BOND_CAP:
        return None
    return Mint(BOND, found[1], amount)


def _nac_mint(view: _View, plan: Plan, amount: int) -> Body | None:
    terms = view.live(NAC)
    recipient = None if terms is None else view.recipient(terms, TREASURY)
    return None if recipient is None else Mint(NAC, CLIENT_KEYS[recipient].public_key, amount)


def _nac_burn(view: _View, plan: Plan, amount: int) -> Body | None:
    return Burn(NAC, amount) if view.balance(TREASURY, NAC) >= amount else None


def _nac_transfer(view: _View, plan: Plan, amount: int) -> Body | None:
    return view.transfer(TREASURY, NAC, amount, memo="allowance")


def _freeze(view: _View, plan: Plan, amount: int) -> Body | None:
    return Freeze(NAC, CLIENT_KEYS[plan.frozen_client].public_key)


def _unfreeze(view: _View, plan: Plan, amount: int) -> Body | None:
    return Unfreeze(NAC, CLIENT_KEYS[plan.frozen_client].public_key)


def _voucher_burn(view: _View, plan: Plan, amount: int) -> Body | None:
    """Burn vouchers the treasury holds (after the expiry, those that lapsed back to it)."""
    return Burn(VOUCHER, amount) if view.balance(TREASURY, VOUCHER) >= amount else None


_TREASURY_STEPS: dict[str, Callable[[_View, Plan, int], Body | None]] = {
    "issue_bond": _issue_bond,
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
}
