"""A stateful model of the ledger: the real chain against a plain-dict model.

Hypothesis submits random transactions of every kind (valid and invalid) over
several assets: issues, transfers, mints and burns, approvals of the holders of a
restricted asset, freezes, and assets that expire. It seals them into blocks
through the real state transition and LevelDB store at times it chooses, and
after every step checks the store against a model that is dict arithmetic:
which transactions a block takes, every balance and nonce, each asset's supply
(the sum of its balances) and holders (its positive balances).

Each block is also replayed, as a peer would, into a ``MemoryState``; the store's
history (balances, holders and an account's transactions at a past height) must
agree with that replay at every height.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mura.chain.assets import TransferPolicy, asset_id_problem
from mura.chain.block import Block
from mura.chain.keys import SignatureCache
from mura.chain.state import MAX_SUPPLY, GenesisAsset, MemoryState, apply_block
from mura.chain.store import Store
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
    parties,
    sign_transaction,
)
from mura.tests.ledger_fixtures import (
    ACCOUNTS,
    ASSET,
    CHAIN_ID,
    GENESIS_BALANCE,
    GENESIS_TIME_MS,
    ISSUER,
    RULES,
    asset_terms,
    certify,
    genesis,
    load_all_holders_at,
    seal,
)

PEOPLE = [ISSUER, *ACCOUNTS]
#: The registrar of the restricted genesis asset and of some issued ones.
REGISTRAR = ACCOUNTS[4]
#: A restricted genesis asset, held by the issuer and accounts 0 and 1, expiring after a few blocks.
GOLD = "GOLD"
GOLD_EXPIRY_MS = GENESIS_TIME_MS + 6_000
GENESIS_ASSETS = (
    GenesisAsset(
        replace(
            asset_terms(GOLD),
            registrar=REGISTRAR.public_key,
            policy=TransferPolicy.RESTRICTED,
            expiry_ms=GOLD_EXPIRY_MS,
            cap=50_000,
        ),
        ((ISSUER.public_key, 20_000), (ACCOUNTS[0].public_key, 3_000), (ACCOUNTS[1].public_key, 2_000)),
    ),
)
#: Ids issue_asset may name: two new ones, one taken, one that is no asset id.
ISSUED_IDS = ["JPYT", "BOND-1", ASSET, "bad id"]
ASSETS = [ASSET, GOLD, "JPYT", "BOND-1", "NONE"]

person = st.integers(min_value=0, max_value=len(PEOPLE) - 1)
#: Assets named by transactions: those that exist more often than those that may not.
asset = st.sampled_from([ASSET, ASSET, GOLD, GOLD, "JPYT", "BOND-1", "NONE"])
#: Milliseconds from one block holding transactions to the next.
BLOCK_INTERVAL_MS = 1_000
#: Mostly amounts a holder has; now and then one no rule allows, or a large one.
amount = st.one_of(
    st.integers(min_value=1, max_value=3_000),
    st.integers(min_value=1, max_value=3_000),
    st.integers(min_value=1, max_value=3_000),
    st.sampled_from([0, -1, -3, GENESIS_BALANCE // 2]),
)
#: A block is sealed by the rule that does so, or once this many transactions wait.
MAX_QUEUED = 6


@dataclass
class ModelAsset:
    """What the model knows of an asset."""

    issuer: bytes
    reissuable: bool
    cap: int
    registrar: bytes
    restricted: bool
    expiry_ms: int
    expired: bool = False


@dataclass
class Model:
    """The whole ledger as dicts."""

    assets: dict[str, ModelAsset]
    balances: dict[tuple[str, bytes], int]
    nonces: dict[bytes, int]
    approved: set[tuple[str, bytes]]
    frozen: set[tuple[str, bytes]]

    def copy(self) -> Model:
        return Model(
            {name: replace(terms) for name, terms in self.assets.items()},
            dict(self.balances),
            dict(self.nonces),
            set(self.approved),
            set(self.frozen),
        )

    def balance(self, asset: str, address: bytes) -> int:
        return self.balances.get((asset, address), 0)

    def supply(self, asset: str) -> int:
        return sum(balance for (name, _), balance in self.balances.items() if name == asset)

    def may_hold(self, asset: str, address: bytes) -> bool:
        terms = self.assets[asset]
        return not terms.restricted or address == terms.issuer or (asset, address) in self.approved


def genesis_model() -> Model:
    balances = {(ASSET, person.public_key): GENESIS_BALANCE for person in PEOPLE}
    terms = GENESIS_ASSETS[0].terms
    for address, value in GENESIS_ASSETS[0].allocations:
        balances[(GOLD, address)] = value
    return Model(
        assets={
            ASSET: ModelAsset(ISSUER.public_key, True, 0, ISSUER.public_key, False, 0),
            GOLD: ModelAsset(ISSUER.public_key, True, terms.cap, REGISTRAR.public_key, True, GOLD_EXPIRY_MS),
        },
        balances=balances,
        nonces={person.public_key: 0 for person in PEOPLE},
        approved={(GOLD, address) for address, _ in GENESIS_ASSETS[0].allocations},
        frozen=set(),
    )


def model_expire(model: Model, timestamp_ms: int) -> None:
    """Before a block's transactions: each asset whose expiry the block reaches returns its
    holders' balances to its issuer (few holders: the lapse ends in one block)."""
    for name, terms in model.assets.items():
        if terms.expiry_ms and not terms.expired and timestamp_ms >= terms.expiry_ms:
            terms.expired = True
            for (asset, address), balance in list(model.balances.items()):
                if asset == name and address != terms.issuer:
                    model.balances[(asset, terms.issuer)] = model.balance(asset, terms.issuer) + balance
                    del model.balances[(asset, address)]


