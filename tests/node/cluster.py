"""Real validator processes on loopback, for the process tests.

A ``Cluster`` generates a testnet in a temporary directory (free ports, fresh
keys), starts each validator (and each observer it was asked for) as
``python -m mura.node``, and talks to them only as an operator or a wallet
would: JSON-RPC over HTTP, signals, and the files in their data directories.
Nodes are numbered validators first, then observers.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mura.bench.ports import free_port_range
from mura.chain.address import encode_address
from mura.chain.block import verify_certificate
from mura.chain.governance import validator_keys
from mura.chain.keys import SigningKey, load_key, save_key
from mura.chain.store import Store
from mura.chain.transaction import Body, Transaction, sign_transaction
from mura.genesis.testnet import (
    TestnetLayout,
    add_observers,
    generate_testnet,
    node_config_path,
    observer_names,
    observer_port_offset,
    write_node_configs,
)

#: Fast timers, so a dead primary is replaced within about a second.
FAST_CONSENSUS = [
    "--consensus-base-timeout-ms", "600",
    "--consensus-max-timeout-ms", "3000",
    "--consensus-empty-block-interval-ms", "200",
]


def wait_for(predicate: Callable[..., Any], what: str, *, timeout: float = 30.0) -> Any:
    """Poll ``predicate()`` until it returns something truthy; fail naming ``what`` at the deadline.

    Typed ``Callable[..., Any]`` because loops pin their variable with ``lambda index=index: ...``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except (OSError, urllib.error.URLError, KeyError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """A testnet of real node processes; ``close()`` stops them all."""

    def __init__(
        self, directory: Path, *, validators: int = 4, observers: int = 0, flags: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        #: Further ``mura.node`` flags every node starts with.
        self.flags = list(flags)
        offset = observer_port_offset(validators)
        span = offset + observers if observers else validators
        base = free_port_range(2 * span)
        self.layout: TestnetLayout = generate_testnet(directory, validators=validators, base_peer_port=base)
        rpc_base = base + span
        #: The first peer and RPC ports; validators added later take the ports after the first ones'.
        self._bases = (base, rpc_base)
        self.rpc_ports = [rpc_base + index for index in range(validators)]
        self.rpc_ports += [rpc_base + offset + index for index in range(observers)]
        self._use_rpc_ports()
        add_observers(self.layout, observers, base_rpc_port=rpc_base)
        self.validators = validators
        self.names = [validator.name for validator in self.layout.genesis.validators] + list(observer_names(observers))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.treasury = load_key(directory / "keys" / "treasury.key")
        self.chain_id = self.layout.genesis.chain_id
        self.prefix = self.layout.genesis.address_prefix
        self._nonces: dict[bytes, int] = {}

    def add_validator_node(self, name: str) -> tuple[int, SigningKey, str]:
        """A node for a validator that is not in the set yet (a governance change adds it): a
        fresh key and a config beside the others', admitting the testnet's observers. Returns
        its node number, key and peer address."""
        slot = sum(1 for index in range(len(self.names)) if self.role(index) == "validator")
        if slot >= observer_port_offset(self.validators):
            raise ValueError("no free ports left below the observers'")
        key = SigningKey.generate()
        save_key(self.directory / "keys" / f"{name}.key", key, label=name)
        peer_base, rpc_base = self._bases
        peer_address = f"127.0.0.1:{peer_base + slot}"
        observers = [load_key(path).public_key.hex() for path in sorted(self.directory.glob("keys/observer-*.key"))]
        config = node_config_path(self.directory, name)
        config.parent.mkdir(parents=True)
        config.write_text(
            f'data_dir = "data"\nkey_file = "../../keys/{name}.key"\ngenesis_file = "../../genesis.json"\n\n'
            f'[p2p]\nlisten = "{peer_address}"\nobservers = {json.dumps(observers)}\n\n'
            f'[rpc]\nlisten = "127.0.0.1:{rpc_base + slot}"\n'
        )
        self.names.append(name)
        self.rpc_ports.append(rpc_base + slot)
        return len(self.names) - 1, key, peer_address

    def role(self, index: int) -> str:
        """``observer`` or ``validator``, as node ``index``'s config says."""
        text = node_config_path(self.directory, self.names[index]).read_text()
        return "observer" if 'role = "observer"' in text else "validator"

    def _use_rpc_ports(self) -> None:
        """Configs on free ports instead of the fixed 870i, so tests never meet a running testnet."""
        for validator in self.layout.genesis.validators:
            node_config_path(self.directory, validator.name).unlink()
        write_node_configs(self.layout, base_rpc_port=self.rpc_ports[0])

    # --- processes ----------------------------------------------------------------

    def data_dir(self, index: int) -> Path:
        return node_config_path(self.directory, self.names[index]).parent / "data"

    def start(self, index: int) -> None:
        self.start_with(index)

    def start_with(self, index: int, *, flags: Sequence[str] = (), module: str = "mura.node") -> None:
        """Start node ``index`` with the cluster's flags and ``flags``; ``module`` runs it (a test's
        variant of ``mura.node``)."""
        config = node_config_path(self.directory, self.names[index])
        with open(config.parent / "node.log", "ab") as log:
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", module, "--config", str(config), *FAST_CONSENSUS, *self.flags, *flags],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_all(self) -> None:
        for index in range(len(self.names)):
            self.start(index)
        for index in range(len(self.names)):
            # A validator links to every other node; an observer to every validator.
            peers = len(self.names) - 1 if index < self.validators else self.validators
            wait_for(lambda index=index, peers=peers: self.is_ours(index) and self.status(index)["peers"] == peers,
                     f"node {index} to connect")

    def is_ours(self, index: int) -> bool:
        """The node answering on ``index``'s RPC port is this testnet's (its validators are), not
        another cluster's that took the port between the check for free ports and the bind."""
        validators = [encode_address(validator.public_key, self.prefix) for validator in self.layout.genesis.validators]
        if self.status(index)["validators"] != validators:
            raise AssertionError(f"another network's node answers on node {index}'s port {self.rpc_ports[index]}")
        return True

    def kill(self, index: int) -> None:
        """kill -9: no chance to flush or close anything."""
        process = self.processes.pop(index)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, index: int) -> int:
        process = self.processes.pop(index)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=20)

    def wipe(self, index: int) -> None:
        shutil.rmtree(self.data_dir(index))

    def close(self) -> None:
        for index in list(self.processes):
            process = self.processes.pop(index)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def log(self, index: int) -> str:
        return (node_config_path(self.directory, self.names[index]).parent / "node.log").read_text(errors="replace")

    # --- JSON-RPC -------------------------------------------------------------------

    def call(self, index: int, method: str, *params: Any) -> Any:
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        http = urllib.request.Request(f"http://127.0.0.1:{self.rpc_ports[index]}/", request)
        with urllib.request.urlopen(http, timeout=5) as answer:
            response = json.load(answer)
        if "error" in response:
            raise RpcFailure(response["error"])
        return response["result"]

    def status(self, index: int) -> dict[str, Any]:
        return self.call(index, "chain_status")  # type: ignore[no-any-return]

    def height(self, index: int) -> int:
        return self.status(index)["height"]  # type: ignore[no-any-return]

    def balance(self, index: int, public_key: bytes) -> int:
        return self.call(index, "account_getBalance", encode_address(public_key, self.prefix))  # type: ignore[no-any-return]

    def sign(self, key: SigningKey, body: Body) -> Transaction:
        nonce = self._nonces.get(key.public_key, 0)
        self._nonces[key.public_key] = nonce + 1
        return sign_transaction(key, chain_id=self.chain_id, nonce=nonce, body=body)

    def submit(self, index: int, transaction: Transaction) -> str:
        return self.call(index, "tx_submit", transaction.encoded.hex())  # type: ignore[no-any-return]


class RpcFailure(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')} {error.get('data')}")
        self.error = error


def check_one_chain(cluster: Cluster, nodes: list[int]) -> int:
    """The stopped ``nodes`` hold the same block at every height they share, each head's
    state root is its state's, and every certificate verifies against the set of its
    height; returns the lowest head."""
    stores = [Store(cluster.data_dir(index)) for index in nodes]
    try:
        shared = min(store.height for store in stores)
        for height in range(1, max(store.height for store in stores) + 1):
            hashes = {block.hash for store in stores if (block := store.load_block(height)) is not None}
            assert len(hashes) == 1, f"nodes differ at height {height}"
        for store in stores:
            assert store.recompute_lattice().root() == store.head.state_root
            for height in range(1, store.height + 1):
                block, certificate = store.load_block(height), store.load_certificate(height)
                assert block is not None and certificate is not None
                verify_certificate(
                    certificate, chain_id=cluster.chain_id, height=height, block_hash=block.hash,
                    validators=validator_keys(store.load_validators_at(height)),
                )
        return shared
    finally:
        for store in stores:
            store.close()
