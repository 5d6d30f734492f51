"""The testnet an attack runs against: the process tests' ``Cluster`` with the
dishonest validator's node left out.

Validators 0 to 2 run as real node processes (``python -m mura.node``, production
settings unless told otherwise, but for an empty block every second while idle
instead of every minute: stalls are measured as gaps between new heights);
validator 3's key belongs to the attacker and its
node never starts, so the three honest nodes are exactly a quorum and any stall
one of them suffers stops the chain. Ports are picked at random below the
ephemeral range and checked after start (a node that answers for another testnet
is a port taken by someone else, and the testnet is made again). Node processes
run in their own session (a Ctrl-C reaches only the harness, which stops them)
and die with the harness even if it is killed.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mura.chain.address import encode_address
from mura.chain.keys import SigningKey, load_key
from mura.genesis.format import genesis_block
from mura.genesis.testnet import node_config_path
from mura.tests.attacks.peer import Endpoint, Testnet
from mura.tests.node.cluster import Cluster

VALIDATORS = 4
#: The validator whose key the attacker holds.
ATTACKER = 3
HONEST = (0, 1, 2)
#: The asset the attacks' transactions name: the testnet's coin, which the treasury issues.
ASSET = "NAC"
#: Given before the caller's node arguments, which may override it.
IDLE_BLOCKS_EVERY_SECOND = ("--consensus-empty-block-interval-ms", "1000")
_PR_SET_PDEATHSIG = 1


class PortTaken(Exception):
    """A node found its port taken, or another testnet answers on it."""


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the harness exits, however it exits."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class AttackCluster(Cluster):
    """A 4-validator testnet in ``directory`` with validators 0-2 running."""

    def __init__(self, directory: Path, *, node_arguments: Sequence[str] = ()) -> None:
        super().__init__(directory, validators=VALIDATORS)
        self.node_arguments = [*IDLE_BLOCKS_EVERY_SECOND, *node_arguments]
        genesis = self.layout.genesis
        self.testnet = Testnet(genesis.chain_id, genesis_block(genesis)[0].hash, tuple(genesis.validator_keys()))

    # --- processes -------------------------------------------------------------------

    def start(self, index: int) -> None:
        config = node_config_path(self.directory, self.names[index])
        with open(self.log_path(index), "ab") as log:
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", "mura.node", "--config", str(config), *self.node_arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def start_honest(self, *, timeout: float = 60.0) -> None:
        """Start validators 0-2 and wait until each is linked to the other two and blocks are final."""
        for index in HONEST:
            self.start(index)
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            if all(self._ready(index) for index in HONEST):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the honest validators did not link up and finalize within {timeout:.0f} s")
            time.sleep(0.1)

    def _ready(self, index: int) -> bool:
        try:
            status = self.status(index)
        except Exception:
            return False
        own_keys = [encode_address(key, self.prefix) for key in self.testnet.validators]
        if status["validators"] != own_keys:
            raise PortTaken(f"another testnet answers on {self.names[index]}'s RPC port")
        return bool(status["peers"] == len(HONEST) - 1 and status["height"] >= 2)

    def _check_running(self) -> None:
        for index, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log(index)[-2000:]
                if "address already in use" in tail.lower():
                    raise PortTaken(f"{self.names[index]} could not bind its port")
                raise RuntimeError(f"{self.names[index]} exited with status {process.returncode}:\n{tail}")

    def close(self) -> None:
        """SIGKILL every node still running; idempotent."""
        for index in list(self.processes):
            process = self.processes.pop(index)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    # --- what the attacker and the observers need ----------------------------------------

    def log_path(self, index: int) -> Path:
        return node_config_path(self.directory, self.names[index]).parent / "node.log"

    def key(self, index: int) -> SigningKey:
        return load_key(self.directory / "keys" / f"{self.names[index]}.key")

    def endpoint(self, index: int) -> Endpoint:
        host, _, port = self.layout.genesis.validators[index].peer_address.rpartition(":")
        return Endpoint(host, int(port), self.testnet.validators[index])

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.rpc_ports[index]}/"

    def pid(self, index: int) -> int:
        return self.processes[index].pid

    def short_key(self, index: int) -> str:
        """How the nodes' logs name validator ``index``: the first 8 hex digits of its key."""
        return self.testnet.validators[index].hex()[:8]


def start_cluster(directory: Path, *, node_arguments: Sequence[str] = (), attempts: int = 3) -> AttackCluster:
    """A running ``AttackCluster`` in a fresh subdirectory of ``directory``; a testnet whose
    ports turn out taken is stopped and made again on other ports."""
    for attempt in range(attempts):
        cluster = AttackCluster(directory / f"testnet-{attempt}", node_arguments=node_arguments)
        try:
            cluster.start_honest()
            return cluster
        except PortTaken:
            cluster.close()
            if attempt == attempts - 1:
                raise
        except BaseException:
            cluster.close()
            raise
    raise AssertionError("unreachable")
