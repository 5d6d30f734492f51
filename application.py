"""The application consensus orders blocks for: the chain in the LevelDB store, and the
mempool proposals are built from.

``LedgerApplication`` is the node's ``Ledger`` for the driver
(``mura.consensus.driver``): the replica asks it for proposals and to check
blocks against the committed state, and the driver has it make blocks final. The
simulator's in-memory ledger answers the same questions over ``MemoryState``.
"""

from __future__ import annotations

from mura.chain.block import Block, CommitCertificate
from mura.chain.governance import validator_keys
from mura.chain.keys import SignatureCache
from mura.chain.mempool import Mempool
from mura.chain.state import BuiltBlock, ChainRules, StateChanges, apply_block, build_block, next_due_ms
from mura.chain.store import Store, VoteStore
from mura.consensus.messages import FinalBlock


class LedgerApplication:
    """``consensus.driver.Ledger`` over the LevelDB store and the mempool."""

    def __init__(
        self,
        *,
        store: Store,
        mempool: Mempool,
        rules: ChainRules,
        signatures: SignatureCache,
        max_proposal_transactions: int | None = None,
        verify_certified_signatures: bool = False,
    ) -> None:
        self.store = store
        self.mempool = mempool
        self.rules = rules
        #: Signatures known good (verified on admission or ahead of a proposal).
        self.signatures = signatures
        self.max_proposal_transactions = min(
            rules.max_block_transactions, max_proposal_transactions or rules.max_block_transactions
        )
        #: Whether a block a commit certificate vouches for has its signatures checked too
        #: (``sync.verify_signatures``).
        self.verify_certified_signatures = verify_certified_signatures

    def final_height(self) -> int:
        return self.store.height

    def validators_at(self, height: int) -> tuple[bytes, ...]:
        # The genesis block is decided by nobody: the first set stands for height 0.
        return validator_keys(self.store.load_validators_at(max(height, 1)))

    def load_final_block(self, height: int) -> FinalBlock | None:
        block = self.store.load_block(height)
        certificate = self.store.load_certificate(height)
        return None if block is None or certificate is None else FinalBlock(block, certificate)

    def load_certificate(self, height: int) -> CommitCertificate | None:
        return self.store.load_certificate(height)

    def build_proposal(self, height: int, *, proposer: bytes, timestamp_ms: int) -> BuiltBlock:
        candidates = self.mempool.select(
            self.store, max_transactions=self.max_proposal_transactions, max_bytes=self.rules.max_block_bytes
        )
        built = build_block(
            self.store,
            self.store.head,
            candidates,
            proposer=proposer,
            timestamp_ms=timestamp_ms,
            rules=self.rules,
            signatures=self.signatures,
        )
        # A refused candidate can never apply on this state (its nonce is next in line):
        # it is dropped with the rule that refused it.
        self.mempool.drop_refused(built.refused)
        return built

    def has_pending_transactions(self) -> bool:
        # Ready ones only: a transaction behind a nonce gap waits for its sender, not for a block.
        return len(self.mempool) > 0 and self.mempool.has_ready(self.store)

    def has_full_block(self) -> bool:
        return len(self.mempool) >= self.max_proposal_transactions

    def next_due_ms(self) -> int | None:
        return next_due_ms(self.store)

    def validate_block(self, block: Block, *, certified: bool = False) -> StateChanges:
        """The block's state changes over the committed state, or the ``Invalid`` that
        refuses it. Signatures the cache does not know are verified here, one by one,
        on the caller's thread: the node verifies the signatures of a block the replica
        is about to check on every core, off its event loop, before handing it the
        message (``ConsensusRunner._verify_ahead``), so that this finds them known
        (what was not verified ahead is verified here). A certified block's signatures
        were checked by the quorum that committed it and are checked again only when
        asked to."""
        verify = not certified or self.verify_certified_signatures
        return apply_block(
            self.store, self.store.head, block, rules=self.rules, signatures=self.signatures, verify_signatures=verify
        )

    def commit(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> None:
        """Save the block durably with its certificate and state changes; its transactions
        leave the pool, and what it made unincludable is dropped."""
        self.store.save_block(block, certificate, changes)
        self.mempool.remove_committed(block.transactions, self.store)


def carry_over_votes(chain: Store, record: VoteStore) -> int:
    """A new vote record over chain data an earlier version kept its votes in: the votes
    at the height in progress are moved into it, and it then holds what its validator
    signed (no check, even when there were none: the old record was complete). Returns
    how many votes moved."""
    height = chain.height + 1
    votes = chain.load_votes(height)
    for vote in votes:
        record.save_vote(height, vote)
    record.save_guard(0)
    return len(votes)
