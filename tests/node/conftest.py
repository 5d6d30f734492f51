"""Fixtures shared by the tests that run one real ``Node`` in the test's event loop and
speak to it as other validators of its testnet (see validator_peers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mura.admission import TRANSACTIONS_KIND
from mura.bench.ports import free_port_range
from mura.chain.keys import load_key
from mura.config import load_config
from mura.consensus.messages import Message, decode_message
from mura.consensus_runner import CONSENSUS_KIND
from mura.genesis.format import genesis_block
from mura.genesis.testnet import TestnetLayout, generate_testnet, node_config_path
from mura.node import Node
from mura.p2p.network import Network
from mura.p2p.settings import PeerAddress
from mura.tests.node.validator_peers import ConnectPeer, PeerValidator, network_of
from mura.tests.rpc.support import TestNode, start_test_node, wait_until


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> TestnetLayout:
    # Free peer ports: the node dials its three peers there and must not reach a testnet running on this machine.
    return generate_testnet(tmp_path_factory.mktemp("testnet4"), validators=4, base_peer_port=free_port_range(4))


@pytest.fixture
async def built_node(testnet: TestnetLayout, tmp_path: Path) -> AsyncIterator[Node]:
    """Validator 0, built but not started (its consensus task does not take the queue):
    at height 1, view 0; stopped at teardown."""
    overrides = {"data_dir": str(tmp_path / "data"), "vote_record": str(tmp_path / "votes")}
    built = Node(load_config(node_config_path(testnet.directory, testnet.genesis.validators[0].name), overrides))
    yield built
    await built.stop()


@pytest.fixture
async def node(testnet: TestnetLayout, tmp_path: Path) -> AsyncIterator[TestNode]:
    """Validator 0, running with the production network limits; stopped at teardown.

    Alone it makes no blocks; its short view timeout has it send VIEW-CHANGEs to its peers soon.
    """
    async with aiohttp.ClientSession() as session:
        started = await start_test_node(testnet, tmp_path / "node", session, {"consensus.base_timeout_ms": 200})
        try:
            yield started
        finally:
            await started.node.stop()


@pytest.fixture
async def connect_peer(testnet: TestnetLayout, node: TestNode) -> AsyncIterator[ConnectPeer]:
    """``await connect_peer(index)``: validator ``index`` linked to the node; its network is stopped at teardown."""
    genesis_hash = genesis_block(testnet.genesis)[0].hash
    node_key = node.node.key.public_key
    node_address = PeerAddress(node_key, "127.0.0.1", network_of(node).listen_port)
    peers: list[PeerValidator] = []

    async def connect(index: int) -> PeerValidator:
        name = testnet.genesis.validators[index].name
        key = load_key(testnet.directory / "keys" / f"{name}.key")
        received: list[Message] = []

        async def record(sender: bytes, payload: Any) -> None:
            received.append(decode_message(payload))

        async def ignore(sender: bytes, payload: Any) -> None:
            pass

        network = Network(
            key=key,
            chain_id=testnet.genesis.chain_id,
            genesis_hash=genesis_hash,
            listen_host="127.0.0.1",
            listen_port=0,
            peers=[node_address],
            admitted=testnet.genesis.validator_keys(),
            handlers={CONSENSUS_KIND: record, TRANSACTIONS_KIND: ignore},
        )
        peer = PeerValidator(index, key, network, received)
        peers.append(peer)
        await network.start()
        await wait_until(
            lambda: key.public_key in network_of(node).connected_peers() and network.connected_peers() == [node_key],
            f"validator {index} to link to the node",
        )
        return peer

    yield connect
    for peer in peers:
        await peer.network.stop()
