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

``ViewChanges`` keeps what these rules need at one height (the VIEW-CHANGEs
heard, the NEW-VIEWs that started views, who was helped, how many views were
given up) and answers the questions they ask of it. The replica acts on the
answers: it moves between views (``phase.py``), signs and sends.
"""

from __future__ import annotations

from mura.chain.block import Block
from mura.consensus.evidence import Equivocation
from mura.consensus.log import ADDED, DUPLICATE, Added, Duplicate
from mura.consensus.messages import NewView, ViewChange
from mura.consensus.quorum import ValidatorSet


class ViewChanges:
    """The view changes of one height, as one replica saw them (see the module docstring)."""

    def __init__(self, validators: ValidatorSet, index: int | None) -> None:
        self.validators = validators
        #: This replica's position in the validator set (None: it is not a validator).
        self.index = index
        #: Each validator's view change for its highest view, by validator index.
        self.by_sender: dict[int, ViewChange] = {}
        #: NEW-VIEWs sent or accepted, by view.
        self.new_views: dict[int, NewView] = {}
        #: (validator, view) pairs already helped along, so each is answered once.
        self.helped: set[tuple[int, int]] = set()
        #: Views given up at this height (the timeout doubles with each).
        self.failed_views = 0

    def add(self, change: ViewChange, block: Block | None = None) -> Added | Duplicate | Equivocation:
        """Keep each validator's highest view change (``block``, if given, is the prepared
        block it carried, checked: the caller keeps it with the height's blocks); two
        different ones for one view are equivocation."""
        earlier = self.by_sender.get(change.sender)
        if earlier is not None and earlier.view > change.view:
            return DUPLICATE
        if earlier is not None and earlier.view == change.view:
            same = _prepared_summary(earlier) == _prepared_summary(change)
            return DUPLICATE if same else Equivocation.between(earlier, change)
        if block is not None and (
            change.prepared is None or block.hash != change.prepared.block_hash or not block.body_checked
        ):
            raise ValueError("a view change is kept with its own prepared block, checked")
        self.by_sender[change.sender] = change
        return ADDED

    def own(self, view: int) -> ViewChange | None:
        """This replica's own VIEW-CHANGE, if its highest one asks for ``view``."""
        own = None if self.index is None else self.by_sender.get(self.index)
        return own if own is not None and own.view == view else None

    def for_view(self, view: int) -> list[ViewChange]:
        """The view changes for exactly ``view``, by sender index."""
        return [change for _, change in sorted(self.by_sender.items()) if change.view == view]

    def leaving(self, view: int) -> int:
        """How many validators left the views below ``view`` (their view changes are for
        ``view`` or later)."""
        return sum(1 for change in self.by_sender.values() if change.view >= view)

    def pull_along(self, view: int) -> int | None:
        """Pull-along: the view to move to from ``view``, once f+1 validators ask for views
        above it (the smallest of the f+1 highest); None while fewer do."""
        higher = sorted((change.view for change in self.by_sender.values() if change.view > view), reverse=True)
        needed = self.validators.weak_quorum
        return higher[needed - 1] if len(higher) >= needed else None

    def help(self, change: ViewChange, *, view: int, established: bool) -> NewView | ViewChange | None:
        """Helping: what to send the signer of ``change`` when it asks for a view this
        replica (in ``view``, ``established`` or still changing to it) already reached:
        the NEW-VIEW that started ``view``, or while changing views our own VIEW-CHANGE.
        Once per signer and view; None when there is nothing to send."""
        key = (change.sender, change.view)
        if key in self.helped or change.sender == self.index or change.view > view:
            return None
        answer: NewView | ViewChange | None = None
        if established:
            answer = self.new_views.get(view)
        elif change.view < view:
            answer = self.own(view)
        if answer is None:
            return None
        self.helped.add(key)
        return answer


def _prepared_summary(change: ViewChange) -> tuple[int, bytes] | None:
    prepared = change.prepared
    return None if prepared is None else (prepared.view, prepared.block_hash)
