"""Other validators of a test node's testnet, linked to it through real ``Network``s with
their real keys; the fixtures that start them are in this folder's conftest.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mura.chain.keys import SigningKey
from mura.consensus.messages import Message
from mura.consensus_runner import CONSENSUS_KIND
from mura.p2p.accounting import TrafficStats
from mura.p2p.network import Network
from mura.p2p.settings import NetworkLimits
from mura.tests.rpc.support import TestNode

#: The node runs with the production limits: a peer is banned after this many
#: malformed frames within a minute, plus one.
MALFORMED_THRESHOLD = NetworkLimits().malformed_threshold


@dataclass
class PeerValidator:
    """Another validator of the node's testnet, linked to the node through a real ``Network``."""

    index: int
    key: SigningKey
    network: Network
    #: Consensus messages the node sent to this validator.
    received: list[Message]

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    async def send_consensus(self, node: TestNode, payload: Any) -> None:
        assert self.network.send(node.node.key.public_key, CONSENSUS_KIND, payload)


ConnectPeer = Callable[[int], Awaitable[PeerValidator]]


def network_of(node: TestNode) -> Network:
    assert node.node.network is not None
    return node.node.network


def traffic(node: TestNode, peer: PeerValidator) -> TrafficStats:
    """The node's counters for ``peer``."""
    return network_of(node).stats.peers.get(peer.public_key, TrafficStats())
