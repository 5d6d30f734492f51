"""Which local process holds a port or a file lock, so that a refusal can name it.

A node that cannot listen, or a reset that finds a node still running, says
what stands in the way in one line ("rpc.listen 127.0.0.1:8700 is in use by
process 1234 (python -m mura.node --config ...)"). On Linux the holder is found
in ``/proc``: a port through ``/proc/net/tcp`` and ``tcp6`` (the socket's inode)
and then the process whose file descriptors include that socket; a lock through
``/proc/locks``. Elsewhere, or when ``/proc`` does not say (another user's
process, another network namespace), the answer is "another process".

Standard library only: every layer (the node, the testnet launcher) may use it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: /proc/net/tcp's state of a listening socket.
_LISTEN = "0A"
#: Longest command line shown for a holder; the rest becomes "...".
_MAX_COMMAND_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Holder:
    """A process that holds something this one needs."""

    #: Its process id.
    pid: int
    #: Its command line, program name without its directory, shortened.
    command: str

    def describe(self) -> str:
        """``process 1234 (python -m mura.node ...)``."""
        return f"process {self.pid} ({self.command})" if self.command else f"process {self.pid}"


def describe_holder(holder: Holder | None) -> str:
    """The holder as a sentence's object: ``process 1234 (...)`` or ``another process``."""
    return holder.describe() if holder is not None else "another process"


def format_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- ports ----------------------------------------------------------------------------


def address_in_use(host: str, port: int) -> bool:
    """Whether listening on ``host:port`` would fail because something holds the port.

    Binds as asyncio's servers do (``SO_REUSEADDR``, IPv6 sockets IPv6-only) and
    lets go at once. Port 0 is never in use; a host that does not resolve, or any
    other error, is left for the real attempt to report in its own words.
    """
    if port == 0:
        return False
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return True
    return False


def port_holder(port: int, *, proc: Path = Path("/proc")) -> Holder | None:
    """The process holding TCP ``port`` (a listening socket first), or None if unknown."""
    inodes = _socket_inodes(port, proc)
    if not inodes:
        return None
    for inode in inodes:
        holder = _process_with_socket(inode, proc)
        if holder is not None:
            return holder
    return None


def port_in_use_message(setting: str, host: str, port: int) -> str:
    """``rpc.listen 127.0.0.1:8700 is in use by process 1234 (...)``."""
    return f"{setting} {format_address(host, port)} is in use by {describe_holder(port_holder(port))}"


def _socket_inodes(port: int, proc: Path) -> list[int]:
    """Inodes of the TCP sockets bound to ``port``, listening ones first."""
    listening: list[int] = []
    bound: list[int] = []
    for table in ("tcp", "tcp6"):
        for local_port, state, inode in _tcp_table(proc / "net" / table):
            if local_port == port and inode:
                (listening if state == _LISTEN else bound).append(inode)
    return listening + bound


def _tcp_table(path: Path) -> Iterator[tuple[int, str, int]]:
    """(local port, state, inode) of each row of a ``/proc/net/tcp`` table."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        try:
            yield int(fields[1].rpartition(":")[2], 16), fields[3], int(fields[9])
        except ValueError:
            continue


def _process_with_socket(inode: int, proc: Path) -> Holder | None:
    target = f"socket:[{inode}]"
    for pid in _process_ids(proc):
        try:
            descriptors = list((proc / str(pid) / "fd").iterdir())
        except OSError:
            continue  # gone, or another user's
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == target:
                    return Holder(pid, _command_line(pid, proc))
            except OSError:
                continue
    return None


# --- file locks -----------------------------------------------------------------------


def lock_is_held(path: Path) -> bool:
    """Whether another process holds the POSIX lock LevelDB takes on its ``LOCK`` file.

    Tries a non-blocking read lock (which LevelDB's write lock refuses, and which needs
    only read access to the file) and lets go at once. Only for files this process has
    not locked itself: a process always gets its own POSIX locks, and closing any
    descriptor of the file releases them.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.lockf(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)


def lock_holder(path: Path, *, proc: Path = Path("/proc")) -> Holder | None:
    """The process holding a POSIX lock on the file at ``path`` (as LevelDB locks its
    LOCK file), per ``/proc/locks``; None if unknown."""
    try:
        status = path.stat()
    except OSError:
        return None
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        lines = (proc / "locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 5730 fe:00:2302227 0 EOF"; blocked waiters ("1: -> POSIX ...") skipped.
        if len(fields) >= 6 and fields[1] != "->" and fields[5] == device and fields[4].isdigit():
            pid = int(fields[4])
            return Holder(pid, _command_line(pid, proc))
    return None


# --- processes ------------------------------------------------------------------------


def _process_ids(proc: Path) -> Iterator[int]:
    try:
        entries = list(proc.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            yield int(entry.name)


def _command_line(pid: int, proc: Path) -> str:
    """The process's arguments separated by spaces, the program without its directory."""
    try:
        arguments = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    words = [argument.decode(errors="replace") for argument in arguments if argument]
    if not words:
        return ""
    words[0] = os.path.basename(words[0])
    command = " ".join(" ".join(words).split())  # one line, whatever the arguments hold
    if len(command) > _MAX_COMMAND_LENGTH:
        command = command[: _MAX_COMMAND_LENGTH - 3] + "..."
    return command
