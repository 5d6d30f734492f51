"""Runs the nodes of a local testnet, each as its own process, in the foreground.

Every line a node logs is printed with the validator's name in front. Ctrl-C
(or SIGTERM) stops every node with SIGTERM, which they answer by shutting
down in order; a node that has not exited after ``grace_seconds`` is killed.
A node that refuses to start (exit status 2: its config, a port in use, its data
locked; it says why in one line) stops the launch: the others are stopped and
one line says so. A node that exits otherwise is reported and the others keep
running.

Before a launch, ``ports_in_use`` and ``running_nodes`` say what would stop it:
a listen address whose port another process holds, and nodes already running
(their LevelDB ``LOCK`` files held), each with the process in the way.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mura.holders import Holder, address_in_use, lock_holder, lock_is_held, port_in_use_message


async def _relay(name: str, width: int, stream: asyncio.StreamReader) -> None:
    async for line in stream:
        sys.stdout.write(f"{name:>{width}} | {line.decode(errors='replace')}")
        sys.stdout.flush()


#: The status ``python -m mura.node`` exits with when it cannot start (its one line says why).
CANNOT_START = 2


async def _watch(
    name: str, process: asyncio.subprocess.Process, stopping: asyncio.Event, refused: list[str]
) -> None:
    code = await process.wait()
    if stopping.is_set():
        return
    if code == CANNOT_START:
        refused.append(name)
        stopping.set()
    else:
        print(f"{name} exited with code {code}", file=sys.stderr)


async def run_nodes(nodes: Sequence[tuple[str, Path]], *, grace_seconds: float = 15.0) -> int:
    """Run ``(name, config path)`` nodes until a signal or until every one has exited.

    0 when every node stopped cleanly, 2 when one could not start (then the
    others are stopped), 1 otherwise.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    width = max(len(name) for name, _ in nodes)
    processes = []
    tasks = []
    refused: list[str] = []
    for name, config in nodes:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mura.node", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        processes.append(process)
        tasks.append(asyncio.create_task(_relay(name, width, process.stdout)))
        tasks.append(asyncio.create_task(_watch(name, process, stopping, refused)))
    all_exited = asyncio.ensure_future(_wait_all(processes))
    signalled = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([all_exited, signalled], return_when=asyncio.FIRST_COMPLETED)
    stopping.set()
    await _stop(processes, grace_seconds)
    await asyncio.gather(*tasks, return_exceptions=True)
    signalled.cancel()
    all_exited.cancel()
    if refused:
        # Others may have refused at the same moment, after the first stopped the launch.
        names = [
            name for (name, _), process in zip(nodes, processes, strict=True) if process.returncode == CANNOT_START
        ]
        others = len(processes) - len(names)
        stopped = f"stopped the {others} other node{'s' if others != 1 else ''}" if others else "no other node ran"
        print(f"testnet: {', '.join(names)} could not start; {stopped}", file=sys.stderr)
        return CANNOT_START
    return 0 if all(process.returncode in (0, -signal.SIGTERM) for process in processes) else 1


async def _wait_all(processes: list[asyncio.subprocess.Process]) -> bool:
    await asyncio.gather(*(process.wait() for process in processes))
    return True


async def _stop(processes: list[asyncio.subprocess.Process], grace_seconds: float) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
    try:
        await asyncio.wait_for(asyncio.gather(*(process.wait() for process in processes)), grace_seconds)
    except TimeoutError:
        for process in processes:
            if process.returncode is None:
                process.kill()
        await asyncio.gather(*(process.wait() for process in processes))


# --- before a launch: ports taken, nodes already running ---------------------------


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    """Where one node of a testnet listens, as its config says."""

    #: The validator's name.
    name: str
    #: Its config file.
    config: Path
    #: ``(setting, host, port)`` of ``p2p.listen`` and ``rpc.listen``, those the config sets.
    listen: tuple[tuple[str, str, int], ...]

    def port(self, setting: str) -> int | None:
        return next((port for name, _, port in self.listen if name == setting), None)


def read_node_addresses(name: str, config: Path) -> NodeAddresses:
    """Where the node of ``config`` listens; nothing when the file cannot be read (the node itself says why)."""
    try:
        document = tomllib.loads(config.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return NodeAddresses(name, config, ())
    found = []
    for section in ("p2p", "rpc"):
        table = document.get(section)
        address = table.get("listen") if isinstance(table, dict) else None
        if isinstance(address, str):
            host, _, port = address.rpartition(":")
            if host and port.isdigit():
                found.append((f"{section}.listen", host.strip("[]"), int(port)))
    return NodeAddresses(name, config, tuple(found))


def ports_in_use(nodes: Sequence[NodeAddresses]) -> list[str]:
    """One line for each node that could not listen now: the first of its addresses
    another process holds, and who holds it."""
    lines = []
    for node in nodes:
        for setting, host, port in node.listen:
            if address_in_use(host, port):
                lines.append(f"{node.name}: {port_in_use_message(setting, host, port)}")
                break
    return lines


@dataclass(frozen=True, slots=True)
class RunningNode:
    """A node of a testnet found running: another process holds one of its LevelDB locks."""

    #: The validator's name.
    name: str
    #: The LOCK file held: its data directory's or its vote record's.
    lock: Path
    #: The process holding it, when it can be found.
    holder: Holder | None


def running_nodes(locks: Iterable[tuple[str, Path]]) -> list[RunningNode]:
    """The nodes among ``(name, LOCK file)`` whose lock another process holds now, one entry
    per name: a running node holds its data directory's and its vote record's."""
    running: dict[str, RunningNode] = {}
    for name, lock in locks:
        if name not in running and lock_is_held(lock):
            running[name] = RunningNode(name, lock, lock_holder(lock))
    return list(running.values())


def describe_running(directory: Path, running: Sequence[RunningNode]) -> str:
    """One line: which node of the testnet runs, who holds what, and how many more."""
    first = running[0]
    holder = f" as {first.holder.describe()}" if first.holder is not None else ""
    more = f", and {len(running) - 1} more of its nodes run" if len(running) > 1 else ""
    return (
        f"the testnet in {directory} is running: {first.name} holds {first.lock}{holder}{more}; "
        "stop it first (Ctrl-C where it runs)"
    )
