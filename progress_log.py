"""What an operator reads about the chain's progress: final blocks, view
changes, stalls and catching up, in few enough lines to read.

At INFO a node writes:

- a final block with transactions, one line each (how long after its
  proposal it became final, when this node took part in deciding it), at
  most ``block_lines`` a ``block_window`` (a busy chain makes several a
  second; past that they are counted, and ``check`` writes the count);
  empty blocks only as a count every ``summary_every`` seconds;
- every view change with its reason, at most ``view_change_lines`` a window
  (the rest at DEBUG and counted: see ``view_changed``);
- while catching up, no line per block but one every ``catch_up_every``
  seconds with the heights done and left, and one when caught up;
- at WARNING, when the chain makes no progress here, why: too few validators
  linked for a quorum, or linked but not agreeing (on a node that follows
  without a vote: how many validators it is linked to, and how far the
  network is); again when that changes or
  every ``stall_repeat`` seconds while it lasts (at most ``stall_change_lines``
  a ``stall_change_window``, however often a flapping link changes it), and at INFO when a block
  becomes final again.

No progress means no final block for longer than ``stall_after`` (the idle
interval between empty blocks plus two view timeouts: one for the primary,
one for the view change that replaces it), or a view change at a height that
has waited for longer than ``view_change_limit`` (two view timeouts) without
reaching its new view: an idle chain making one block a minute is not
stalled, and one whose view changes fail is, well before the idle interval
ends.

The object is sans-I/O as far as time goes: every call takes ``now``
(monotonic seconds), so that tests drive it with their own clock.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from mura.consensus.messages import Message, NewView, ViewChange
from mura.consensus.replica import Replica
from mura.p2p.logs import RateLimitedLog

LOG = logging.getLogger("mura.node")

#: A node this many final heights behind the network is catching up: no line per block.
CATCH_UP_GAP = 5
#: A validator is missing when this node took no valid vote of its at the height being
#: decided nor at this many heights below it.
MISSING_VOTE_HEIGHTS = 3


@dataclass(frozen=True, slots=True)
class ConsensusFacts:
    """Where consensus stands at one moment, as the replica and the network see it."""

    #: The height being decided (one above the last final block).
    height: int
    #: The view this node is in.
    view: int
    #: The name of that view's primary.
    primary: str
    #: True while this node has left its view and waits for the next one to start.
    changing_view: bool
    #: Names of the other validators with a live link.
    linked: tuple[str, ...]
    #: Names of the other validators without one.
    missing: tuple[str, ...]
    #: Names of the other validators heard voting at this height.
    voting: tuple[str, ...] = ()
    #: Other validators asking for views above this node's, by name, with the view.
    later_views: tuple[tuple[str, int], ...] = ()
    #: The highest final height this node knows of.
    target: int = 0
    #: True while this node is no validator of the height: it follows final blocks.
    following: bool = False


class ProgressLog:
    """The operator's account of progress; the node calls it on every final block and
    view change, and ``check`` about once a second."""

    def __init__(
        self,
        *,
        quorum: int,
        stall_after: float,
        view_change_limit: float,
        now: float,
        summary_every: float = 600.0,
        catch_up_every: float = 5.0,
        stall_repeat: float = 300.0,
        stall_change_lines: int = 4,
        stall_change_window: float = 60.0,
        view_change_lines: int = 20,
        view_change_window: float = 600.0,
        block_lines: int = 30,
        block_window: float = 60.0,
    ) -> None:
        self.quorum = quorum
        self.stall_after = stall_after
        self.view_change_limit = view_change_limit
        self.summary_every = summary_every
        self.catch_up_every = catch_up_every
        self.stall_repeat = stall_repeat
        self.stall_change_lines = stall_change_lines
        self.stall_change_window = stall_change_window
        # Stall lines written in the current window of ``stall_change_window`` seconds.
        self._stall_window: tuple[float, int] = (now, 0)
        self.view_change_lines = view_change_lines
        self.view_change_window = view_change_window
        self.block_lines = block_lines
        self.block_window = block_window
        #: When the last block became final here (the start, before the first).
        self.last_final = now
        #: What the last stall line said (its kind), while a stall lasts; None otherwise.
        self.stall: tuple[object, ...] | None = None
        self._stall_logged_at = 0.0
        self._changing_since: float | None = None
        self._empty_blocks = 0
        self._summary_started = now
        # Blocks with transactions in this window: lines written, and those only counted.
        self._block_window_started = now
        self._blocks_logged = 0
        # Of those only counted: how many, their transactions, the first and last height.
        self._blocks_held = (0, 0, 0, 0)
        self._view_changes_logged = 0
        self._view_changes_held = 0
        self._view_change_window_started = now
        # Catching up: where it began, and the last progress line.
        self._catch_up: tuple[int, float] | None = None
        self._catch_up_line: tuple[int, float] = (0, now)
        # Episodes of catching up that come and go (a slow node on a busy chain) write
        # their first and last lines at most once a minute, the rest as a count.
        self._episodes = RateLimitedLog(LOG, interval=60.0)

    def flush(self) -> None:
        """Write what is held back for a summary line now (at shutdown)."""
        self._episodes.flush()

    @property
    def catching_up(self) -> bool:
        """True while this node fetches final blocks far behind the network."""
        return self._catch_up is not None

    # --- final blocks -------------------------------------------------------------------

    def final_block(
        self, now: float, *, height: int, transactions: int, view: int, latency_ms: int | None, target: int
    ) -> None:
        """Block ``height`` became final here, with ``transactions`` in it, certified in
        ``view``; ``latency_ms`` is the time from its proposal when this node took part in
        deciding it (None for a block fetched with its certificate); ``target`` is the
        highest final height this node knows of."""
        if self.stall is not None:
            LOG.info(
                "progress resumed at height %d after %.0f s without a final block",
                height, now - self.last_final,
                extra={
                    "event": "progress_resumed", "height": height, "stalled_seconds": round(now - self.last_final, 1)
                },
            )
            self.stall = None
        self.last_final = now
        self._changing_since = None
        if self._catching_up(now, height, target):
            return
        if transactions == 0:
            self._empty_blocks += 1
            return
        self._roll_block_window(now)
        if self._blocks_logged >= self.block_lines:
            count, held_transactions, first, _ = self._blocks_held
            self._blocks_held = (count + 1, held_transactions + transactions, first or height, height)
            return
        self._blocks_logged += 1
        fields = {"event": "final_block", "height": height, "transactions": transactions, "view": view}
        if latency_ms is None:
            LOG.info("final block %d: %d transactions, view %d, fetched from a peer", height, transactions, view,
                     extra=fields)
        else:
            LOG.info("final block %d: %d transactions, view %d, %d ms after its proposal", height, transactions, view,
                     latency_ms, extra=fields | {"latency_ms": latency_ms})

    def _roll_block_window(self, now: float) -> None:
        if now - self._block_window_started < self.block_window:
            return
        count, transactions, first, last = self._blocks_held
        if count:
            LOG.info(
                "%d more blocks with %d transactions final in the last %.0f s, heights %d to %d "
                "(not logged one by one)",
                count, transactions, now - self._block_window_started, first, last,
                extra={"event": "blocks_held", "count": count, "transactions": transactions},
            )
        self._block_window_started = now
        self._blocks_logged = 0
        self._blocks_held = (0, 0, 0, 0)

    def _catching_up(self, now: float, height: int, target: int) -> bool:
        """Start, report or end catching up; True while it lasts (no line for the block)."""
        behind = target - height
        if self._catch_up is None:
            if behind < CATCH_UP_GAP:
                return False
            self._catch_up = (height - 1, now)
            self._catch_up_line = (height - 1, now)
            self._episodes.info(
                ("catching up",), "catching up from height %d to ~%d (%d blocks behind)", height - 1, target, behind + 1
            )
            return True
        started_height, started = self._catch_up
        if behind <= 1:
            self._catch_up = None
            done, seconds = height - started_height, now - started
            self._episodes.info(
                ("caught up",), "caught up at height %d: %d blocks in %.0f s (%.0f blocks/s)",
                height, done, seconds, done / seconds if seconds > 0 else done,
            )
            return True
        line_height, line_time = self._catch_up_line
        if now - line_time >= self.catch_up_every:
            rate = (height - line_height) / (now - line_time)
            remaining = target - height
            LOG.info(
                "catching up: height %d of ~%d (%d done, %d remaining, %.0f blocks/s, about %.0f s left)",
                height, target, height - started_height, remaining, rate, remaining / rate if rate > 0 else 0,
                extra={"event": "catching_up", "height": height, "target": target, "blocks_per_second": round(rate, 1)},
            )
            self._catch_up_line = (height, now)
        return True

    # --- view changes -------------------------------------------------------------------

    def view_changed(self, now: float, *, height: int, before: int, after: int, reason: str, primary: str) -> None:
        """This node moved from view ``before`` to ``after`` at ``height`` for ``reason``.

        Each is one INFO line. Views that keep failing at a height cost few lines (their
        timeouts double up to the ceiling: with the defaults at most six in the first
        minute, then two a minute), but a network that changes views at height after
        height could write one every few seconds: past ``view_change_lines`` in a
        ``view_change_window`` they go to DEBUG, and ``check`` writes how many there were.
        """
        self._roll_view_change_window(now, height, after)
        fields = {"event": "view_change", "height": height, "view": after, "previous_view": before, "reason": reason}
        level = logging.INFO
        if self._view_changes_logged >= self.view_change_lines:
            self._view_changes_held += 1
            level = logging.DEBUG
        else:
            self._view_changes_logged += 1
        LOG.log(level, "view change at height %d: view %d -> %d (%s), primary now %s", height, before, after, reason,
                primary, extra=fields)

    def _roll_view_change_window(self, now: float, height: int, view: int) -> None:
        if now - self._view_change_window_started < self.view_change_window:
            return
        if self._view_changes_held:
            LOG.info(
                "%d more view changes in the last %.0f min, at DEBUG only (view %d at height %d now)",
                self._view_changes_held, (now - self._view_change_window_started) / 60, view, height,
                extra={"event": "view_changes_held", "count": self._view_changes_held},
            )
        self._view_change_window_started = now
        self._view_changes_logged = 0
        self._view_changes_held = 0

    # --- the periodic check -------------------------------------------------------------

    def check(self, now: float, facts: ConsensusFacts) -> None:
        """About once a second: the empty-block summary, held view changes, and stalls."""
        self._summarize_empty_blocks(now, facts.height - 1)
        self._roll_block_window(now)
        self._roll_view_change_window(now, facts.height, facts.view)
        if facts.changing_view:
            self._changing_since = self._changing_since if self._changing_since is not None else now
        else:
            self._changing_since = None
        if self.stalled(now):
            self._report_stall(now, facts)

    def stalled(self, now: float) -> bool:
        """Whether progress has stopped here (see the module docstring)."""
        if now - self.last_final > self.stall_after:
            return True
        return self._changing_since is not None and now - self._changing_since > self.view_change_limit

    def _summarize_empty_blocks(self, now: float, height: int) -> None:
        if now - self._summary_started < self.summary_every:
            return
        if self._empty_blocks:
            LOG.info(
                "%d empty blocks final in the last %.0f min, height %d",
                self._empty_blocks, (now - self._summary_started) / 60, height,
                extra={"event": "empty_blocks", "count": self._empty_blocks, "height": height},
            )
        self._summary_started = now
        self._empty_blocks = 0

    def _report_stall(self, now: float, facts: ConsensusFacts) -> None:
        """One WARNING when a stall is first seen, when its kind changes, and every
        ``stall_repeat`` seconds while it lasts; in all at most ``stall_change_lines`` a
        ``stall_change_window`` (a validator flapping its link changes the kind at every
        check; the line written once the window allows says how things stand then)."""
        short = len(facts.linked) < self.quorum - 1
        kind: tuple[object, ...] = ("no quorum", facts.missing) if short else ("no agreement",)
        if facts.following:
            kind = ("following", not facts.linked)
        if kind == self.stall and now - self._stall_logged_at < self.stall_repeat:
            return
        started, written = self._stall_window
        if now - started >= self.stall_change_window:
            started, written = now, 0
        if written >= self.stall_change_lines:
            return
        self._stall_window = (started, written + 1)
        self.stall = kind
        self._stall_logged_at = now
        if facts.following:
            self._no_final_block(now, facts)
        elif short:
            self._no_quorum(now, facts)
        else:
            self._no_agreement(now, facts)

    def _no_final_block(self, now: float, facts: ConsensusFacts) -> None:
        """A node that follows without a vote needs one validator to send it final blocks."""
        others = len(facts.linked) + len(facts.missing)
        where = f"the network is at ~{facts.target}" if facts.target >= facts.height else "none seen further"
        LOG.warning(
            "following without a vote: no final block for %.0f s at height %d; linked to %d of %d validators "
            "(not linked: %s); %s",
            now - self.last_final, facts.height, len(facts.linked), others, ", ".join(facts.missing) or "none", where,
            extra={"event": "no_final_block", "height": facts.height, "linked": list(facts.linked),
                   "missing": list(facts.missing), "target": facts.target},
        )

    def _no_quorum(self, now: float, facts: ConsensusFacts) -> None:
        others = len(facts.linked) + len(facts.missing)
        waiting = self.quorum - 1 - len(facts.linked)
        LOG.warning(
            "no quorum: linked to %d of %d other validators, a block needs %d of %d; waiting for %d more "
            "(not linked: %s); no final block for %.0f s at height %d",
            len(facts.linked), others, self.quorum, others + 1, waiting, ", ".join(facts.missing),
            now - self.last_final, facts.height,
            extra={"event": "no_quorum", "height": facts.height, "linked": list(facts.linked),
                   "missing": list(facts.missing), "waiting_for": waiting},
        )

    def _no_agreement(self, now: float, facts: ConsensusFacts) -> None:
        others = len(facts.linked) + len(facts.missing)
        primary_link = "this node" if facts.primary not in facts.linked + facts.missing else (
            "linked" if facts.primary in facts.linked else "not linked")
        later = ", ".join(f"{name} {view}" for name, view in facts.later_views) or "none"
        behind = f"; the network is at ~{facts.target}" if facts.target >= facts.height + CATCH_UP_GAP else ""
        LOG.warning(
            "no agreement: no final block for %.0f s at height %d, though linked to %d of %d other validators "
            "(a block needs %d of %d); in view %d, primary %s (%s); votes at this height from: %s; "
            "asking for later views: %s%s",
            now - self.last_final, facts.height, len(facts.linked), others, self.quorum, others + 1, facts.view,
            facts.primary, primary_link, ", ".join(facts.voting) or "none", later, behind,
            extra={"event": "no_agreement", "height": facts.height, "view": facts.view, "linked": list(facts.linked),
                   "voting": list(facts.voting)},
        )


# --- reading the replica -----------------------------------------------------------------


def view_change_reason(replica: Replica, names: Sequence[str], event: str, message: Message | None) -> str:
    """Why ``replica`` changed views at its height while handling ``event`` (``message``
    for a peer's message)."""
    if event == "timeout":
        return "its timer ran out"
    if isinstance(message, NewView):
        return f"NEW-VIEW from {names[message.sender]}"
    if isinstance(message, ViewChange):
        askers = [
            names[change.sender] for change in replica.view_changes.by_sender.values()
            if change.view >= replica.view and change.sender != replica.index
        ]
        return f"pulled along by {len(askers)} validators asking for view {replica.view} or later: {', '.join(askers)}"
    if message is not None:
        # Only the double-sign check moves views on other messages (see ``Replica._hear``).
        return "double-sign check: others were heard signing in earlier views"
    return "other validators moved"


def view_change_at_new_height(replica: Replica, previous_view: int, certified_view: int) -> tuple[int, str] | None:
    """``replica`` moved to a new height from ``previous_view``; the last block was certified
    in ``certified_view``. A view it did not change to itself is a view change too: the
    view it came from and why, or None."""
    if certified_view > previous_view and replica.view == certified_view:
        return previous_view, f"height {replica.height - 1} became final in view {certified_view}"
    if replica.view > max(certified_view, previous_view):
        return max(certified_view, previous_view), "messages or votes held for this height"
    return None


def consensus_facts(
    replica: Replica, names: Sequence[str], connected: Collection[bytes], *, highest_known: int
) -> ConsensusFacts:
    """Where ``replica`` stands, with the validators whose keys are in ``connected`` linked;
    ``highest_known`` is the highest height known final somewhere."""
    others = [index for index in range(replica.validators.size) if index != replica.index]
    keys = replica.validators.keys
    later = sorted(
        (change.sender, change.view) for change in replica.view_changes.by_sender.values()
        if change.view > replica.view and change.sender != replica.index
    )
    return ConsensusFacts(
        height=replica.height,
        view=replica.view,
        primary=names[replica.validators.primary(replica.view)],
        changing_view=not replica.active,
        linked=tuple(names[index] for index in others if keys[index] in connected),
        missing=tuple(names[index] for index in others if keys[index] not in connected),
        voting=tuple(names[index] for index in others if replica.last_vote_heights.get(index, 0) >= replica.height),
        later_views=tuple((names[sender], view) for sender, view in later),
        target=highest_known,
        following=not replica.member,
    )


def missing_validators(replica: Replica, connected: Collection[bytes] = ()) -> int:
    """Other validators ``replica`` took no valid vote from (PREPARE, COMMIT or VIEW-CHANGE)
    at the height being decided nor at the ``MISSING_VOTE_HEIGHTS`` below it: 0 on a
    healthy network, whatever the quorum. A replica that follows the height without a
    vote is sent no votes: for it, the validators whose keys are not in ``connected``
    (those it has no link to)."""
    if not replica.member:
        return sum(1 for key in replica.validators.keys if key not in connected)
    since = max(1, replica.height - MISSING_VOTE_HEIGHTS)
    heights = replica.last_vote_heights
    others = (index for index in range(replica.validators.size) if index != replica.index)
    return sum(1 for index in others if heights.get(index, 0) < since)
