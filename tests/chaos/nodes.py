"""Validator processes that reach each other only through the fault proxy.

``ChaosCluster`` is the process tests' ``Cluster`` (a testnet on free ports in
a directory, real ``python -m mura.node`` processes) with each node's
``p2p.peers`` pointed at the proxy's port for its link, production or fast
consensus timers, and optional extra environment per node (libfaketime).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from mura.chain.address import encode_address
from mura.genesis.testnet import node_config_path
from mura.tests.node.cluster import FAST_CONSENSUS, Cluster, wait_for

#: The node's own view timers, spelled out so a run states what it measured; empty
#: blocks every second (the node's default is a minute while idle), so that stalls and
#: recoveries show in the heights whether or not transfers are pending.
PRODUCTION_CONSENSUS = [
    "--consensus-base-timeout-ms", "2000",
    "--consensus-max-timeout-ms", "30000",
    "--consensus-empty-block-interval-ms", "1000",
]
TIMERS = {"production": PRODUCTION_CONSENSUS, "fast": FAST_CONSENSUS}


def base_timeout_ms(timers: str) -> int:
    flags = TIMERS[timers]
    return int(flags[flags.index("--consensus-base-timeout-ms") + 1])


class ChaosCluster(Cluster):
    """A ``Cluster`` whose nodes dial each other at ``proxy_port(dialer, target)``."""

    def __init__(
        self, directory: Path, *, validators: int, timers: str = "production", log_level: str = "info"
    ) -> None:
        super().__init__(directory, validators=validators)
        self.timers = timers
        self.log_level = log_level
        self.proxy_port: Callable[[int, int], int] | None = None
        self.environments: dict[int, dict[str, str]] = {}

    def peer_targets(self) -> dict[int, tuple[str, int]]:
        """Each node's real peer address, for the proxy to forward to."""
        targets = {}
        for index, validator in enumerate(self.layout.genesis.validators):
            host, _, port = validator.peer_address.rpartition(":")
            targets[index] = (host, int(port))
        return targets

    def peer_flags(self, index: int) -> list[str]:
        assert self.proxy_port is not None, "set proxy_port before starting nodes"
        flags = []
        for other, validator in enumerate(self.layout.genesis.validators):
            if other != index:
                flags += ["--p2p-peers", f"{validator.public_key.hex()}@127.0.0.1:{self.proxy_port(index, other)}"]
        return flags

    def log_path(self, index: int) -> Path:
        return node_config_path(self.directory, self.names[index]).parent / "node.log"

    def start(self, index: int) -> None:
        config = node_config_path(self.directory, self.names[index])
        command = [sys.executable, "-m", "mura.node", "--config", str(config), *TIMERS[self.timers],
                   "--log-level", self.log_level, *self.peer_flags(index)]
        environment: Mapping[str, str] = {**os.environ, **self.environments.get(index, {})}
        with open(self.log_path(index), "ab") as log:
            self.processes[index] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)

    def start_all(self) -> None:
        """Start every node and wait until each is this network's node (not another process
        that holds its port) and linked to all the others."""
        for index in range(len(self.names)):
            self.start(index)
        for index in range(len(self.names)):
            wait_for(partial(self.linked, index), f"node {index} to start and connect")

    def linked(self, index: int) -> bool:
        self.check_alive()
        status = self.status(index)
        return bool(status["validators"] == self.validator_addresses and status["peers"] == len(self.names) - 1)

    @property
    def validator_addresses(self) -> list[str]:
        return [encode_address(validator.public_key, self.prefix) for validator in self.layout.genesis.validators]

    def check_alive(self) -> None:
        """Raise ``NodeExited`` naming the first node process that is gone."""
        for index, process in self.processes.items():
            status = process.poll()
            if status is not None:
                last = self.log_path(index).read_text(errors="replace").strip().splitlines()[-1:]
                raise NodeExited(f"node {index} exited with status {status}: {last[0] if last else 'no log'}")

    def stop_all(self) -> dict[int, int]:
        """SIGTERM every node and wait: the exit status of each."""
        return {index: self.stop(index) for index in list(self.processes)}


class NodeExited(Exception):
    """A node process ended while the network was meant to run."""
