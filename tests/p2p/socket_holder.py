"""A stranger that holds idle TCP connections: run as a separate process, so that its
sockets do not count against the open-file limit of the process under test.

    python socket_holder.py SOURCE_HOST HOST:PORT:COUNT [HOST:PORT:COUNT ...]

waits for a line on its standard input, then opens COUNT connections to each HOST:PORT
from SOURCE_HOST, sends nothing, prints
one line ``held <n>`` (how many were still open a moment after the last one was
opened), and keeps them until its standard input closes.
"""

from __future__ import annotations

import resource
import selectors
import socket
import sys
import time


def open_idle(source: str, host: str, port: int, count: int) -> list[socket.socket]:
    sockets = []
    for index in range(count):
        connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        connection.bind((source, 0))
        connection.connect((host, port))
        sockets.append(connection)
        if index % 32 == 31:
            # Past the server's listen backlog, the kernel drops a connection attempt and the
            # connect() waits a whole second to try again: leave the server time to accept.
            time.sleep(0.002)
    return sockets


def still_open(sockets: list[socket.socket], *, expect: int | None, settle: float = 0.5, deadline: float = 10.0) -> int:
    """How many of ``sockets`` the server has not closed: as soon as no more than
    ``expect`` are open (within ``deadline`` seconds), or, without ``expect``, after
    ``settle`` seconds."""
    selector = selectors.DefaultSelector()
    for connection in sockets:
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ)
    closed: set[socket.socket] = set()
    until = time.monotonic() + (settle if expect is None else deadline)
    while (remaining := until - time.monotonic()) > 0:
        if expect is not None and len(sockets) - len(closed) <= expect:
            break
        for key, _ in selector.select(timeout=remaining):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                data = ready.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.add(ready)
                selector.unregister(ready)
    return len(sockets) - len(closed)


def main(arguments: list[str]) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20_000, max(20_000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
    source, targets = arguments[0], arguments[1:]
    # "go", or "go N": N connections are expected to stay open.
    words = sys.stdin.readline().split()
    expect = int(words[1]) if len(words) > 1 else None
    sockets = []
    for target in targets:
        host, port, count = target.rsplit(":", 2)
        sockets += open_idle(source, host, int(port), int(count))
    print(f"held {still_open(sockets, expect=expect)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
