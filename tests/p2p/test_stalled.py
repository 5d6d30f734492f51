"""Tests for p2p/gossip.py's ``StalledRuns``: which senders' transactions to gossip again."""

from __future__ import annotations

from mura.chain.assets import AssetTerms, TransferPolicy
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.mempool import Mempool
from mura.chain.state import ChainRules, GenesisAsset, MemoryState, apply_block, build_block, build_genesis
from mura.chain.transaction import Transaction, Transfer, sign_transaction
from mura.p2p.gossip import StalledRuns

CHAIN_ID = "mura-test"
KEYS = [SigningKey.from_private_bytes((index + 1).to_bytes(32, "big")) for index in range(4)]
VALIDATOR = SigningKey.from_private_bytes(b"\x99" * 32)
ASSET = "NAC"
COIN = AssetTerms(
    asset=ASSET, name="Nishiawakura Coin", decimals=2, issuer=KEYS[0].public_key, reissuable=True, cap=0,
    registrar=KEYS[0].public_key, policy=TransferPolicy.OPEN, expiry_ms=0,
)


class Chain:
    """Committed state, a head and a mempool over it."""

    def __init__(self) -> None:
        genesis, changes = build_genesis(
            chain_id=CHAIN_ID,
            timestamp_ms=0,
            validators=[VALIDATOR.public_key],
            issuers=[KEYS[0].public_key],
            assets=[GenesisAsset(COIN, tuple((key.public_key, 1_000) for key in KEYS))],
        )
        self.state = MemoryState()
        self.state.commit(changes)
        self.head = genesis.header
        self.rules = ChainRules(chain_id=CHAIN_ID)
        self.signatures = SignatureCache()
        self.mempool = Mempool(rules=self.rules, signatures=self.signatures)

    def transfer(self, sender: int, nonce: int) -> Transaction:
        body = Transfer(ASSET, KEYS[(sender + 1) % len(KEYS)].public_key, 1)
        return sign_transaction(KEYS[sender], chain_id=CHAIN_ID, nonce=nonce, body=body)

    def admit(self, *transactions: Transaction) -> None:
        for transaction in transactions:
            self.mempool.add(transaction, self.state, now=0.0)

    def commit(self, *transactions: Transaction) -> None:
        built = build_block(
            self.state, self.head, transactions, proposer=VALIDATOR.public_key,
            timestamp_ms=self.head.timestamp_ms + 1, rules=self.rules, signatures=self.signatures,
        )
        changes = apply_block(self.state, self.head, built.block, rules=self.rules, signatures=self.signatures)
        self.state.commit(changes)
        self.head = built.block.header
        self.mempool.remove_committed(built.block.transactions, self.state)


def due(stalled: StalledRuns, chain: Chain, now: float, height: int) -> list[Transaction]:
    return stalled.due(chain.mempool, chain.state, now, height)


def nonces(transactions: list[Transaction]) -> list[tuple[bytes, int]]:
    return [(transaction.sender, transaction.nonce) for transaction in transactions]


def test_a_run_is_due_once_its_head_stays_pending_for_the_interval_and_two_blocks() -> None:
    chain, stalled = Chain(), StalledRuns(after=3.0)
    chain.admit(chain.transfer(0, 0), chain.transfer(0, 1))
    assert due(stalled, chain, 100.0, 10) == []
    assert due(stalled, chain, 102.9, 12) == []
    assert nonces(due(stalled, chain, 103.0, 12)) == [(KEYS[0].public_key, 0), (KEYS[0].public_key, 1)]
    assert stalled.rebroadcast == 2


def test_a_run_is_not_due_while_no_blocks_are_made() -> None:
    chain, stalled = Chain(), StalledRuns(after=3.0)
    chain.admit(chain.transfer(0, 0))
    due(stalled, chain, 0.0, 10)
    assert due(stalled, chain, 60.0, 11) == []
    assert len(due(stalled, chain, 61.0, 12)) == 1


def test_a_stalled_run_is_due_again_only_when_the_condition_holds_anew() -> None:
    chain, stalled = Chain(), StalledRuns(after=3.0)
    chain.admit(chain.transfer(0, 0))
    due(stalled, chain, 0.0, 0)
    assert len(due(stalled, chain, 3.0, 2)) == 1
    assert due(stalled, chain, 5.0, 4) == []
    assert due(stalled, chain, 6.0, 3) == []
    assert len(due(stalled, chain, 6.0, 4)) == 1


def test_a_run_whose_head_moved_is_not_due() -> None:
    chain, stalled = Chain(), StalledRuns(after=3.0)
    first, second = chain.transfer(0, 0), chain.transfer(0, 1)
    chain.admit(first, second)
    due(stalled, chain, 0.0, 0)
    chain.commit(first)
    # The sender's next transaction changed at 2.0 (height 1): its clock starts again there.
    assert due(stalled, chain, 2.0, 1) == []
    assert due(stalled, chain, 4.0, 5) == []
    assert nonces(due(stalled, chain, 5.0, 5)) == [(KEYS[0].public_key, 1)]


def test_a_sender_without_its_next_nonce_has_nothing_to_gossip() -> None:
    chain, stalled = Chain(), StalledRuns(after=1.0)
    chain.admit(chain.transfer(1, 1))
    due(stalled, chain, 0.0, 0)
    assert due(stalled, chain, 10.0, 10) == []


def test_runs_are_capped_per_sender_and_in_all_longest_stalled_first() -> None:
    chain, stalled = Chain(), StalledRuns(after=1.0, min_blocks=1, max_run=2, max_transactions=3)
    chain.admit(*(chain.transfer(0, nonce) for nonce in range(3)))
    due(stalled, chain, 0.0, 0)
    chain.admit(chain.transfer(1, 0), chain.transfer(1, 1))
    due(stalled, chain, 0.5, 0)
    # Sender 0 stalled first; sender 1's run of two would pass the cap of three.
    assert nonces(due(stalled, chain, 1.5, 1)) == [(KEYS[0].public_key, 0), (KEYS[0].public_key, 1)]
    assert nonces(due(stalled, chain, 1.6, 1)) == [(KEYS[1].public_key, 0), (KEYS[1].public_key, 1)]
