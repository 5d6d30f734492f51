"""The simulator's ``Application``: ``MemoryState`` and the chain's real state transition.

Blocks carry real signed transactions of the simulated clients (``workload``):
transfers of three assets, one restricted and one that expires mid-run, an
asset issued in the run, approvals, freezes, mints and burns. Every final block
is checked by ``apply_block`` exactly as the node will check it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from mura.chain import bond_rules
from mura.chain.block import Block, CommitCertificate, Header, MessageBlock
from mura.chain.governance import validator_keys as keys_of_set
from mura.chain.governance_rules import load_scheduled
from mura.chain.keys import SignatureCache, SigningKey
from mura.chain.state import (
    BuiltBlock,
    ChainRules,
    MemoryState,
    StateChanges,
    apply_block,
    build_block,
    build_genesis,
    next_due_ms,
)
from mura.consensus.messages import FinalBlock
from mura.sim.bond_checks import BondAudit
from mura.sim.reconfiguration import GovernanceClients
from mura.sim.workload import (
    CHAIN_ID,
    CLIENT_KEYS,
    TREASURY,
    Plan,
    TransactionSigner,
    derive_key,
    genesis_assets,
    next_transactions,
)

__all__ = [
    "CHAIN_ID",
    "Genesis",
    "SimLedger",
    "TransactionSigner",
    "always_pending",
    "checked",
    "make_genesis",
    "payments_per_block",
    "replay_chain",
    "validator_keys",
]


def checked(block: MessageBlock) -> Block:
    """``block`` as the checked ``Block`` it is: blocks this ledger built or committed are never unchecked."""
    assert isinstance(block, Block)
    return block


_VALIDATOR_KEYS: dict[int, tuple[SigningKey, ...]] = {}


def validator_keys(count: int) -> tuple[SigningKey, ...]:
    if count not in _VALIDATOR_KEYS:
        _VALIDATOR_KEYS[count] = tuple(derive_key(f"sim-validator-{count}-{index}") for index in range(count))
    return _VALIDATOR_KEYS[count]


@dataclass
class Genesis:
    """One network's starting point, shared by every node of a run."""

    validators: tuple[bytes, ...]
    block: Block
    changes: StateChanges
    #: What the clients send in this run.
    plan: Plan
    rules: ChainRules = field(default_factory=lambda: ChainRules(chain_id=CHAIN_ID))
    #: The validators' proposals and approvals of the run's planned changes of the set.
    governance: GovernanceClients = field(default_factory=lambda: GovernanceClients((), ()))


def make_genesis(
    validators: Sequence[bytes], *, seed: int = 0, governance: GovernanceClients | None = None
) -> Genesis:
    """The network of a run: its validators, the treasury (issuer role) and the clients'
    assets, with the workload ``seed`` draws (and the changes of the set ``governance``
    makes, if any)."""
    plan = Plan.draw(seed)
    block, changes = build_genesis(
        chain_id=CHAIN_ID,
        timestamp_ms=0,
        validators=validators,
        issuers=[CLIENT_KEYS[TREASURY].public_key],
        assets=genesis_assets(plan),
    )
    if governance is None:
        return Genesis(tuple(validators), block, changes, plan)
    return Genesis(tuple(validators), block, changes, plan, governance=governance)


def always_pending() -> bool:
    return True


