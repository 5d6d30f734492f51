"""The double-sign check: how long a validator whose vote record is new keeps from signing.

A record that is new knows nothing of what its validator signed before (see
``votes.SigningGuard``). While the check is pending the replica signs nothing and
listens: once f+1 other validators are heard, it signs nothing up to
``double_sign_check_heights - 1`` heights past the highest of their heights that
f+1 of them corroborate within ``height_window`` (a faulty one claiming a far-off
height is not believed, one claiming a lower one changes nothing). A network
still at this validator's first height (height 1 for the genesis validators; for
one that a governance change added, or whose key it brought in, the height the
change took effect at) has no final height to wait out: there it signs nothing
in the views others were heard signing in at that height, since this validator
may have signed in them too, and joins from the next view (at once if nobody has
signed: a new network). Without that rule a new validator would sign nothing at
the first heights of a set that may need it for a quorum, and the chain would
stop. A replica that is no validator at its height (it follows) listens to
nobody: the check waits until it is one.
"""

from __future__ import annotations

from mura.consensus.quorum import ValidatorSet
from mura.consensus.votes import NO_GUARD, SigningGuard


class DoubleSignCheck:
    """The check's state (``guard``, as the vote record keeps it) and, while it is pending,
    what was heard of the others."""

    def __init__(
        self,
        guard: SigningGuard,
        *,
        validators: ValidatorSet,
        index: int | None,
        height_window: int,
        view_window: int,
        check_heights: int,
    ) -> None:
        self.validators = validators
        #: This replica's position in the validator set (it does not hear itself; None
        #: while it is not a validator, when it hears nobody).
        self.index = index
        #: The first height of this validator's current membership, if the replica is
        #: at it (else 1): the height the first-height rule applies at.
        self.first_height = 1
        self.height_window = height_window
        self.view_window = view_window
        self.check_heights = check_heights
        #: The check as it stands (``NO_GUARD`` when the node runs without it).
        self.guard = guard if check_heights else NO_GUARD
        #: While pending: the highest height each validator was heard (with a valid
        #: signature, or by its own ``Status``) working on.
        self.heard: dict[int, int] = {}
        #: Of those, the highest view each was heard signing in at the first height.
        self.heard_views: dict[int, int] = {}

    def validators_changed(self, validators: ValidatorSet, index: int | None) -> None:
        """The validator set changed: what was heard by index is forgotten (an index names
        another validator now)."""
        self.validators = validators
        self.index = index
        self.heard.clear()
        self.heard_views.clear()

    @property
    def pending(self) -> bool:
        """Where the network stands is not known yet: nothing may be signed."""
        return self.guard.pending

    def holds(self, height: int, view: int) -> bool:
        """Whether the check holds back a signature in ``view`` at ``height``."""
        guard = self.guard
        first = height == guard.first_height and view < guard.from_view
        return guard.pending or height <= guard.until_height or first

    def skip(self) -> SigningGuard:
        """No check: a network of one has nobody to hear from, nor a height decided without it."""
        self.guard = NO_GUARD
        return self.guard

    def hear(self, validator: int, height: int, *, view: int | None, own_height: int) -> SigningGuard | None:
        """Validator ``validator`` works on ``height`` (signing in ``view``; without one, by
        its own ``Status``), and this replica on ``own_height``. Returns the check's
        outcome when this settles it (the guard to keep), else None."""
        if not self.guard.pending or self.index is None or validator == self.index:
            return None
        self.heard[validator] = max(height, self.heard.get(validator, 0))
        if view is not None and height == self.first_height:
            self.heard_views[validator] = max(view, self.heard_views.get(validator, -1))
        if len(self.heard) < self.validators.weak_quorum:
            return None
        heights = sorted(self.heard.values(), reverse=True)
        corroborated = heights[self.validators.faulty]
        network = max(own_height, *(h for h in heights if h <= corroborated + self.height_window))
        if network <= self.first_height:
            self.guard = SigningGuard(until_height=self.first_height - 1, from_view=self._first_height_view() + 1)
        else:
            self.guard = SigningGuard(until_height=network + self.check_heights - 1, from_view=0)
        return self.guard

    def _first_height_view(self) -> int:
        """The highest view heard signed in at the first height (-1: none) within ``view_window``
        of the lowest view of the validators heard (a ``Status`` counts as none): at least
        one of those is honest, so one faulty validator signing in a far view cannot send
        this replica where the others' view windows drop what it signs."""
        views = [self.heard_views.get(validator, -1) for validator in self.heard]
        ceiling = max(min(views), 0) + self.view_window
        return max((view for view in views if view < ceiling), default=-1)
