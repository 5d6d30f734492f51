"""A fresh testnet of validator processes on free loopback ports, for the benchmark.

Like the process tests' ``Cluster`` (and on free ports found the same way), but
each node may get extra command-line settings, processes run in their own session so a
Ctrl-C on the terminal reaches only the harness, and memory is read from
``/proc``. ``close()`` stops every process it started: SIGTERM, then SIGKILL
after a grace period.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from mura.bench.ports import NoFreePorts, free_port_range
from mura.bench.rpc import Rpc
from mura.chain.keys import SigningKey, load_key
from mura.genesis.testnet import BANK_NAME, TREASURY_NAME, generate_testnet, node_config_path, write_node_configs

#: How long a validator has to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 15.0


class NetworkFailure(Exception):
    """The network did not reach a state the benchmark waits for."""


class PortTaken(NetworkFailure):
    """A validator could not bind its port: another process took it after the search found it free."""


@dataclass(frozen=True, slots=True)
class Memory:
    """One process's memory, in MB (10^6 bytes), from ``/proc/PID/status``."""

    #: VmHWM: the peak resident set since the process started.
    peak_rss_mb: float
    #: VmRSS: the resident set now.
    rss_mb: float


def read_memory(pid: int) -> Memory:
    """VmHWM and VmRSS of a live process."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) * 1024 / 1e6  # /proc counts KiB
    return Memory(peak_rss_mb=fields["VmHWM"], rss_mb=fields["VmRSS"])


def read_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ValidatorProcesses:
    """``count`` validators of a new testnet under ``directory``, each ``python -m mura.node``."""

    def __init__(self, directory: Path, *, count: int, node_arguments: Sequence[str] = ()) -> None:
        try:
            base = free_port_range(2 * count)
        except NoFreePorts as error:
            raise NetworkFailure(str(error)) from None
        self.directory = directory
        self.layout = generate_testnet(directory, validators=count, base_peer_port=base)
        rpc_base = base + count
        for validator in self.layout.genesis.validators:
            node_config_path(directory, validator.name).unlink()
        write_node_configs(self.layout, base_rpc_port=rpc_base)
        self.names = [validator.name for validator in self.layout.genesis.validators]
        self.urls = [f"http://127.0.0.1:{rpc_base + index}/" for index in range(count)]
        #: The issuers of the testnet's coin (NAC) and of its yen token (JPYT).
        self.treasury: SigningKey = load_key(directory / "keys" / f"{TREASURY_NAME}.key")
        self.bank: SigningKey = load_key(directory / "keys" / f"{BANK_NAME}.key")
        self.chain_id = self.layout.genesis.chain_id
        self.address_prefix = self.layout.genesis.address_prefix
        self.node_arguments = list(node_arguments)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def count(self) -> int:
        return len(self.names)

    def config_path(self, index: int) -> Path:
        return node_config_path(self.directory, self.names[index])

    def data_dir(self, index: int) -> Path:
        return self.config_path(index).parent / "data"

    def log_path(self, index: int) -> Path:
        return self.config_path(index).parent / "node.log"

    def pid(self, index: int) -> int:
        return self.processes[index].pid

    # --- processes ---------------------------------------------------------------

    def start(self, index: int) -> None:
        command = [sys.executable, "-m", "mura.node", "--config", str(self.config_path(index)), *self.node_arguments]
        with open(self.log_path(index), "ab") as log:
            self.processes[index] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    async def start_all(self, rpc: Rpc, *, timeout_seconds: float = 90.0) -> None:
        """Start every validator and wait until each is linked to all the others."""
        for index in range(self.count):
            self.start(index)
        for index in range(self.count):
            await self.wait_until(rpc, index, lambda status: status["peers"] == self.count - 1, "to connect",
                                  timeout_seconds=timeout_seconds)

    async def wait_until(
        self, rpc: Rpc, index: int, condition: Any, what: str, *, timeout_seconds: float, interval: float = 0.05
    ) -> dict[str, Any]:
        """Poll node ``index``'s ``chain_status`` until ``condition(status)``; the status then."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            self.check_alive(index)
            try:
                status: dict[str, Any] = await rpc.call(self.urls[index], "chain_status")
                if condition(status):
                    return status
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                pass  # not answering yet: starting, or busy catching up
            if time.monotonic() > deadline:
                raise NetworkFailure(f"{self.names[index]} did not {what} within {timeout_seconds:.0f} s")
            await asyncio.sleep(interval)

    def check_alive(self, index: int) -> None:
        """Raise ``NetworkFailure`` if validator ``index`` has exited."""
        code = self.processes[index].poll()
        if code is not None:
            if "address already in use" in self.log_tail(index):
                raise PortTaken(f"{self.names[index]} could not bind its port")
            raise NetworkFailure(f"{self.names[index]} exited with status {code}:\n{self.log_tail(index)}")

    def stop(self, index: int) -> int:
        """SIGTERM, then SIGKILL after the grace period; the exit status."""
        process = self.processes.pop(index)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=STOP_GRACE_SECONDS)

    def wipe(self, index: int) -> None:
        shutil.rmtree(self.data_dir(index))

    def close(self) -> None:
        """Stop every validator still running; idempotent."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for index in list(self.processes):
            process = self.processes.pop(index)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_GRACE_SECONDS)

    # --- observation ---------------------------------------------------------------

    def memory(self) -> dict[str, Memory]:
        """Each running validator's memory, by name."""
        return {self.names[index]: read_memory(process.pid) for index, process in sorted(self.processes.items())}

    def cpu_seconds(self) -> float:
        """CPU time all running validators have used so far, together."""
        return sum(read_cpu_seconds(process.pid) for process in self.processes.values())

    def log_tail(self, index: int, lines: int = 20) -> str:
        try:
            text = self.log_path(index).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def count_in_logs(self, needle: str) -> int:
        """How many lines of all the validators' logs contain ``needle``."""
        total = 0
        for index in range(self.count):
            try:
                total += sum(needle in line for line in self.log_path(index).read_text(errors="replace").splitlines())
            except OSError:
                continue
        return total
