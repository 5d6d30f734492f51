"""Tests for consensus/catch_up.py: how far behind a replica believes it is, and which
final blocks it asks which validator for."""

from __future__ import annotations

from mura.consensus.catch_up import CatchUp


def catch_up(*, faulty: int = 1, batch: int = 16, retry_ms: int = 1_000) -> CatchUp:
    return CatchUp(retry_ms=retry_ms, batch=batch, faulty=faulty)


def test_highest_seen_is_the_height_f_plus_one_validators_reached() -> None:
    state = catch_up(faulty=1)
    state.note_ahead(1, 1_000_000)
    # One validator alone could be lying: nothing is known yet.
    assert state.highest_seen == 0
    state.note_ahead(2, 40)
    assert state.highest_seen == 40
    state.note_ahead(3, 45)
    assert state.highest_seen == 45


def test_highest_seen_never_goes_down() -> None:
    state = catch_up(faulty=0)
    state.note_ahead(1, 40)
    state.note_ahead(1, 30)
    assert state.highest_seen == 40


def test_first_request_asks_the_highest_validator_for_the_first_missing_height() -> None:
    state = catch_up(faulty=0)
    state.note_ahead(1, 30)
    state.note_ahead(2, 50)
    assert state.next_request(5, now_ms=0) == (2, 5)


def test_a_claim_nobody_corroborates_is_asked_last() -> None:
    """A faulty validator signing votes for a far-off height is not the one asked for
    blocks while validators whose heights f+1 of them reached can answer."""
    state = catch_up(faulty=1)
    state.note_ahead(3, 1_000_000)
    state.note_ahead(1, 30)
    state.note_ahead(2, 31)
    assert state.highest_seen == 31
    assert state.next_request(5, now_ms=0) == (2, 5)
    # Unanswered: the next corroborated validator, never the outlier while one is ahead.
    assert state.next_request(5, now_ms=1_000) == (1, 5)
    assert state.next_request(5, now_ms=2_000) == (2, 5)


def test_an_outlier_is_asked_when_no_one_else_is_ahead() -> None:
    state = catch_up(faulty=1)
    state.note_ahead(3, 1_000)
    assert state.next_request(5, now_ms=0) == (3, 5)


def test_nothing_to_ask_for_when_nobody_is_ahead() -> None:
    state = catch_up()
    state.note_ahead(1, 5)
    # Validator 1 works on height 5: height 5 is not final anywhere yet.
    assert state.next_request(5, now_ms=0) is None


def test_requests_are_pipelined_once_half_the_batch_is_in_hand() -> None:
    state = catch_up(batch=16)
    state.note_ahead(1, 100)
    assert state.next_request(1, now_ms=0) == (1, 1)
    # Heights 1..16 are on their way; while fewer than half have arrived, wait.
    assert state.next_request(1, now_ms=10) is None
    assert state.next_request(8, now_ms=20) is None
    # Half in hand: the next batch is asked for before this one runs out.
    assert state.next_request(9, now_ms=30) == (1, 17)
    assert state.next_request(10, now_ms=40) is None


def test_an_unanswered_request_is_repeated_to_another_validator_after_the_retry_interval() -> None:
    state = catch_up(retry_ms=1_000)
    state.note_ahead(1, 100)
    state.note_ahead(2, 90)
    state.note_ahead(3, 95)
    # Validators 2's and 3's heights are corroborated (f+1 = 2 validators reached them), 1's is not.
    assert state.next_request(1, now_ms=0) == (3, 1)
    assert state.next_request(1, now_ms=999) is None
    assert state.next_request(1, now_ms=1_000) == (2, 1)


def test_the_only_validator_ahead_is_asked_again() -> None:
    state = catch_up(retry_ms=1_000)
    state.note_ahead(1, 100)
    assert state.next_request(1, now_ms=0) == (1, 1)
    assert state.next_request(1, now_ms=1_000) == (1, 1)
