"""A small chain with a settlement asset, for the bond tests: blocks sealed at chosen times.

``BANK`` issues ``JPYT`` (0 decimals) and gives every account ``FUNDS`` of it; the
village (``ledger_fixtures.ISSUER``, which has the issuer role) issues bonds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mura.chain.assets import AssetTerms, TransferPolicy, asset_key
from mura.chain.block import Block
from mura.chain.bonds import BondState, BondTerms, Offering, Subscription
from mura.chain.errors import InvalidTransaction
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.pending import (
    BOND_PREFIX,
    SUBSCRIPTION_PREFIX,
    MemoryState,
    bond_key,
    bond_state_key,
    offering_key,
)
from mura.chain.state import GenesisAsset, StateChanges, apply_block, build_block
from mura.chain.transaction import Body, IssueBond, Transaction, sign_transaction
from mura.tests.ledger_fixtures import ACCOUNTS, CHAIN_ID, GENESIS_TIME_MS, ISSUER, RULES, VALIDATORS, genesis, key

SETTLEMENT = "JPYT"
BANK = key("bank")
FUNDS = 10_000_000
DAY_MS = 86_400_000
#: Residents beyond ``ACCOUNTS``.
RESIDENTS = [key(f"resident-{index}") for index in range(12)]


def settlement_terms() -> AssetTerms:
    return AssetTerms(
        asset=SETTLEMENT,
        name="Yen token",
        decimals=0,
        issuer=BANK.public_key,
        reissuable=True,
        cap=0,
        registrar=BANK.public_key,
        policy=TransferPolicy.OPEN,
        expiry_ms=0,
    )


def bond_body(
    bond: str = "NISHI-2031",
    *,
    units: int = 1_000,
    face: int = 10_000,
    rate: int = 5_000,
    frequency: int = 2,
    first_period_days: int = 0,
    coupons: Sequence[int] = (),
    maturity_ms: int | None = None,
    issue_ms: int = GENESIS_TIME_MS,
    policy: str = "restricted",
    paying: bytes = b"",
    proceeds: bytes = b"",
    settlement: str = SETTLEMENT,
) -> IssueBond:
    """A bond paying ``rate`` millionths a year; by default two coupons 180 and 360 days after
    genesis and maturity at 360 days."""
    times = tuple(coupons) or (GENESIS_TIME_MS + 180 * DAY_MS, GENESIS_TIME_MS + 360 * DAY_MS)
    return IssueBond(
        asset=bond,
        name="Nishiawakura forest road bond",
        units=units,
        registrar=b"",
        policy=policy,
        settlement=settlement,
        face=face,
        rate=rate,
        frequency=frequency,
        first_period_days=first_period_days,
        coupon_times=times if rate else (),
        maturity_ms=maturity_ms if maturity_ms is not None else times[-1],
        issue_ms=issue_ms,
        paying=paying,
        proceeds=proceeds,
        use_of_proceeds="forest road repair",
        green=True,
    )


@dataclass(repr=False)
class BondChain:
    """A chain in memory; every block is built as a proposer would and checked as a peer would."""

    state: MemoryState = field(default_factory=MemoryState)
    block: Block | None = None
    nonces: dict[bytes, int] = field(default_factory=dict)
    changes: list[StateChanges] = field(default_factory=list)

    def __post_init__(self) -> None:
        holders = tuple((account.public_key, FUNDS) for account in [ISSUER, *ACCOUNTS, *RESIDENTS])
        self.block, changes = genesis(GenesisAsset(settlement_terms(), holders))
        self.state.commit(changes)

    @property
    def time_ms(self) -> int:
        assert self.block is not None
        return self.block.header.timestamp_ms

    def sign(self, signer: SigningKey, body: Body) -> Transaction:
        nonce = self.nonces.get(signer.public_key, 0)
        self.nonces[signer.public_key] = nonce + 1
        return sign_transaction(signer, chain_id=CHAIN_ID, nonce=nonce, body=body)

    def seal(
        self, transactions: Sequence[Transaction] = (), *, at_ms: int | None = None
    ) -> list[tuple[Transaction, InvalidTransaction]]:
        """Seal the next block at ``at_ms`` (default: a second later); return the refused
        transactions (their nonces are given back)."""
        assert self.block is not None
        parent = self.block.header
        built = build_block(
            self.state,
            parent,
            transactions,
            proposer=VALIDATORS[parent.height % len(VALIDATORS)].public_key,
            timestamp_ms=at_ms if at_ms is not None else parent.timestamp_ms + 1000,
            rules=RULES,
            signatures=SignatureCache(),
        )
        changes = apply_block(self.state, parent, built.block, rules=RULES, signatures=SignatureCache())
        assert changes.state_root == built.changes.state_root
        assert changes.events == built.changes.events
        self.state.commit(changes)
        self.block = built.block
        self.changes.append(changes)
        for transaction, _ in built.refused:
            self.nonces[transaction.sender] = min(self.nonces[transaction.sender], transaction.nonce)
        return built.refused

    def run(self, signer: SigningKey, body: Body, *, at_ms: int | None = None) -> None:
        """One transaction in its own block; it must be accepted."""
        refused = self.seal([self.sign(signer, body)], at_ms=at_ms)
        assert not refused, refused[0][1].message

    def refuse(self, signer: SigningKey, body: Body, *, at_ms: int | None = None) -> InvalidTransaction:
        """One transaction that must be refused; the block is sealed without it."""
        refused = self.seal([self.sign(signer, body)], at_ms=at_ms)
        assert len(refused) == 1, "the transaction was accepted"
        return refused[0][1]

    # reading

    def balance(self, account: bytes, asset: str) -> int:
        return self.state.load_balance(account, asset)

    def terms(self, bond: str) -> BondTerms:
        raw = self.state.load_entry(bond_key(bond))
        assert raw is not None
        return BondTerms.decode(raw)

    def bond_state(self, bond: str) -> BondState:
        raw = self.state.load_entry(bond_state_key(bond))
        return BondState() if raw is None else BondState.decode(raw)

    def offering(self, bond: str) -> Offering:
        raw = self.state.load_entry(offering_key(bond))
        assert raw is not None
        return Offering.decode(raw)

    def subscriptions(self, bond: str) -> list[Subscription]:
        prefix = SUBSCRIPTION_PREFIX + asset_key(bond)
        return [Subscription.decode(value) for _, value in self.state.load_entries_after(prefix, b"", 100_000)]

    def bonds(self) -> list[str]:
        return [BondTerms.decode(value).bond for _, value in self.state.load_entries_after(BOND_PREFIX, b"", 1000)]

    def total(self, asset: str) -> int:
        """Every balance of ``asset`` summed (chain accounts included)."""
        return sum(self.state.balances(asset).values())
