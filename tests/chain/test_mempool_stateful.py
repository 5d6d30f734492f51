"""A stateful property test of chain/mempool.py: after any sequence of admissions,
replacements, expiries, proposals and commits (including blocks carrying a version of
a nonce this pool did not hold), the pool's accounting equals the sums over what it
holds, per sender and asset, and everything it holds could still be admitted and
proposed. Two assets: ``NAC`` (no cap) and ``JPYT`` (capped), both account 0's."""

from __future__ import annotations

import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mura.chain.errors import Invalid
from mura.chain.mempool import Mempool
from mura.chain.state import MAX_SUPPLY, GenesisAsset
from mura.chain.transaction import Burn, Mint, Transaction, Transfer
from mura.tests.chain.factories import asset_terms
from mura.tests.chain.test_mempool import ASSET, BALANCE, Ledger, make_key

ACCOUNTS = 3
AMOUNTS = st.sampled_from([1, 2, BALANCE // 2, BALANCE - 1, BALANCE])
CAPPED = "JPYT"
CAP = 3 * BALANCE
ASSETS = st.sampled_from([ASSET, CAPPED])


def spend(transaction: Transaction) -> tuple[str, int] | None:
    body = transaction.body
    return (body.asset, body.amount) if isinstance(body, (Transfer, Burn)) else None


def cap(asset: str) -> int:
    return CAP if asset == CAPPED else MAX_SUPPLY


class MempoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        capped = GenesisAsset(
            asset_terms(CAPPED, make_key(0).public_key, cap=CAP),
            tuple((make_key(index).public_key, BALANCE) for index in range(ACCOUNTS)),
        )
        self.ledger = Ledger(ACCOUNTS, assets=[capped])
        self.pool = Mempool(
            rules=self.ledger.rules,
            signatures=self.ledger.signatures,
            max_transactions=12,
            max_nonce_gap=2,
            max_per_sender=5,
            expire_after=10.0,
            replacement_interval=1.0,
            max_remembered_drops=8,
        )
        self.now = 0.0

    def committed_nonce(self, sender: int) -> int:
        return self.ledger.state.load_account(self.ledger.sender(sender)).nonce

    def admit(self, transaction: Transaction) -> None:
        with contextlib.suppress(Invalid):
            self.pool.add(transaction, self.ledger.state, now=self.now)

    @rule(wait=st.sampled_from([0.0, 0.5, 1.0, 6.0]))
    def tick(self, wait: float) -> None:
        self.now += wait

    def room(self, asset: str) -> int:
        return cap(asset) - self.ledger.state.load_asset_state(asset).supply

    @rule(sender=st.integers(0, ACCOUNTS - 1), ahead=st.integers(0, 3), amount=AMOUNTS, asset=ASSETS)
    def transfer(self, sender: int, ahead: int, amount: int, asset: str) -> None:
        self.admit(self.ledger.transfer(sender, self.committed_nonce(sender) + ahead, amount, asset=asset))

    @rule(ahead=st.integers(0, 3), amount=st.sampled_from([1, BALANCE]), asset=ASSETS)
    def burn(self, ahead: int, amount: int, asset: str) -> None:
        self.admit(self.ledger.sign(0, self.committed_nonce(0) + ahead, Burn(asset, amount)))

    @rule(ahead=st.integers(0, 3), fraction=st.sampled_from([1, 2, 3]), asset=ASSETS)
    def mint(self, ahead: int, fraction: int, asset: str) -> None:
        amount = max(1, self.room(asset) // fraction)
        self.admit(self.ledger.sign(0, self.committed_nonce(0) + ahead, Mint(asset, self.ledger.sender(1), amount)))

    @rule(
        items=st.lists(
            st.tuples(st.integers(0, ACCOUNTS - 1), st.integers(0, 3), AMOUNTS), min_size=1, max_size=6
        )
    )
    def gossiped_batch(self, items: list[tuple[int, int, int]]) -> None:
        """A peer's batch, versions of one nonce mixed in, admitted as the node does: ``check_batch``
        (which must leave the pool as it was), then ``add`` of each that passed."""
        batch = [self.ledger.transfer(sender, self.committed_nonce(sender) + ahead, amount)
                 for sender, ahead, amount in items]
        before = self.snapshot()
        passed, _ = self.pool.check_batch(batch, self.ledger.state, now=self.now)
        assert self.snapshot() == before
        for transaction in passed:
            self.admit(transaction)

    def snapshot(self) -> object:
        pool = self.pool
        return (dict(pool._by_hash), {sender: dict(queue) for sender, queue in pool._by_sender.items()},
                dict(pool._pending_spend), dict(pool._pending_mints), pool._pending_mint_total, pool.size_bytes,
                list(pool._arrived), dict(pool._last_replacement))

    @rule()
    def expire(self) -> None:
        self.pool.expire(self.now)

    @rule(size=st.integers(1, 6))
    def propose_and_commit(self, size: int) -> None:
        candidates = self.pool.select(self.ledger.state, max_transactions=size, max_bytes=1 << 20)
        built = self.ledger.build(candidates)
        # Everything the pool holds passed admission: a proposal of its ready runs refuses none.
        assert built.refused == [], [(error.rule, error.message) for _, error in built.refused]
        self.pool.drop_refused(built.refused)
        self.commit(built.block.transactions)

    @rule(sender=st.integers(0, ACCOUNTS - 1), amount=AMOUNTS, mint=st.booleans(), asset=ASSETS)
    def commit_another_version(self, sender: int, amount: int, mint: bool, asset: str) -> None:
        """A block carrying a version of the sender's next nonce this pool may not hold (a
        replacement that won a race elsewhere), or a mint it never saw."""
        nonce = self.committed_nonce(sender)
        if mint and sender == 0:
            room = self.room(asset)
            if room < 1:
                return
            transaction = self.ledger.sign(0, nonce, Mint(asset, self.ledger.sender(2), room))
        else:
            balance = self.ledger.state.load_balance(self.ledger.sender(sender), asset)
            if balance < 1:
                return
            transaction = self.ledger.transfer(sender, nonce, min(amount, balance), asset=asset)
        self.commit([transaction])

    def commit(self, transactions: tuple[Transaction, ...] | list[Transaction]) -> None:
        block = self.ledger.commit(transactions)
        self.pool.remove_committed(block.transactions, self.ledger.state)

    @invariant()
    def accounting_matches_contents(self) -> None:
        pool = self.pool
        held = list(pool._by_hash.values())
        assert pool.size_bytes == sum(len(tx.encoded) for tx in held)
        assert set(pool._arrived) == set(pool._by_hash)
        assert sum(len(queue) for queue in pool._by_sender.values()) == len(held)
        spends: dict[bytes, dict[str, int]] = {}
        for tx in held:
            spent = spend(tx)
            if spent is not None:
                by_asset = spends.setdefault(tx.sender, {})
                by_asset[spent[0]] = by_asset.get(spent[0], 0) + spent[1]
        assert pool._pending_spend == spends
        mints = {tx.hash: (tx.body.asset, tx.body.amount) for tx in held if isinstance(tx.body, Mint)}
        totals: dict[str, int] = {}
        for asset, amount in mints.values():
            totals[asset] = totals.get(asset, 0) + amount
        assert pool._pending_mints == mints and pool._pending_mint_total == totals

    @invariant()
    def contents_satisfy_admission(self) -> None:
        state = self.ledger.state
        for asset, pending in self.pool._pending_mint_total.items():
            assert state.load_asset_state(asset).supply + pending <= cap(asset)
        for sender, queue in self.pool._by_sender.items():
            for asset, spent in self.pool._pending_spend.get(sender, {}).items():
                assert spent <= state.load_balance(sender, asset)
            assert min(queue) >= state.load_account(sender).nonce
            assert len(queue) <= 5


TestMempoolMachine = MempoolMachine.TestCase
TestMempoolMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
