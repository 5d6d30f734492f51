"""Tests for node.py's consensus queue: bounded in all and per peer, so that one validator
flooding well-formed messages cannot crowd out the others."""

from __future__ import annotations

import pytest

from mura.consensus.messages import BlockRequest
from mura.genesis.testnet import TestnetLayout, generate_testnet, node_config_path
from mura.node import MAX_QUEUED_PER_PEER, Node, load_config


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    return generate_testnet(tmp_path_factory.mktemp("testnet"), validators=4)


def test_one_peer_gets_at_most_its_share_and_the_others_still_get_theirs(layout: TestnetLayout) -> None:
    node = Node(load_config(node_config_path(layout.directory, layout.genesis.validators[0].name)))
    flooder, honest = layout.genesis.validator_keys()[1:3]
    for _ in range(MAX_QUEUED_PER_PEER + 5):
        node._post_message(flooder, BlockRequest(1, 1))
    node._post_message(honest, BlockRequest(1, 2))
    assert node.dropped_messages == 5
    assert node._events.qsize() == MAX_QUEUED_PER_PEER + 1
    queued = [node._events.get_nowait() for _ in range(node._events.qsize())]
    assert queued[-1] == ("message", (honest, BlockRequest(1, 2)))
