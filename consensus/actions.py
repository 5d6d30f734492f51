"""What a replica asks its driver to do, in order.

The replica returns a list of these from every call; the driver (the node over
asyncio, or the simulator) executes them in the order given. A ``PersistVote``
always precedes the ``Broadcast`` or ``Send`` of the vote it records, and a
``CommitBlock`` is always the last action of its list: the driver makes it
durable and then calls ``Replica.committed``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mura.chain.block import Block, CommitCertificate
from mura.chain.state import StateChanges
from mura.consensus.evidence import Equivocation
from mura.consensus.messages import Message
from mura.consensus.votes import RecordedVote


@dataclass(frozen=True, slots=True)
class PersistVote:
    """Save ``vote`` to the vote record, durably, before executing the next action."""

    vote: RecordedVote


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to every other validator."""

    message: Message


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to the validator at index ``to``."""

    to: int
    message: Message


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """``block`` is final: store it with its certificate and state changes atomically,
    then call ``Replica.committed``."""

    block: Block
    certificate: CommitCertificate
    changes: StateChanges


@dataclass(frozen=True, slots=True)
class PruneVotes:
    """Drop recorded votes below ``below_height``: those heights are final."""

    below_height: int


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call ``Replica.timeout`` once the clock reaches ``at_ms``. Earlier calls are harmless."""

    at_ms: int


@dataclass(frozen=True, slots=True)
class ReportEquivocation:
    """A validator signed two conflicting statements; ``evidence`` proves it to anyone."""

    evidence: Equivocation


@dataclass(frozen=True, slots=True)
class Relay:
    """Forward ``message``, which this replica checked and took for the first time, to
    every other validator but those in ``exclude`` (who sent or signed it): a
    validator cut off from the signer still hears it through the others."""

    message: Message
    exclude: frozenset[int]


@dataclass(frozen=True, slots=True)
class ServeBlocks:
    """Validator ``to`` is behind: send it final blocks from ``from_height`` on, within the
    share of this node's bandwidth the driver allows it (``mura.consensus.serving``)."""

    to: int
    from_height: int


@dataclass(frozen=True, slots=True)
class PersistGuard:
    """The double-sign check is resolved: record durably that nothing is signed at heights
    up to and including ``until_height``, nor at height 1 in views below ``from_view``
    (see ``votes.SigningGuard``)."""

    until_height: int
    from_view: int = 0


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """``validator`` delivered a message refused for cause (``rule``), or signed one that
    conflicts with its own: the driver counts it against that validator's link."""

    validator: int
    rule: str


Action = (
    PersistVote
    | Broadcast
    | Send
    | CommitBlock
    | PruneVotes
    | ScheduleTimeout
    | ReportEquivocation
    | Relay
    | ServeBlocks
    | Misbehaviour
    | PersistGuard
)