def model_accepts(model: Model, transaction: Transaction, timestamp_ms: int) -> bool:
    """Whether every rule lets ``transaction`` through, in plain terms."""
    body: Any = transaction.body
    sender = transaction.sender
    if transaction.nonce != model.nonces[sender]:
        return False
    if isinstance(body, IssueAsset):
        return (
            sender == ISSUER.public_key
            and asset_id_problem(body.asset) is None
            and body.asset not in model.assets
            and (body.reissuable or body.supply > 0)
            and (not body.cap or (body.reissuable and body.cap >= body.supply))
            and (not body.expiry_ms or body.expiry_ms > timestamp_ms)
        )
    terms = model.assets.get(body.asset)
    if terms is None:
        return False
    if isinstance(body, (ApproveHolder, RevokeHolder, Freeze, Unfreeze)):
        return sender == terms.registrar
    if body.amount <= 0:
        return False
    if isinstance(body, Transfer):
        return (
            not (terms.expired and body.recipient != terms.issuer)
            and (body.asset, sender) not in model.frozen
            and (body.asset, body.recipient) not in model.frozen
            and model.may_hold(body.asset, sender)
            and model.may_hold(body.asset, body.recipient)
            and model.balance(body.asset, sender) >= body.amount
        )
    if sender != terms.issuer:
        return False
    if isinstance(body, Mint):
        supply = model.supply(body.asset) + body.amount
        return (
            terms.reissuable
            and not terms.expired
            and supply <= (terms.cap or MAX_SUPPLY)
            and (body.asset, sender) not in model.frozen
            and (body.asset, body.recipient) not in model.frozen
            and model.may_hold(body.asset, body.recipient)
        )
    return (body.asset, sender) not in model.frozen and model.balance(body.asset, sender) >= body.amount


def model_apply(model: Model, transaction: Transaction) -> None:
    """The effect of an accepted transaction."""
    body: Any = transaction.body
    sender = transaction.sender
    model.nonces[sender] += 1
    if isinstance(body, IssueAsset):
        model.assets[body.asset] = ModelAsset(
            sender, body.reissuable, body.cap, body.registrar or sender, body.policy == "restricted", body.expiry_ms
        )
        add(model, body.asset, sender, body.supply)
    elif isinstance(body, Transfer):
        add(model, body.asset, sender, -body.amount)
        add(model, body.asset, body.recipient, body.amount)
    elif isinstance(body, Mint):
        add(model, body.asset, body.recipient, body.amount)
    elif isinstance(body, Burn):
        add(model, body.asset, sender, -body.amount)
    elif isinstance(body, ApproveHolder):
        model.approved.add((body.asset, body.account))
    elif isinstance(body, RevokeHolder):
        model.approved.discard((body.asset, body.account))
    elif isinstance(body, Freeze):
        model.frozen.add((body.asset, body.account))
    elif isinstance(body, Unfreeze):
        model.frozen.discard((body.asset, body.account))


def add(model: Model, asset: str, address: bytes, change: int) -> None:
    balance = model.balance(asset, address) + change
    assert balance >= 0
    if balance:
        model.balances[(asset, address)] = balance
    else:
        model.balances.pop((asset, address), None)


class LedgerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="mura-model-"))
        self.store = Store(self.directory / "chain")
        genesis_block, changes = genesis(*GENESIS_ASSETS)
        self.store.initialize(genesis_block, changes)
        self.model = genesis_model()
        self.pending: list[Transaction] = []
        # The model as the queued transactions leave it, to give each the nonce its sender
        # will have: a refused transaction uses none.
        self.queued_model = self.model
        # The peer's replay: every block applied to a MemoryState, and what it held after each.
        self.replay = MemoryState()
        self.replay.commit(changes)
        self.replayed: list[dict[str, dict[bytes, int]]] = [self.replayed_balances()]
        self.blocks: list[Block] = [genesis_block]
        self.checked_height = -1

    def teardown(self) -> None:
        try:
            self.check_history(range(self.store.height + 1), pages=True)
        finally:
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def queue(self, sender_index: int, body: Body, nonce_offset: int = 0) -> None:
        sender = PEOPLE[sender_index]
        timestamp_ms = self.blocks[-1].header.timestamp_ms + BLOCK_INTERVAL_MS
        if not self.pending:
            self.queued_model = self.model.copy()
            model_expire(self.queued_model, timestamp_ms)
        nonce = max(0, self.queued_model.nonces[sender.public_key] + nonce_offset)
        transaction = sign_transaction(sender, chain_id=CHAIN_ID, nonce=nonce, body=body)
        if model_accepts(self.queued_model, transaction, timestamp_ms):
            model_apply(self.queued_model, transaction)
        self.pending.append(transaction)
        if len(self.pending) >= MAX_QUEUED:
            self.seal_block()

    # --- rules -------------------------------------------------------------------------

    @rule(
        sender=person, recipient=person, asset=asset, value=amount, nonce_offset=st.sampled_from([0, 0, 0, 0, -1, 1])
    )
    def transfer(self, sender: int, recipient: int, asset: str, value: int, nonce_offset: int) -> None:
        self.queue(sender, Transfer(asset, PEOPLE[recipient].public_key, value), nonce_offset)

    @rule(sender=person, recipient=person, choice=st.integers(min_value=0), delta=st.integers(-1, 1))
    def transfer_whole_balance(self, sender: int, recipient: int, choice: int, delta: int) -> None:
        """Amounts at the edge of the balance of an asset the sender holds, where off-by-one
        rules would slip."""
        address = PEOPLE[sender].public_key
        held = sorted(name for name, holder in self.model.balances if holder == address)
        if held:
            name = held[choice % len(held)]
            balance = self.model.balance(name, address)
            self.queue(sender, Transfer(name, PEOPLE[recipient].public_key, balance + delta))

    @rule(sender=st.sampled_from([0, 0, 0, 1]), recipient=person, asset=asset, value=amount)
    def mint(self, sender: int, recipient: int, asset: str, value: int) -> None:
        self.queue(sender, Mint(asset, PEOPLE[recipient].public_key, value))

    @rule(sender=st.sampled_from([0, 0, 0, 2]), asset=asset, value=amount)
    def burn(self, sender: int, asset: str, value: int) -> None:
        self.queue(sender, Burn(asset, value))

    @rule(
        sender=st.sampled_from([0, 0, 0, 3]),
        asset=st.sampled_from(ISSUED_IDS),
        supply=st.sampled_from([0, 1, 5_000]),
        reissuable=st.booleans(),
        cap=st.sampled_from([0, 0, 4_000, 10_000]),
        restricted=st.booleans(),
        by_registrar=st.booleans(),
        expires_in=st.sampled_from([0, 0, 1_000, 2_500, 4_000]),
    )
    def issue(
        self,
        sender: int,
        asset: str,
        supply: int,
        reissuable: bool,
        cap: int,
        restricted: bool,
        by_registrar: bool,
        expires_in: int,
    ) -> None:
        """``expires_in``: milliseconds after the head's time (the next block, a second later,
        refuses 1,000)."""
        expiry_ms = self.store.head.timestamp_ms + expires_in if expires_in else 0
        registrar = REGISTRAR.public_key if by_registrar else b""
        policy = "restricted" if restricted else "open"
        self.queue(sender, IssueAsset(asset, f"{asset} coin", 2, supply, reissuable, cap, registrar, policy, expiry_ms))

    @rule(
        by_registrar=st.booleans(),
        action=st.sampled_from([ApproveHolder, ApproveHolder, RevokeHolder, Freeze, Freeze, Unfreeze]),
        asset=asset,
        account=person,
    )
    def registrar_acts(self, by_registrar: bool, action: type, asset: str, account: int) -> None:
        """The registrar of the asset, if it has one of these two, or the other."""
        terms = self.model.assets.get(asset)
        is_issuer = terms is not None and terms.registrar == ISSUER.public_key
        sender = (0 if is_issuer else PEOPLE.index(REGISTRAR)) if by_registrar else 2
        self.queue(sender, action(asset, PEOPLE[account].public_key))

    @precondition(lambda self: self.pending)
    @rule()
    def seal_block(self) -> None:
        timestamp_ms = self.blocks[-1].header.timestamp_ms + BLOCK_INTERVAL_MS
        expected = self.model.copy()
        model_expire(expected, timestamp_ms)
        expected_included = []
        for transaction in self.pending:
            if model_accepts(expected, transaction, timestamp_ms):
                expected_included.append(transaction)
                model_apply(expected, transaction)
        block = self.commit_block(timestamp_ms, self.pending)
        assert list(block.transactions) == expected_included
        self.model = expected
        self.pending = []

    @precondition(lambda self: not self.pending)
    @rule(advance_ms=st.sampled_from([0, 1_000, 3_000]))
    def seal_empty_block(self, advance_ms: int) -> None:
        """Time passes: an empty block may be the one an expiry happens in."""
        timestamp_ms = self.blocks[-1].header.timestamp_ms + advance_ms
        model_expire(self.model, timestamp_ms)
        self.commit_block(timestamp_ms, [])

    def commit_block(self, timestamp_ms: int, transactions: list[Transaction]) -> Block:
        """Build the next block of what the rules let through of ``transactions``, store it
        with its certificate, and apply it as a peer would, into the replay."""
        parent = self.blocks[-1]
        block, changes = seal(self.store, parent, transactions, timestamp_ms=timestamp_ms)
        self.store.save_block(block, certify(block), changes)
        replayed = apply_block(self.replay, parent.header, block, rules=RULES, signatures=SignatureCache())
        assert replayed.state_root == block.header.state_root
        self.replay.commit(replayed)
        self.replayed.append(self.replayed_balances())
        self.blocks.append(block)
        return block

    def replayed_balances(self) -> dict[str, dict[bytes, int]]:
        return {name: self.replay.balances(name) for name in self.replay.assets()}

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        for person_key in PEOPLE:
            address = person_key.public_key
            assert self.store.load_account(address).nonce == self.model.nonces[address]
            for name in ASSETS:
                assert self.store.load_balance(address, name) == self.model.balance(name, address)
        assert {name for name in ASSETS if self.store.load_asset(name)} == set(self.model.assets)

    @invariant()
    def each_supply_is_the_sum_of_its_balances(self) -> None:
        stored = MemoryState()
        stored.entries.update(self.store.iterate_state())
        for name, terms in self.model.assets.items():
            balances = stored.balances(name)
            state = self.store.load_asset_state(name)
            assert all(balance > 0 for balance in balances.values())
            assert state.supply == sum(balances.values()) == self.model.supply(name)
            assert state.holders == len(balances)
            assert state.frozen == sum(1 for asset, _ in self.model.frozen if asset == name)
            assert state.expired == terms.expired
            assert terms.cap == 0 or state.supply <= terms.cap

    @invariant()
    def state_root_matches_the_stored_state(self) -> None:
        assert self.store.recompute_lattice().root() == self.store.head.state_root

    @invariant()
    def history_agrees_with_the_replay(self) -> None:
        """At each new height, the store's history of it and of the height before it."""
        height = self.store.height
        if height != self.checked_height:
            self.check_history(range(max(0, height - 1), height + 1), pages=False)
            self.checked_height = height

    def check_history(self, heights: range, *, pages: bool) -> None:
        store = self.store
        addresses = [person_key.public_key for person_key in PEOPLE]
        for height in heights:
            balances = self.replayed[height]
            for name, held in balances.items():
                assert load_all_holders_at(store, name, height, limit=2 if pages else 100) == sorted(held.items())
            for address in addresses:
                expected = {name: held[address] for name, held in balances.items() if address in held}
                assert store.load_balances_at(address, height) == expected
                for name in ASSETS:
                    assert store.load_balance_at(address, name, height) == expected.get(name, 0)
        for address in addresses:
            named = [
                (height, index, transaction.hash)
                for height, block in enumerate(self.blocks)
                for index, transaction in enumerate(block.transactions)
                if address in parties(transaction)
            ][::-1]
            assert store.load_account_transactions(address, before=None, limit=10_000) == named
            if pages and named:
                middle = named[len(named) // 2]
                later = store.load_account_transactions(address, before=middle[:2], limit=3)
                assert later == named[len(named) // 2 + 1 :][:3]


LedgerModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestLedgerModel = LedgerModel.TestCase
