"""The PBFT replica: a sans-I/O state machine over one height at a time.

Messages and the current time (integer milliseconds) go in through
``receive``, ``timeout`` and ``committed``; an ordered list of actions comes
out. The replica never reads a clock, sleeps, touches a socket or a disk.

Rules of the normal case, at height h (the sequence number) in view v:

- The primary of v proposes one block with PRE-PREPARE; a replica accepts at
  most one proposal per view, from the primary, and only if the application
  validates the block on top of the last final block.
- A replica that accepts the proposal signs PREPARE; with a quorum of PREPAREs
  for the proposal it is *prepared* and signs COMMIT.
- A quorum of COMMITs for one block, in any view, makes it final; those
  signatures are its commit certificate. The replica emits ``CommitBlock`` and
  waits for ``committed`` before starting height h+1, dropping h's log.
- Height h+1 starts in the view of h's certificate. That view is established
  below h+1, so its primary may propose at once (see ``view_change.py`` for the
  rules that leave a view).

Where the replica stands at its height is one explicit phase (``phase.py``):
in a view, changing views, or committing; the moves between them are in the
"transitions" section below.

Every vote is recorded (``PersistVote``) before it is sent, and never signed
twice differently (``SignedVotes``); a validator whose vote record is new first
waits out the double-sign check (``double_sign.py``). A lagging replica fetches
final blocks from peers (``catch_up.py``).

Untrusted input, cheapest check first: a message arrives with its blocks
unchecked (``UncheckedBlock``); the sender, the signatures, the height and
the view are checked before a block's body is checked against its header and
decoded, and that happens only for a block the replica is about to use. A
refusal for cause (``errors.penalized``) comes out as a ``Misbehaviour``
against the validator that delivered the message (its ``origin``, which the
driver names), and equivocation as one against its signer. A message taken
for the first time is relayed (``Relay``) to the validators that did not send
or sign it, so a validator cut off from a signer still hears it.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace

from mura.chain.block import Block, CommitCertificate
from mura.chain.errors import DecodeError, Invalid, InvalidCertificate
from mura.chain.keys import SignatureCache, SigningKey, sha256
from mura.chain.state import StateChanges
from mura.consensus.actions import (
    Action,
    Broadcast,
    CommitBlock,
    Misbehaviour,
    PersistGuard,
    PersistVote,
    PruneVotes,
    Relay,
    ReportEquivocation,
    ScheduleTimeout,
    Send,
    ServeBlocks,
)
from mura.consensus.application import Application
from mura.consensus.buffer import FutureBuffer, Held
from mura.consensus.catch_up import CatchUp, LaterHeights
from mura.consensus.config import ReplicaConfig, view_timeout_ms
from mura.consensus.double_sign import DoubleSignCheck
from mura.consensus.errors import (
    ConflictingVote,
    InvalidMessage,
    OutsideWindow,
    TimestampInFuture,
    UnsettledValidators,
    WrongProposer,
    penalized,
)
from mura.consensus.evidence import Equivocation
from mura.consensus.log import Added, Duplicate, HeightLog
from mura.consensus.messages import (
    BlockRequest,
    Commit,
    FinalBlock,
    Message,
    NewView,
    Phase,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Status,
    ViewChange,
    decode_message,
    view_change_payload,
)
from mura.consensus.phase import ChangingView, Committing, InView, ReplicaPhase
from mura.consensus.quorum import ValidatorSet
from mura.consensus.verify import MessageVerifier, highest_prepared
from mura.consensus.view_change import ViewChanges
from mura.consensus.votes import NO_GUARD, RecordedVote, SignedVotes, SigningGuard, VoteReader

#: Proposals of views this close to the replica's own are kept in case they are certified.
OTHER_VIEW_BLOCKS = 2
#: Messages for heights whose validator set is not settled here that one validator may
#: deliver and have refused, at each height, before the rest go unchecked (``_verify``).
UNSETTLED_REFUSALS_PER_HEIGHT = 16


class Replica:
    """One validator's PBFT state machine. See the module docstring for its rules."""

    def __init__(
        self,
        *,
        key: SigningKey,
        application: Application,
        config: ReplicaConfig,
        vote_record: VoteReader,
        signature_cache: SignatureCache | None = None,
        verifier_class: type[MessageVerifier] = MessageVerifier,
        log_class: type[HeightLog] = HeightLog,
    ) -> None:
        """``verifier_class`` checks messages and ``log_class`` keeps each height's
        messages: the real ones unless a test harness breaks one on purpose. The
        validators of each height come from ``application.validators_at``; a replica
        whose key is not among them follows that height without a vote."""
        self.key = key
        self.config = config
        self.application = application
        self._verifier_class = verifier_class
        self._signature_cache = signature_cache if signature_cache is not None else SignatureCache(capacity=20_000)
        #: One verifier per validator set met lately (sets change seldom).
        self._verifiers: dict[tuple[bytes, ...], MessageVerifier] = {}
        self._log_class = log_class
        self.height = application.final_height() + 1
        #: The validators that decide this height (``_use_validators``).
        self.validators = self._validator_set(self.height)
        #: This replica's position in the validator set of its height; None while it is
        #: not a validator there (it follows the height: it checks and counts, never signs).
        self.index: int | None = self.validators.indexes.get(key.public_key)
        self.verifier = self._verifier(self.validators)
        #: Distinct votes that prepare or commit a block.
        self.quorum = self.validators.quorum
        #: The keys of the validators of this height and the next (``_note_participants``).
        self.participants: frozenset[bytes] = frozenset()
        self._note_participants()
        self.view = self._certified_view(self.height - 1)
        #: Where this replica stands at its height (see ``phase.py``).
        self.phase: ReplicaPhase = InView()
        self.log = log_class(self.height)
        #: The VIEW-CHANGEs and NEW-VIEWs of this height (see ``view_change.py``).
        self.view_changes = ViewChanges(self.validators, self.index)
        self.signed = SignedVotes(self.height)
        #: The highest prepared certificate at this height.
        self.prepared: PreparedCertificate | None = None
        #: What this replica holds for later heights and fetches for them (see ``catch_up.py``).
        self.later_heights = LaterHeights(config, faulty=self.validators.faulty)
        #: Equivocations seen, newest last (bounded).
        self.evidence: deque[Equivocation] = deque(maxlen=config.max_evidence)
        #: Dropped messages by the rule they broke.
        self.rejected: Counter[str] = Counter()
        #: View changes this replica started (a figure for metrics and the simulator).
        self.view_changes_started = 0
        #: Block requests sent while following a height (they go to each validator in turn).
        self._polls = 0
        #: Messages for heights ahead of the settled ones refused at this height, by deliverer.
        self._unsettled_refusals: Counter[int | None] = Counter()
        #: The double-sign check, as the vote record keeps it.
        self.double_sign = DoubleSignCheck(
            vote_record.signing_guard() if config.double_sign_check_heights else NO_GUARD,
            validators=self.validators,
            index=self.index,
            height_window=config.height_window,
            view_window=config.view_window,
            check_heights=config.double_sign_check_heights,
        )
        self.double_sign.first_height = self._membership_start(self.height)
        #: Validator index -> the highest height at which this replica took a vote of
        #: theirs with a valid signature (a PRE-PREPARE, PREPARE, COMMIT, VIEW-CHANGE or
        #: NEW-VIEW, or a COMMIT in a final block's certificate), its own signed votes
        #: included: who takes part in consensus, for the node's metrics. Heights more
        #: than ``height_window`` ahead of this replica are not believed.
        self.last_vote_heights: dict[int, int] = {}
        self.vote_record = vote_record
        self._restore()

    # --- what the phase says ---------------------------------------------------------

    @property
    def active(self) -> bool:
        """True once this replica may accept its view's proposal: the view began with
        the height, or a valid NEW-VIEW started it. False while changing views."""
        phase = self.phase
        return isinstance(phase, InView) or (isinstance(phase, Committing) and phase.view_established)

    @property
    def pending(self) -> FinalBlock | None:
        """The block handed to the driver in ``CommitBlock`` and not yet confirmed."""
        return self.phase.final if isinstance(self.phase, Committing) else None

    @property
    def proposal_due_ms(self) -> int | None:
        """When this replica, as its view's primary, proposes (None: it is not waiting to)."""
        return self.phase.proposal_due_ms if isinstance(self.phase, InView) else None

    @property
    def view_deadline_ms(self) -> int | None:
        """When the current view times out (None while waiting for a quorum of
        VIEW-CHANGEs, and while committing)."""
        return None if isinstance(self.phase, Committing) else self.phase.deadline_ms

    @property
    def guard(self) -> SigningGuard:
        """The double-sign check's state (see ``votes.SigningGuard``)."""
        return self.double_sign.guard

    @property
    def held(self) -> FutureBuffer:
        """Signed messages and final blocks held for later heights."""
        return self.later_heights.held

    @property
    def catch_up(self) -> CatchUp:
        """The final blocks asked for, and how far ahead the validators are seen."""
        return self.later_heights.catch_up

    # --- driver interface ----------------------------------------------------------

    def start(self, now_ms: int) -> list[Action]:
        """Begin the current height: arm its timer and propose if primary (or, while the
        double-sign check is pending, say where this replica stands)."""
        if not self.member:
            return self._arm_view_timer(now_ms + self.config.catch_up_retry_ms)
        status: list[Action] = []
        if self.guard.pending and self.validators.size == 1:
            self.double_sign.skip()
            status = [PersistGuard(0)]
        elif self.guard.pending:
            status = [Broadcast(self._status())]
        return status + self._first_view_timer(now_ms) + self._schedule_proposal(now_ms)

    def receive(self, message: Message, now_ms: int, *, origin: int | None = None) -> list[Action]:
        """Handle one message that validator ``origin`` delivered (None: unknown); invalid
        ones are dropped and counted, and those refused for cause come back as a
        ``Misbehaviour`` against ``origin``."""
        if isinstance(self.phase, Committing):
            return self._defer(self.phase, message, origin)
        return self._checked(self._handle(message, now_ms, origin))

    def receive_bytes(self, data: bytes, now_ms: int, *, origin: int | None = None) -> list[Action]:
        """Decode and handle raw bytes delivered by ``origin``; anything malformed is
        dropped, counted and held against ``origin``."""
        try:
            message = decode_message(data)
        except DecodeError as error:
            return self._refused(error, origin)
        return self.receive(message, now_ms, origin=origin)

    def peer_connected(self, peer: int, now_ms: int) -> list[Action]:
        """A link to validator ``peer`` opened (again): send it what it may have missed of
        this height, so that replicas meet again as soon as a partition heals rather than
        when their timers fire: this replica's VIEW-CHANGE while it changes views, else
        the NEW-VIEW that started its view, the view's proposal and its own votes in it;
        while the double-sign check holds everything back, its height. At an idle height
        (nothing pending here, nothing signed yet in the view) its height too, so that a
        peer that restarted behind learns at once that there are final blocks to fetch
        rather than at the next proposal, up to an idle interval later; but not at the
        first height, where a height without a signed view would tell a new vote record
        that this validator signed nothing there (and where there is nothing to fetch).
        Otherwise a replica that may sign is heard by what it signs."""
        phase = self.phase
        if isinstance(phase, Committing) or not self.member or peer == self.index or not self.validators.contains(peer):
            return []
        if self.guard.pending:
            return [Send(peer, self._status())]
        if isinstance(phase, ChangingView):
            own = self.view_changes.own(self.view)
            return [] if own is None else [Send(peer, own)]
        messages: list[Message] = []
        new_view = self.view_changes.new_views.get(self.view)
        proposal = self.log.proposals.get(self.view)
        if new_view is not None:
            messages.append(new_view)
        elif proposal is not None:
            messages.append(proposal)
        for tally in (self.log.prepares, self.log.commits):
            vote = tally.vote_of(self.view, self.signer)
            if vote is not None:
                messages.append(vote)
        if not messages and self.height > 1 and not self.application.has_pending_transactions():
            messages.append(self._status())
        return [Send(peer, message) for message in messages]

    def timeout(self, now_ms: int) -> list[Action]:
        """The clock reached a time this replica asked for; early or stale calls do nothing."""
        phase = self.phase
        actions: list[Action] = []
        if isinstance(phase, InView) and phase.proposal_due_ms is not None and now_ms >= phase.proposal_due_ms:
            phase.proposal_due_ms = None
            actions += self._propose(now_ms)
        phase = self.phase
        if isinstance(phase, Committing):
            return self._checked(actions)
        if phase.deadline_ms is not None and now_ms >= phase.deadline_ms and not self.member:
            actions += self._poll(now_ms)
        elif phase.deadline_ms is not None and now_ms >= phase.deadline_ms:
            actions += self.change_view(self.view + 1, now_ms)
        elif isinstance(phase, ChangingView) and phase.resend_due_ms is not None and now_ms >= phase.resend_due_ms:
            actions += self._resend_view_change(phase, now_ms)
        return self._checked(actions)

    def committed(self, now_ms: int) -> list[Action]:
        """The driver made the last ``CommitBlock`` durable: start the next height."""
        committing = self.phase
        if not isinstance(committing, Committing):
            raise RuntimeError("committed() called with no CommitBlock outstanding")
        final, before = committing.final, self.validators
        self._start_height(final.height + 1, final.certificate.view)
        actions: list[Action] = [PruneVotes(max(0, self.height - self.config.vote_retention_heights))]
        actions += self.start(now_ms)
        # Ask for what is missing first: a CommitBlock from the held blocks must come last.
        actions += self._sync(now_ms)
        actions += self._replay_held(now_ms)
        for message, origin in committing.deferred:
            # Who delivered it, by its place in the set of the new height.
            here = None if origin is None else self.validators.indexes.get(before.keys[origin])
            actions += self.receive(message, now_ms, origin=here)
        return self._checked(actions)

    # --- dispatch ------------------------------------------------------------------------

    def _handle(self, message: Message, now_ms: int, origin: int | None) -> list[Action]:
        try:
            if isinstance(message, PrePrepare):
                return self._on_pre_prepare(message, now_ms, origin)
            if isinstance(message, (Prepare, Commit)):
                return self._on_vote(message, now_ms, origin)
            if isinstance(message, ViewChange):
                return self._on_view_change(message, now_ms, origin)
            if isinstance(message, NewView):
                return self._on_new_view(message, now_ms, origin)
            if isinstance(message, BlockRequest):
                return self._on_block_request(message, origin)
            if isinstance(message, Status):
                return self._on_status(message, now_ms, origin)
            return self._on_final_block(message, origin)
        except UnsettledValidators as error:
            return self._refused(error, origin) + self._ahead_of_settled(error.details["height"], origin, now_ms)
        except Invalid as error:
            return self._refused(error, origin)

    def _on_status(self, status: Status, now_ms: int, origin: int | None) -> list[Action]:
        """An unsigned ``Status`` counts only from the link of the validator it names (by
        its place in the set of the status's height); one from a validator ahead says
        there are final blocks to fetch. Named in a set not settled here (the latest set
        known is taken for it) and not matching its link, it says only that the
        validator that delivered it is ahead."""
        named = self.validator_key(status.height, status.sender)
        if origin is None or named != self.validators.keys[origin]:
            if status.height > self.height + 1:
                return self._ahead_of_settled(status.height, origin, now_ms)
            raise InvalidMessage(f"a status naming validator {status.sender} came from validator {origin}")
        actions = self._hear(origin, status.height, now_ms)
        if status.height > self.height and origin != self.index:
            self.catch_up.note_ahead(origin, status.height)
            actions += self._sync(now_ms)
        return actions

    def _here(self, height: int, index: int) -> int | None:
        """Validator ``index`` of the set of ``height`` by its place in the set of this
        replica's height (None: it is not a validator here)."""
        if height == self.height:
            return index if self.validators.contains(index) else None
        key = self.validator_key(height, index)
        return None if key is None else self.validators.indexes.get(key)

    def validator_key(self, height: int, index: int) -> bytes | None:
        """The key of validator ``index`` of the set of ``height`` (None: no such validator)."""
        if height < 1:
            return None
        keys = self.verifier_at(height).validators.keys
        return keys[index] if 0 <= index < len(keys) else None

    def _refused(self, error: Invalid, origin: int | None) -> list[Action]:
        """Count a refusal; one for cause counts against the validator that delivered it."""
        self.rejected[error.rule] += 1
        if origin is None or origin == self.index or not penalized(error):
            return []
        return [Misbehaviour(origin, error.rule)]

    def relay(self, message: Prepare | Commit | ViewChange | NewView, origin: int | None) -> list[Action]:
        """Pass on a message taken for the first time to those who did not send or sign it."""
        if not self.member:
            return []
        exclude = {self.signer, message.sender} | ({origin} if origin is not None else set())
        return [Relay(message, frozenset(exclude))]

    def _checked(self, actions: list[Action]) -> list[Action]:
        """A ``CommitBlock`` is the last action of its list: the driver must confirm it first."""
        for position, action in enumerate(actions):
            if isinstance(action, CommitBlock) and position != len(actions) - 1:
                raise AssertionError("CommitBlock must be the last action")
        return actions

    def _on_block_request(self, request: BlockRequest, origin: int | None) -> list[Action]:
        """Final blocks go back to the validator that delivered the request, whatever place
        it names (``requester`` is its place in the set of its own height, which may not be
        this one's); the blocks prove themselves. From a node that is no validator here,
        the driver answers by the link it came by. (The node answers every request in the
        requester's link task, and never passes them here.)"""
        if origin is None:
            return []
        return self._serve(origin, request.height)

    def _defer(self, committing: Committing, message: Message, origin: int | None) -> list[Action]:
        """While committing: answer a block request now, keep anything else for later."""
        if isinstance(message, BlockRequest):
            try:
                return self._on_block_request(message, origin)
            except Invalid as error:
                return self._refused(error, origin)
        if len(committing.deferred) < self.config.max_deferred:
            committing.deferred.append((message, origin))
        return []

    # --- the normal case ---------------------------------------------------------------

    def _on_pre_prepare(self, message: PrePrepare, now_ms: int, origin: int | None) -> list[Action]:
        """Accept the current view's proposal from its primary; keep a later one's block."""
        if message.height < self.height:
            return []
        self._verify(message.height, lambda verifier: verifier.check_pre_prepare(message), origin)
        heard = self._hear(message.sender, message.height, now_ms, view=message.view)
        if message.height > self.height:
            return heard + self._hold(message, now_ms, origin)
        if message.view != self.view or not self.active:
            self._keep_block_of(message)
            return heard
        return heard + self.accept_proposal(message, now_ms)

    def _keep_block_of(self, message: PrePrepare) -> None:
        """A signed proposal of a neighbouring view: its block may yet be certified (one per
        view, kept unchecked until then; a few views only, so that a primary of many views
        cannot make this replica hold many blocks)."""
        if abs(message.view - self.view) <= OTHER_VIEW_BLOCKS:
            self.log.other_views.setdefault(message.view, message.block)

    def accept_proposal(self, proposal: PrePrepare, now_ms: int, *, fresh: bool = True) -> list[Action]:
        """Check the proposal of the current view and PREPARE it. A block is accepted when
        its time is at most ``max_clock_drift_ms`` ahead, its body is its header's, the
        application accepts it, and, for a ``fresh`` block (not one a NEW-VIEW must
        re-propose), its proposer is the primary of this view. (A re-proposed block was
        prepared by a quorum, whose honest members checked its proposer when it was
        fresh.) The proposal's signature was checked before."""
        earlier = self.log.compare_proposal(proposal)
        if earlier is not None:
            return self._report(earlier)
        header = proposal.block.header
        if header.timestamp_ms > now_ms + self.config.max_clock_drift_ms:
            raise TimestampInFuture(f"block {header.height} is dated {header.timestamp_ms - now_ms} ms ahead")
        if fresh and header.proposer != self.validators.keys[self.validators.primary(proposal.view)]:
            raise WrongProposer(
                f"block {header.height} names proposer {header.proposer.hex()[:16]}, "
                f"not the primary of view {proposal.view}"
            )
        block = proposal.block.check()
        self.log.validate(block, self.application)
        outcome = self.log.add_proposal(proposal, block)
        if not isinstance(outcome, Added):
            return self._report(outcome)
        vote = self._claim(Phase.PREPARE, proposal.view, proposal.block_hash)
        if vote is None:
            return []
        chain_id, block_hash = self.config.chain_id, proposal.block_hash
        prepare = Prepare.sign(self.key, self.signer, chain_id, proposal.view, self.height, block_hash)
        self.log.prepares.add(prepare)
        return self.speak(vote, prepare) + self._progress(now_ms) + self._check_prepared(now_ms)

    def _on_vote(self, vote: Prepare | Commit, now_ms: int, origin: int | None) -> list[Action]:
        """Count a PREPARE or COMMIT for this height within the view window."""
        if vote.height < self.height:
            return []
        if vote.height == self.height and abs(vote.view - self.view) > self.config.view_window:
            raise OutsideWindow(f"vote for view {vote.view}, this replica is in view {self.view}")
        self._verify(vote.height, lambda verifier: verifier.check_vote(vote), origin)
        heard = self._hear(vote.sender, vote.height, now_ms, view=vote.view)
        if vote.height > self.height:
            return heard + self._hold(vote, now_ms, origin)
        tally = self.log.prepares if isinstance(vote, Prepare) else self.log.commits
        outcome = tally.add(vote)
        if not isinstance(outcome, Added):
            return heard + self._report(outcome)
        relay = heard + self.relay(vote, origin)
        if isinstance(vote, Prepare):
            return relay + self._check_prepared(now_ms)
        return relay + self._check_final(vote.view, vote.block_hash, now_ms)

    def _check_prepared(self, now_ms: int) -> list[Action]:
        """With the view's proposal and a quorum of PREPAREs for it, sign COMMIT."""
        proposal = self.log.proposals.get(self.view)
        if proposal is None or not self.active:
            return []
        signatures = self.log.prepares.signatures(self.view, proposal.block_hash)
        if len(signatures) < self.quorum or self.signed.signed(Phase.COMMIT, self.view) is not None:
            return []
        certificate = PreparedCertificate(self.view, self.height, proposal.block_hash, proposal.signature, signatures)
        claimed = self._claim(Phase.COMMIT, self.view, proposal.block_hash)
        if claimed is None:
            return []
        vote = replace(claimed, prepared=certificate, block=proposal.block.check())
        self.prepared = certificate
        commit = Commit.sign(self.key, self.signer, self.config.chain_id, self.view, self.height, proposal.block_hash)
        self.log.commits.add(commit)
        return self.speak(vote, commit) + self._check_final(self.view, proposal.block_hash, now_ms)

    def _check_final(self, view: int, block_hash: bytes, now_ms: int) -> list[Action]:
        """A quorum of COMMITs for one block in one view makes it final."""
        signatures = self.log.commits.signatures(view, block_hash)
        if len(signatures) < self.quorum:
            return []
        block = self.log.find_block(block_hash)
        if block is None:
            # A quorum committed a block this replica never got: every one of them has it
            # (the signer of the last COMMIT may be one this replica has no link to).
            for index, _ in signatures:
                if index != self.index:
                    self.catch_up.note_ahead(index, self.height + 1)
            return self._sync(now_ms)
        certificate = CommitCertificate(self.height, view, block_hash, signatures)
        return self._accept_final(FinalBlock(block, certificate))

    def _propose(self, now_ms: int) -> list[Action]:
        """As primary of an active view with no proposal yet, propose a fresh block."""
        if not self.active or self.validators.primary(self.view) != self.index or self.view in self.log.proposals:
            return []
        built = self.application.build_proposal(self.height, proposer=self.key.public_key, timestamp_ms=now_ms)
        self.log.validated[built.block.hash] = built.changes
        self.log.blocks[built.block.hash] = built.block
        vote = self._claim(Phase.PRE_PREPARE, self.view, built.block.hash)
        if vote is None:
            return []
        proposal = PrePrepare.sign(self.key, self.signer, self.config.chain_id, self.view, built.block)
        return self.speak(vote, proposal) + self.accept_proposal(proposal, now_ms)

    def _schedule_proposal(self, now_ms: int) -> list[Action]:
        phase = self.phase
        if not isinstance(phase, InView) or self.validators.primary(self.view) != self.index:
            return []
        delay = self._proposal_delay(now_ms)
        if delay <= 0:
            return self._propose(now_ms)
        phase.proposal_due_ms = now_ms + delay
        return [ScheduleTimeout(phase.proposal_due_ms)]

    def _proposal_delay(self, now_ms: int) -> int:
        """A primary gathers transactions for ``proposal_delay_ms``; with none pending it
        waits ``empty_proposal_delay_ms``, so an idle chain grows slowly, or less, until the
        state's next automatic step is due (``next_due_ms``); with a full block's worth
        waiting (a backlog) it proposes at once."""
        idle = self.config.empty_proposal_delay_ms
        if idle is not None and not self.application.has_pending_transactions():
            due = self.application.next_due_ms()
            # A step already due (a lapse spread over blocks) waits the block interval, as
            # transactions do: never back to back.
            return idle if due is None else min(idle, max(due - now_ms, self.config.proposal_delay_ms))
        return self._busy_delay()

    def _busy_delay(self) -> int:
        return 0 if self.application.has_full_block() else self.config.proposal_delay_ms

    def transactions_arrived(self, now_ms: int) -> list[Action]:
        """The application has transactions again (it had none): everything stands as if
        the height had begun now with them pending. A primary waiting out the idle
        interval proposes ``proposal_delay_ms`` from now instead (at once with a full
        block's worth), and any replica's view timer comes forward to that proposal's
        time plus the view timeout, when that is earlier. So a primary that fails while
        the chain is idle is replaced within the normal timeout once work arrives (and
        one that ignores transactions a quorum has is replaced too; gossip brings them
        to every validator well within a view timeout)."""
        phase = self.phase
        if isinstance(phase, Committing):
            return []
        due = now_ms + self._busy_delay()
        actions: list[Action] = []
        if isinstance(phase, InView) and phase.proposal_due_ms is not None and due < phase.proposal_due_ms:
            phase.proposal_due_ms = due
            actions.append(ScheduleTimeout(due))
        deadline = due + self._view_timeout_ms()
        if phase.deadline_ms is not None and deadline < phase.deadline_ms:
            phase.deadline_ms = deadline
            actions.append(ScheduleTimeout(deadline))
        return actions

    # --- view change (rules in view_change.py) -----------------------------------------------

    def change_view(self, view: int, now_ms: int) -> list[Action]:
        """Leave the current view for ``view`` and ask for it with a VIEW-CHANGE. At the
        first height a new vote record goes straight to the first view it may sign in:
        waiting in one it may not would leave the others a validator short there."""
        if self.height == self.guard.first_height:
            view = max(view, self.guard.from_view)
        changing = self._leave_view(view)
        actions = self._schedule_resend(changing, now_ms)
        prepared = self.prepared
        digest = sha256(view_change_payload(self.config.chain_id, view, self.height, prepared))
        vote = self._claim(Phase.VIEW_CHANGE, view, digest)
        if vote is not None:
            block = None if prepared is None else self.log.find_block(prepared.block_hash)
            change = ViewChange.sign(self.key, self.signer, self.config.chain_id, view, self.height, prepared, block)
            self.view_changes.add(change)
            actions += self.speak(vote, change)
        return actions + self._on_view_change_quorum(now_ms)

    def _on_view_change(self, change: ViewChange, now_ms: int, origin: int | None) -> list[Action]:
        """Record a peer's VIEW-CHANGE; serve it blocks if it is behind, follow f+1, lead a quorum."""
        if change.height < self.height:
            if origin is None or self._here(change.height, change.sender) != origin:
                # Relayed or replayed: it says nothing of where its signer is now.
                return []
            payload = change.signing_payload(self.config.chain_id)
            self.verifier_at(change.height).check_signature(change.sender, payload, change.signature)
            self._note_vote(origin, change.height)
            return self._serve(origin, change.height)
        if change.height == self.height and change.view > self.view + self.config.view_window:
            raise OutsideWindow(f"view change for view {change.view}, this replica is in view {self.view}")
        self._verify(change.height, lambda verifier: verifier.check_view_change(change), origin)
        heard = self._hear(change.sender, change.height, now_ms, view=change.view)
        if change.height > self.height:
            return heard + self._hold(change, now_ms, origin)
        actions, block = self._checked_prepared_block(change, origin)
        actions = heard + actions
        if change.prepared_block is not None and block is None:
            change = change.without_block()
        outcome = self.view_changes.add(change, block)
        if isinstance(outcome, Added):
            if block is not None:
                self.log.blocks.setdefault(block.hash, block)
            # Without its block: the next primary most likely has it (it was proposed to
            # all), and relaying blocks would multiply what one view change costs.
            actions += self.relay(change.without_block(), origin)
        elif not isinstance(outcome, Duplicate):
            return actions + self._report(outcome)
        return actions + self._help(change) + self._pull_along(now_ms) + self._on_view_change_quorum(now_ms)

    def _checked_prepared_block(self, change: ViewChange, origin: int | None) -> tuple[list[Action], Block | None]:
        """The block a view change carries, checked against its header. The signature does
        not cover it (the certificate names its hash), so a body that is not the header's
        is dropped and held against whoever delivered it; the view change still counts."""
        if change.prepared_block is None:
            return [], None
        try:
            return [], change.prepared_block.check()
        except DecodeError as error:
            return self._refused(error, origin), None

    def _help(self, change: ViewChange) -> list[Action]:
        answer = self.view_changes.help(change, view=self.view, established=self.active)
        return [] if answer is None else [Send(change.sender, answer)]

    def _pull_along(self, now_ms: int) -> list[Action]:
        view = self.view_changes.pull_along(self.view)
        return [] if view is None else self.change_view(view, now_ms)

    def _schedule_resend(self, changing: ChangingView, now_ms: int) -> list[Action]:
        due = now_ms + self.config.base_timeout_ms
        changing.resend_due_ms = due
        return [ScheduleTimeout(due)]

    def _resend_view_change(self, changing: ChangingView, now_ms: int) -> list[Action]:
        """Still waiting for a quorum or a NEW-VIEW: repeat our (recorded) VIEW-CHANGE."""
        own = self.view_changes.own(self.view)
        if own is None:
            changing.resend_due_ms = None
            return []
        return [Broadcast(own), *self._schedule_resend(changing, now_ms)]

    def _on_view_change_quorum(self, now_ms: int) -> list[Action]:
        """A quorum has left the previous view (their view changes are for ours or later):
        start our view's timer. With a quorum for exactly our view, lead it if primary."""
        changing = self.phase
        if not isinstance(changing, ChangingView) or self.view_changes.leaving(self.view) < self.quorum:
            return []
        actions = self._enter_view_timer(now_ms) if changing.deadline_ms is None else []
        changes = self.view_changes.for_view(self.view)
        if len(changes) < self.quorum:
            return actions
        return actions + self._start_view(changes, now_ms)

    def _start_view(self, changes: list[ViewChange], now_ms: int) -> list[Action]:
        """As primary of the view being changed to, send NEW-VIEW with the forced proposal."""
        if self.validators.primary(self.view) != self.index or self.view in self.view_changes.new_views:
            return []
        block = self._new_view_block(changes, now_ms)
        if block is None:
            return []
        vote = self._claim(Phase.PRE_PREPARE, self.view, block.hash)
        if vote is None:
            return []
        proposal = PrePrepare.sign(self.key, self.signer, self.config.chain_id, self.view, block)
        new_view = NewView(self.view, self.height, tuple(change.without_block() for change in changes), proposal)
        self.view_changes.new_views[self.view] = new_view
        self._enter_view(self.view)
        actions = self.speak(vote, new_view) + self._enter_view_timer(now_ms)
        return actions + self.accept_proposal(proposal, now_ms, fresh=highest_prepared(changes) is None)

    def _new_view_block(self, changes: list[ViewChange], now_ms: int) -> Block | None:
        """The block the view changes force, if this replica has it and it is valid;
        a fresh proposal when none was prepared."""
        forced = highest_prepared(changes)
        if forced is None:
            built = self.application.build_proposal(self.height, proposer=self.key.public_key, timestamp_ms=now_ms)
            self.log.validated[built.block.hash] = built.changes
            self.log.blocks[built.block.hash] = built.block
            return built.block
        block = self.log.find_block(forced.block_hash)
        if block is None:
            return None
        try:
            self.log.validate(block, self.application)
        except Invalid as error:
            self.rejected["prepared_block_" + error.rule] += 1
            return None
        return block

    def _on_new_view(self, message: NewView, now_ms: int, origin: int | None) -> list[Action]:
        """Enter a view started by a valid NEW-VIEW at least as high as ours."""
        if message.height < self.height:
            return []
        if message.height == self.height and (message.view < self.view or (message.view == self.view and self.active)):
            return []
        self._verify(message.height, lambda verifier: verifier.check_new_view(message), origin)
        heard = self._hear(message.sender, message.height, now_ms, view=message.view)
        if message.height > self.height:
            return heard + self._hold(message, now_ms, origin)
        # The proposal's signature covers its header only: a body that is not the header's
        # (forged on the way) is refused before this replica enters the view or keeps the
        # NEW-VIEW to hand to others.
        proposal = message.pre_prepare
        checked = PrePrepare(proposal.view, proposal.block.check(), proposal.sender, proposal.signature)
        message = NewView(message.view, message.height, message.view_changes, checked)
        self._enter_view(message.view)
        fresh = highest_prepared(message.view_changes) is None
        actions = heard + self._enter_view_timer(now_ms)
        try:
            accepted = self.accept_proposal(checked, now_ms, fresh=fresh)
        except Invalid as error:
            # In the view now, with its timer running; a NEW-VIEW whose proposal this replica
            # refused is neither passed on nor kept to help others with (they would refuse
            # it as well, and hold it against this replica).
            return actions + self._refused(error, origin)
        self.view_changes.new_views[message.view] = message
        return actions + self.relay(message, origin) + accepted

    # --- transitions between phases ------------------------------------------------------------

    def _enter_view(self, view: int) -> None:
        """A NEW-VIEW (received, or sent as primary) established ``view``: its timer is armed next."""
        self.view = view
        self.phase = InView()

    def _leave_view(self, view: int) -> ChangingView:
        """Give up the current view and change to ``view`` (its timer waits for a quorum)."""
        self.view = view
        self.phase = ChangingView()
        self.view_changes.failed_views += 1
        self.view_changes_started += 1
        return self.phase

    def _finalize(self, block: Block, certificate: CommitCertificate, changes: StateChanges) -> list[Action]:
        """``block`` is final: hand it to the driver and wait for ``committed``."""
        self.phase = Committing(FinalBlock(block, certificate), view_established=self.active)
        return [CommitBlock(block, certificate, changes)]

    def _start_height(self, height: int, view: int) -> None:
        self.height = height
        self._use_validators(height)
        self._note_participants()
        self.view = view
        self.phase = InView()
        self.prepared = None
        self._unsettled_refusals.clear()
        self.log = self._log_class(height)
        self.view_changes = ViewChanges(self.validators, self.index)
        self._restore()

    # --- the validator set of each height ---------------------------------------------------

    def _validator_set(self, height: int) -> ValidatorSet:
        keys = self.application.validators_at(height)
        known = self._verifiers.get(keys)
        return ValidatorSet.of(keys) if known is None else known.validators

    def _verifier(self, validators: ValidatorSet) -> MessageVerifier:
        """The verifier of ``validators`` (a few are kept: a set met at one height is
        mostly met at the next; all share one signature cache, keyed by public key)."""
        verifier = self._verifiers.get(validators.keys)
        if verifier is None:
            if len(self._verifiers) >= 4:
                self._verifiers.pop(next(iter(self._verifiers)))
            verifier = self._verifier_class(validators, self.config.chain_id, cache=self._signature_cache)
            self._verifiers[validators.keys] = verifier
        return verifier

    def verifier_at(self, height: int) -> MessageVerifier:
        """The verifier of the validators that decide ``height``. Exact up to this
        replica's height + 1 (a change takes effect two heights after the block that
        approves it); farther ahead, the latest set known, and a message it refuses there
        is dropped without blame (``UnsettledValidators``): the set may change first."""
        if height == self.height:
            return self.verifier
        return self._verifier(self._validator_set(height))

    def _verify(self, height: int, check: Callable[[MessageVerifier], None], origin: int | None = None) -> None:
        """Run ``check`` with the verifier of ``height``. Above the settled heights a
        refusal is not held against anyone (see ``verifier_at``); so that this costs a
        faulty validator's victim a bounded number of signature checks, each validator
        that delivers messages may have ``UNSETTLED_REFUSALS_PER_HEIGHT`` refused there at
        each height of this replica, and the rest it delivers there go unchecked (and
        unused: they only say that it is ahead)."""
        unsettled = height > self.height + 1
        if unsettled and self._unsettled_refusals[origin] >= UNSETTLED_REFUSALS_PER_HEIGHT:
            raise UnsettledValidators(f"height {height}: not checked (too many refused ahead)", height=height)
        try:
            check(self.verifier_at(height))
        except (InvalidMessage, InvalidCertificate) as error:
            if not unsettled:
                raise
            self._unsettled_refusals[origin] += 1
            raise UnsettledValidators(f"height {height}: {error.message}", height=height) from None

    def _use_validators(self, height: int) -> None:
        """Take the validators of ``height`` (at the start of each height). When the set
        changed, what was learnt by index of the old one (who is ahead, who voted when)
        is dropped: an index names another validator now."""
        validators, before = self._validator_set(height), self.validators
        if validators.keys == before.keys:
            return
        self.validators = validators
        self.index = validators.indexes.get(self.key.public_key)
        self.verifier = self._verifier(validators)
        self.quorum = validators.quorum
        self.later_heights.validators_changed(faulty=validators.faulty)
        self.held.renumber(lambda index: validators.indexes.get(before.keys[index]))
        self.double_sign.validators_changed(validators, self.index)
        self.double_sign.first_height = self._membership_start(height)
        self.last_vote_heights.clear()

    def _membership_start(self, height: int) -> int:
        """``height`` if this replica's key became a validator at it (height 1 for the
        genesis validators), else 1: the height the double-sign check's first-height
        rule applies at (``double_sign.py``)."""
        if self.index is None or height == 1:
            return 1
        return height if self.key.public_key not in self.application.validators_at(height - 1) else 1

    @property
    def signer(self) -> int:
        """This replica's index where it signs: only a validator of its height signs."""
        if self.index is None:
            raise AssertionError("a replica that follows a height signs nothing at it")
        return self.index

    def _note_participants(self) -> None:
        """The validators of this height and the next, once per height: the node sends its
        votes to them and takes theirs (both sets are settled at this height)."""
        following = self.verifier_at(self.height + 1).validators.keys
        self.participants = frozenset(self.validators.keys) | frozenset(following)

    @property
    def member(self) -> bool:
        """Whether this replica is a validator of its height (else it follows it)."""
        return self.index is not None

    def _certified_view(self, height: int) -> int:
        """The view of the certificate that made ``height`` final (0 for genesis)."""
        certificate = self.application.load_certificate(height) if height > 0 else None
        return 0 if certificate is None else certificate.view

    def _restore(self) -> None:
        """On starting a height: refuse what conflicts with the votes recorded at it,
        recover the highest prepared certificate, and resume in the highest view voted in.
        A view above the height's first view (or one left by a view change) waits for a
        NEW-VIEW. Votes are found at a height being started after a restart, and also after
        catching up to a height this validator voted at before its chain data was wiped
        (its vote record is kept apart)."""
        recorded = [vote for vote in self.vote_record.load_votes(self.height) if vote.height == self.height]
        self.signed = SignedVotes(self.height, recorded)
        with_certificates = [vote for vote in recorded if vote.prepared is not None]
        highest = max(with_certificates, key=lambda vote: vote.view, default=None)
        if highest is not None:
            self.prepared = highest.prepared
            if highest.block is not None:
                self.log.blocks[highest.block.hash] = highest.block
        last_view = self.signed.highest_view()
        if last_view is not None and (last_view > self.view or self.signed.has_view_change(last_view)):
            self.view = last_view
            self.phase = ChangingView()

    # --- view timers ----------------------------------------------------------------------------

    def _progress(self, now_ms: int) -> list[Action]:
        """The view made progress (this replica checked the proposal and PREPAREd it):
        its timer starts afresh, so a block that takes long to check (a backlog on busy
        machines) is not mistaken for a failed primary. Once per view, so a faulty
        primary still costs a bounded time."""
        phase = self.phase
        if isinstance(phase, Committing) or phase.deadline_ms is None:
            return []
        deadline = now_ms + self._view_timeout_ms()
        if deadline <= phase.deadline_ms:
            return []
        phase.deadline_ms = deadline
        return [ScheduleTimeout(deadline)]

    def _enter_view_timer(self, now_ms: int) -> list[Action]:
        return self._arm_view_timer(now_ms + self._view_timeout_ms())

    def _first_view_timer(self, now_ms: int) -> list[Action]:
        """The timer of a height's first view allows for the primary's wait before it
        proposes, as this replica's own application sees it (``_proposal_delay``): with
        nothing pending, the idle interval, so that an idle chain changes no views
        however long the interval; with transactions, the time the primary gathers
        them. Transactions arriving later bring it forward (``transactions_arrived``).
        A replica that restarted after leaving this view has no such allowance: its
        view's primary, started by a NEW-VIEW, proposes in it at once."""
        wait = self._proposal_delay(now_ms) if self.active else 0
        return self._arm_view_timer(now_ms + wait + self._view_timeout_ms())

    def _view_timeout_ms(self) -> int:
        """How long the current view may last: it doubles with each view given up here."""
        return view_timeout_ms(self.config, self.view_changes.failed_views)

    def _arm_view_timer(self, deadline_ms: int) -> list[Action]:
        phase = self.phase
        if isinstance(phase, Committing):
            raise AssertionError("no view timer runs while a block is being committed")
        phase.deadline_ms = deadline_ms
        return [ScheduleTimeout(deadline_ms)]

    # --- signing: persist before you speak -------------------------------------------------

    def signing_held(self, view: int) -> bool:
        """Whether the double-sign check holds back this replica's signatures in ``view`` at
        its height."""
        return self.double_sign.holds(self.height, view)

    def _hear(self, validator: int, height: int, now_ms: int, *, view: int | None = None) -> list[Action]:
        """Validator ``validator`` works on ``height`` (signing in ``view``, its signature
        checked; or, without a view, by its own ``Status``). A signed message counts in
        ``last_vote_heights``. While the double-sign check is pending, this is how the
        replica learns where the network stands (``double_sign.py``); once that settles
        the check, the replica keeps the outcome and acts on it: at the first height it
        leaves the views others were heard signing in, and otherwise it may now sign (a
        primary held back proposes, a view change held back is sent)."""
        here = self._here(height, validator)
        if here is None:
            return []
        if view is not None:
            self._note_vote(here, height)
        guard = self.double_sign.hear(here, height, view=view, own_height=self.height)
        if guard is None:
            return []
        actions: list[Action] = [PersistGuard(guard.until_height, guard.from_view)]
        if self.height == guard.first_height and self.view < guard.from_view:
            # The views the others signed in are closed to this validator: ask for the next.
            return actions + self.change_view(guard.from_view, now_ms)
        if not self.active and not self.signing_held(self.view) and self.view_changes.own(self.view) is None:
            # It left for this view while the check held its VIEW-CHANGE back: send it now.
            return actions + self.change_view(self.view, now_ms)
        held = self.signing_held(self.view)
        proposal = [] if held or self.view in self.log.proposals else self._schedule_proposal(now_ms)
        return actions + proposal

    def _status(self) -> Status:
        return Status(self.height, self.signer)

    def _claim(self, phase: Phase, view: int, digest: bytes) -> RecordedVote | None:
        """Reserve a vote in the guard, or None if it conflicts with one already signed, if
        this height's votes may have been pruned from the record (it lies
        ``vote_retention_heights`` or more below the highest height this validator voted
        at: a replica whose chain data was wiped starts from the bottom again), or if the
        double-sign check holds it back."""
        if not self.member:
            return None
        if self.height <= self.vote_record.highest_height() - self.config.vote_retention_heights:
            self.rejected["below_recorded_height"] += 1
            return None
        if self.signing_held(view):
            self.rejected["double_sign_check"] += 1
            return None
        try:
            return self.signed.claim(phase, view, digest)
        except ConflictingVote:
            self.rejected["conflicting_vote_refused"] += 1
            return None

    def speak(self, vote: RecordedVote, message: Message) -> list[Action]:
        """Persist before you speak: the vote is recorded before it is broadcast."""
        self._note_vote(self.signer, vote.height)
        return [PersistVote(vote), Broadcast(message)]

    def _note_vote(self, validator: int, height: int) -> None:
        """A vote of ``validator`` at ``height`` with a valid signature: it takes part. Votes
        further ahead than ``height_window`` are not believed, and the rest count at most at
        this replica's height: a faulty validator's one vote for a far-off height, replayed,
        would otherwise count it as voting until the chain got there."""
        believed = min(height, self.height)
        if height <= self.height + self.config.height_window and believed > self.last_vote_heights.get(validator, 0):
            self.last_vote_heights[validator] = believed

    def _report(self, outcome: object) -> list[Action]:
        """Keep equivocation evidence once per offence, and count it against the signer;
        duplicates are ignored."""
        if not isinstance(outcome, Equivocation):
            return []
        key = (outcome.validator, outcome.view, int(outcome.phase))
        if key in self.log.reported:
            return []
        self.log.reported.add(key)
        self.evidence.append(outcome)
        return [ReportEquivocation(outcome), Misbehaviour(outcome.validator, "equivocation")]

    # --- holding and catching up ------------------------------------------------------------------

    def _hold(self, message: Held, now_ms: int, origin: int | None) -> list[Action]:
        """A signed message for a later height: keep it if near, and fetch what we lack."""
        signer = self._here(message.height, message.sender)
        if not self.later_heights.hold(message, origin, height=self.height, index=self.index, signer=signer):
            self.rejected[OutsideWindow.rule] += 1
        return self._sync(now_ms)

    def _sync(self, now_ms: int) -> list[Action]:
        """Behind the validators: ask for the first final blocks not in hand (see ``catch_up``)."""
        pending = self.pending is not None
        return self.later_heights.request(height=self.height, pending=pending, index=self.index, now_ms=now_ms)

    def _serve(self, peer: int, height: int) -> list[Action]:
        """A peer is behind, at ``height``: the driver sends it final blocks from there on,
        from its store and within that peer's budget (``serving.py``)."""
        if not 1 <= height < self.height or peer == self.index or not self.validators.contains(peer):
            return []
        return [ServeBlocks(peer, height)]

    def _ahead_of_settled(self, height: int, origin: int | None, now_ms: int) -> list[Action]:
        """A message for ``height``, beyond the heights whose validators this replica knows,
        that the latest set known refuses: the set changed on the way there, so this
        replica is behind a change. The validator that delivered it (its link is
        authenticated) is taken to be ahead and asked for final blocks, which prove
        themselves; nothing else of the message is believed."""
        if origin is None or origin == self.index:
            return []
        self.catch_up.note_ahead(origin, min(height, self.height + self.config.height_window))
        return self._sync(now_ms)

    def _poll(self, now_ms: int) -> list[Action]:
        """A follower's timer: it asks for the final blocks it lacks, of a validator seen
        ahead or, having seen none, of each validator of its height in turn (one that
        has nothing newer answers nothing), and sets the timer again. It never signs, so
        it has no view to give up."""
        actions = self._sync(now_ms)
        if not actions and self.pending is None:
            self._polls += 1
            peer = (self.height + self._polls) % self.validators.size
            actions = [Send(peer, BlockRequest(self.height, None))]
        return actions + self._arm_view_timer(now_ms + self.config.catch_up_retry_ms)

    def wants_final_block(self, height: int) -> bool:
        """Whether a final block at ``height`` would be taken (once its certificate
        verifies): it is for this height or near enough ahead, and not already held."""
        return self.later_heights.wants_final_block(height, height=self.height)

    def check_certificate(self, final: FinalBlock, origin: int | None = None) -> None:
        """Raise ``InvalidCertificate`` unless ``final``'s certificate proves its block final:
        a quorum of the validators of its height signed it (``verifier_at``)."""
        self._verify(final.height, lambda verifier: verifier.check_certificate(final), origin)

    def _on_final_block(self, final: FinalBlock, origin: int | None) -> list[Action]:
        """A final block from a peer counts once its certificate verifies and its body is
        the one its header commits to."""
        if not self.wants_final_block(final.height):
            return []
        self.check_certificate(final, origin)
        for signer, _ in final.certificate.signatures:
            here = self._here(final.height, signer)
            if here is not None:
                self._note_vote(here, final.height)
        checked = FinalBlock(final.block.check(), final.certificate)
        if final.height > self.height:
            self.held.hold_final_block(checked)
            return []
        return self._accept_final(checked)

    def _accept_final(self, final: FinalBlock) -> list[Action]:
        block = final.block.check()
        try:
            changes = self.log.validate(block, self.application, certified=True)
        except Invalid as error:
            # A quorum certified it: this replica's own state is at odds, not the sender.
            self.rejected["certified_block_" + error.rule] += 1
            return []
        return self._finalize(block, final.certificate, changes)

    def _replay_held(self, now_ms: int) -> list[Action]:
        """Handle what was held for the height just entered, until one makes it final."""
        actions: list[Action] = []
        while self.pending is None:
            held = self.later_heights.take(self.height)
            if held is None:
                break
            if isinstance(held, FinalBlock):
                # Checked when it came, perhaps against a set not settled then: again now
                # (the signatures are known; only the set may differ).
                try:
                    self.check_certificate(held)
                except Invalid as error:
                    self.rejected[error.rule] += 1
                    continue
                actions += self._accept_final(held)
            else:
                message, origin = held
                actions += self._handle(message, now_ms, origin)
        return actions
