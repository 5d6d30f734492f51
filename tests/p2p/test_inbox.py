"""Tests for p2p/inbox.py: peers' consensus messages are de-duplicated and bounded in all,
per peer and in bytes per peer."""

from __future__ import annotations

from mura.p2p.inbox import ConsensusInbox, GossipBudget, InboxLimits

FLOODER, HONEST = b"f" * 32, b"h" * 32


def test_one_peer_gets_at_most_its_share_and_the_others_still_get_theirs() -> None:
    inbox = ConsensusInbox(InboxLimits(max_messages=10, max_per_peer=4))
    assert [inbox.admit(FLOODER, 100) for _ in range(6)] == [True] * 4 + [False] * 2
    assert inbox.admit(HONEST, 100)
    assert inbox.dropped["full"] == 2
    assert inbox.queued_by(FLOODER) == (4, 400)


def test_a_peer_is_bounded_in_bytes_but_may_always_queue_one_message() -> None:
    inbox = ConsensusInbox(InboxLimits(max_bytes_per_peer=1_000))
    assert inbox.admit(FLOODER, 5_000)  # one block larger than the share still gets through
    assert not inbox.admit(FLOODER, 10)
    inbox.release(FLOODER, 5_000)
    assert inbox.admit(FLOODER, 600)
    assert not inbox.admit(FLOODER, 600)
    assert inbox.admit(HONEST, 600)


def test_the_whole_queue_is_bounded() -> None:
    inbox = ConsensusInbox(InboxLimits(max_messages=3, max_per_peer=3))
    assert [inbox.admit(bytes([peer]) * 32, 1) for peer in range(5)] == [True, True, True, False, False]
    assert len(inbox) == 3


def taken(inbox: ConsensusInbox, data: bytes, now: float, *, admitted: bool = True) -> bool:
    """What the node does with a message: drop a repeat, else remember it once admitted."""
    digest = inbox.repeated(data, now)
    if digest is None:
        return False
    if admitted:
        inbox.remember(digest, now)
    return True


def test_the_same_bytes_are_taken_once_within_the_repeat_window() -> None:
    inbox = ConsensusInbox(InboxLimits(repeat_seconds=2.0))
    assert taken(inbox, b"vote", now=10.0)
    assert not taken(inbox, b"vote", now=11.0)
    assert taken(inbox, b"other vote", now=11.0)
    # A copy sent again later (a view change repeated while waiting) is taken again.
    assert taken(inbox, b"vote", now=12.5)
    assert inbox.dropped["repeated"] == 1


def test_a_copy_that_was_not_admitted_does_not_shadow_the_next() -> None:
    inbox = ConsensusInbox()
    assert taken(inbox, b"vote", now=0.0, admitted=False)  # its deliverer's share was full
    assert taken(inbox, b"vote", now=0.1)  # the signer's own copy still gets in


def test_remembered_digests_are_bounded() -> None:
    inbox = ConsensusInbox(InboxLimits(remembered=3))
    for number in range(10):
        taken(inbox, bytes([number]), now=0.0)
    assert taken(inbox, bytes([0]), now=0.0)  # forgotten: bounded memory
    assert not taken(inbox, bytes([9]), now=0.0)


def test_gossip_budget_per_peer() -> None:
    budget = GossipBudget(per_second=100, burst=200)
    assert budget.take(FLOODER, 150, now=0.0)
    assert not budget.take(FLOODER, 100, now=0.0)
    assert budget.take(HONEST, 200, now=0.0)  # another peer's budget is its own
    assert budget.take(FLOODER, 100, now=0.5)  # refilled at 100 a second
    assert budget.dropped == 100
