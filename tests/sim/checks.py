"""The properties every run must keep, checked as the run goes.

- Agreement: no two honest nodes finalize different blocks at one height, and
  no two different blocks at one height ever carry a valid commit certificate.
- Certificates: every block an honest node commits carries a certificate that
  ``verify_certificate`` accepts.
- Persist before you speak: no honest validator ever signs two different
  statements for the same height, view and phase (even across a restart).
- Validity: the final chain replays from genesis through ``apply_block``.
- Bodies: every block an honest node commits carries the transactions its header
  commits to (checked here from the transactions' hashes, not through the code
  under test), and every honest node's own stored chain replays from genesis.
- Blame: no honest node ever counts a refusal for cause against an honest
  validator (honest validators deliver only messages they checked).
- Liveness: after healing, new heights become final within the scenario's bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collections.abc import Sequence

from mura.chain.block import Block, CommitCertificate, merkle_root, verify_certificate
from mura.chain.errors import Invalid
from mura.consensus.messages import Commit, Message, NewView, PrePrepare, Prepare, ViewChange
from mura.tests.sim.ledger import CHAIN_ID, Genesis, replay_chain


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
    #: Validator indexes that follow the protocol (their keys sign nothing else).
    honest: frozenset[int]
    #: Whether an honest commit with a certificate that does not verify is a violation.
    check_certificates: bool = True
    violations: list[Violation] = field(default_factory=list)
    #: The block hash honest nodes finalized at each height.
    finalized: dict[int, bytes] = field(default_factory=dict)
    #: The blocks, by height, in the order first finalized.
    blocks: dict[int, Block] = field(default_factory=dict)
    #: Block hashes with a valid certificate, by height.
    certified: dict[int, set[bytes]] = field(default_factory=dict)
    #: What each honest validator signed, by (validator, height, view, phase).
    statements: dict[tuple[int, int, int, str], object] = field(default_factory=dict)
    _checked_certificates: set[bytes] = field(default_factory=set)

    def fail(self, kind: str, now_ms: int, detail: str) -> None:
        self.violations.append(Violation(kind, now_ms, detail))

    def on_commit(self, node: int, honest: bool, block: Block, certificate: CommitCertificate, now_ms: int) -> None:
        """A node committed ``block``: check its certificate, and agreement if it is honest."""
        valid = self.check_certificate(block, certificate, now_ms)
        if not honest:
            return
        if not _body_matches(block):
            self.fail("forged_body", now_ms, f"node {node} committed height {block.height} with a body its header does not commit to")
        if not valid and self.check_certificates:
            detail = f"node {node} committed height {block.height} with a bad certificate"
            self.fail("invalid_certificate", now_ms, detail)
        earlier = self.finalized.setdefault(block.height, block.hash)
        self.blocks.setdefault(block.height, block)
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
                validators=self.genesis.validators,
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
        if not isinstance(message, (PrePrepare, Prepare, Commit, ViewChange)) or message.sender not in self.honest:
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
        """Every finalized block, in height order, passes the state transition."""
        heights = sorted(self.blocks)
        if heights != list(range(1, len(heights) + 1)):
            self.fail("validity", now_ms, f"final heights have gaps: {heights[:5]}...")
            return
        try:
            replay_chain(self.genesis, [self.blocks[height] for height in heights])
        except Invalid as error:
            self.fail("validity", now_ms, f"final chain does not replay: {error}")


    def on_misbehaviour(self, reporter: int, honest: bool, culprit: int, rule: str, now_ms: int) -> None:
        """An honest validator counted a refusal against ``culprit``: it must not be honest."""
        if honest and culprit in self.honest:
            self.fail("honest_penalized", now_ms, f"validator {reporter} held {rule} against honest validator {culprit}")

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


def _body_matches(block: Block) -> bool:
    """The transactions are those the header commits to, computed independently of
    ``Block.check_body`` (whose decoder an injected bug may skip)."""
    return merkle_root([transaction.hash for transaction in block.transactions]) == block.header.transaction_root


def _statement(message: PrePrepare | Prepare | Commit | ViewChange) -> object:
    if isinstance(message, ViewChange):
        prepared = message.prepared
        return None if prepared is None else (prepared.view, prepared.block_hash)
    return message.block_hash
