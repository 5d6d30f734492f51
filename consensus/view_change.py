"""View change: leaving a view that makes no progress, and starting the next.

Rules, at height h:

- Timeout: a replica whose view deadline passes moves to view v+1 and
  broadcasts a signed VIEW-CHANGE carrying its highest prepared certificate.
  Each failed view at a height doubles the next timeout, up to a ceiling.
- Waiting: the timer of a view being changed to runs only once a quorum of
  VIEW-CHANGEs for it is known, so replicas whose timers fired at different
  moments meet in one view instead of chasing each other upwards. Until then
  the replica repeats its VIEW-CHANGE every base timeout, in case it was lost.
- Pull-along: f+1 validators asking for views above a replica's own include an
  honest one, so the replica moves to the smallest view among the f+1 highest.
- NEW-VIEW: the primary of v, with a quorum of VIEW-CHANGEs for v, re-proposes
  the block of the highest prepared certificate among them, or a fresh block
  if none was prepared, and sends the view changes with the proposal.
- A replica accepts a NEW-VIEW for a view at least its own only if its view
  changes are a valid quorum and its proposal is the one they force; it then
  enters that view and PREPAREs the proposal like any other.
- Helping: a replica in view v that hears a VIEW-CHANGE for v or lower sends
  the sender the NEW-VIEW that started v (or, while itself changing views, its
  own VIEW-CHANGE), once per sender and view.

Safety rests on quorum intersection: a block committed in view u was prepared
by a quorum, so every quorum of VIEW-CHANGEs for a later view at that height
holds an honest replica that reports it (prepared certificates are recorded
with the COMMIT, so they survive a restart).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from mura.chain.block import Block
from mura.chain.errors import DecodeError, Invalid
from mura.chain.keys import SigningKey, sha256
from mura.chain.state import StateChanges
from mura.consensus.actions import Action, Broadcast, ScheduleTimeout, Send
from mura.consensus.application import Application
from mura.consensus.buffer import Held
from mura.consensus.config import ReplicaConfig
from mura.consensus.errors import OutsideWindow
from mura.consensus.log import Added, Duplicate, HeightLog
from mura.consensus.messages import (
    Commit,
    Message,
    NewView,
    Phase,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    view_change_payload,
)
from mura.consensus.quorum import ValidatorSet
from mura.consensus.verify import MessageVerifier, highest_prepared
from mura.consensus.votes import RecordedVote, SigningGuard


class ViewChangeRules:
    """The view-change half of ``Replica`` (kept apart so each file reads at once)."""

    # State owned by ``Replica``, declared here for type checkers.
    key: SigningKey
    index: int
    validators: ValidatorSet
    config: ReplicaConfig
    application: Application
    verifier: MessageVerifier
    quorum: int
    height: int
    view: int
    active: bool
    failed_views: int
    log: HeightLog
    prepared: PreparedCertificate | None
    view_deadline_ms: int | None
    resend_due_ms: int | None
    rejected: Counter[str]
    view_changes_started: int
    last_vote_heights: dict[int, int]
    guard: SigningGuard

    if TYPE_CHECKING:  # implemented by Replica

        def speak(self, vote: RecordedVote, message: Message) -> list[Action]: ...
        def validate(self, block: Block, *, certified: bool = False) -> StateChanges: ...
        def accept_proposal(self, proposal: PrePrepare, now_ms: int, *, fresh: bool = True) -> list[Action]: ...
        def relay(self, message: Prepare | Commit | ViewChange | NewView, origin: int | None) -> list[Action]: ...
        def _refused(self, error: Invalid, origin: int | None) -> list[Action]: ...
        def _hear(self, validator: int, height: int, now_ms: int, *, view: int | None = None) -> list[Action]: ...
        def _note_vote(self, validator: int, height: int) -> None: ...
        def _claim(self, phase: Phase, view: int, digest: bytes) -> RecordedVote | None: ...
        def _enter_view_timer(self, now_ms: int) -> list[Action]: ...
        def _serve(self, peer: int, height: int) -> list[Action]: ...
        def _hold(self, message: Held, now_ms: int, origin: int | None) -> list[Action]: ...
        def _report(self, outcome: object) -> list[Action]: ...

    def change_view(self, view: int, now_ms: int) -> list[Action]:
        """Leave the current view for ``view`` and ask for it with a VIEW-CHANGE. At the
        first height a new vote record goes straight to the first view it may sign in:
        waiting in one it may not would leave the others a validator short there."""
        if self.height == 1:
            view = max(view, self.guard.from_view)
        self.view = view
        self.active = False
        self.failed_views += 1
        self.view_changes_started += 1
        self.view_deadline_ms = None
        actions = self._schedule_resend(now_ms)
        prepared = self.prepared
        digest = sha256(view_change_payload(self.config.chain_id, view, self.height, prepared))
        vote = self._claim(Phase.VIEW_CHANGE, view, digest)
        if vote is not None:
            block = None if prepared is None else self.log.find_block(prepared.block_hash)
            change = ViewChange.sign(self.key, self.index, self.config.chain_id, view, self.height, prepared, block)
            self.log.add_view_change(change)
            actions += self.speak(vote, change)
        return actions + self._on_view_change_quorum(now_ms)

    def on_view_change(self, change: ViewChange, now_ms: int, origin: int | None = None) -> list[Action]:
        """Record a peer's VIEW-CHANGE; serve it blocks if it is behind, follow f+1, lead a quorum."""
        if change.height < self.height:
            if origin != change.sender:
                # Relayed or replayed: it says nothing of where its signer is now.
                return []
            self.verifier.check_signature(change.sender, change.signing_payload(self.config.chain_id), change.signature)
            self._note_vote(change.sender, change.height)
            return self._serve(change.sender, change.height)
        if change.height == self.height and change.view > self.view + self.config.view_window:
            raise OutsideWindow(f"view change for view {change.view}, this replica is in view {self.view}")
        self.verifier.check_view_change(change)
        heard = self._hear(change.sender, change.height, now_ms, view=change.view)
        if change.height > self.height:
            return heard + self._hold(change, now_ms, origin)
        actions, block = self._checked_prepared_block(change, origin)
        actions = heard + actions
        if change.prepared_block is not None and block is None:
            change = change.without_block()
        outcome = self.log.add_view_change(change, block)
        if isinstance(outcome, Added):
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

    def _pull_along(self, now_ms: int) -> list[Action]:
        """f+1 validators want views above ours: move to the smallest of the f+1 highest."""
        views = (change.view for change in self.log.view_changes.values())
        higher = sorted((view for view in views if view > self.view), reverse=True)
        needed = self.validators.weak_quorum
        if len(higher) < needed:
            return []
        return self.change_view(higher[needed - 1], now_ms)

    def _schedule_resend(self, now_ms: int) -> list[Action]:
        due = now_ms + self.config.base_timeout_ms
        self.resend_due_ms = due
        return [ScheduleTimeout(due)]

    def resend_view_change(self, now_ms: int) -> list[Action]:
        """Still waiting for a quorum or a NEW-VIEW: repeat our (recorded) VIEW-CHANGE."""
        own = self.log.view_changes.get(self.index)
        if self.active or own is None or own.view != self.view:
            self.resend_due_ms = None
            return []
        return [Broadcast(own), *self._schedule_resend(now_ms)]

    def _on_view_change_quorum(self, now_ms: int) -> list[Action]:
        """A quorum has left the previous view (their view changes are for ours or later):
        start our view's timer. With a quorum for exactly our view, lead it if primary."""
        if self.active:
            return []
        leaving = sum(1 for change in self.log.view_changes.values() if change.view >= self.view)
        if leaving < self.quorum:
            return []
        actions = self._enter_view_timer(now_ms) if self.view_deadline_ms is None else []
        changes = self.log.view_changes_for(self.view)
        if len(changes) < self.quorum:
            return actions
        return actions + self._start_view(changes, now_ms)

    def _start_view(self, changes: list[ViewChange], now_ms: int) -> list[Action]:
        """As primary of the view being changed to, send NEW-VIEW with the forced proposal."""
        if self.validators.primary(self.view) != self.index or self.view in self.log.new_views:
            return []
        block = self._new_view_block(changes, now_ms)
        if block is None:
            return []
        vote = self._claim(Phase.PRE_PREPARE, self.view, block.hash)
        if vote is None:
            return []
        proposal = PrePrepare.sign(self.key, self.index, self.config.chain_id, self.view, block)
        new_view = NewView(self.view, self.height, tuple(change.without_block() for change in changes), proposal)
        self.log.new_views[self.view] = new_view
        self.active = True
        self.resend_due_ms = None
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
            self.validate(block)
        except Invalid as error:
            self.rejected["prepared_block_" + error.rule] += 1
            return None
        return block

    def on_new_view(self, message: NewView, now_ms: int, origin: int | None = None) -> list[Action]:
        """Enter a view started by a valid NEW-VIEW at least as high as ours."""
        if message.height < self.height:
            return []
        if message.height == self.height and (message.view < self.view or (message.view == self.view and self.active)):
            return []
        self.verifier.check_new_view(message)
        heard = self._hear(message.sender, message.height, now_ms, view=message.view)
        if message.height > self.height:
            return heard + self._hold(message, now_ms, origin)
        # The proposal's signature covers its header only: a body that is not the header's
        # (forged on the way) is refused before this replica enters the view or keeps the
        # NEW-VIEW to hand to others.
        proposal = message.pre_prepare
        checked = PrePrepare(proposal.view, proposal.block.check(), proposal.sender, proposal.signature)
        message = NewView(message.view, message.height, message.view_changes, checked)
        self.view = message.view
        self.active = True
        self.resend_due_ms = None
        fresh = highest_prepared(message.view_changes) is None
        actions = heard + self._enter_view_timer(now_ms)
        try:
            accepted = self.accept_proposal(checked, now_ms, fresh=fresh)
        except Invalid as error:
            # In the view now, with its timer running; a NEW-VIEW whose proposal this replica
            # refused is neither passed on nor kept to help others with (they would refuse
            # it as well, and hold it against this replica).
            return actions + self._refused(error, origin)
        self.log.new_views[message.view] = message
        return actions + self.relay(message, origin) + accepted

    def _help(self, change: ViewChange) -> list[Action]:
        """Answer a validator asking for a view we already reached, once per view."""
        key = (change.sender, change.view)
        if key in self.log.helped or change.sender == self.index or change.view > self.view:
            return []
        answer: NewView | ViewChange | None = None
        if self.active:
            answer = self.log.new_views.get(self.view)
        elif change.view < self.view:
            own = self.log.view_changes.get(self.index)
            answer = own if own is not None and own.view == self.view else None
        if answer is None:
            return []
        self.log.helped.add(key)
        return [Send(change.sender, answer)]

