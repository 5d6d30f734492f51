"""Where a replica stands at its height: one phase at a time, each with its own timers.

- ``InView``: the replica's view is established (it began with the height, or a
  valid NEW-VIEW started it). Its primary waits to propose, then every replica
  PREPAREs and COMMITs the proposal; the view's timer runs.
- ``ChangingView``: the replica left its view and asked for ``view`` with a
  VIEW-CHANGE. It waits for a quorum of VIEW-CHANGEs with no view timer
  (repeating its own), then for the NEW-VIEW with the timer running (see
  ``view_change.py``). A replica that restarted after voting in a view above the
  height's first waits here too, with its timer running.
- ``Committing``: a block is final; ``CommitBlock`` went to the driver and the
  replica waits for ``Replica.committed``, answering block requests only and
  keeping other messages for the next height.

The replica moves between them in one place (its "transitions" section): a
height begins in ``InView``, or in ``ChangingView`` when the votes recorded at it
say this replica left the view; a timeout, pull-along or the double-sign check
moves it to ``ChangingView``; a NEW-VIEW (received, or sent as primary) to
``InView``; a final block, from either, to ``Committing``; ``committed`` begins
the next height.

The double-sign check (``double_sign.py``) is not a phase: while it holds back
this replica's signatures, the replica still follows views and heights, and
signs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mura.consensus.messages import FinalBlock, Message


@dataclass(slots=True)
class InView:
    """The view is established: its primary proposes, replicas PREPARE and COMMIT."""

    #: When the view times out (None only before the replica is started).
    deadline_ms: int | None = None
    #: When this replica, the view's primary, proposes (None: it is not waiting to).
    proposal_due_ms: int | None = None


@dataclass(slots=True)
class ChangingView:
    """Left the previous view: waiting for a quorum of VIEW-CHANGEs, then the NEW-VIEW."""

    #: When the view being changed to times out in turn: None until a quorum of
    #: VIEW-CHANGEs for it or later is known (or the replica restarted in it).
    deadline_ms: int | None = None
    #: When to repeat this replica's VIEW-CHANGE (None: it does not).
    resend_due_ms: int | None = None


@dataclass(slots=True)
class Committing:
    """A block is final here and handed to the driver; waiting for ``committed``."""

    #: The block and its commit certificate, as given in ``CommitBlock``.
    final: FinalBlock
    #: Whether the replica's view was established when the block became final (a
    #: quorum's COMMITs make a block final in any view, even while changing views).
    view_established: bool
    #: Messages that arrived meanwhile (bounded), with who delivered them, handled once
    #: the next height begins.
    deferred: list[tuple[Message, int | None]] = field(default_factory=list)


#: Any phase (not to be confused with ``messages.Phase``, the kind of a vote).
ReplicaPhase = InView | ChangingView | Committing
