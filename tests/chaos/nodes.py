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
from pathlib import Path

from mura.genesis.testnet import node_config_path
from mura.tests.node.cluster import FAST_CONSENSUS, Cluster

#: The node's own defaults, spelled out so a run states what it measured.
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

    def __init__(self, directory: Path, *, validators: int, timers: str = "production", log_level: str = "info") -> None:
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

    def stop_all(self) -> dict[int, int]:
        """SIGTERM every node and wait: the exit status of each."""
        return {index: self.stop(index) for index in list(self.processes)}