class SimLedger:
    """A node's ledger: the ``Application`` the replica drives, over ``MemoryState``.

    Its mempool is a model: while ``pending()`` says so, the simulated clients have a
    transaction waiting each (see ``build_on``); otherwise nothing is pending and
    proposals are empty blocks (an idle chain)."""

    def __init__(self, genesis: Genesis, *, signer: TransactionSigner, signatures: SignatureCache) -> None:
        self.genesis = genesis
        self.state = MemoryState()
        self.state.commit(genesis.changes)
        self.head: Header = genesis.block.header
        self.finals: list[FinalBlock] = []
        self._signer = signer
        self._signatures = signatures
        #: Whether transactions wait in this node's mempool now (the simulation's workload).
        self.pending: Callable[[], bool] = always_pending
        #: The validator sets, each with the first height it decides, oldest first (what
        #: the node's store keeps as its history of sets).
        self.validator_history: list[tuple[int, tuple[bytes, ...]]] = [(1, genesis.validators)]

    # --- Application ---------------------------------------------------------------

    def final_height(self) -> int:
        return self.head.height

    def validators_at(self, height: int) -> tuple[bytes, ...]:
        if height > self.head.height + 1:
            scheduled = load_scheduled(self.state)
            if scheduled is not None and scheduled.activation_height <= height:
                return keys_of_set(scheduled.validators)
        for start, keys in reversed(self.validator_history):
            if start <= height:
                return keys
        return self.validator_history[0][1]

    def load_final_block(self, height: int) -> FinalBlock | None:
        if not 1 <= height <= len(self.finals):
            return None
        return self.finals[height - 1]

    def load_certificate(self, height: int) -> CommitCertificate | None:
        final = self.load_final_block(height)
        return None if final is None else final.certificate

    def build_proposal(self, height: int, *, proposer: bytes, timestamp_ms: int) -> BuiltBlock:
        return self.build_on(self.state, self.head, proposer=proposer, timestamp_ms=timestamp_ms)

    def has_pending_transactions(self) -> bool:
        return self.pending()

    def has_full_block(self) -> bool:
        # One transaction per client is far from a full block.
        return False

    def next_due_ms(self) -> int | None:
        return next_due_ms(self.state)

    def validate_block(self, block: Block, *, certified: bool = False) -> StateChanges:
        # Signatures are checked here even in certified blocks, so that the simulation's
        # validity check covers blocks that reached a replica through catch-up too.
        return apply_block(self.state, self.head, block, rules=self.genesis.rules, signatures=self._signatures)

    # --- the driver's side -------------------------------------------------------------

    def build_on(self, state: MemoryState, parent: Header, *, proposer: bytes, timestamp_ms: int) -> BuiltBlock:
        """A block on ``parent`` with what a mempool would offer: while transactions are
        pending, each client's transaction at its next nonce (``workload``), the amounts
        varying with the time so that proposals made at different times differ; otherwise none."""
        candidates = []
        if self.pending():
            candidates = self.genesis.governance.transactions(state, timestamp_ms=timestamp_ms)
            candidates += next_transactions(
                state, plan=self.genesis.plan, signer=self._signer, timestamp_ms=timestamp_ms
            )
        return build_block(
            state,
            parent,
            candidates,
            proposer=proposer,
            timestamp_ms=timestamp_ms,
            rules=self.genesis.rules,
            signatures=self._signatures,
        )

    def final_blocks(self) -> list[Block]:
        """The blocks this ledger committed, in height order (what the node's store holds)."""
        return [checked(final.block) for final in self.finals]

    def commit(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> None:
        """Make a final block part of this ledger (what the store does in the node)."""
        if block.height != self.head.height + 1:
            raise AssertionError(f"commit of height {block.height} on head {self.head.height}")
        self.state.commit(changes)
        self.head = block.header
        self.finals.append(FinalBlock(block, certificate))
        self._note_validators(block.height + 1, keys_of_set(self.state.load_validators()))

    def _note_validators(self, height: int, keys: tuple[bytes, ...]) -> None:
        """The set that decides ``height`` as the state now says; kept when it changed."""
        if keys != self.validator_history[-1][1]:
            self.validator_history = [entry for entry in self.validator_history if entry[0] < height]
            self.validator_history.append((height, keys))


def replay_chain(genesis: Genesis, blocks: Sequence[Block], *, audit: BondAudit | None = None) -> MemoryState:
    """Apply ``blocks`` in order from genesis with a fresh state and cache: every final
    block must pass the state transition (raises ``Invalid`` otherwise). Returns the
    state they lead to. ``audit`` checks the books of bonds at every block."""
    state = MemoryState()
    state.commit(genesis.changes)
    head = genesis.block.header
    signatures = SignatureCache()
    for block in blocks:
        before = audit.views() if audit is not None else {}
        changes = apply_block(state, head, block, rules=genesis.rules, signatures=signatures)
        if audit is not None:
            audit.check_block(state, before, block, changes)
        state.commit(changes)
        if audit is not None:
            audit.check_after(state, before, block, changes)
        head = block.header
    return state


@contextmanager
def payments_per_block(limit: int | None) -> Iterator[None]:
    """For the length of one run, the chain pays at most ``limit`` holders a block (None: its
    own ``PAYMENTS_PER_BLOCK``): with the few holders of a simulated bond, a small limit
    spreads each payment over several blocks."""
    if limit is None:
        yield
        return
    original = bond_rules.PAYMENTS_PER_BLOCK
    bond_rules.PAYMENTS_PER_BLOCK = limit
    try:
        yield
    finally:
        bond_rules.PAYMENTS_PER_BLOCK = original
