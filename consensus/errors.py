"""Typed rejections of consensus messages, and the replica's refusal to sign.

Every refusal of untrusted input is an ``Invalid`` (the ledger's root), so the
node counts and logs consensus rejections the same way as ledger ones.

A refusal is *for cause* unless an honest validator could have sent the message
(``penalized`` is False: a view or height out of this replica's window, a block
dated ahead of this replica's clock). A refusal for cause counts against the
validator whose link delivered the message: honest validators forward only
messages they have checked themselves, so they never deliver one.
"""

from __future__ import annotations

from typing import ClassVar

from mura.chain.errors import Invalid


def penalized(error: Invalid) -> bool:
    """Whether refusing a message for ``error`` counts against whoever delivered it."""
    return getattr(error, "penalized", True)


class InvalidMessage(Invalid):
    """A consensus message that breaks a rule and is dropped."""

    rule = "invalid_message"
    #: Whether the refusal counts against the validator that delivered the message.
    penalized: ClassVar[bool] = True


class UnknownValidator(InvalidMessage):
    """The sender index is not a position in the validator set."""

    rule = "unknown_validator"


class BadMessageSignature(InvalidMessage):
    """The signature does not verify against the sender's validator key."""

    rule = "bad_message_signature"


class NotPrimary(InvalidMessage):
    """A proposal signed by a validator that is not the primary of its view."""

    rule = "not_primary"


class WrongProposer(InvalidMessage):
    """A proposal whose block names another proposer than the primary of the view it
    was first proposed in."""

    rule = "wrong_proposer"


class OutsideWindow(InvalidMessage):
    """A view or height too far from the replica's own to be kept."""

    rule = "outside_window"
    penalized = False


class UnsettledValidators(InvalidMessage):
    """A message for a height whose validator set is not settled yet (more than one height
    ahead) that the latest set known refuses: the set may change before that height."""

    rule = "unsettled_validators"
    penalized = False


class TimestampInFuture(InvalidMessage):
    """A proposal whose block claims a time too far past the replica's own clock."""

    rule = "timestamp_in_future"
    # The primary's clock may simply be ahead of this replica's.
    penalized = False


class DigestMismatch(InvalidMessage):
    """A block, vote or certificate names a different block than it carries or claims."""

    rule = "digest_mismatch"


class InvalidPreparedCertificate(InvalidMessage):
    """A prepared certificate without a valid proposal and a quorum of distinct prepares."""

    rule = "invalid_prepared_certificate"


class InvalidNewView(InvalidMessage):
    """A NEW-VIEW without a quorum of valid view changes for its view and height."""

    rule = "invalid_new_view"


class NewViewChoiceMismatch(InvalidNewView):
    """A NEW-VIEW that proposes another block than its view changes force."""

    rule = "new_view_choice_mismatch"


class ConflictingVote(Exception):
    """The replica was about to sign a vote that conflicts with one it recorded.

    Not a rejection of input: it is the persist-before-you-speak guard, raised
    when a (view, height, phase) was already signed for a different digest.
    """

    def __init__(self, height: int, view: int, phase: str, recorded: bytes, attempted: bytes) -> None:
        super().__init__(
            f"already signed {phase} at height {height} view {view} for {recorded.hex()[:16]}, "
            f"refusing {attempted.hex()[:16]}"
        )
        self.height = height
        self.view = view
        self.phase = phase
