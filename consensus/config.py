"""Replica settings: timers, windows and bounds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaConfig:
    """Everything a replica needs besides its key, validators and application."""

    #: The network's name; every signature covers it.
    chain_id: str
    #: How long a view may last before a replica asks for the next one.
    base_timeout_ms: int = 2_000
    #: The ceiling on view timeouts, which double with each failed view at a height.
    max_timeout_ms: int = 30_000
    #: How long the primary waits after a height starts before proposing.
    proposal_delay_ms: int = 0
    #: With no transactions pending, how long the primary waits before proposing an
    #: empty block (None: as ``proposal_delay_ms``). Arriving transactions cut it
    #: short. It may be far longer than a view timeout: every replica's view timer
    #: allows for the primary's wait as the replica's own mempool sees it (see
    #: ``Replica._first_view_timer``).
    empty_proposal_delay_ms: int | None = None
    #: A proposal's block may claim a time at most this far past the replica's clock:
    #: block times never go back, so one far in the future would hold the chain's
    #: clock there. (Certified blocks from peers are final and are not judged by it.)
    max_clock_drift_ms: int = 15_000
    #: Votes are kept for views this far from the replica's own.
    view_window: int = 32
    #: Messages for heights this far ahead are held; farther ones are dropped.
    height_window: int = 8
    #: Most held messages per sender.
    held_per_sender: int = 64
    #: Most messages deferred while a ``CommitBlock`` is being made durable.
    max_deferred: int = 4_096
    #: A height is requested again from peers after this long (how often one is served
    #: again is ``serving.ServingLimits.repeat_ms``).
    catch_up_retry_ms: int = 1_000
    #: Final blocks expected in answer to one request (a server sends at most
    #: ``serving.ServingLimits.batch``); twice as many are held while applying.
    catch_up_batch: int = 16
    #: Equivocation evidence kept for the node to report.
    max_evidence: int = 1_024
    #: Votes are kept this many heights below the height being decided. A height is
    #: final at this replica once it moves on, but perhaps nowhere else yet (the other
    #: validators may not have seen the COMMITs it saw): if this replica's chain data is
    #: wiped, it meets that height again and must still know what it signed there. It
    #: signs nothing at a height this far below the highest it voted at.
    vote_retention_heights: int = 16
    #: A replica whose vote record is new signs nothing at this many heights from the one
    #: f+1 validators it heard work on (at the first height: not in the views they
    #: signed in); see ``votes.SigningGuard`` (0: no check).
    double_sign_check_heights: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.base_timeout_ms <= self.max_timeout_ms:
            raise ValueError("timeouts must satisfy 0 < base_timeout_ms <= max_timeout_ms")
        if self.proposal_delay_ms < 0 or (
            self.empty_proposal_delay_ms is not None and self.empty_proposal_delay_ms < 0
        ):
            raise ValueError("proposal delays must not be negative")
        if self.view_window < 1 or self.height_window < 1 or self.held_per_sender < 1 or self.catch_up_batch < 1:
            raise ValueError("windows and bounds must be positive")
        if self.vote_retention_heights < 2:
            raise ValueError("vote_retention_heights must be at least 2")
        if self.double_sign_check_heights < 0:
            raise ValueError("double_sign_check_heights must not be negative")


def view_timeout_ms(config: ReplicaConfig, failed_views: int) -> int:
    """The timeout of a view after ``failed_views`` failures at this height: it doubles
    with each failure and never exceeds ``max_timeout_ms``."""
    doublings = min(failed_views, 40)
    return min(config.base_timeout_ms << doublings, config.max_timeout_ms)
