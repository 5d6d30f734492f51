"""A stateful model of the ledger: the real chain against a plain-dict model.

Hypothesis submits random transfers, mints and burns (valid and invalid), seals
them into blocks through the real state transition and LevelDB store, and after
every step checks the store against a model that is a few lines of dict
arithmetic. At the end, every block is replayed from genesis into a fresh store
and must reproduce every state root.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mura.chain.keys import SignatureCache
from mura.chain.state import apply_block
from mura.chain.store import Store
from mura.chain.transaction import Burn, Mint, Transaction, Transfer, sign_transaction
from mura.tests.ledger_fixtures import ACCOUNTS, CHAIN_ID, GENESIS_BALANCE, ISSUER, RULES, certify, genesis, seal

PEOPLE = [ISSUER, *ACCOUNTS]
person = st.integers(min_value=0, max_value=len(PEOPLE) - 1)
amount = st.one_of(st.integers(min_value=-3, max_value=0), st.integers(min_value=1, max_value=GENESIS_BALANCE // 2))


class LedgerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="mura-model-"))
        self.store = Store(self.directory / "chain")
        self.store.initialize(*genesis())
        self.balances = {p.public_key: GENESIS_BALANCE for p in PEOPLE}
        self.nonces = {p.public_key: 0 for p in PEOPLE}
        self.minted = 0
        self.burned = 0
        self.pending: list[Transaction] = []
        self.expected: list[bool] = []
        self.last_nonce_seen: dict[bytes, int] = {}

    def teardown(self) -> None:
        try:
            self.replay_from_genesis()
        finally:
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    # --- the model -----------------------------------------------------------------

    def model_accepts(self, transaction: Transaction, balances: dict[bytes, int], nonces: dict[bytes, int]) -> bool:
        body = transaction.body
        if transaction.nonce != nonces[transaction.sender] or body.amount <= 0:  # type: ignore[attr-defined]
            return False
        if isinstance(body, Transfer):
            return balances[transaction.sender] >= body.amount
        if transaction.sender != ISSUER.public_key:
            return False
        return isinstance(body, Mint) or balances[transaction.sender] >= body.amount  # type: ignore[attr-defined]


    def queue(self, sender_index: int, body: object, nonce_offset: int) -> None:
        sender = PEOPLE[sender_index]
        in_queue = sum(1 for tx in self.pending if tx.sender == sender.public_key)
        nonce = max(0, self.nonces[sender.public_key] + in_queue + nonce_offset)
        self.pending.append(sign_transaction(sender, chain_id=CHAIN_ID, nonce=nonce, body=body))  # type: ignore[arg-type]

    # --- rules -------------------------------------------------------------------------

    @rule(sender=person, recipient=person, value=amount, nonce_offset=st.sampled_from([0, 0, 0, 0, -1, 1]))
    def transfer(self, sender: int, recipient: int, value: int, nonce_offset: int) -> None:
        self.queue(sender, Transfer(PEOPLE[recipient].public_key, value), nonce_offset)

    @rule(sender=person, recipient=person, delta=st.integers(min_value=-1, max_value=1))
    def transfer_whole_balance(self, sender: int, recipient: int, delta: int) -> None:
        """Amounts at the edge of the balance, where off-by-one rules would slip."""
        balance = self.balances[PEOPLE[sender].public_key]
        self.queue(sender, Transfer(PEOPLE[recipient].public_key, balance + delta), 0)

    @rule(sender=st.sampled_from([0, 0, 0, 1]), recipient=person, value=amount)
    def mint(self, sender: int, recipient: int, value: int) -> None:
        self.queue(sender, Mint(PEOPLE[recipient].public_key, value), 0)

    @rule(sender=st.sampled_from([0, 0, 0, 2]), value=amount)
    def burn(self, sender: int, value: int) -> None:
        self.queue(sender, Burn(value), 0)

    @precondition(lambda self: self.pending)
    @rule()
    def seal_block(self) -> None:
        parent = self.store.load_block(self.store.height)
        assert parent is not None
        block, changes = seal(self.store, parent, self.pending)
        expected_included = []
        for transaction in self.pending:
            if self.model_accepts(transaction, self.balances, self.nonces):
                expected_included.append(transaction)
                self.minted, self.burned = model_apply(
                    self.balances, self.nonces, transaction, self.minted, self.burned
                )
        assert list(block.transactions) == expected_included
        for transaction in block.transactions:
            assert transaction.nonce > self.last_nonce_seen.get(transaction.sender, -1)
            self.last_nonce_seen[transaction.sender] = transaction.nonce
        self.store.save_block(block, certify(block), changes)
        self.pending = []

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        for person_key in PEOPLE:
            account = self.store.load_account(person_key.public_key)
            assert account.balance == self.balances[person_key.public_key]
            assert account.nonce == self.nonces[person_key.public_key]
            assert account.balance >= 0

    @invariant()
    def supply_is_genesis_plus_minted_minus_burned(self) -> None:
        expected = GENESIS_BALANCE * len(PEOPLE) + self.minted - self.burned
        assert self.store.load_supply() == expected
        assert sum(account.balance for _, account in self.store.iterate_accounts()) == expected

    @invariant()
    def state_root_matches_the_stored_state(self) -> None:
        assert self.store.recompute_lattice().root() == self.store.head.state_root

    def replay_from_genesis(self) -> None:
        with Store(self.directory / "replay") as replay:
            replay.initialize(*genesis())
            for height in range(1, self.store.height + 1):
                block = self.store.load_block(height)
                assert block is not None
                changes = apply_block(replay, replay.head, block, rules=RULES, signatures=SignatureCache())
                assert changes.state_root == block.header.state_root
                replay.save_block(block, certify(block), changes)
            assert replay.head == self.store.head


def model_apply(
    balances: dict[bytes, int], nonces: dict[bytes, int], transaction: Transaction, minted: int, burned: int
) -> tuple[int, int]:
    """The whole ledger, as dict arithmetic; returns the new minted and burned totals."""
    body = transaction.body
    sender = transaction.sender
    if isinstance(body, Transfer):
        balances[sender] -= body.amount
        balances[body.recipient] += body.amount
    elif isinstance(body, Mint):
        balances[body.recipient] += body.amount
        minted += body.amount
    elif isinstance(body, Burn):
        balances[sender] -= body.amount
        burned += body.amount
    nonces[sender] += 1
    return minted, burned


LedgerModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestLedgerModel = LedgerModel.TestCase
