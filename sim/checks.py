"""The properties every run must keep, checked as the run goes.

- Agreement: no two honest nodes finalize different blocks at one height, and
  no two different blocks at one height ever carry a valid commit certificate.
- Certificates: every block an honest node commits carries a certificate that
  ``verify_certificate`` accepts.
- Persist before you speak: no honest validator ever signs two different
  statements for the same height, view and phase (even across a restart).
- Validity: the final chain replays from genesis through ``apply_block``.
- Ledger: the state the final chain leads to keeps the books: each asset's
  balances sum to its supply and its holders are counted right, an asset that
  has lapsed is held by its issuer alone, and the state root carried from block
  to block is the root of the entries as they stand.
- Bonds: at every block of the final chain, the books of every bond
  (``bond_checks``): units and the settlement asset conserved, escrows holding
  exactly what is in progress, each holder paid its share once on the units it
  held, records that add up their payments, every payment made, under way or
  missed once its time has passed, offerings allotted at their end.
- State: every honest node's own state is the state the final chain leads to
  at its height (its root).
- Bodies: every block an honest node commits carries the transactions its header
  commits to (checked here from the transactions' hashes, not through the code
  under test), and every honest node's own stored chain replays from genesis.
- Blame: no honest node ever counts a refusal for cause against an honest
  validator (honest validators deliver only messages they checked).
- Liveness: after healing, new heights become final within the scenario's bound.
- Idle chains (scenarios with idle stretches): with no fault, no view changes at
  all; while nothing is pending, empty blocks about one idle interval apart (never
  sooner, but when an automatic step falls due; with no crash, no later than a
  round of messages beyond it), each dated when it was proposed; transactions arriving after a stretch final within
  a view timeout and a view change of reaching a quorum. (That a failed primary
  is replaced within the idle interval and a view timeout is the scenario's
  ``max_stall_ms``, checked by the simulation.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mura.chain.block import Block, CommitCertificate, Header, merkle_root, verify_certificate
from mura.chain.errors import Invalid
from mura.chain.state import MemoryState
from mura.chain.state_root import LatticeHash, update_lattice
from mura.chain.transaction import IssueAsset
from mura.consensus.messages import Commit, Message, NewView, Prepare, PrePrepare, ViewChange
from mura.sim.bond_checks import BondAudit
from mura.sim.ledger import CHAIN_ID, Genesis, replay_chain
from mura.sim.scenario import IdleStretch, Scenario
from mura.sim.workload import genesis_assets

#: Problems of one kind reported per run, at most.
MAX_REPORTED = 5


@dataclass(frozen=True)
class Violation:
    """A broken property: which, when, and what was seen."""

    kind: str
    at_ms: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at {self.at_ms} ms: {self.detail}"


@dataclass
class Checker:
    """Watches commits and signed messages; records the first violations."""

    genesis: Genesis
    #: Validator numbers that follow the protocol (their keys sign nothing else): their
    #: places in genesis, then the validators that join later.
    honest: frozenset[int]
    #: The validator set that decides each height, as the final chain says (None: the
    #: genesis set at every height).
    validators_at: Callable[[int], tuple[bytes, ...]] | None = None
    #: The keys of the honest validators (None: the genesis keys of ``honest``).
    honest_keys: frozenset[bytes] | None = None
    #: Whether an honest commit with a certificate that does not verify is a violation.
    check_certificates: bool = True
    #: The run's scenario, for the properties of idle chains (None: not checked).
    scenario: Scenario | None = None
    violations: list[Violation] = field(default_factory=list)
    #: The block hash honest nodes finalized at each height.
    finalized: dict[int, bytes] = field(default_factory=dict)
    #: The blocks, by height, in the order first finalized.
    blocks: dict[int, Block] = field(default_factory=dict)
    #: Block hashes with a valid certificate, by height.
    certified: dict[int, set[bytes]] = field(default_factory=dict)
    #: What each honest validator signed, by (validator, height, view, phase).
    statements: dict[tuple[int, int, int, str], object] = field(default_factory=dict)
    #: When an honest node first finalized each height.
    first_final_ms: dict[int, int] = field(default_factory=dict)
    #: When each honest node committed each height, by (node, height).
    commit_ms: dict[tuple[int, int], int] = field(default_factory=dict)
    #: The state the final chain leads to (set by ``check_validity``).
    final_state: MemoryState | None = None
    #: The books of bonds, block by block (filled by ``check_validity``).
    bond_audit: BondAudit = field(default_factory=BondAudit)
    _checked_certificates: set[bytes] = field(default_factory=set)

    def _validators(self, height: int) -> tuple[bytes, ...]:
        return self.genesis.validators if self.validators_at is None else self.validators_at(height)

    def _honest_signer(self, height: int, index: int) -> bool:
        """Whether validator ``index`` of the set of ``height`` holds an honest key."""
        keys = self._validators(height)
        if not 0 <= index < len(keys):
            return False
        if self.honest_keys is None:
            return keys[index] in {self.genesis.validators[member] for member in self.honest}
        return keys[index] in self.honest_keys

    def fail(self, kind: str, now_ms: int, detail: str) -> None:
        self.violations.append(Violation(kind, now_ms, detail))

    def on_commit(self, node: int, honest: bool, block: Block, certificate: CommitCertificate, now_ms: int) -> None:
        """A node committed ``block``: check its certificate, and agreement if it is honest."""
        valid = self.check_certificate(block, certificate, now_ms)
        if not honest:
            return
        if not _body_matches(block):
            self.fail(
                "forged_body",
                now_ms,
                f"node {node} committed height {block.height} with a body its header does not commit to",
            )
        if not valid and self.check_certificates:
            detail = f"node {node} committed height {block.height} with a bad certificate"
            self.fail("invalid_certificate", now_ms, detail)
        earlier = self.finalized.setdefault(block.height, block.hash)
        self.blocks.setdefault(block.height, block)
        self.first_final_ms.setdefault(block.height, now_ms)
        self.commit_ms.setdefault((node, block.height), now_ms)
        if earlier != block.hash:
            self.fail(
                "agreement",
                now_ms,
                f"node {node} finalized {block.hash.hex()[:12]} at height {block.height}, "
                f"another honest node {earlier.hex()[:12]}",
            )

    def check_certificate(self, block: Block, certificate: CommitCertificate, now_ms: int) -> bool:
        """Verify a certificate once; two certified blocks at one height break agreement."""
        key = certificate.encode() + block.hash
        if key in self._checked_certificates:
            return True
        try:
            verify_certificate(
                certificate,
                chain_id=CHAIN_ID,
                height=block.height,
                block_hash=block.hash,
                validators=self._validators(block.height),
            )
        except Invalid:
            return False
        self._checked_certificates.add(key)
        hashes = self.certified.setdefault(block.height, set())
        hashes.add(block.hash)
        if len(hashes) > 1:
            self.fail("conflicting_certificates", now_ms, f"{len(hashes)} certified blocks at height {block.height}")
        return True

    def on_signed(self, message: Message, now_ms: int) -> None:
        """An honest validator signed ``message``: it must not conflict with what it signed before."""
        if isinstance(message, NewView):
            message = message.pre_prepare
        if not isinstance(message, (PrePrepare, Prepare, Commit, ViewChange)):
            return
        if not self._honest_signer(message.height, message.sender):
            return
        what = _statement(message)
        key = (message.sender, message.height, message.view, type(message).__name__)
        earlier = self.statements.setdefault(key, what)
        if earlier != what:
            self.fail(
                "honest_equivocation",
                now_ms,
                f"validator {message.sender} signed two {type(message).__name__}s at height {message.height} "
                f"view {message.view}",
            )

    def check_validity(self, now_ms: int) -> None:
        """Every finalized block, in height order, passes the state transition, the state
        they lead to keeps the books (``ledger_problems``), and so do the bonds at every
        block (``BondAudit``)."""
        heights = sorted(self.blocks)
        if heights != list(range(1, len(heights) + 1)):
            self.fail("validity", now_ms, f"final heights have gaps: {heights[:5]}...")
            return
        blocks = [self.blocks[height] for height in heights]
        try:
            self.final_state = replay_chain(self.genesis, blocks, audit=self.bond_audit)
        except Invalid as error:
            self.fail("validity", now_ms, f"final chain does not replay: {error}")
            return
        for problem in ledger_problems(self.final_state):
            self.fail("ledger", now_ms, problem)
        self.bond_audit.check_final(self.final_state)
        for problem in self.bond_audit.problems[:MAX_REPORTED]:
            self.fail("bonds", now_ms, problem)

    def check_node_states(self, states: Sequence[tuple[int, Header, bytes]], now_ms: int) -> None:
        """Each honest node's own state (``(node, head, root of its state)``) is the state the
        final chain leads to at its height: every validator agrees on the state, not only on
        the blocks."""
        for node, head, root in states:
            if head.height == 0:
                continue
            if root != head.state_root:
                self.fail("state", now_ms, f"honest node {node}'s state is not the state its head {head.height} names")
            elif head.height in self.blocks and head.state_root != self.blocks[head.height].header.state_root:
                self.fail("state", now_ms, f"honest node {node}'s state at {head.height} is not the final chain's")

    def on_misbehaviour(self, reporter: int, honest: bool, culprit: int, rule: str, now_ms: int) -> None:
        """An honest validator counted a refusal against ``culprit``: it must not be honest."""
        if honest and culprit in self.honest:
            self.fail(
                "honest_penalized", now_ms, f"validator {reporter} held {rule} against honest validator {culprit}"
            )

    def check_stored_chains(self, chains: Sequence[Sequence[Block]], now_ms: int) -> None:
        """Each honest node's own chain, as stored, is the final chain: every body the one
        its header commits to, every hash the one finalized at its height. (The final
        chain itself replays from genesis: ``check_validity``; so each stored chain
        replays too, without replaying it again.)"""
        for node, blocks in enumerate(chains):
            forged = [block.height for block in blocks if not _body_matches(block)]
            if forged:
                self.fail("forged_body", now_ms, f"honest node {node} stores forged bodies at heights {forged[:5]}")
            others = [block.height for block in blocks if self.finalized.get(block.height) != block.hash]
            if others:
                self.fail("agreement", now_ms, f"honest node {node} stores other blocks at heights {others[:5]}")

    def check_idle(self, scenario: Scenario, view_changes: int, now_ms: int) -> None:
        """At the end of an idle run (after ``check_validity``): no view changes without
        faults, empty blocks an idle interval apart (``_check_idle_height``), and
        transactions final after each stretch (``_check_arrival``)."""
        if scenario.quiet and view_changes:
            self.fail("idle_view_change", now_ms, f"{view_changes} view changes in a run without faults")
        for height in sorted(self.first_final_ms):
            self._check_idle_height(scenario, height)
        for stretch in scenario.idle:
            self._check_arrival(scenario, stretch, now_ms)

    def _check_idle_height(self, scenario: Scenario, height: int) -> None:
        """A height just final somewhere for the first time, in an idle run. An empty block
        is final an idle interval after the one before it: never sooner (a view changed
        while idle, or the primary's wait was cut short) and, with no crash, at most four
        deliveries later (the previous height reaching the primary, and the new block's
        three phases). It is dated when its primary proposed it: at most a clock offset
        after it was first final, and, with no crash (which may leave a prepared block
        to a later view), at most a few deliveries before."""
        block, final_ms = self.blocks[height], self.first_final_ms[height]
        before = self.first_final_ms.get(height - 1)
        if block.transactions or before is None:
            return
        interval = scenario.empty_proposal_delay_ms
        assert interval is not None
        gap = final_ms - before
        if gap < interval and (self._reaches_expiry(height) or height in self.bond_audit.steps_due):
            return  # a primary proposes when an automatic step falls due (``next_due_ms``)
        for stretch in scenario.idle:
            quiet_until = stretch.end_ms + min(stretch.arrival_ms)
            if (
                stretch.start_ms <= before
                and final_ms < quiet_until
                and (gap < interval or (not scenario.crashes and gap > interval + 5 * scenario.max_delay_ms))
            ):
                self.fail(
                    "idle_interval",
                    final_ms,
                    f"empty block {height} final {gap} ms after block {height - 1}; the idle interval is {interval} ms",
                )
        stamp = block.header.timestamp_ms
        earliest = final_ms - (5 * scenario.max_delay_ms if not scenario.crashes else final_ms)
        if not earliest <= stamp <= final_ms + scenario.max_clock_skew_ms:
            self.fail(
                "block_time", final_ms, f"empty block {height}, first final at {final_ms} ms, is dated {stamp} ms"
            )

    def _reaches_expiry(self, height: int) -> bool:
        """Whether the block at ``height`` is the first whose time reaches the expiry of an
        asset of the genesis or issued in the blocks before it."""
        previous = self.blocks.get(height - 1)
        if previous is None:
            return False
        expiries = [asset.terms.expiry_ms for asset in genesis_assets(self.genesis.plan)]
        for earlier in range(1, height):
            block = self.blocks.get(earlier)
            for transaction in block.transactions if block is not None else ():
                if isinstance(transaction.body, IssueAsset):
                    expiries.append(transaction.body.expiry_ms)
        stamp = self.blocks[height].header.timestamp_ms
        return any(previous.header.timestamp_ms < expiry <= stamp for expiry in expiries if expiry)

    def _check_arrival(self, scenario: Scenario, stretch: IdleStretch, now_ms: int) -> None:
        """Transactions coming after a stretch are final within the time to reach a quorum
        of validators, the primary's gathering time, a view timeout (a failed or a late
        primary is replaced) and a few rounds of messages."""
        first = stretch.end_ms + min(stretch.arrival_ms)
        quorum = scenario.validators - scenario.faulty
        spread = sorted(stretch.arrival_ms)[min(quorum - 1 + len(scenario.crashes), scenario.validators - 1)]
        bound = spread + scenario.proposal_delay_ms + scenario.base_timeout_ms + 8 * scenario.max_delay_ms + 100
        due = stretch.end_ms + bound
        carrying = [
            final_ms
            for height, final_ms in sorted(self.first_final_ms.items())
            if final_ms >= first and self.blocks[height].transactions
        ]
        if (carrying and carrying[0] > due) or (not carrying and now_ms > due):
            late = f"{carrying[0] - stretch.end_ms} ms" if carrying else "not"
            self.fail(
                "idle_latency",
                due,
                f"transactions arriving at {stretch.end_ms} ms after an idle stretch were final {late} after, "
                f"bound {bound} ms",
            )


def ledger_problems(state: MemoryState) -> list[str]:
    """What in ``state`` breaks the books: an asset whose balances do not sum to its
    supply or whose holders are miscounted, one that lapsed completely yet is held by
    another account than its issuer, a state root that is not the entries' own."""
    problems = []
    for asset, terms in sorted(state.assets().items()):
        balances = state.balances(asset)
        recorded = state.load_asset_state(asset)
        if sum(balances.values()) != recorded.supply:
            problems.append(f"the balances of {asset} sum to {sum(balances.values())}, its supply is {recorded.supply}")
        if len(balances) != recorded.holders:
            problems.append(f"{asset} has {len(balances)} holders, its state counts {recorded.holders}")
        others = set(balances) - {terms.issuer}
        if recorded.lapse_complete and others:
            problems.append(f"{asset} lapsed, yet {len(others)} accounts besides its issuer hold it")
    entries = update_lattice(LatticeHash(), [(key, None, value) for key, value in state.entries.items()])
    if entries.root() != state.lattice.root():
        problems.append("the state root carried from block to block is not the root of the entries")
    return problems


def _body_matches(block: Block) -> bool:
    """The transactions are those the header commits to, computed independently of
    ``Block.check_body`` (whose decoder an injected bug may skip)."""
    return merkle_root([transaction.hash for transaction in block.transactions]) == block.header.transaction_root


def _statement(message: PrePrepare | Prepare | Commit | ViewChange) -> object:
    if isinstance(message, ViewChange):
        prepared = message.prepared
        return None if prepared is None else (prepared.view, prepared.block_hash)
    return message.block_hash
