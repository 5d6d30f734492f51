"""Tests for holders.py: who holds a port or a LevelDB lock, found in /proc, with real
processes holding them (and a made-up /proc for what real ones cannot show)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import plyvel
import pytest

from mura.holders import (
    Holder,
    address_in_use,
    lock_holder,
    lock_is_held,
    port_holder,
    port_in_use_message,
)

LISTENER = """
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
sys.stdin.read()
"""

LOCKER = """
import sys, plyvel
database = plyvel.DB(sys.argv[1], create_if_missing=True)
print("open", flush=True)
sys.stdin.read()
"""


@contextmanager
def child(script: str, *arguments: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A Python process running ``script``; yields it and the first line it prints once ready.
    It exits when its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line, "the child exited before it was ready"
        yield process, line
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=20)


def test_port_held_by_another_process_names_it() -> None:
    with child(LISTENER) as (process, line):
        port = int(line)
        assert address_in_use("127.0.0.1", port)
        holder = port_holder(port)
        assert holder is not None and holder.pid == process.pid
        assert holder.command.startswith("python") and "-c" in holder.command and "\n" not in holder.command
        message = port_in_use_message("rpc.listen", "127.0.0.1", port)
        assert message.startswith(f"rpc.listen 127.0.0.1:{port} is in use by process {process.pid} (python")
    assert not address_in_use("127.0.0.1", port)


def test_port_held_by_this_process() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert address_in_use("127.0.0.1", port)
        holder = port_holder(port)
        assert holder is not None and holder.pid == os.getpid()


def test_port_bound_but_not_listening_is_held_by_another_process() -> None:
    """Linux lists listening and connected sockets in /proc/net/tcp, not ones only bound."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert address_in_use("127.0.0.1", port)
        assert port_in_use_message("rpc.listen", "127.0.0.1", port) == (
            f"rpc.listen 127.0.0.1:{port} is in use by another process"
        )


def test_free_port_and_port_zero() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not address_in_use("127.0.0.1", port)
    assert port_holder(port) is None
    assert not address_in_use("127.0.0.1", 0)


def test_ipv6_address_held() -> None:
    try:
        listener = socket.socket(socket.AF_INET6)
        listener.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with listener:
        listener.listen()
        port = listener.getsockname()[1]
        assert address_in_use("::1", port)
        assert port_in_use_message("p2p.listen", "::1", port).startswith(
            f"p2p.listen [::1]:{port} is in use by process {os.getpid()}"
        )


def fake_proc(root: Path, *, port: int, inode: int, pid: int | None, arguments: list[str]) -> Path:
    """A /proc with one listening socket on ``port`` and, if ``pid``, the process holding it."""
    (root / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    row = (
        f"   0: 0100007F:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
        f"  1000        0 {inode} 1 0\n"
    )
    (root / "net" / "tcp").write_text(header + row)
    (root / "net" / "tcp6").write_text(header)
    (root / "1" / "fd").mkdir(parents=True)  # a process with no sockets
    os.symlink("/dev/null", root / "1" / "fd" / "0")
    if pid is not None:
        (root / str(pid) / "fd").mkdir(parents=True)
        os.symlink(f"socket:[{inode}]", root / str(pid) / "fd" / "7")
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(argument.encode() for argument in arguments) + b"\0")
    return root


def test_holder_from_the_socket_table_and_descriptors(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        port=8700,
        inode=4242,
        pid=1234,
        arguments=["/work/.venv/bin/python", "-m", "mura.node", "--config", "net/node.toml"],
    )
    assert port_holder(8700, proc=proc) == Holder(1234, "python -m mura.node --config net/node.toml")
    assert port_holder(8701, proc=proc) is None


def test_holder_unknown_is_another_process(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, port=8700, inode=4242, pid=None, arguments=[])
    assert port_holder(8700, proc=proc) is None
    assert port_holder(8700, proc=tmp_path / "absent") is None


def test_long_command_lines_are_shortened(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, port=9700, inode=7, pid=99, arguments=["/usr/bin/python3", "-c", "x" * 500])
    holder = port_holder(9700, proc=proc)
    assert holder is not None and len(holder.command) == 100 and holder.command.endswith("...")


def test_leveldb_lock_held_by_another_process(tmp_path: Path) -> None:
    database = tmp_path / "data"
    with child(LOCKER, str(database)) as (process, _):
        assert lock_is_held(database / "LOCK")
        holder = lock_holder(database / "LOCK")
        assert holder is not None and holder.pid == process.pid
    assert not lock_is_held(database / "LOCK")
    assert lock_holder(database / "LOCK") is None


def test_lock_free_or_absent(tmp_path: Path) -> None:
    database = plyvel.DB(str(tmp_path / "data"), create_if_missing=True)
    database.close()
    assert not lock_is_held(tmp_path / "data" / "LOCK")
    assert not lock_is_held(tmp_path / "none" / "LOCK")
