"""Quorum arithmetic for any validator count."""

from __future__ import annotations

import pytest

from mura.consensus.quorum import ValidatorSet, max_faulty


@pytest.mark.parametrize("count", range(1, 101))
def test_two_quorums_share_an_honest_validator(count: int) -> None:
    validators = ValidatorSet(tuple(index.to_bytes(32, "big") for index in range(count)))
    faulty, quorum = validators.faulty, validators.quorum
    assert faulty == (count - 1) // 3
    assert 2 * quorum - count > faulty
    assert quorum <= count - faulty, "the honest validators alone must form a quorum"


def test_quorum_of_3f_plus_1_is_2f_plus_1() -> None:
    for faulty in range(1, 10):
        count = 3 * faulty + 1
        assert ValidatorSet(tuple(index.to_bytes(32, "big") for index in range(count))).quorum == 2 * faulty + 1


def test_weak_quorum_holds_an_honest_validator() -> None:
    for count in range(1, 50):
        assert max_faulty(count) + 1 > max_faulty(count)


def test_primary_rotates_with_the_view() -> None:
    validators = ValidatorSet(tuple(index.to_bytes(32, "big") for index in range(4)))
    assert [validators.primary(view) for view in range(9)] == [0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_invalid_validator_sets() -> None:
    with pytest.raises(ValueError):
        ValidatorSet(())
    with pytest.raises(ValueError):
        ValidatorSet((bytes(32), bytes(32)))
