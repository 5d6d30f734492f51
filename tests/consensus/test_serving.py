"""Tests for consensus/serving.py: what a peer that is behind may have of this node."""

from __future__ import annotations

import pytest

from mura.consensus.serving import BlockServer, ServingLimits

MIB = 1024 * 1024


def answer(server: BlockServer, peer: int, start: int, final: int, now_ms: int, size: int) -> list[int]:
    """The heights a driver would send, blocks of ``size`` bytes each."""
    return [height for height, _ in server.answer(peer, start, final, now_ms, lambda height: bytes(size))]


def test_an_answer_is_a_batch_from_the_start_height() -> None:
    server = BlockServer(ServingLimits(batch=4))
    assert answer(server, 1, 3, final=100, now_ms=0, size=1_000) == [3, 4, 5, 6]
    assert answer(server, 1, 98, final=100, now_ms=0, size=1_000) == [98, 99, 100]


def test_nothing_to_send_beyond_the_final_height_or_below_one() -> None:
    server = BlockServer()
    assert answer(server, 1, 101, final=100, now_ms=0, size=10) == []
    assert answer(server, 1, 0, final=100, now_ms=0, size=10) == []
    assert server.refused["nothing_to_send"] == 2


def test_the_same_request_is_answered_once_per_interval() -> None:
    server = BlockServer(ServingLimits(repeat_ms=1_000))
    assert answer(server, 1, 5, final=100, now_ms=0, size=10)
    assert answer(server, 1, 5, final=100, now_ms=999, size=10) == []
    assert answer(server, 2, 5, final=100, now_ms=999, size=10)  # another peer
    assert answer(server, 1, 5, final=100, now_ms=1_000, size=10)
    assert server.refused["repeated"] == 1


def test_an_answer_is_bounded_in_bytes_but_never_empty() -> None:
    server = BlockServer(ServingLimits(answer_bytes=2 * MIB, burst_bytes=64 * MIB))
    assert answer(server, 1, 1, final=100, now_ms=0, size=MIB) == [1, 2]
    assert answer(server, 2, 1, final=100, now_ms=0, size=3 * MIB) == [1]


def test_a_peer_asking_for_new_heights_many_times_a_second_gets_its_budget_only() -> None:
    """A faulty validator asking 40 times a second for a new start height gets at most the
    bucket's burst and then its refill rate: not all it asks for."""
    limits = ServingLimits(bytes_per_second=8 * MIB, burst_bytes=32 * MIB)
    server = BlockServer(limits)
    block = 750 * 1024
    asked = served = 0
    for request in range(40 * 30):  # 30 s at 40 requests a second
        now_ms = request * 25
        heights = answer(server, 1, 1 + (request * 16) % 5_000, final=10_000, now_ms=now_ms, size=block)
        asked += 16 * block
        served += len(heights) * block
    assert asked > 700 * MIB
    # The budget, overdrawn by at most one block.
    assert served <= limits.burst_bytes + 30 * limits.bytes_per_second + block
    assert server.refused["over_budget"] > 0
    # Another peer's budget is its own.
    assert answer(server, 2, 1, final=10_000, now_ms=30_000, size=block)


def test_a_block_larger_than_the_burst_still_goes_out_and_the_peer_then_waits() -> None:
    server = BlockServer(ServingLimits(burst_bytes=MIB, bytes_per_second=MIB))
    assert answer(server, 1, 1, final=10, now_ms=0, size=4 * MIB) == [1]
    assert answer(server, 1, 2, final=10, now_ms=2_000, size=4 * MIB) == []
    assert answer(server, 1, 3, final=10, now_ms=3_100, size=4 * MIB) == [3]


def test_a_peer_over_its_budget_costs_no_reading() -> None:
    """Every block read is paid for, sent or not; an empty bucket refuses before reading."""
    server = BlockServer(ServingLimits(burst_bytes=MIB, bytes_per_second=MIB, answer_bytes=MIB))
    assert answer(server, 1, 1, final=10, now_ms=0, size=MIB) == [1]
    assert not server.has_budget(1, now_ms=0)
    assert server.refused["over_budget"] == 2  # the answer stopped there, and this refusal


@pytest.mark.parametrize("field", ["batch", "answer_bytes", "repeat_ms", "bytes_per_second", "burst_bytes"])
def test_invalid_limits(field: str) -> None:
    with pytest.raises(ValueError):
        ServingLimits(**{field: 0})
